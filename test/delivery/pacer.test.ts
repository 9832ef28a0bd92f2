/**
 * Pacing a webhook with a `rateLimit` (docs/design.md#pacing): its EndpointPacer (a real Durable Object in workerd)
 * grants send times; a delivery granted one waits for it in the invocation and sends only if on time; one held waits
 * on its queue as a new message (no attempt, no D1 write, no queue retry spent) and comes back before its turn.
 *
 * Timing is measured where the consumer sends: each attempt's start is its ledger row's time less its duration
 * (`sendTimes`), which is what the endpoint sees less the network. A send that misses its grant under load does not
 * go (it is counted in `report.pacedLate` and waits again), so the tests count such sends instead of assuming none.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { GRANT_SPAN_MS, HORIZON_MS } from '../../src/delivery/endpoint-pacer.ts';
import { LATE_AFTER_MS } from '../../src/delivery/pacer.ts';
import { callJson, shardName, shardOf, unique } from '../support/helpers.ts';
import {
  allDeliveryQueues,
  type CaptureQueue,
  captureQueue,
  countingD1,
  deliveryRow,
  eventually,
  expectBetween,
  ingestQuiet,
  quietEnv,
  runDeliveries,
  setupHandle,
  type TestHandle,
} from '../support/pipeline-helpers.ts';
import { receiverUrl } from '../support/receivers.ts';

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

/** The messages a consumer run put back on the delivery queues: delivery id → delay (s). */
function requeued(capture: CaptureQueue): Map<string, number> {
  return new Map(
    capture.batches.flat().map((m) => [(m.body as { deliveryId: string }).deliveryId, m.delaySeconds ?? 0] as const),
  );
}

/** When the consumer started each attempt of these deliveries (epoch ms, in order): row time less duration. */
async function sendTimes(handle: string, ids: readonly string[]): Promise<number[]> {
  const d1 = await shardOf(handle);
  const { results } = await d1
    .prepare(
      `SELECT created_at AS at, duration_ms AS ms FROM delivery_attempts
       WHERE delivery_id IN (SELECT value FROM json_each(?1))`,
    )
    .bind(JSON.stringify(ids))
    .all<{ at: string; ms: number }>();
  return results.map((r) => Date.parse(r.at) - r.ms).sort((a, b) => a - b);
}

/** The most sends in any 1-second window [t, t + 1000). */
function busiestSecond(times: readonly number[]): number {
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= 1000) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

