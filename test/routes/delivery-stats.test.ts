import { beforeAll, describe, expect, it } from 'vitest';
import { boundaryId, newId } from '../../src/lib/ids.ts';
import { handleDeliveryStats, webhookDeliveryStats } from '../../src/routes/deliveries/delivery-stats.repo.ts';
import { call, callJson, expectProblem, shardOf } from '../support/helpers.ts';
import { createWebhook, setupHandle, type TestHandle } from '../support/pipeline-helpers.ts';
import { insertNotifications, seedManyNotifications } from '../support/seed.ts';

const NOW = Date.parse('2026-06-15T12:30:00.000Z');
const OUTSIDE = 3000;

interface Row {
  at: string;
  status: string;
  /** Attempts: [minutes after the delivery, duration ms, error class or null for a success]. */
  attempts?: [number, number, string | null][];
  test?: boolean;
  email?: boolean;
}

/** Inserts deliveries (each of its own notification, or a test send) and their attempts, one statement per table. */
async function insertRows(h: TestHandle, webhookId: string, rows: Row[]) {
  const notifications: Parameters<typeof insertNotifications>[1] = [];
  const deliveries: unknown[] = [];
  const attempts: unknown[] = [];
  for (const r of rows) {
    const ms = Date.parse(r.at);
    const ntf = r.test ? null : newId('ntf', ms);
    if (ntf)
      notifications.push({ id: ntf, type: 'order.created', severity: 'info', status: 'delivered', createdAt: r.at });
    const id = newId('dlv', ms);
    deliveries.push({
      id,
      ntf,
      kind: r.test ? 'test' : 'event',
      channel: r.email ? 'email' : 'webhook',
      sub: r.email ? null : webhookId,
      status: r.status,
      at: r.at,
    });
    (r.attempts ?? []).forEach(([min, dur, cls], i) => {
      const at = new Date(ms + min * 60_000).toISOString();
      attempts.push({ id: newId('att', ms), d: id, n: i + 1, ok: cls ? 'failed' : 'succeeded', cls, dur, at });
    });
  }
  await insertNotifications(h.handle, notifications);
  const d1 = await shardOf(h.handle);
  await d1.batch([
    d1
      .prepare(
        `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
         status, attempt_count, created_at, updated_at)
       SELECT value ->> 'id', ?2, value ->> 'ntf', value ->> 'kind', value ->> 'channel', value ->> 'channel',
              value ->> 'sub', 'https://example.com/hook', value ->> 'status', 0, value ->> 'at', value ->> 'at'
         FROM json_each(?1)`,
      )
      .bind(JSON.stringify(deliveries), h.handle),
    d1
      .prepare(
        `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, error_class, duration_ms, created_at)
       SELECT value ->> 'id', value ->> 'd', value ->> 'n', value ->> 'ok', value ->> 'cls', value ->> 'dur',
              value ->> 'at'
         FROM json_each(?1)`,
      )
      .bind(JSON.stringify(attempts)),
  ]);
}

/**
 * `OUTSIDE` notifications `daysBefore` NOW, each with a failed delivery to the webhook (one attempt), plus as many
 * test sends of the handle: all older than every window and its lookback.
 */
