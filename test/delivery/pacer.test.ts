/**
 * Pacing a webhook with a `rateLimit` (docs/design.md#pacing): its EndpointPacer (a real Durable Object in workerd)
 * hands out slots; a delivery whose slot is later is retried to it without an attempt and without a D1 write, keeps
 * its slot when it comes back, and the pace holds end to end through the real queue.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { callJson, shardName, shardOf, unique } from '../support/helpers.ts';
import {
  countingD1,
  deliveryRow,
  eventually,
  expectBetween,
  ingestQuiet,
  runDeliveries,
  setupHandle,
  type TestHandle,
} from '../support/pipeline-helpers.ts';
import { receiverUrl, waitForHits } from '../support/receivers.ts';

async function pacedWebhook(h: TestHandle, rateLimit: number, key: string): Promise<string> {
  const res = await callJson('POST', `/v2/handles/${h.handle}/webhooks`, {
    token: h.token,
    body: { url: receiverUrl('ok', key), rateLimit },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  expect(res.body.rateLimit).toBe(rateLimit);
  return res.body.id;
}

async function quietDeliveries(handle: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(...(await ingestQuiet(handle, {})).deliveryIds);
  return ids;
}

describe('pacing: the consumer and the EndpointPacer', () => {
  it('a burst of 12 at 2/s: 3 s worth goes (waited for in the invocation); the rest is retried to its slot with no attempt used and no D1 write', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await pacedWebhook(h, 2, key);
    const ids = await quietDeliveries(h.handle, 12);
    const before = await Promise.all(ids.map(deliveryRow));

    // Counted on the handle's shard, where its deliveries are (docs/design.md#shards).
    const counting = countingD1(await shardOf(h.handle));
    const started = Date.now();
    const { report, fb } = await runDeliveries(ids, {
      env: { ...env, [await shardName(h.handle)]: counting.db } as Env,
    });
    // Slots 0, 0.5 … 3 s go (the consumer waits for them); 3.5 … 5.5 s are held, their messages back once within 3 s.
    expect(report.attempts).toBe(7);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    expect(counting.count(), 'load + write, as for any batch').toBe(2);
    const retried = fb.outcomes.filter((o) => o.retried);
    // Their delays count from the batch's end (3 s on), when the queue starts them: all back within the horizon.
    expect(retried.map((o) => o.delaySeconds)).toEqual([0, 0, 0, 0, 0]);
    const sent = await waitForHits(key, 7);
    expect(sent).toHaveLength(7);
    const gaps = sent.slice(1).map((hit, i) => hit.receivedAt - sent[i]!.receivedAt);
    for (const gap of gaps) expectBetween(gap, 400, 1000, 'gap between paced sends');

    // The waiting deliveries are untouched: same row, no attempt counted.
    for (let i = 7; i < 12; i++) {
      expect(await deliveryRow(ids[i]!), `delivery ${i}`).toEqual(before[i]);
    }
    // It waits 3 s for its slots by design.
  }, 30_000);

  it('a message back before its slot keeps it (no new place at the back); back at its slot, it goes', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await pacedWebhook(h, 1, key);
    const ids = await quietDeliveries(h.handle, 10);
    // Slots 0 … 3 s go; 4 … 9 s are held.
    const first = await runDeliveries(ids);
    expect(first.report.attempts).toBe(4);
    const [fifth, last] = [ids[4]!, ids[9]!];
    expect(first.fb.outcomes.slice(4).map((o) => o.delaySeconds)).toEqual([0, 0, 0, 1, 2, 3]);

    // The last comes back early (a duplicate message, a write that failed): its slot is still ≈ 6 s away, not
    // behind the others (≥ 7 s).
    const early = await runDeliveries([last]);
    expect(early.report.attempts).toBe(0);
    expect(early.fb.outcomes[0]!.delaySeconds).toBeLessThanOrEqual(3);

    // The fifth comes back when its queue delay said: it goes, with one attempt.
    const back = await runDeliveries([fifth]);
    expect(back.report.attempts).toBe(1);
    expect(await deliveryRow(fifth)).toMatchObject({ status: 'succeeded', attempt_count: 1 });
    expect(await deliveryRow(last)).toMatchObject({ status: 'queued', attempt_count: 0 });
  }, 30_000);

  it('a held message is back before its slot: its delay counts from the end of the batch, after the batch waited for its own slots', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await pacedWebhook(h, 1, key);
    const ids = await quietDeliveries(h.handle, 10);
    const started = Date.now();
    // Slots 0 … 3 s go, waited for in this invocation; 4 … 9 s are held. Their retries start when it ends (≈ 3 s).
    const { report, fb } = await runDeliveries(ids);
    const ended = Date.now();
    expect(report.attempts).toBe(4);
    const delays = fb.outcomes.slice(4).map((o) => o.delaySeconds!);
    // Back about 3 s before each slot, counted from the end: a delay counted from the start (or rounded up) would
    // bring each message back a second or more after its slot, a hole in the pace.
    expect(delays).toEqual([0, 0, 0, 1, 2, 3]);
    delays.forEach((delay, k) => {
      const slot = started + (4 + k) * 1000;
      expectBetween(
        ended + delay * 1000,
        slot - 4000,
        slot,
        `held slot ${4 + k} s: back between 4 s before and its slot`,
      );
    });
  }, 30_000);

  it('a wait longer than a minute is written once as next_attempt_at, so the sweeper does not take it for a lost message', async () => {
    const h = await setupHandle();
    await pacedWebhook(h, 1, unique('k'));
    const ids = await quietDeliveries(h.handle, 1);
    // 70 deliveries ahead of it took slots (the first four go now, 66 are held): its own is ≈ 70 s away.
    const pacer = env.PACER.get(env.PACER.idFromName((await deliveryRow(ids[0]!)).subscription_id!));
    await pacer.admit(
      1,
      Array.from({ length: 70 }, (_, i) => `dlv_ahead_${i}`),
    );
    const { fb } = await runDeliveries(ids);
    expectBetween(fb.outcomes[0]!.delaySeconds!, 66, 68, 'delay to 3 s before its slot');
    const row = await deliveryRow(ids[0]!);
    expect(row).toMatchObject({ status: 'queued', attempt_count: 0 });
    expectBetween((Date.parse(row.next_attempt_at!) - Date.now()) / 1000, 67, 72, 'next_attempt_at − now');

    // The doctor says the endpoint is being paced, and until when.
    const health = await callJson('GET', `/v2/handles/${h.handle}/health`, { token: h.token });
    expect(health.body.webhooks.paced).toEqual([
      expect.objectContaining({ id: row.subscription_id, rateLimit: 1, beingPaced: true, waiting: 67 }),
    ]);
    expect(health.body.webhooks.paced[0].note).toMatch(
      /^Being paced: 67 deliveries wait for their slot at 1 per second/,
    );
    expectBetween((Date.parse(health.body.webhooks.paced[0].pacedUntil) - Date.now()) / 1000, 67, 72, 'pacedUntil');
  });
});

describe('pacing end to end (real queue, real receiver)', () => {
  it('20 events to a webhook limited to 5/s arrive over ≥ 3.4 s (within 10 % of the pace), each with one attempt', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await pacedWebhook(h, 5, key);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await callJson('POST', `/v2/handles/${h.handle}/events`, {
        token: h.token,
        body: { type: 'order.paid', data: { orderId: `o${i}` } },
      });
      expect(res.status).toBe(202);
      ids.push(...res.body.recipients.map((r: { deliveryId: string }) => r.deliveryId));
    }
    const got = await waitForHits(key, 20, 60_000);
    expect(got).toHaveLength(20);
    const times = got.map((x) => x.receivedAt).sort((a, b) => a - b);
    const span = (times.at(-1)! - times[0]!) / 1000;
    // 19 intervals of 200 ms: 3.8 s; observed rate = 19 / span must not exceed 5/s by more than 10 %.
    expect(19 / span, `observed rate over ${span} s`).toBeLessThanOrEqual(5 * 1.1);
    // No burst inside the run either: any 6 consecutive sends span at least 1 s less 10 %.
    for (let i = 0; i + 5 < times.length; i++) {
      expect(times[i + 5]! - times[i]!, `sends ${i}..${i + 5}`).toBeGreaterThanOrEqual(900);
    }
    const rows = await eventually(
      () => Promise.all(ids.map(deliveryRow)),
      (rs) => rs.every((r) => r.status === 'succeeded'),
      15_000,
      'every delivery succeeded',
    );
    expect(rows.map((r) => r.attempt_count)).toEqual(ids.map(() => 1));
  }, 90_000);
});