describe('pacing: the consumer and the EndpointPacer', () => {
  it('a burst of 12 at 2/s: 3 s worth is granted and sent 500 ms apart (consumer side); the rest waits on its queue with no attempt used and no D1 write', async () => {
    const h = await setupHandle();
    await pacedWebhook(h, 2, unique('k'));
    const ids = await quietDeliveries(h.handle, 12);
    const before = await Promise.all(ids.map(deliveryRow));

    // Counted on the handle's shard, where its deliveries are (docs/design.md#shards).
    const counting = countingD1(await shardOf(h.handle));
    const { env: quiet, capture } = quietEnv({ [await shardName(h.handle)]: counting.db });
    const started = Date.now();
    const { report, fb } = await runDeliveries(ids, { env: quiet });
    // Grants 0, 0.5 … 3 s (the consumer waits for them); 3.5 … 5.5 s are held, their messages back within the horizon.
    expect(report.attempts + report.pacedLate, 'granted').toBe(7);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    expect(counting.count(), 'load + write, as for any batch').toBe(2);
    const waits = requeued(capture);
    // Their delays count from the batch's end (3 s on), when the new messages are sent: all back within the horizon.
    expect(ids.slice(7).map((id) => waits.get(id))).toEqual([0, 0, 0, 0, 0]);
    // Every message is acked: a wait is a new message, not a retry.
    expect(fb.outcomes.every((o) => o.acked && !o.retried)).toBe(true);
    const sent = await sendTimes(h.handle, ids);
    expect(sent).toHaveLength(report.attempts);
    // On time or not at all: consecutive sends are never closer than their grants less the lateness allowed.
    for (let i = 1; i < sent.length; i++) {
      expect(sent[i]! - sent[i - 1]!, `gap ${i}`).toBeGreaterThanOrEqual(500 - LATE_AFTER_MS);
    }

    // The waiting deliveries are untouched: same row, no attempt counted.
    for (let i = 7; i < 12; i++) {
      expect(await deliveryRow(ids[i]!), `delivery ${i}`).toEqual(before[i]);
    }
    // It waits 3 s for its grants by design.
  }, 30_000);

  it('a message back before its turn keeps it (no new place at the back); back when its turn is near, it is granted', async () => {
    const h = await setupHandle();
    await pacedWebhook(h, 1, unique('k'));
    const ids = await quietDeliveries(h.handle, 14);
    // Grants 0 … 3 s; turns 4 … 13 s are held.
    const { env: quiet, capture } = quietEnv();
    const first = await runDeliveries(ids, { env: quiet });
    expect(first.report.attempts + first.report.pacedLate).toBe(4);
    const [fifth, last] = [ids[4]!, ids[13]!];
    const waits = requeued(capture);
    expect(ids.slice(4).map((id) => waits.get(id))).toEqual([0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);

    // The last comes back early (a duplicate message, a write that failed): its turn is still ≈ 10 s away, not
    // behind the others (≥ 14 s), so it waits again for about as long as it had left.
    const again = quietEnv();
    const early = await runDeliveries([last], { env: again.env });
    expect(early.report.attempts + early.report.pacedLate).toBe(0);
    expect(requeued(again.capture).get(last)).toBeLessThanOrEqual(4);

    // The fifth comes back when its delay said: its turn is near, it is granted (and goes, with one attempt, or —
    // late on a loaded machine — waits again at the front).
    const back = await runDeliveries([fifth], { env: quietEnv().env });
    expect(back.report.attempts + back.report.pacedLate).toBe(1);
    if (back.report.attempts) expect(await deliveryRow(fifth)).toMatchObject({ status: 'succeeded', attempt_count: 1 });
    expect(await deliveryRow(last)).toMatchObject({ status: 'queued', attempt_count: 0 });
  }, 30_000);

  it('a held message is back before its turn: its delay counts from the end of the batch, after the batch waited for its own grants', async () => {
    const h = await setupHandle();
    await pacedWebhook(h, 1, unique('k'));
    const ids = await quietDeliveries(h.handle, 14);
    const { env: quiet, capture } = quietEnv();
    const started = Date.now();
    // Grants 0 … 3 s, waited for in this invocation; turns 4 … 13 s are held. Their messages are sent when it ends.
    const { report } = await runDeliveries(ids, { env: quiet });
    const ended = Date.now();
    expect(report.attempts + report.pacedLate).toBe(4);
    const waits = requeued(capture);
    const delays = ids.slice(4).map((id) => waits.get(id)!);
    // Back about the horizon before each turn, counted from the end: a delay counted from the start (or rounded up)
    // would bring each message back a second or more later, after the grants it could have had.
    expect(delays).toEqual([0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    delays.forEach((delay, k) => {
      const turn = started + (4 + k) * 1000;
      expectBetween(
        ended + delay * 1000,
        turn - HORIZON_MS - 1000,
        turn,
        `held turn ${4 + k} s: back between the horizon (and a second) before and its turn`,
      );
    });
  }, 30_000);

  it('a wait longer than a minute is written once as next_attempt_at, so the sweeper does not take it for a lost message', async () => {
    const h = await setupHandle();
    await pacedWebhook(h, 1, unique('k'));
    const ids = await quietDeliveries(h.handle, 1);
    // 70 deliveries ahead of it (the first four granted, 66 held): its own turn is ≈ 70 s away.
    const pacer = env.PACER.get(env.PACER.idFromName((await deliveryRow(ids[0]!)).subscription_id!));
    await pacer.admit(
      1,
      Array.from({ length: 70 }, (_, i) => `dlv_ahead_${i}`),
    );
    const { env: quiet, capture } = quietEnv();
    await runDeliveries(ids, { env: quiet });
    expectBetween(requeued(capture).get(ids[0]!)!, 63, 65, 'delay to the horizon before its turn');
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

  it('grants go to the deliveries that are there: a held one not back yet leaves no hole, and is granted when back', async () => {
    const pacer = env.PACER.get(env.PACER.idFromName(unique('wh')));
    const now = Date.now();
    const burst = Array.from({ length: 12 }, (_, i) => `dlv_burst_${i}`);
    // 2/s: grants at 0 … 3 s (one call spans at most GRANT_SPAN_MS); the 5 others are held for 3.5 … 5.5 s.
    const first = await pacer.admit(2, burst, now);
    expect(first.map((s) => s.go)).toEqual([...Array(7).fill(true), ...Array(5).fill(false)]);
    expect(first.map((s) => s.at - now)).toEqual([0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 5500]);
    expect(GRANT_SPAN_MS).toBe(3000);

    // The held five are on their way back. A new delivery here now is granted the next send (3.5 s), not a time
    // behind the absent five (6 s): a message that is late leaves no hole in the pace.
    const [fresh] = await pacer.admit(2, ['dlv_fresh'], now + 100);
    expect(fresh).toEqual({ at: now + 3500, go: true });
    // A held one back, late: granted the next send after the last, never the time it missed.
    const [late] = await pacer.admit(2, [burst[7]!], now + 4200);
    expect(late).toEqual({ at: now + 4200, go: true });
    // A delivery granted before and asking again (it could not send in time) is at the front, ahead of new ones.
    expect(await pacer.admit(2, ['dlv_next'], now + 4200)).toEqual([{ at: now + 4700, go: true }]);
    const backAgain = await pacer.admit(2, ['dlv_new_a', 'dlv_new_b', burst[0]!], now + 4300);
    expect(backAgain.map((s) => s.at - now)).toEqual([5700, 6200, 5200]);
  });

  it('a paced send that cannot start on time does not go: no attempt, no queue retry, and it asks again at the front', async () => {
    // Six slow requests of another endpoint hold every connection of the invocation for 2 s, so the paced sends
    // granted at 0, 0.5 and 1 s cannot start on time, whatever the machine's load. Both handles on one shard: a
    // batch's part on each shard has its own connections.
    const busy = await setupHandle('SHARD_0');
    const res = await callJson('POST', `/v2/handles/${busy.handle}/webhooks`, {
      token: busy.token,
      body: { url: receiverUrl('slow', unique('k'), { ms: 2000 }) },
    });
    expect(res.status).toBe(201);
    const slow = await quietDeliveries(busy.handle, 6);
    const h = await setupHandle('SHARD_0');
    const webhookId = await pacedWebhook(h, 2, unique('k'));
    const paced = await quietDeliveries(h.handle, 3);

    const { env: quiet, capture } = quietEnv();
    const { report, fb } = await runDeliveries([...slow, ...paced], { env: quiet });
    expect(report.attempts, 'the six slow requests only').toBe(6);
    expect(report.pacedLate).toBe(3);
    for (const id of paced) expect(await deliveryRow(id)).toMatchObject({ status: 'queued', attempt_count: 0 });
    // Each waits again as a new message, back at once; its old message is acked (no queue retry spent).
    const waits = requeued(capture);
    expect(paced.map((id) => waits.get(id))).toEqual([0, 0, 0]);
    expect(fb.outcomes.every((o) => o.acked && !o.retried)).toBe(true);

    // Its pacer puts them at the front: ahead of a burst that arrived meanwhile.
    const pacer = env.PACER.get(env.PACER.idFromName(webhookId));
    const now = Date.now();
    await pacer.admit(
      2,
      Array.from({ length: 20 }, (_, i) => `dlv_meanwhile_${i}`),
      now,
    );
    const again = await pacer.admit(2, [...paced, 'dlv_after'], now);
    expect(again.map((s) => s.go)).toEqual([true, true, true, false]);
  }, 30_000);

  it('a paced wait is a new message, not a queue retry: a message on its last delivery before the DLQ waits without going there', async () => {
    const h = await setupHandle();
    const webhookId = await pacedWebhook(h, 1, unique('k'));
    const ids = await quietDeliveries(h.handle, 6);
    // Its queue's max_retries = 7: an 8th delivery of a message that is retried goes to the DLQ.
    const { env: quiet, capture } = quietEnv();
    const { report, fb } = await runDeliveries(ids, { env: quiet, attempts: 8 });
    expect(report.attempts + report.pacedLate).toBe(4);
    expect(
      fb.outcomes.filter((o) => o.retried),
      'no message retried (none handed to the DLQ)',
    ).toEqual([]);
    expect(fb.outcomes.every((o) => o.acked)).toBe(true);
    // The two that wait are new messages on their own queues (first delivery: attempts = 1 when they arrive).
    const waits = requeued(capture);
    expect([waits.has(ids[4]!), waits.has(ids[5]!)]).toEqual([true, true]);
    expect(capture.batches.flat().map((m) => m.body)).toEqual(
      expect.arrayContaining([
        { deliveryId: ids[4], handle: h.handle },
        { deliveryId: ids[5], handle: h.handle },
      ]),
    );

    // If the new message cannot be sent (a Queues outage), the old one is retried instead: nothing is lost. (Twenty
    // deliveries ahead of this one: it waits.)
    const [waiting] = await quietDeliveries(h.handle, 1);
    const pacer = env.PACER.get(env.PACER.idFromName(webhookId));
    await pacer.admit(
      1,
      Array.from({ length: 20 }, (_, i) => `dlv_before_${i}`),
    );
    const down = captureQueue({ fail: true });
    const outage = await runDeliveries([waiting!], { env: { ...env, ...allDeliveryQueues(down.queue) } as Env });
    expect(outage.report.attempts).toBe(0);
    expect(down.batches.flat().map((m) => m.body)).toEqual([{ deliveryId: waiting, handle: h.handle }]);
    expect(outage.fb.outcomes[0]).toMatchObject({ acked: false, retried: true });
  }, 30_000);
});

describe('pacing end to end (real queue, consumer-side send times)', () => {
  it('20 events to a webhook limited to 5/s are sent over ≥ 3.8 s less the lateness allowed, never 6 within a second less 10 %, each with one attempt', async () => {
    const h = await setupHandle();
    await pacedWebhook(h, 5, unique('k'));
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await callJson('POST', `/v2/handles/${h.handle}/events`, {
        token: h.token,
        body: { type: 'order.paid', data: { orderId: `o${i}` } },
      });
      expect(res.status).toBe(202);
      ids.push(...res.body.recipients.map((r: { deliveryId: string }) => r.deliveryId));
    }
    const rows = await eventually(
      () => Promise.all(ids.map(deliveryRow)),
      (rs) => rs.every((r) => r.status === 'succeeded'),
      60_000,
      'every delivery succeeded',
    );
    expect(rows.map((r) => r.attempt_count)).toEqual(ids.map(() => 1));
    const times = await sendTimes(h.handle, ids);
    expect(times).toHaveLength(20);
    const span = times.at(-1)! - times[0]!;
    // 19 intervals of 200 ms: 3.8 s, each send on time within LATE_AFTER_MS of its grant.
    expect(span, 'first to last send').toBeGreaterThanOrEqual(3800 - LATE_AFTER_MS);
    expect(19 / (span / 1000), `rate over ${span} ms`).toBeLessThanOrEqual(5 * 1.1);
    // No burst inside the run either: any 6 consecutive sends span at least 1 s less 10 %.
    for (let i = 0; i + 5 < times.length; i++) {
      expect(times[i + 5]! - times[i]!, `sends ${i}..${i + 5}`).toBeGreaterThanOrEqual(900);
    }
  }, 90_000);

  it('two invocations at once, one stalled behind slow requests: no second holds more than the pace and its tolerance', async () => {
    // Both handles on one shard, so the slow requests hold the connections the paced sends need.
    const busy = await setupHandle('SHARD_0');
    const res = await callJson('POST', `/v2/handles/${busy.handle}/webhooks`, {
      token: busy.token,
      body: { url: receiverUrl('slow', unique('k'), { ms: 2000 }) },
    });
    expect(res.status).toBe(201);
    const slow = await quietDeliveries(busy.handle, 6);
    const h = await setupHandle('SHARD_0');
    const rate = 4;
    await pacedWebhook(h, rate, unique('k'));
    const stalled = await quietDeliveries(h.handle, 6);
    const onTime = await quietDeliveries(h.handle, 6);
    // The first invocation is granted 0 … 1.25 s but its connections are busy for 2 s; the second, asking just after,
    // is granted 1.5 … 2.75 s and sends on time. Late sends of the first would land in the second's seconds.
    const a = runDeliveries([...slow, ...stalled], { env: quietEnv().env });
    await new Promise((r) => setTimeout(r, 300));
    const b = runDeliveries(onTime, { env: quietEnv().env });
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.report.attempts + rb.report.attempts, 'some paced sends went').toBeGreaterThan(6);
    const times = await sendTimes(h.handle, [...stalled, ...onTime]);
    expect(busiestSecond(times), `sends ${times.map((t) => t - times[0]!).join(', ')}`).toBeLessThanOrEqual(
      Math.ceil(rate * 1.1),
    );
  }, 30_000);
});