async function seedOutside(h: TestHandle, webhookId: string, daysBefore: number) {
  const base = NOW - daysBefore * 86_400_000;
  await seedManyNotifications(h.handle, OUTSIDE, base);
  const before = boundaryId('ntf', base + OUTSIDE + 1);
  const after = boundaryId('ntf', base);
  const d1 = await shardOf(h.handle);
  await d1.batch([
    d1
      .prepare(
        `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
         status, attempt_count, created_at, updated_at)
       SELECT 'dlv_' || substr(id, 5), handle, id, 'event', 'webhook', 'webhook', ?2, 'https://example.com/hook',
              'dead', 1, created_at, created_at
         FROM notifications WHERE handle = ?1 AND id >= ?4 AND id < ?3`,
      )
      .bind(h.handle, webhookId, before, after),
    d1
      .prepare(
        `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
         status, attempt_count, created_at, updated_at)
       SELECT 'dlv_' || substr(id, 5, 10) || 'ZZZZZZ' || substr(id, 21), handle, NULL, 'test', 'webhook', 'webhook',
              ?2, 'https://example.com/hook', 'succeeded', 1, created_at, created_at
         FROM notifications WHERE handle = ?1 AND id >= ?4 AND id < ?3`,
      )
      .bind(h.handle, webhookId, before, after),
    d1
      .prepare(
        `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, error_class, duration_ms, created_at)
       SELECT 'att_' || substr(id, 5), id, 1, 'failed', 'timeout', 30000, created_at
         FROM deliveries WHERE subscription_id = ?1 AND id >= ?3 AND id < ?2`,
      )
      .bind(webhookId, boundaryId('dlv', base + OUTSIDE + 1), boundaryId('dlv', base)),
  ]);
}

const zero = { succeeded: 0, retrying: 0, dead: 0, skipped: 0 };

