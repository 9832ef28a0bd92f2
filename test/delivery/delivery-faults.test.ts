/**
 * Faults the pipeline must survive without losing or doubling anything (docs/design.md#outbox, #consumer,
 * #auto-disable): at-least-once duplicates, a corrupt row in the middle of a batch, a Queues outage at ingest and the
 * sweeper that recovers it, a 250-recipient fan-out, and the auto-disable job.
 *
 * Hand-driven consumer runs use deliveries created by the real ingest code with a recording queue producer, so the
 * background consumer of the real local queue never sees them (see pipeline-helpers.ts). Tests that go through the
 * real queue (sweeper, fan-out) assert end states only.
 */

import { createExecutionContext, createScheduledController } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { deliveryQueueIndex, enqueueStats } from '../../src/delivery/enqueue.ts';
import { ingestEvent } from '../../src/delivery/ingest.ts';
import { runContext } from '../../src/env.ts';
import worker from '../../src/index.ts';
import { autoDisableFailingWebhooks } from '../../src/jobs/auto-disable.ts';
import { sweepOutbox } from '../../src/jobs/sweeper.ts';
import { anyShard, callJson, shardOf, unique } from '../support/helpers.ts';
import {
  allDeliveryQueues,
  attemptsOf,
  captureQueue,
  createWebhook,
  deliveriesOf,
  deliveryRow,
  eventually,
  ingestQuiet,
  insertWebhookCopies,
  notificationRow,
  recordingDeliveryQueues,
  runDeliveries,
  sentDeliveryIds,
  setupHandle,
  webhookDbRow,
} from '../support/pipeline-helpers.ts';
import { hits, receiverUrl, setMode, waitForHits } from '../support/receivers.ts';
import { summaryById } from '../support/seed.ts';

const settle = (ms = 300) => new Promise((r) => setTimeout(r, ms));
const DAY = 24 * 3600 * 1000;

