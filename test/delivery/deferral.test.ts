/**
 * Peak campaign windows and deferred deliveries (docs/design.md#peak-campaign-windows): an `off_peak` event in a
 * window is stored at once and its deliveries wait as `deferred`; the sweeper releases them at the window's end,
 * spread over time; critical events are never deferred; the feed, the notification, the doctor, the usage call and
 * `evaluate` show it. Real Worker, real local D1 and queues, receivers on 127.0.0.1.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { ingestBatch } from '../../src/delivery/ingest.ts';
import { runContext } from '../../src/env.ts';
import { sweepOutbox } from '../../src/jobs/sweeper.ts';
import { RELEASE_SPREAD_MS } from '../../src/lib/peak-windows.ts';
import { anyShard, callJson, unique } from '../support/helpers.ts';
import { assertMatchesDocument } from '../support/openapi-check.ts';
import {
  createWebhook,
  deliveriesOf,
  eventually,
  notificationRow,
  setupHandle,
  type TestHandle,
} from '../support/pipeline-helpers.ts';
import { hits, receiverUrl, waitForHits } from '../support/receivers.ts';
import { summaryById } from '../support/seed.ts';

const HOUR = 3_600_000;

async function setWindows(h: TestHandle, peakWindows: unknown) {
  const res = await callJson('PUT', `/v2/handles/${h.handle}/notification-settings`, {
    token: h.token,
    body: {
      channels: { email: { enabled: true }, webhook: { enabled: true } },
      eventFilter: null,
      ownerFallback: 'critical',
      peakWindows,
    },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

/** A handle with one webhook and a one-off peak window open now, ending in `endsInMs`. */
async function inWindow(endsInMs = HOUR) {
  const h = await setupHandle();
  const key = unique('peak');
  await createWebhook(h, { url: receiverUrl('ok', key) });
  const end = new Date(Date.now() + endsInMs);
  const start = new Date(Date.now() - HOUR);
  await setWindows(h, {
    timeZone: 'Asia/Kolkata',
    oneOff: [{ start: start.toISOString(), end: end.toISOString(), label: 'Diwali sale' }],
  });
  return { h, key, end };
}

const publish = (h: TestHandle, body: Record<string, unknown>) =>
  callJson('POST', `/v2/handles/${h.handle}/events`, { token: h.token, body });

