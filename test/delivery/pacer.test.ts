/**
 * Pacing a webhook with a `rateLimit` (docs/design.md#pacing): its EndpointPacer (a real Durable Object in workerd)
 * hands out slots; a delivery whose slot is later is retried to it without an attempt and without a D1 write, keeps
 * its slot when it comes back, and the pace holds end to end through the real queue.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { callJson, unique } from '../support/helpers.ts';
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
  it('a burst of 8 at 2/s: a second’s worth goes now; the rest is retried to its slot (1, 2, 2, 3, 3 s) with no attempt used and no D1 write', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await pacedWebhook(h, 2, key);
    const ids = await quietDeliveries(h.handle, 8);
    const before = await Promise.all(ids.map(deliveryRow));

    const counting = countingD1(env.DB);
    const started = Date.now();
    const { report, fb } = await runDeliveries(ids, { env: { ...env, DB: counting.db } as Env });
    // Slots 0, 500 and 1000 ms go (the consumer waits for the later two); the others are 1.5 … 3.5 s away.
    expect(report.attempts).toBe(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(counting.count(), 'load + write, as for any batch').toBe(2);
    const retried = fb.outcomes.filter((o) => o.retried);
    expect(retried.map((o) => o.delaySeconds)).toEqual([1, 2, 2, 3, 3]);
    const sent = await waitForHits(key, 3);
    expect(sent).toHaveLength(3);
    const gaps = sent.slice(1).map((hit, i) => hit.receivedAt - sent[i]!.receivedAt);
    for (const gap of gaps) expectBetween(gap, 400, 1000, 'gap between paced sends');

    // The waiting deliveries are untouched: same row, no attempt counted.
    for (let i = 3; i < 8; i++) {
      expect(await deliveryRow(ids[i]!), `delivery ${i}`).toEqual(before[i]);
    }
  });

  it('a message back before its slot keeps it (no new place at the back); back at its slot, it goes', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await pacedWebhook(h, 1, key);
    const ids = await quietDeliveries(h.handle, 4);
    // Slots 0 s and 1 s go; 2 s and 3 s are held.
    const first = await runDeliveries(ids);
    expect(first.report.attempts).toBe(2);
    const [third, fourth] = [ids[2]!, ids[3]!];
    expect(first.fb.outcomes.slice(2).map((o) => o.delaySeconds)).toEqual([2, 3]);

    // The fourth comes back early (a duplicate message, a write that failed): its slot is still < 2 s away, not
    // behind the other held one.
    const early = await runDeliveries([fourth]);
    expect(early.report.attempts).toBe(0);
    expect(early.fb.outcomes[0]!.delaySeconds).toBeLessThanOrEqual(1);

    // The third comes back when its queue delay said: it goes, with one attempt.
    await new Promise((r) => setTimeout(r, 1000));
    const back = await runDeliveries([third]);
    expect(back.report.attempts).toBe(1);
    expect(await deliveryRow(third)).toMatchObject({ status: 'succeeded', attempt_count: 1 });
    expect(await deliveryRow(fourth)).toMatchObject({ status: 'queued', attempt_count: 0 });
  });

  it('a wait longer than a minute is written once as next_attempt_at, so the sweeper does not take it for a lost message', async () => {
    const h = await setupHandle();
    await pacedWebhook(h, 1, unique('k'));
    const ids = await quietDeliveries(h.handle, 1);
    // 70 deliveries ahead of it took slots (the first two go now, 68 are held): its own is ≈ 70 s away.
    const pacer = env.PACER.get(env.PACER.idFromName((await deliveryRow(ids[0]!)).subscription_id!));
    await pacer.admit(
      1,
      Array.from({ length: 70 }, (_, i) => `dlv_ahead_${i}`),
    );
    const { fb } = await runDeliveries(ids);
    expectBetween(fb.outcomes[0]!.delaySeconds!, 68, 71, 'delay to its slot');
    const row = await deliveryRow(ids[0]!);
    expect(row).toMatchObject({ status: 'queued', attempt_count: 0 });
    expectBetween((Date.parse(row.next_attempt_at!) - Date.now()) / 1000, 67, 72, 'next_attempt_at − now');

    // The doctor says the endpoint is being paced, and until when.
    const health = await callJson('GET', `/v2/handles/${h.handle}/health`, { token: h.token });
    expect(health.body.webhooks.paced).toEqual([
      expect.objectContaining({ id: row.subscription_id, rateLimit: 1, beingPaced: true, waiting: 69 }),
    ]);
    expect(health.body.webhooks.paced[0].note).toMatch(
      /^Being paced: 69 deliveries wait for their slot at 1 per second/,
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