describe('at-least-once: duplicate messages', () => {
  it('the same message twice in one batch → one attempt, one receiver hit, both acked, one delivery row', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('ok', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    const { report, fb } = await runDeliveries([id, id]);
    expect(report.attempts).toBe(1);
    expect(fb.outcomes.map((o) => o.calls)).toEqual([['ack'], ['ack']]);
    await settle();
    expect(await hits(key)).toHaveLength(1);
    expect(await deliveriesOf(ing.notificationId)).toHaveLength(1);
    expect(await attemptsOf(id)).toHaveLength(1);
    expect(await deliveryRow(id)).toMatchObject({ status: 'succeeded', attempt_count: 1 });
    expect(await notificationRow(ing.notificationId)).toMatchObject({
      status: 'delivered',
      open_count: 0,
      succeeded_count: 1,
    });
  });

  it('the same message in two consecutive batches: a failing delivery is attempted once per batch; a succeeded one is acked with no new hit', async () => {
    const h = await setupHandle();
    const failKey = unique('fail');
    const okKey = unique('ok');
    await createWebhook(h, { url: receiverUrl('fail', failKey) });
    const ok = await createWebhook(h, { url: receiverUrl('ok', okKey) });
    const ing = await ingestQuiet(h.handle, {});
    const rows = await Promise.all(ing.deliveryIds.map(deliveryRow));
    const okId = rows.find((r) => r.subscription_id === ok.id)!.id;
    const failId = rows.find((r) => r.subscription_id !== ok.id)!.id;

    await runDeliveries([okId, failId]);
    const second = await runDeliveries([okId, failId], { attempts: 2 });
    expect(second.report.attempts).toBe(1);
    expect(second.fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(second.fb.outcomes[1]!.retried).toBe(true);
    await settle();
    expect(await hits(okKey)).toHaveLength(1);
    expect(await hits(failKey)).toHaveLength(2);
    expect(await deliveriesOf(ing.notificationId)).toHaveLength(2);
    expect((await attemptsOf(okId)).map((a) => a.attempt_number)).toEqual([1]);
    expect((await attemptsOf(failId)).map((a) => a.attempt_number)).toEqual([1, 2]);
    expect(await deliveryRow(failId)).toMatchObject({ status: 'retrying', attempt_count: 2 });
    expect(await notificationRow(ing.notificationId)).toMatchObject({
      status: 'delivering',
      open_count: 1,
      succeeded_count: 1,
      dead_count: 0,
    });
  });

  it('the same message in two batches running at the same time → counted once: one attempt row per attempt number, both copies acked', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('slow', key, { ms: 100 }) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    const runs = await Promise.all([runDeliveries([id]), runDeliveries([id])]);
    await settle();
    const got = await hits(key);
    // Both copies may have sent (the at-least-once duplicate under one webhook-id); only the copy whose guarded move
    // applied records its attempt: attempt 1 is recorded once (docs/design.md#consumer).
    expect(got.length).toBeGreaterThanOrEqual(1);
    expect(got.length).toBeLessThanOrEqual(2);
    expect(new Set(got.map((x) => x.headers['webhook-id']))).toEqual(new Set([id]));
    expect((await attemptsOf(id)).map((a) => a.attempt_number)).toEqual([1]);
    expect(runs.map((r) => r.fb.outcomes[0]!.calls)).toEqual([['ack'], ['ack']]);
    expect(await deliveriesOf(ing.notificationId)).toHaveLength(1);
    expect(await deliveryRow(id)).toMatchObject({ status: 'succeeded' });
    expect(await notificationRow(ing.notificationId)).toMatchObject({
      status: 'delivered',
      open_count: 0,
      succeeded_count: 1,
      dead_count: 0,
    });
  });

  it('a message naming an unknown delivery is acked and changes nothing', async () => {
    const { fb, report } = await runDeliveries(['dlv_01M8D5ZQ5XJ3324PNT2R7HRCGZ']);
    expect(fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(report.attempts).toBe(0);
  });
});

describe('an exception in the middle of a batch', () => {
  for (const corruption of [
    { name: "headers = 'not json'", sql: `UPDATE webhook_subscriptions SET headers = 'not json' WHERE id = ?` },
    {
      name: 'an undecryptable secret_encrypted',
      sql: `UPDATE webhook_subscriptions SET secret_encrypted = 'v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAA' WHERE id = ?`,
    },
  ]) {
    it(`${corruption.name} → that message alone is retried; the others are acked and their outcomes written`, async () => {
      const h = await setupHandle();
      const keys = { a: unique('a'), bad: unique('bad'), c: unique('c') };
      const a = await createWebhook(h, { url: receiverUrl('ok', keys.a) });
      const bad = await createWebhook(h, { url: receiverUrl('ok', keys.bad) });
      const c = await createWebhook(h, { url: receiverUrl('fail', keys.c) });
      const ing = await ingestQuiet(h.handle, {});
      expect(ing.deliveryIds).toHaveLength(3);
      await (await shardOf(h.handle)).prepare(corruption.sql).bind(bad.id).run();
      const rows = await Promise.all(ing.deliveryIds.map(deliveryRow));
      const idOf = (sub: string) => rows.find((r) => r.subscription_id === sub)!.id;
      // The corrupt one in the middle of the batch.
      const order = [idOf(a.id), idOf(bad.id), idOf(c.id)];

      const { fb, report } = await runDeliveries(order);
      expect(fb.outcomes[0]!.calls).toEqual(['ack']);
      expect(fb.outcomes[1]!.retried).toBe(true);
      expect(fb.outcomes[1]!.calls).toHaveLength(1);
      expect(fb.outcomes[1]!.delaySeconds).toBeGreaterThan(0);
      expect(fb.outcomes[2]!.retried).toBe(true); // a real 500: retried on the schedule
      expect(fb.outcomes[2]!.delaySeconds).toBe(5);
      expect(report).toMatchObject({ acked: 1, retried: 2, attempts: 2 });

      expect(await deliveryRow(idOf(a.id))).toMatchObject({ status: 'succeeded', attempt_count: 1 });
      expect(await deliveryRow(idOf(c.id))).toMatchObject({
        status: 'retrying',
        attempt_count: 1,
        last_error_class: 'http_5xx',
      });
      expect(await deliveryRow(idOf(bad.id))).toMatchObject({ status: 'queued', attempt_count: 0 });
      expect(await attemptsOf(idOf(bad.id))).toEqual([]);
      expect(await hits(keys.a)).toHaveLength(1);
      expect(await hits(keys.c)).toHaveLength(1);
      expect(await hits(keys.bad)).toEqual([]);
      expect(await notificationRow(ing.notificationId)).toMatchObject({
        status: 'delivering',
        open_count: 2,
        succeeded_count: 1,
      });
      expect((await webhookDbRow(c.id)).consecutive_failures).toBe(1);
    });
  }
});

describe('a subscription deleted while its delivery is in flight (found by npm run soak)', () => {
  /** Starts the consumer on the delivery, deletes the webhook once the receiver has the request, then lets it answer. */
  async function deleteDuringAttempt(
    h: Awaited<ReturnType<typeof setupHandle>>,
    webhookId: string,
    key: string,
    deliveryId: string,
  ) {
    const run = runDeliveries([deliveryId]);
    await eventually(
      () => hits(key),
      (got) => got.length === 1,
      5_000,
      'the request to reach the receiver',
    );
    const del = await callJson('DELETE', `/v2/handles/${h.handle}/webhooks/${webhookId}`, { token: h.token });
    expect(del.status).toBe(204);
    // The DELETE cancelled the delivery while the receiver was still answering.
    expect(await deliveryRow(deliveryId)).toMatchObject({ status: 'cancelled', status_reason: 'subscription_deleted' });
    return run;
  }

  it('the endpoint accepted it → the delivery is succeeded with its attempt counted, not cancelled', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('slow', key, { ms: 1_500 }) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];

    const { fb } = await deleteDuringAttempt(h, wh.id, key, id);
    expect(fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(await attemptsOf(id)).toEqual([
      expect.objectContaining({ attempt_number: 1, outcome: 'succeeded', http_status: 200 }),
    ]);
    expect(await deliveryRow(id)).toMatchObject({ status: 'succeeded', attempt_count: 1, last_http_status: 200 });
    const n = await notificationRow(ing.notificationId);
    expect(n).toMatchObject({ status: 'delivered', open_count: 0, succeeded_count: 1, dead_count: 0 });
    expect(summaryById(n.recipients)[id]).toMatchObject({ status: 'succeeded', attempts: 1, lastHttpStatus: 200 });
  });

  it('the endpoint failed → the delivery stays cancelled, with the attempt counted; no retry attempts it again', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await setMode(key, { status: 500, delayMs: 1_500 });
    const wh = await createWebhook(h, { url: receiverUrl('mode', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];

    await deleteDuringAttempt(h, wh.id, key, id);
    expect(await attemptsOf(id)).toEqual([
      expect.objectContaining({ attempt_number: 1, outcome: 'failed', http_status: 500 }),
    ]);
    expect(await deliveryRow(id)).toMatchObject({
      status: 'cancelled',
      status_reason: 'subscription_deleted',
      attempt_count: 1,
      last_http_status: 500,
    });
    const n = await notificationRow(ing.notificationId);
    expect(n).toMatchObject({ status: 'no_recipients', open_count: 0, succeeded_count: 0, dead_count: 0 });
    expect(summaryById(n.recipients)[id]).toMatchObject({ status: 'cancelled', attempts: 1 });

    // Whatever the queue does with the message next, the cancelled delivery is not attempted again.
    const again = await runDeliveries([id], { attempts: 2 });
    expect(again.report.attempts).toBe(0);
    expect(again.fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(await hits(key)).toHaveLength(1);
  });

  it('a critical event: accepted → succeeded and the notification delivered; failed → cancelled and undeliverable', async () => {
    const h = await setupHandle();
    const okKey = unique('k');
    const failKey = unique('k');
    await setMode(failKey, { status: 500, delayMs: 1_500 });
    const ok = await createWebhook(h, { url: receiverUrl('slow', okKey, { ms: 1_500 }) });
    const accepted = await ingestQuiet(h.handle, { severity: 'critical' });
    const [okId] = accepted.deliveryIds as [string];
    await deleteDuringAttempt(h, ok.id, okKey, okId);
    expect(await attemptsOf(okId)).toEqual([expect.objectContaining({ attempt_number: 1, outcome: 'succeeded' })]);
    expect(await deliveryRow(okId)).toMatchObject({ status: 'succeeded', attempt_count: 1, last_http_status: 200 });
    const n1 = await notificationRow(accepted.notificationId);
    expect(n1).toMatchObject({ status: 'delivered', open_count: 0, succeeded_count: 1, dead_count: 0 });
    expect(summaryById(n1.recipients)[okId]).toMatchObject({ status: 'succeeded', attempts: 1, lastHttpStatus: 200 });

    const failing = await createWebhook(h, { url: receiverUrl('mode', failKey) });
    const failed = await ingestQuiet(h.handle, { severity: 'critical' });
    const [failId] = failed.deliveryIds as [string];
    await deleteDuringAttempt(h, failing.id, failKey, failId);
    expect(await attemptsOf(failId)).toEqual([
      expect.objectContaining({ attempt_number: 1, outcome: 'failed', http_status: 500 }),
    ]);
    expect(await deliveryRow(failId)).toMatchObject({
      status: 'cancelled',
      status_reason: 'subscription_deleted',
      attempt_count: 1,
      last_http_status: 500,
      next_attempt_at: null,
    });
    // Nobody of the handle's has it: undeliverable, marked for the minute job's platform alert by the delete.
    const n2 = await notificationRow(failed.notificationId);
    expect(n2).toMatchObject({ status: 'undeliverable', open_count: 0, succeeded_count: 0, dead_count: 0 });
    expect(n2.alert_check_at).not.toBeNull();
    expect(summaryById(n2.recipients)[failId]).toMatchObject({
      status: 'cancelled',
      statusReason: 'subscription_deleted',
      attempts: 1,
      lastHttpStatus: 500,
    });
  });
});

describe('outbox: a failed send is recovered by the sweeper, never lost', () => {
  async function ingestWithBrokenQueue() {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('ok', key) });
    const broken = captureQueue({ fail: true });
    const result = await ingestEvent(runContext({ ...env, ...allDeliveryQueues(broken.queue) }), {
      handle: h.handle,
      type: 'order.paid',
      data: { orderId: unique('ord') },
      source: 'test',
    });
    expect(broken.batches).toHaveLength(1);
    return { h, key, result, id: result.recipients[0]!.deliveryId };
  }

  it('a throwing sendBatch leaves the deliveries pending (with their notification), and the sweeper re-enqueues them → succeeded', async () => {
    const { key, result, id } = await ingestWithBrokenQueue();
    expect(result.status).toBe('delivering');
    expect(result.recipients).toEqual([expect.objectContaining({ deliveryId: id, status: 'pending' })]);
    expect(await deliveryRow(id)).toMatchObject({ status: 'pending', attempt_count: 0 });
    const n = await notificationRow(result.notificationId);
    expect(n).toMatchObject({ status: 'delivering', open_count: 1 });
    expect(summaryById(n.recipients)[id]!.status).toBe('pending');

    // A fresh pending row is not yet the sweeper's (it may still be on its way to the queue).
    await sweepOutbox(env, new Date());
    expect((await deliveryRow(id)).status).toBe('pending');
    await settle();
    expect(await hits(key)).toEqual([]);

    const swept = await sweepOutbox(env, new Date(Date.now() + 120_000));
    expect(swept.requeued).toBeGreaterThanOrEqual(1);
    expect(swept.failed).toBe(0);
    expect(['queued', 'succeeded']).toContain((await deliveryRow(id)).status);
    const [hit] = await waitForHits(key, 1, 15_000);
    expect(hit!.headers['webhook-id']).toBe(id);
    await eventually(
      () => deliveryRow(id),
      (r) => r.status === 'succeeded',
      15_000,
      'delivery succeeded',
    );
    await eventually(
      () => notificationRow(result.notificationId),
      (r) => r.status === 'delivered',
      5_000,
      'notification delivered',
    );
    expect(await hits(key)).toHaveLength(1);
  });

  it('the scheduled entry point (a minute later) runs the sweeper', async () => {
    const { key, id, result } = await ingestWithBrokenQueue();
    expect((await deliveryRow(id)).status).toBe('pending');
    await worker.scheduled(
      createScheduledController({ scheduledTime: new Date(Date.now() + 120_000), cron: '* * * * *' }),
      env,
      createExecutionContext(),
    );
    expect(['queued', 'succeeded']).toContain((await deliveryRow(id)).status);
    await waitForHits(key, 1, 15_000);
    await eventually(
      () => deliveryRow(id),
      (r) => r.status === 'succeeded',
      15_000,
      'delivery succeeded',
    );
    await eventually(
      () => notificationRow(result.notificationId),
      (r) => r.status === 'delivered',
      5_000,
      'notification delivered',
    );
  });
});

