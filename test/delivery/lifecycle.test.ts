/**
 * A delivery's life after ingest (docs/reliability.md): a test send orphaned by its request, and a critical
 * notification that leaves `undeliverable` when a recovered delivery succeeds, or becomes `undeliverable` after ingest.
 * Deliveries are driven through the production consumer by hand (their messages kept from the background consumer),
 * receivers are real HTTP servers on 127.0.0.1.
 */

import { createExecutionContext, createScheduledController } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it, vi } from 'vitest';
import { alertUndeliverable } from '../../src/delivery/platform-alerts.ts';
import worker from '../../src/index.ts';
import { anyShard, call, callJson, callWithVars, catalogData, shardName, shardOf, unique } from '../support/helpers.ts';
import {
  attemptsOf,
  createWebhook,
  d1FailingBatchesMatching,
  deliveriesOf,
  deliveryRow,
  eventually,
  ingestQuiet,
  notificationRow,
  runDeliveries,
  setupHandle,
} from '../support/pipeline-helpers.ts';
import { hits, receiverUrl, waitForHits } from '../support/receivers.ts';

describe('an orphaned test send', () => {
  it('a test send whose final write failed is ended by the consumer (test_send_interrupted): no retry schedule, no request to the disabled endpoint', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('fail', key) });
    // The test's request sends, then loses its final write: its `pending` row is left for the sweeper.
    const failing = d1FailingBatchesMatching(await shardOf(h.handle), /INSERT INTO delivery_attempts/);
    const res = await callWithVars(
      { [await shardName(h.handle)]: failing.db },
      'POST',
      `/v2/handles/${h.handle}/webhooks/${wh.id}/test`,
      {
        token: h.token,
        body: {},
      },
    );
    expect(res.status).toBe(503);
    expect(failing.failures()).toBe(1);
    await waitForHits(key, 1);
    const orphan = await anyShard
      .prepare("SELECT id, status FROM deliveries WHERE subscription_id = ? AND kind = 'test'")
      .bind(wh.id)
      .first<{ id: string; status: string }>();
    expect(orphan).toMatchObject({ status: 'pending' });
    // The owner disables the endpoint; then the sweeper hands the orphan to the queue.
    const off = await callJson('PATCH', `/v2/handles/${h.handle}/webhooks/${wh.id}`, {
      token: h.token,
      body: { enabled: false },
    });
    expect(off.status).toBe(200);

    const { fb, report } = await runDeliveries([orphan!.id]);
    expect(fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(report.attempts).toBe(0);
    expect(await deliveryRow(orphan!.id)).toMatchObject({
      kind: 'test',
      status: 'cancelled',
      status_reason: 'test_send_interrupted',
      attempt_count: 0,
      next_attempt_at: null,
    });
    expect(await attemptsOf(orphan!.id)).toEqual([]);
    // The request the test made is the only one the endpoint ever got.
    expect(await hits(key)).toHaveLength(1);
  });
});