describe('deferred deliveries', () => {
  it("a deferred delivery released by the sweeper at the window's end", async () => {
    const { h, key, end } = await inWindow();
    const res = await publish(h, {
      type: 'order.fulfilled',
      data: { orderId: 'o1', trackingNumber: 't' },
      delivery: 'off_peak',
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    assertMatchesDocument('post', '/v2/handles/{handle}/events', 202, res.body);
    const until = Date.parse(res.body.deferredUntil);
    expect(until).toBeGreaterThanOrEqual(end.getTime() - 1000);
    expect(until).toBeLessThanOrEqual(end.getTime() + RELEASE_SPREAD_MS);
    const id = res.body.notificationId as string;

    // Stored at once, waiting: the delivery is deferred with its time, the notification open in the ledger.
    const [d] = await deliveriesOf(id);
    expect(d).toMatchObject({ status: 'deferred', status_reason: 'peak_window' });
    expect(Date.parse(d!.next_attempt_at!)).toBe(until);
    expect(await notificationRow(id)).toMatchObject({ status: 'delivering', open_count: 1, succeeded_count: 0 });
    // …shown in the feed, the notification, the doctor and the usage call.
    const feed = await callJson('GET', `/v2/handles/${h.handle}/notifications`, { token: h.token });
    expect(feed.body.data[0].deliveries[0].status).toBe('deferred');
    expect(feed.body.data[0].deliveryCounts.open).toBe(1);
    const one = await callJson('GET', `/v2/handles/${h.handle}/notifications/${id}`, { token: h.token });
    expect(one.body.deliveries[0].status).toBe('deferred');
    const doctor = await callJson('GET', `/v2/handles/${h.handle}/health`, { token: h.token });
    expect(doctor.body.deferredDeliveries).toMatchObject({ count: 1, nextReleaseAt: d!.next_attempt_at });
    const usage = await callJson('GET', `/v2/handles/${h.handle}/usage`, { token: h.token });
    expect(usage.body.events).toMatchObject({ deferred: 1, nextReleaseAt: d!.next_attempt_at });

    // The sweeper before the window's end leaves it waiting; nothing reached the receiver.
    await sweepOutbox(env, new Date());
    expect((await deliveriesOf(id))[0]!.status).toBe('deferred');
    expect(await hits(key)).toHaveLength(0);

    // At its time the sweeper releases it: pending → queued → delivered, the ledger balanced.
    const swept = await sweepOutbox(env, new Date(until + 1000));
    expect(swept.released).toBeGreaterThanOrEqual(1);
    await waitForHits(key, 1);
    const n = await eventually(
      () => notificationRow(id),
      (row) => row.status === 'delivered',
    );
    expect(n).toMatchObject({ open_count: 0, succeeded_count: 1, dead_count: 0 });
    expect(summaryById(n.recipients)[d!.id]!.status).toBe('succeeded');
  });

  it('a critical event in a window is delivered at once', async () => {
    const { h, key } = await inWindow();
    const res = await publish(h, {
      type: 'payment.failed',
      data: { orderId: 'o1', paymentId: 'p1', code: 'card_declined' },
      delivery: 'off_peak',
    });
    expect(res.status).toBe(202);
    expect(res.body.deferredUntil).toBeNull();
    expect(res.body.recipients.every((r: { status: string }) => r.status !== 'deferred')).toBe(true);
    await waitForHits(key, 1);
    await eventually(
      () => notificationRow(res.body.notificationId),
      (row) => row.status === 'delivered',
    );
    // delivery "now" (the default) is not deferred either.
    const now = await publish(h, { type: 'order.paid', data: { orderId: 'o2' } });
    expect(now.body.deferredUntil).toBeNull();
    await waitForHits(key, 2);
  });

  it('evaluate says whether an event would be deferred, and until when', async () => {
    const { h, end } = await inWindow();
    const ask = (body: Record<string, unknown>) =>
      callJson('POST', `/v2/handles/${h.handle}/notification-settings/evaluate`, { token: h.token, body });
    const offPeak = await ask({ eventType: 'order.fulfilled', delivery: 'off_peak' });
    expect(offPeak.status).toBe(200);
    assertMatchesDocument('post', '/v2/handles/{handle}/notification-settings/evaluate', 200, offPeak.body);
    expect(offPeak.body.deferral).toMatchObject({ deferred: true, until: end.toISOString() });
    expect((await ask({ eventType: 'payment.failed', delivery: 'off_peak' })).body.deferral.deferred).toBe(false);
    expect((await ask({ eventType: 'order.fulfilled' })).body.deferral).toMatchObject({
      deferred: false,
      peakWindowEndsAt: end.toISOString(),
    });
  });

  it('the release spread after a window follows RELEASE_SPREAD_SECONDS', async () => {
    const soon = await inWindow(60_000);
    // The soak and dev shorten the spread so that a window's release fits in their run.
    const short = { ...env, RELEASE_SPREAD_SECONDS: '20' } as Env;
    const events = Array.from({ length: 30 }, (_, i) => ({
      type: 'order.paid',
      data: { orderId: `rs${i}` },
      source: 'test',
      delivery: 'off_peak' as const,
    }));
    const outcomes = await ingestBatch(runContext(short), soon.h.handle, events, { dailyLimit: 5000 });
    expect(outcomes.every((o) => o.kind === 'stored')).toBe(true);
    // Deliveries live on the handle's shard (docs/design.md#shards).
    const { results } = await anyShard
      .prepare(`SELECT next_attempt_at AS at FROM deliveries WHERE handle = ?1 AND status = 'deferred'`)
      .bind(soon.h.handle)
      .all<{ at: string }>();
    expect(results).toHaveLength(30);
    const at = results.map((r) => Date.parse(r.at)).sort((a, b) => a - b);
    expect(at[0]!).toBeGreaterThanOrEqual(soon.end.getTime() - 1000);
    expect(at.at(-1)!).toBeLessThanOrEqual(soon.end.getTime() + 20_000);
    // Still spread, not one burst at the end.
    expect(at.at(-1)! - at[0]!).toBeGreaterThan(20_000 / 3);
  });

  it('a window’s backlog is released spread over time, never past the 24 h bound, not as one burst', async () => {
    const { h } = await inWindow(30 * HOUR); // a window longer than the bound
    const events = Array.from({ length: 30 }, (_, i) => ({ type: 'order.paid', data: { orderId: `s${i}` } }));
    const res = await callJson('POST', `/v2/handles/${h.handle}/events/batch`, {
      token: h.token,
      body: { events, delivery: 'off_peak' },
    });
    expect(res.body.stored).toBe(30);
    const { results } = await anyShard
      .prepare(`SELECT next_attempt_at AS at, created_at FROM deliveries WHERE handle = ?1 AND status = 'deferred'`)
      .bind(h.handle)
      .all<{ at: string; created_at: string }>();
    expect(results).toHaveLength(30);
    for (const r of results) expect(Date.parse(r.at)).toBeLessThanOrEqual(Date.parse(r.created_at) + 24 * HOUR);
    const times = results.map((r) => Date.parse(r.at)).sort((a, b) => a - b);
    // Bounded at 24 h after the first was stored; within the batch they differ only by the write's milliseconds.
    expect(times.at(-1)! - times[0]!).toBeLessThan(5_000);

    // A window ending soon: the backlog's release times spread over RELEASE_SPREAD_MS after its end.
    const soon = await inWindow(60_000);
    const spread = await callJson('POST', `/v2/handles/${soon.h.handle}/events/batch`, {
      token: soon.h.token,
      body: { events, delivery: 'off_peak' },
    });
    expect(spread.body.stored).toBe(30);
    const rows = await anyShard
      .prepare(`SELECT next_attempt_at AS at FROM deliveries WHERE handle = ?1 AND status = 'deferred' ORDER BY at`)
      .bind(soon.h.handle)
      .all<{ at: string }>();
    const at = rows.results.map((r) => Date.parse(r.at));
    expect(at[0]!).toBeGreaterThanOrEqual(soon.end.getTime() - 1000);
    expect(at.at(-1)!).toBeLessThanOrEqual(soon.end.getTime() + RELEASE_SPREAD_MS);
    expect(at.at(-1)! - at[0]!).toBeGreaterThan(RELEASE_SPREAD_MS / 3);
    // One minute after the end the sweeper releases only those due by then, not the whole backlog.
    await sweepOutbox(env, new Date(soon.end.getTime() + 60_000));
    const left = await anyShard
      .prepare(`SELECT count(*) AS n FROM deliveries WHERE handle = ?1 AND status = 'deferred'`)
      .bind(soon.h.handle)
      .first<{ n: number }>();
    expect(left!.n).toBeGreaterThan(0);
    expect(left!.n).toBeLessThan(30);
  });

  it('a campaign.started … campaign.completed pair opens and closes a window', async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('ok', unique('c')) });
    await setWindows(h, { timeZone: 'UTC', campaignEvents: true });
    await publish(h, { type: 'campaign.started', data: { campaignId: 'c1', audience: 10 } });
    const settings = await callJson('GET', `/v2/handles/${h.handle}/notification-settings`, { token: h.token });
    expect(Date.parse(settings.body.campaignWindowUntil)).toBeGreaterThan(Date.now() + 23 * HOUR);
    const held = await publish(h, { type: 'order.paid', data: { orderId: 'c' }, delivery: 'off_peak' });
    const [d] = await deliveriesOf(held.body.notificationId);
    expect(d).toMatchObject({ status: 'deferred', status_reason: 'campaign_window' });
    expect(Date.parse(d!.next_attempt_at!)).toBeGreaterThan(Date.now() + 23 * HOUR);

    const done = await publish(h, { type: 'campaign.completed', data: { campaignId: 'c1', sent: 10, failed: 0 } });
    expect(done.status).toBe(202);
    const after = (await deliveriesOf(held.body.notificationId))[0]!;
    expect(after.status).toBe('deferred');
    expect(Date.parse(after.next_attempt_at!)).toBeLessThanOrEqual(Date.now() + RELEASE_SPREAD_MS);
    const closed = await callJson('GET', `/v2/handles/${h.handle}/notification-settings`, { token: h.token });
    expect(closed.body.campaignWindowUntil).toBeNull();
    const next = await publish(h, { type: 'order.paid', data: { orderId: 'd' }, delivery: 'off_peak' });
    expect(next.body.deferredUntil).toBeNull();
  });
});
