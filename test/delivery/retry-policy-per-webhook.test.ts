import { describe, expect, it } from 'vitest';
import { consumeDeadLetters } from '../../src/delivery/dead-letter.ts';
import { overdueOfHandle, readOverdue } from '../../src/delivery/overdue.ts';
import { anyShard, call, callJson, expectProblem, shardOf, unique } from '../support/helpers.ts';
import {
  createWebhook,
  deliveryRow,
  expectBetween,
  fakeBatch,
  ingestQuiet,
  quietEnv,
  runDeliveries,
  secondsBetween,
  setupHandle,
  type TestHandle,
} from '../support/pipeline-helpers.ts';
import { receiverUrl } from '../support/receivers.ts';

const webhooks = (h: TestHandle) => `/v2/handles/${h.handle}/webhooks`;

async function failingWebhook(h: TestHandle, retryPolicy: unknown): Promise<string> {
  const res = await callJson('POST', webhooks(h), {
    token: h.token,
    body: { url: receiverUrl('fail', unique('k')), retryPolicy },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

describe('retry policy per webhook: the API', () => {
  it('a webhook shows the policy in force: default (8 attempts), short (5 s, 30 s, 2 min), or custom as sent', async () => {
    const h = await setupHandle();
    const plain = await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const got = await callJson('GET', `${webhooks(h)}/${plain.id}`, { token: h.token });
    expect(got.body.retryPolicy).toEqual({
      name: 'default',
      delaysSeconds: [5, 300, 1800, 7200, 18000, 36000, 36000],
      maxAttempts: 8,
    });
    expect(got.body.rateLimit).toBeNull();

    const short = await callJson('POST', webhooks(h), {
      token: h.token,
      body: { url: receiverUrl('ok', unique('k')), retryPolicy: { name: 'short' } },
    });
    expect(short.body.retryPolicy).toEqual({ name: 'short', delaysSeconds: [5, 30, 120], maxAttempts: 4 });

    const patched = await callJson('PATCH', `${webhooks(h)}/${plain.id}`, {
      token: h.token,
      body: { retryPolicy: { name: 'custom', delaysSeconds: [10, 60, 43200] } },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.retryPolicy).toEqual({ name: 'custom', delaysSeconds: [10, 60, 43200], maxAttempts: 4 });
    const back = await callJson('PATCH', `${webhooks(h)}/${plain.id}`, {
      token: h.token,
      body: { retryPolicy: { name: 'default' } },
    });
    expect(back.body.retryPolicy.name).toBe('default');
  });

  it('a custom policy outside the bounds is a 422 naming the bound: over 12 h, more than 7 delays, none, not whole, delays on a named policy', async () => {
    const h = await setupHandle();
    const cases: Array<[unknown, RegExp]> = [
      [{ name: 'custom', delaysSeconds: [5, 43201] }, /entry 2 \(43201\).*43,200.*12 h/],
      [{ name: 'custom', delaysSeconds: [1, 1, 1, 1, 1, 1, 1, 1] }, /has 8 delays.*at most 7/],
      [{ name: 'custom', delaysSeconds: [] }, /at least one delay/],
      [{ name: 'custom' }, /at least one delay/],
      [{ name: 'custom', delaysSeconds: [2.5] }, /entry 1 \(2\.5\).*whole number/],
      [{ name: 'custom', delaysSeconds: [0] }, /entry 1 \(0\)/],
      [{ name: 'short', delaysSeconds: [5] }, /belongs to a custom policy/],
    ];
    for (const [retryPolicy, detail] of cases) {
      const res = await call('POST', webhooks(h), {
        token: h.token,
        body: { url: receiverUrl('ok', unique('k')), retryPolicy },
      });
      const p = await expectProblem(res, 422);
      expect(p.detail, JSON.stringify(retryPolicy)).toMatch(detail);
      expect(p.field).toBe('retryPolicy.delaysSeconds');
    }
    // An unknown name is a shape error: 400 naming the field.
    const res = await call('POST', webhooks(h), {
      token: h.token,
      body: { url: receiverUrl('ok', unique('k')), retryPolicy: { name: 'aggressive' } },
    });
    const p = await expectProblem(res, 400);
    expect(JSON.stringify(p.errors)).toContain('retryPolicy.name');
  });
});

describe('retry policy per webhook: the consumer, the DLQ and the sweeper', () => {
  it('custom [7, 11]: retried after ≈ 7 s, then ≈ 11 s, and the third failure is dead (retries_exhausted)', async () => {
    const h = await setupHandle();
    await failingWebhook(h, { name: 'custom', delaysSeconds: [7, 11] });
    const [id] = (await ingestQuiet(h.handle, {})).deliveryIds as [string];

    const first = await runDeliveries([id]);
    expectBetween(first.fb.outcomes[0]!.delaySeconds!, 6.3, 7.7, 'delay after attempt 1');
    const d1 = await deliveryRow(id);
    expect(d1).toMatchObject({ status: 'retrying', attempt_count: 1 });
    expectBetween(secondsBetween(d1.last_attempt_at!, d1.next_attempt_at!), 6, 9, 'next_attempt_at after 1');

    const second = await runDeliveries([id], { attempts: 2 });
    expectBetween(second.fb.outcomes[0]!.delaySeconds!, 9.9, 12.1, 'delay after attempt 2');

    const third = await runDeliveries([id], { attempts: 3 });
    expect(third.fb.outcomes[0]).toMatchObject({ acked: true, retried: false });
    expect(await deliveryRow(id)).toMatchObject({
      status: 'dead',
      attempt_count: 3,
      status_reason: 'retries_exhausted',
    });
  });

  it('short: 4 attempts (5 s, 30 s, 2 min), then dead', async () => {
    const h = await setupHandle();
    await failingWebhook(h, { name: 'short' });
    const [id] = (await ingestQuiet(h.handle, {})).deliveryIds as [string];
    const delays: number[] = [];
    for (let n = 1; n <= 3; n++)
      delays.push((await runDeliveries([id], { attempts: n })).fb.outcomes[0]!.delaySeconds!);
    expectBetween(delays[0]!, 4.5, 5.5, 'after 1');
    expectBetween(delays[1]!, 27, 33, 'after 2');
    expectBetween(delays[2]!, 108, 132, 'after 3');
    const last = await runDeliveries([id], { attempts: 4 });
    expect(last.fb.outcomes[0]!.acked).toBe(true);
    expect(await deliveryRow(id)).toMatchObject({ status: 'dead', attempt_count: 4 });
  });

  it('the DLQ judges "schedule spent" by the webhook’s policy: custom [5] after 2 attempts → dead; default → handed back', async () => {
    const h = await setupHandle();
    await failingWebhook(h, { name: 'custom', delaysSeconds: [5] });
    const other = await setupHandle();
    await failingWebhook(other, { name: 'default' });
    const [custom] = (await ingestQuiet(h.handle, {})).deliveryIds as [string];
    const [standard] = (await ingestQuiet(other.handle, {})).deliveryIds as [string];
    for (const id of [custom, standard]) {
      // Two recorded attempts, left open as a crash after the second would leave them.
      await anyShard
        .prepare(
          `UPDATE deliveries SET status = 'retrying', attempt_count = 2, status_reason = 'retry_scheduled' WHERE id = ?`,
        )
        .bind(id)
        .run();
    }
    const fb = fakeBatch(
      'notify-deliveries-dlq',
      // Each message names its handle, as enqueued messages do: it picks the shard (docs/design.md#shards).
      [
        [custom, h.handle],
        [standard, other.handle],
      ].map(([deliveryId, handle]) => ({ body: { deliveryId, handle } })),
    );
    // Its hand-back goes to a recording producer: the background consumer must not attempt it meanwhile.
    await consumeDeadLetters(fb.batch, quietEnv().env);
    expect(await deliveryRow(custom)).toMatchObject({ status: 'dead', status_reason: 'retries_exhausted' });
    expect(await deliveryRow(standard)).toMatchObject({ status: 'retrying', status_reason: 'requeued_from_dlq' });
  });

  it('the sweeper’s due time follows the policy’s delay: custom [3600] is not overdue 30 min later, default (5 s) is', async () => {
    const slow = await setupHandle();
    await failingWebhook(slow, { name: 'custom', delaysSeconds: [3600] });
    const fast = await setupHandle();
    await failingWebhook(fast, { name: 'default' });
    for (const h of [slow, fast]) {
      const [id] = (await ingestQuiet(h.handle, {})).deliveryIds as [string];
      await runDeliveries([id]);
    }
    const later = new Date(Date.now() + 30 * 60_000);
    const count = async (h: TestHandle) => {
      const d1 = await shardOf(h.handle);
      const [n, oldest] = await d1.batch<Record<string, unknown>>([...overdueOfHandle(d1, h.handle, later, 300)]);
      return readOverdue(n!, oldest!).count;
    };
    expect(await count(slow)).toBe(0);
    expect(await count(fast)).toBe(1);
  });
});