describe('undeliverable follows the deliveries', () => {
  it('a critical event whose only match was a disabled webhook leaves undeliverable once the webhook is re-enabled and its recovered delivery succeeds', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('ok', key), enabled: false });
    const since = new Date(Date.now() - 1000).toISOString();
    const ing = await ingestQuiet(h.handle, { type: 'payment.failed', severity: 'critical', data: { orderId: 'o-u' } });
    expect(ing.status).toBe('undeliverable');
    const [skipped] = ing.deliveryIds;
    expect(await deliveryRow(skipped!)).toMatchObject({ status: 'skipped', status_reason: 'subscription_disabled' });

    const on = await callJson('PATCH', `/v2/handles/${h.handle}/webhooks/${wh.id}`, {
      token: h.token,
      body: { enabled: true },
    });
    expect(on.status).toBe(200);
    const rec = await callJson('POST', `/v2/handles/${h.handle}/webhooks/${wh.id}/recover`, {
      token: h.token,
      body: { since },
    });
    expect(rec.status).toBe(202);
    expect(rec.body.redriven).toEqual([skipped]);
    // While the redriven delivery is open the event is on its way, not undeliverable.
    expect(['delivering', 'delivered']).toContain((await notificationRow(ing.notificationId)).status);
    await eventually(
      () => deliveryRow(skipped!),
      (d) => d.status === 'succeeded',
      15_000,
      'recovered delivery succeeded',
    );
    expect(await notificationRow(ing.notificationId)).toMatchObject({
      status: 'delivered',
      open_count: 0,
      succeeded_count: 1,
      dead_count: 0,
    });
    const feed = await callJson('GET', `/v2/handles/${h.handle}/notifications/${ing.notificationId}`, {
      token: h.token,
    });
    expect(feed.body.status).toBe('delivered');
  });

  it('a critical event that becomes undeliverable after ingest (its delivery skipped at send time, or cancelled by a delete) reaches the platform alert address', async () => {
    const alert = `${unique('platform')}@gharart.test`;
    const h = await setupHandle();
    const skippedHook = await createWebhook(h, { url: receiverUrl('ok', unique('k')), eventTypes: ['payment.*'] });
    const deletedHook = await createWebhook(h, { url: receiverUrl('ok', unique('k')), eventTypes: ['refund.*'] });
    // Both match at ingest: nothing is undeliverable yet, so no platform alert is made.
    const viaSkip = await ingestQuiet(
      h.handle,
      { type: 'payment.failed', severity: 'critical', data: catalogData('payment.failed') },
      {
        PLATFORM_ALERT_EMAIL: alert,
      },
    );
    const viaDelete = await ingestQuiet(
      h.handle,
      { type: 'refund.failed', severity: 'critical', data: {} },
      {
        PLATFORM_ALERT_EMAIL: alert,
      },
    );
    for (const ing of [viaSkip, viaDelete]) {
      expect(ing.status).toBe('delivering');
      expect(ing.recipients.map((r) => r.recipientType)).toEqual(['webhook']);
    }

    // One webhook is disabled before the consumer gets to its delivery; the other is deleted.
    await callJson('PATCH', `/v2/handles/${h.handle}/webhooks/${skippedHook.id}`, {
      token: h.token,
      body: { enabled: false },
    });
    await runDeliveries(viaSkip.deliveryIds);
    expect(await deliveryRow(viaSkip.deliveryIds[0]!)).toMatchObject({ status: 'skipped' });
    expect(
      (await call('DELETE', `/v2/handles/${h.handle}/webhooks/${deletedHook.id}`, { token: h.token })).status,
    ).toBe(204);
    expect(await deliveryRow(viaDelete.deliveryIds[0]!)).toMatchObject({ status: 'cancelled' });
    for (const ing of [viaSkip, viaDelete]) {
      expect((await notificationRow(ing.notificationId)).status).toBe('undeliverable');
    }

    // The minute job, as deployed with a platform alert address (kept to this handle: other tests' marks are theirs).
    const alertEnv = { ...env, PLATFORM_ALERT_EMAIL: alert };
    expect(await alertUndeliverable(alertEnv, new Date(), { handle: h.handle })).toMatchObject({
      checked: 2,
      alerted: 2,
      enqueued: 2,
    });
    for (const ing of [viaSkip, viaDelete]) {
      const alerts = (await deliveriesOf(ing.notificationId)).filter((d) => d.recipient_type === 'platform_alert');
      expect(alerts).toEqual([
        expect.objectContaining({
          channel: 'email',
          target: alert,
          subscription_id: null,
        }),
      ]);
      await eventually(
        () => deliveryRow(alerts[0]!.id),
        (d) => d.status === 'succeeded',
        15_000,
        'platform alert sent',
      );
      // The handle's own recipients still got nothing: the notification says so, and its counts agree.
      expect(await notificationRow(ing.notificationId)).toMatchObject({
        status: 'undeliverable',
        open_count: 0,
        succeeded_count: 1,
        dead_count: 0,
      });
    }
    // Once per notification: the marks are cleared, and a notification marked again gets no second alert.
    expect(await alertUndeliverable(alertEnv, new Date(), { handle: h.handle })).toMatchObject({ checked: 0 });
    await anyShard
      .prepare('UPDATE notifications SET alert_check_at = ?2 WHERE id = ?1')
      .bind(viaSkip.notificationId, new Date().toISOString())
      .run();
    expect(await alertUndeliverable(alertEnv, new Date(), { handle: h.handle })).toMatchObject({
      checked: 1,
      alerted: 0,
    });
    for (const ing of [viaSkip, viaDelete]) {
      const alerts = (await deliveriesOf(ing.notificationId)).filter((d) => d.recipient_type === 'platform_alert');
      expect(alerts).toHaveLength(1);
    }
  });
});

describe('the minute jobs', () => {
  it('the scheduled entry point runs the undeliverable alert job', async () => {
    const logged = vi.spyOn(console, 'log');
    try {
      // Without PLATFORM_ALERT_EMAIL (as in this test env) the job has nothing to send and leaves fresh marks alone.
      await worker.scheduled(
        createScheduledController({ scheduledTime: new Date(), cron: '* * * * *' }),
        env,
        createExecutionContext(),
      );
      const done = logged.mock.calls
        .map((args) => String(args[0]))
        .filter((l) => l.includes('"msg":"job_done"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(done).toContainEqual(expect.objectContaining({ job: 'alertUndeliverable', checked: 0 }));
    } finally {
      logged.mockRestore();
    }
  });
});