describe('delivery statistics: bounded aggregate queries per window', () => {
  let h: TestHandle;
  let webhookId: string;

  beforeAll(async () => {
    h = await setupHandle();
    webhookId = (await createWebhook(h, { url: 'https://crm.example.com/hooks/stats' })).id;
    await seedOutside(h, webhookId, 20);
    await insertRows(h, webhookId, [
      // Hourly window: 2026-06-14T13:00 … 2026-06-15T12:59 (24 buckets); daily: 2026-06-09 … 2026-06-15.
      ...[10, 20, 30].map((dur) => ({
        at: '2026-06-15T12:10:00.000Z',
        status: 'succeeded',
        attempts: [[1, dur, null]],
      })),
      { at: '2026-06-15T12:00:00.000Z', status: 'succeeded', email: true },
      { at: '2026-06-15T11:00:00.000Z', status: 'succeeded', test: true, attempts: [[0, 40, null]] },
      {
        at: '2026-06-15T10:05:00.000Z',
        status: 'dead',
        attempts: [
          [0, 1000, 'timeout'],
          [1, 2000, 'timeout'],
        ],
      },
      { at: '2026-06-15T10:40:00.000Z', status: 'retrying', attempts: [[0, 500, 'http_5xx']] },
      { at: '2026-06-15T10:41:00.000Z', status: 'queued', attempts: [[0, 500, 'http_5xx']] },
      { at: '2026-06-12T08:00:00.000Z', status: 'skipped' },
      { at: '2026-06-14T12:59:00.000Z', status: 'cancelled' },
      // Created before the hourly window, attempted inside it (bucket 1).
      { at: '2026-06-14T11:00:00.000Z', status: 'retrying', attempts: [[180, 70, 'connection']] },
    ] as Row[]);
  }, 60_000);

  it('a handle: deliveries per hour and per day by outcome, rows read bounded by the window', async () => {
    const { data, rowsRead } = await handleDeliveryStats(await shardOf(h.handle), h.handle, NOW);
    expect(data.hourly).toHaveLength(24);
    expect(data.hourly[0]!.start).toBe('2026-06-14T13:00:00.000Z');
    expect(data.hourly[23]).toEqual({ start: '2026-06-15T12:00:00.000Z', ...zero, succeeded: 4 });
    expect(data.hourly[22]).toEqual({ start: '2026-06-15T11:00:00.000Z', ...zero, succeeded: 1 });
    expect(data.hourly[21]).toEqual({ start: '2026-06-15T10:00:00.000Z', ...zero, dead: 1, retrying: 2 });
    expect(data.hourly.slice(0, 21).every((b) => b.succeeded + b.retrying + b.dead + b.skipped === 0)).toBe(true);
    expect(data.daily.map((b) => b.start.slice(0, 10))).toEqual([
      '2026-06-09',
      '2026-06-10',
      '2026-06-11',
      '2026-06-12',
      '2026-06-13',
      '2026-06-14',
      '2026-06-15',
    ]);
    expect(data.daily[6]).toMatchObject({ succeeded: 5, dead: 1, retrying: 2, skipped: 0 });
    expect(data.daily[5]).toMatchObject({ succeeded: 0, dead: 0, retrying: 1, skipped: 1 });
    expect(data.daily[3]).toMatchObject({ skipped: 1 });
    // 11 deliveries and 10 notifications inside; 6,000 deliveries and 3,000 notifications outside.
    expect(rowsRead).toBeLessThan(120);
    // As many rows again outside the window: not one more row read.
    await seedOutside(h, webhookId, 30);
    expect((await handleDeliveryStats(await shardOf(h.handle), h.handle, NOW)).rowsRead).toBe(rowsRead);
  });

  it('a webhook: outcomes, latency p50/p95 per bucket and error classes, rows read bounded by the window', async () => {
    const { data, rowsRead } = await webhookDeliveryStats(await shardOf(h.handle), webhookId, NOW);
    expect(data.hourly[23]).toMatchObject({ ...zero, succeeded: 3 });
    expect(data.hourly[22]).toMatchObject({ ...zero, succeeded: 1 });
    expect(data.hourly[21]).toMatchObject({ ...zero, dead: 1, retrying: 2 });
    expect(data.latencyHourly[23]).toMatchObject({ attempts: 3, p50Ms: 20, p95Ms: 30 });
    expect(data.latencyHourly[22]).toMatchObject({ attempts: 1, p50Ms: 40, p95Ms: 40 });
    expect(data.latencyHourly[21]).toMatchObject({ attempts: 4, p50Ms: 500, p95Ms: 2000 });
    expect(data.latencyHourly[1]).toMatchObject({ start: '2026-06-14T14:00:00.000Z', attempts: 1, p50Ms: 70 });
    expect(data.latencyHourly[0]).toMatchObject({ attempts: 0, p50Ms: null, p95Ms: null });
    expect(data.latencyDaily[6]).toMatchObject({ attempts: 8, p50Ms: 40, p95Ms: 2000 });
    expect(data.errorClasses).toEqual([
      { errorClass: 'http_5xx', last24h: 2, last7d: 2 },
      { errorClass: 'timeout', last24h: 2, last7d: 2 },
      { errorClass: 'connection', last24h: 1, last7d: 1 },
    ]);
    // Inside: 10 deliveries and 10 attempts, read by five queries (the attempts' three also sort per bucket).
    // Outside: 6,000 deliveries of this webhook and 3,000 failed attempts ('timeout', 30 s).
    expect(rowsRead).toBeLessThan(400);
    await seedOutside(h, webhookId, 40);
    expect((await webhookDeliveryStats(await shardOf(h.handle), webhookId, NOW)).rowsRead).toBe(rowsRead);
  });

  it('the routes answer the series; another handle cannot read a webhook that is not its own', async () => {
    const mine = await callJson('GET', `/v2/handles/${h.handle}/delivery-stats`, { token: h.token });
    expect(mine.status).toBe(200);
    expect(mine.body.hourly).toHaveLength(24);
    expect(mine.body.daily).toHaveLength(7);
    const hook = await callJson('GET', `/v2/handles/${h.handle}/webhooks/${webhookId}/delivery-stats`, {
      token: h.token,
    });
    expect(hook.status).toBe(200);
    expect(Object.keys(hook.body).sort()).toEqual(
      ['daily', 'errorClasses', 'generatedAt', 'hourly', 'latencyDaily', 'latencyHourly'].sort(),
    );
    const other = await setupHandle();
    await expectProblem(
      await call('GET', `/v2/handles/${other.handle}/webhooks/${webhookId}/delivery-stats`, { token: other.token }),
      404,
    );
  });
});