describe('fan-out', () => {
  it('one event to 250 matching webhooks → 250 deliveries, per queue the fewest sendBatch calls of ≤ 100, all delivered', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const template = await createWebhook(h, { url: receiverUrl('ok', key, { n: 0 }) });
    await insertWebhookCopies(
      template.id,
      Array.from({ length: 249 }, (_, i) => receiverUrl('ok', key, { n: i + 1 })),
    );
    const subs = await anyShard
      .prepare('SELECT count(*) AS n FROM webhook_subscriptions WHERE handle = ?')
      .bind(h.handle)
      .first<{ n: number }>();
    expect(subs!.n).toBe(250);

    const producer = recordingDeliveryQueues({ forward: true });
    const statsBefore = enqueueStats.sendBatchCalls;
    const result = await ingestEvent(runContext({ ...env, ...producer.bindings }), {
      handle: h.handle,
      type: 'order.paid',
      data: { orderId: unique('ord') },
      source: 'test',
    });
    // Each delivery on its own queue, each queue in the fewest chunks: ⌈250/100⌉ + Q − 1 calls at most in all.
    const queueCount = producer.perQueue.length;
    for (const [n, q] of producer.perQueue.entries()) {
      const sent = sentDeliveryIds(q);
      expect(q.batches.length, `queue ${n}`).toBe(Math.ceil(sent.length / 100));
      for (const id of sent) expect(deliveryQueueIndex(id, queueCount), id).toBe(n);
    }
    expect(producer.batches.length).toBeLessThanOrEqual(Math.ceil(250 / 100) + queueCount - 1);
    expect(enqueueStats.sendBatchCalls - statsBefore).toBe(producer.batches.length);
    for (const b of producer.batches) expect(b.length).toBeLessThanOrEqual(100);
    const sentIds = producer.batches.flat().map((m) => (m.body as { deliveryId: string }).deliveryId);
    expect(sentIds).toHaveLength(250);
    expect(new Set(sentIds).size).toBe(250);

    const rows = await deliveriesOf(result.notificationId);
    expect(rows).toHaveLength(250);
    expect(new Set(rows.map((r) => r.id))).toEqual(new Set(sentIds));
    expect(new Set(rows.map((r) => r.subscription_id)).size).toBe(250);
    expect(result.recipients).toHaveLength(250);
    const n = await notificationRow(result.notificationId);
    expect(n.recipient_count).toBe(250);

    // Through the real queue: every endpoint gets it once, and the counts add up under concurrent consumer batches.
    const got = await waitForHits(key, 250, 60_000);
    expect(new Set(got.map((x) => x.headers['webhook-id'])).size).toBe(250);
    const done = await eventually(
      () => notificationRow(result.notificationId),
      (r) => r.status === 'delivered',
      30_000,
      'notification delivered',
    );
    expect(done).toMatchObject({ open_count: 0, succeeded_count: 250, dead_count: 0 });
  }, 90_000);
});

