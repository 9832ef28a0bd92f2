/**
 * `POST /v2/handles/{handle}/events/batch` (docs/design.md#batch-publish): up to 100 events, a result per event, each
 * stored whole or not at all, the daily limit checked for the whole batch up front, idempotent under one key; and the
 * `notify-events` consumer on the same batch ingest. Real Worker, real local D1 and queues.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { consumeEvents } from '../../src/delivery/events-consumer.ts';
import { ingestBatch } from '../../src/delivery/ingest.ts';
import { runContext } from '../../src/env.ts';
import { wrapD1 } from '../support/d1-wrap.ts';
import { anyShard, call, callJson, shardName, shardOf, unique } from '../support/helpers.ts';
import { assertMatchesDocument } from '../support/openapi-check.ts';
import {
  countingD1,
  createWebhook,
  eventually,
  fakeBatch,
  notificationRow,
  quietEnv,
  setupHandle,
} from '../support/pipeline-helpers.ts';
import { receiverUrl, waitForHits } from '../support/receivers.ts';
import { dailyCount, seedManyNotifications, setDailyCount } from '../support/seed.ts';

const batchPath = (h: string) => `/v2/handles/${h}/events/batch`;
const paid = (orderId: string, sourceEventId?: string) => ({
  type: 'order.paid',
  data: { orderId },
  ...(sourceEventId ? { sourceEventId } : {}),
});

async function notificationsBySource(handle: string): Promise<Map<string, string>> {
  const { results } = await anyShard
    .prepare('SELECT id, source_event_id FROM notifications WHERE handle = ?1 AND source_event_id IS NOT NULL')
    .bind(handle)
    .all<{ id: string; source_event_id: string }>();
  return new Map(results.map((r) => [r.source_event_id, r.id]));
}

describe('POST …/events/batch', () => {
  it('a batch with duplicates, invalid items and quota overflow: each event its own result, none half-written', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('ok', key) });
    const pre = await callJson('POST', `/v2/handles/${h.handle}/events`, { token: h.token, body: paid('o0', 'pre') });
    expect(pre.status).toBe(202);
    await setDailyCount(h.handle, 4998); // two writes left today

    const res = await callJson('POST', batchPath(h.handle), {
      token: h.token,
      body: {
        events: [
          paid('o1', 'a'), // 0: stored (first slot)
          { type: 'order.paid' }, // 1: invalid (no data): 400
          paid('o0', 'pre'), // 2: seen before: duplicate
          paid('o1', 'a'), // 3: repeats item 0: duplicate of it
          { type: 'order.payd', data: { orderId: 'x' } }, // 4: a catalog typo: 422
          paid('o2', 'b'), // 5: stored (second slot)
          paid('o3', 'c'), // 6: past the daily limit: 429, nothing written
          paid('o4'), // 7: past the daily limit too
        ],
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    assertMatchesDocument('post', '/v2/handles/{handle}/events/batch', 200, res.body);
    const r = res.body.results as any[];
    expect(r.map((x) => x.status)).toEqual([202, 400, 200, 200, 422, 202, 429, 429]);
    expect(r.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(res.body).toMatchObject({ stored: 2, duplicates: 2, refused: 4 });
    expect(r[1].problem.errors[0].path).toBe('body.events.1.data');
    expect(r[1].problem.requestId).toBeTruthy();
    expect(r[2]).toMatchObject({ duplicate: true, notificationId: pre.body.notificationId });
    expect(r[3]).toMatchObject({ duplicate: true, notificationId: r[0].notificationId });
    expect(r[4].problem.code).toBe('unknown_event_type');
    expect(r[6].problem).toMatchObject({ status: 429, policy: 'daily', limit: 5000, remaining: 0 });
    expect(Date.parse(r[6].problem.resetAt)).toBeGreaterThan(Date.now());

    // Stored: exactly the two that got a slot, each with its delivery; the refused ones left nothing behind.
    const stored = await notificationsBySource(h.handle);
    expect([...stored.keys()].sort()).toEqual(['a', 'b', 'pre']);
    expect(stored.get('a')).toBe(r[0].notificationId);
    const rows = await anyShard
      .prepare(
        `SELECT n.id, n.open_count + n.succeeded_count + n.dead_count AS counted, count(d.id) AS deliveries
       FROM notifications n LEFT JOIN deliveries d ON d.notification_id = n.id WHERE n.handle = ?1 GROUP BY n.id`,
      )
      .bind(h.handle)
      .all<{ counted: number; deliveries: number }>();
    expect(rows.results).toHaveLength(3);
    for (const row of rows.results) expect(row).toMatchObject({ counted: 1, deliveries: 1 });
    expect(await dailyCount(h.handle)).toBe(5000);
    // Both stored events reach the receiver.
    await waitForHits(key, 3);
    await eventually(
      () => notificationRow(r[5].notificationId),
      (n) => n.status === 'delivered',
    );
  });

  it('the whole batch is idempotent under one Idempotency-Key: the retry replays the answer and stores nothing', async () => {
    const h = await setupHandle();
    const body = { events: [paid('i1'), paid('i2'), paid('i3')] };
    const headers = { 'idempotency-key': unique('idem') };
    const first = await call('POST', batchPath(h.handle), { token: h.token, body, headers });
    expect(first.status).toBe(200);
    const again = await call('POST', batchPath(h.handle), { token: h.token, body, headers });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.text()).toBe(await first.text());
    const n = await anyShard
      .prepare('SELECT count(*) AS n FROM notifications WHERE handle = ?1')
      .bind(h.handle)
      .first<{ n: number }>();
    expect(n?.n).toBe(3);
    expect(await dailyCount(h.handle)).toBe(3);
  });

  it('100 events: one match-context load, a few D1 round trips in all, every event stored with its deliveries', async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    // Counted on the handle's shard, where every row of the batch goes (docs/design.md#shards).
    const counting = countingD1(await shardOf(h.handle));
    const { env: quiet, capture } = quietEnv({ [await shardName(h.handle)]: counting.db });
    const events = Array.from({ length: 100 }, (_, i) => ({ ...paid(`b${i}`, `bulk-${i}`), source: 'test' }));
    const outcomes = await ingestBatch(runContext(quiet), h.handle, events, { dailyLimit: 5000 });
    expect(outcomes.every((o) => o.kind === 'stored')).toBe(true);
    // reads, daily slots, the write, mark queued: the 200 messages go in two sendBatch calls.
    expect(counting.count()).toBeLessThanOrEqual(4);
    expect(capture.batches.flat()).toHaveLength(200);
    const again = await ingestBatch(runContext(quiet), h.handle, events, { dailyLimit: 5000 });
    expect(again.every((o) => o.kind === 'duplicate')).toBe(true);
    expect(await dailyCount(h.handle)).toBe(102); // the two webhooks and the 100 events
  });

  it('the duplicate check reads by the sourceEventId index, not the handle’s notifications, once D1 has statistics', async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    // 10,000 earlier notifications without a sourceEventId, then statistics: the unique index on (handle,
    // sourceEventId) now looks unselective, and an unnamed plan scanned them all for every batch.
    await seedManyNotifications(h.handle, 10_000, Date.now() - 86_400_000);
    // The handle's rows and the batch's reads are on its shard: statistics and the meter there.
    const shard = await shardName(h.handle);
    await env[shard].prepare('ANALYZE').run();
    let rowsRead = 0;
    const metered = wrapD1(env[shard], {
      batch: async (target, statements) => {
        const results = await target.batch(statements);
        for (const r of results) rowsRead += r.meta.rows_read ?? 0;
        return results;
      },
    });
    const { env: quiet } = quietEnv({ [shard]: metered });
    const events = Array.from({ length: 100 }, (_, i) => ({ ...paid(`s${i}`, `stat-${i}`), source: 'test' }));
    const outcomes = await ingestBatch(runContext(quiet), h.handle, events, { dailyLimit: 5000 });
    expect(outcomes.every((o) => o.kind === 'stored')).toBe(true);
    expect(rowsRead, 'the meter sees the batch’s reads').toBeGreaterThan(0);
    expect(rowsRead, 'rows read by the batch, with 10,000 notifications of the handle stored').toBeLessThan(5_000);
  });

  it('the notify-events consumer ingests a handle’s messages as one batch: stored, duplicate and rejected each settled', async () => {
    const h = await setupHandle();
    const fb = fakeBatch('notify-events', [
      { id: 'm1', body: { handle: h.handle, ...paid('q1', 'q1') } },
      { id: 'm2', body: { handle: h.handle, ...paid('q1', 'q1') } },
      { id: 'm3', body: { handle: h.handle, type: 'order.payd', data: { orderId: 'q' } } },
      { id: 'm4', body: { handle: unique('nohandle'), ...paid('q2') } },
    ]);
    const counting = countingD1(env.DB);
    await consumeEvents(fb.batch, quietEnv({ DB: counting.db }).env);
    for (const id of ['m1', 'm2', 'm3', 'm4']) expect(fb.outcome(id).calls).toEqual(['ack']);
    expect((await notificationsBySource(h.handle)).size).toBe(1);
    const rejected = await env.DB.prepare(
      'SELECT message_id, reason FROM event_rejections WHERE message_id IN (?1, ?2)',
    )
      .bind('m3', 'm4')
      .all<{ message_id: string; reason: string }>();
    expect(rejected.results.map((x) => x.reason.split(':')[0]).sort()).toEqual([
      'unknown_event_type',
      'unknown_handle',
    ]);
  });
});