describe('auto-disable job', () => {
  async function failingWebhook(failures: number, failingForMs: number) {
    const h = await setupHandle();
    const wh = await createWebhook(h, { url: receiverUrl('fail', unique('k')) });
    const since = new Date(Date.now() - failingForMs).toISOString();
    await anyShard
      .prepare(
        `UPDATE webhook_subscriptions SET consecutive_failures = ?2, failing_since = ?3, last_failure_at = ?4,
         last_failure_class = 'http_5xx', last_success_at = NULL WHERE id = ?1`,
      )
      .bind(wh.id, failures, since, new Date().toISOString())
      .run();
    return { h, wh };
  }

  async function systemNotifications(handle: string) {
    const { results } = await anyShard
      .prepare(`SELECT * FROM notifications WHERE handle = ? AND type = 'webhook.endpoint_disabled'`)
      .bind(handle)
      .all<Record<string, any>>();
    return results;
  }

  it('≥ 10 failures and failing for more than 5 days → disabled with a critical webhook.endpoint_disabled notification; 9 failures or 4 days → not', async () => {
    const due = await failingWebhook(10, 5 * DAY + 3600_000);
    const fewFailures = await failingWebhook(9, 6 * DAY);
    const tooRecent = await failingWebhook(50, 4 * DAY);
    const owner = `${unique('owner')}@example.com`;
    expect(
      (
        await callJson('PUT', `/v2/handles/${due.h.handle}/notifications/owner-default-email`, {
          token: due.h.token,
          body: { email: owner },
        })
      ).status,
    ).toBe(200);

    const result = await autoDisableFailingWebhooks(env, new Date());
    expect(result.disabled).toBeGreaterThanOrEqual(1);

    const w = await webhookDbRow(due.wh.id);
    expect(w).toMatchObject({ enabled: 0, disabled_reason: 'no_success_5_days' });
    expect(w.disabled_at).not.toBeNull();
    const [sys, ...more] = await systemNotifications(due.h.handle);
    expect(more).toEqual([]);
    expect(sys).toMatchObject({ severity: 'critical', source: 'system' });
    expect(JSON.parse(sys!.data)).toMatchObject({
      subscriptionId: due.wh.id,
      reason: 'no_success_5_days',
      consecutiveFailures: 10,
    });
    const sysDeliveries = await deliveriesOf(sys!.id);
    expect(sysDeliveries.find((d) => d.recipient_type === 'owner_default')).toMatchObject({
      channel: 'email',
      target: owner.toLowerCase(),
    });

    for (const kept of [fewFailures, tooRecent]) {
      expect((await webhookDbRow(kept.wh.id)).enabled).toBe(1);
      expect(await systemNotifications(kept.h.handle)).toEqual([]);
    }

    // Running again neither disables nor notifies twice.
    await autoDisableFailingWebhooks(env, new Date());
    expect(await systemNotifications(due.h.handle)).toHaveLength(1);
  });

  it('a webhook that had a success within the 5 days is not disabled', async () => {
    const { wh, h } = await failingWebhook(12, 6 * DAY);
    await anyShard
      .prepare('UPDATE webhook_subscriptions SET last_success_at = ? WHERE id = ?')
      .bind(new Date(Date.now() - DAY).toISOString(), wh.id)
      .run();
    await autoDisableFailingWebhooks(env, new Date());
    expect((await webhookDbRow(wh.id)).enabled).toBe(1);
    expect(await systemNotifications(h.handle)).toEqual([]);
  });
});
