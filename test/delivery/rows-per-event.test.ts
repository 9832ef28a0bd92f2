/**
 * What one event costs in D1 rows written (docs/performance.md#rows-and-bytes-of-one-event): D1 bills every row it
 * writes, index entries included (`meta.rows_written`), so the write path is measured the way D1 counts it, on the
 * real local D1, with real receivers on 127.0.0.1.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { HEALTH_REFRESH_MS } from '../../src/delivery/consumer.ts';
import { shardName, shardOf, unique } from '../support/helpers.ts';
import {
  attemptsOf,
  createWebhook,
  deliveriesOf,
  ingestQuiet,
  notificationRow,
  runDeliveries,
  setupHandle,
  type TestHandle,
  webhookDbRow,
} from '../support/pipeline-helpers.ts';
import { receiverUrl } from '../support/receivers.ts';
import { summaryById } from '../support/seed.ts';

/** A D1 binding that sums `meta.rows_written` of everything run through it, and keeps each batch's statements. */
function meteredD1(inner: D1Database): {
  db: D1Database;
  written: () => number;
  statements: () => string[];
  batches: string[][];
} {
  let written = 0;
  const statements: string[] = [];
  const batches: string[][] = [];
  const queries = new WeakMap<object, string>();
  const count = (query: string, r: D1Result | undefined) => {
    const n = (r?.meta as { rows_written?: number } | undefined)?.rows_written ?? 0;
    written += n;
    if (n) statements.push(`${n} ${query.replace(/\s+/g, ' ').slice(0, 60)}`);
  };
  const track = (stmt: D1PreparedStatement, query: string): D1PreparedStatement => {
    queries.set(stmt, query);
    const s = stmt as unknown as Record<string, (...a: unknown[]) => unknown>;
    const bind = s.bind!.bind(stmt);
    s.bind = (...values: unknown[]) => track(bind(...values) as D1PreparedStatement, query);
    for (const m of ['run', 'all']) {
      const orig = s[m]!.bind(stmt);
      s[m] = async (...a: unknown[]) => {
        const r = (await orig(...a)) as D1Result;
        count(query, r);
        return r;
      };
    }
    return stmt;
  };
  const db = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'prepare') return (query: string) => track(target.prepare(query), query);
      if (prop === 'batch')
        return async (list: D1PreparedStatement[]) => {
          batches.push(list.map((st) => (queries.get(st) ?? '?').replace(/\s+/g, ' ').trim()));
          const results = await target.batch(list);
          for (const [i, r] of results.entries()) count(queries.get(list[i]!) ?? '?', r);
          return results;
        };
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { db, written: () => written, statements: () => statements, batches };
}

/** Publishes one event to the handle and delivers it, through `db` as the handle's shard. */
async function publishAndDeliver(h: TestHandle, db?: D1Database) {
  const vars = db ? { [await shardName(h.handle)]: db } : {};
  const event = await ingestQuiet(h.handle, { type: 'order.paid' }, vars);
  await runDeliveries(event.deliveryIds, { env: { ...env, ...vars } as Env });
  return event;
}

describe('rows written per event', () => {
  it('one event to 3 webhooks, published and delivered, writes at most 21 rows: 7 per recipient (it was 54)', async () => {
    const h = await setupHandle();
    for (let i = 0; i < 3; i++) await createWebhook(h, { url: receiverUrl('ok', unique(`rows${i}`)) });
    // A first event: the webhooks' first success is written (their health; later ones within a minute are not).
    await publishAndDeliver(h);
    const metered = meteredD1(await shardOf(h.handle));
    const event = await publishAndDeliver(h, metered.db);
    const rows = await deliveriesOf(event.notificationId);
    expect(rows.map((d) => d.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    // The notification, its summary and counts moved on in one write for the batch.
    const n = await notificationRow(event.notificationId);
    expect(n).toMatchObject({ status: 'delivered', open_count: 0, succeeded_count: 3, dead_count: 0 });
    const summary = Object.values(summaryById(n.recipients));
    expect(summary.map((r) => [r.status, r.attempts])).toEqual([
      ['succeeded', 1],
      ['succeeded', 1],
      ['succeeded', 1],
    ]);
    // notification 4 (row, key, the handle and type feed indexes: an `info` event `delivering` has no entry in the
    // partial status and severity indexes) + deliveries 3 × 3 (row, by subscription, due; none by notification: their
    // ids are its range) + the day's event count 1; the consumer: 3 attempts, 3 delivery moves, 1 notification
    // transition (the row only: `delivered` has no status index entry either). Nothing marks the deliveries `queued`
    // after the send; no webhook health (written < 1 min ago).
    expect(metered.written(), metered.statements().join('\n')).toBeLessThanOrEqual(21);
  });

  it("a consumed batch writes its attempts' rows in one statement and their moves in one more", async () => {
    const h = await setupHandle();
    for (let i = 0; i < 3; i++) await createWebhook(h, { url: receiverUrl('ok', unique(`stmts${i}`)) });
    await publishAndDeliver(h);
    const metered = meteredD1(await shardOf(h.handle));
    const event = await publishAndDeliver(h, metered.db);
    const delivered = await deliveriesOf(event.notificationId);
    expect(delivered.map((d) => d.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    // Each attempt row written once, by that one statement.
    for (const d of delivered) {
      expect(
        (await attemptsOf(d.id)).map((a) => [a.attempt_number, a.outcome]),
        d.id,
      ).toEqual([[1, 'succeeded']]);
    }
    // The consumer's one write: the batch that records the attempts.
    const write = metered.batches.find((b) => b.some((q) => q.startsWith('INSERT INTO delivery_attempts')));
    const kinds = (write ?? []).map((q) => /INSERT INTO \w+|UPDATE \w+ SET/.exec(q)?.[0] ?? q);
    const counted = Object.fromEntries([...new Set(kinds)].map((k) => [k, kinds.filter((x) => x === k).length]));
    // The 3 attempt rows in one statement, their 3 guarded delivery moves in one, 1 notification transition for the
    // batch; a subscription deleted while an attempt was in flight is handled by the same move
    // (docs/design.md#consumer), not by statements of its own.
    expect(counted, write?.map((q) => q.slice(0, 80)).join('\n')).toEqual({
      'INSERT INTO delivery_attempts': 1,
      'UPDATE deliveries SET': 1,
      'UPDATE notifications SET': 1,
    });
  });

  it("a critical event's moves each follow their own transition: its status, read from its deliveries, is final", async () => {
    const h = await setupHandle();
    for (const mode of ['ok', 'ok', 'gone']) await createWebhook(h, { url: receiverUrl(mode, unique(`crit-${mode}`)) });
    const metered = meteredD1(await shardOf(h.handle));
    const vars = { [await shardName(h.handle)]: metered.db };
    const event = await ingestQuiet(h.handle, { type: 'order.paid', severity: 'critical' }, vars);
    await runDeliveries(event.deliveryIds, { env: { ...env, ...vars } as Env });
    expect((await deliveriesOf(event.notificationId)).map((d) => d.status).sort()).toEqual([
      'dead',
      'succeeded',
      'succeeded',
    ]);
    // A critical notification's status counts its deliveries' rows: had the three moves gone in one statement after
    // the three transitions, the last transition would have seen two rows still open (`delivering`).
    expect(await notificationRow(event.notificationId)).toMatchObject({
      status: 'partially_failed',
      open_count: 0,
      succeeded_count: 2,
      dead_count: 1,
    });
    const write = metered.batches.find((b) => b.some((q) => q.startsWith('INSERT INTO delivery_attempts')));
    const updated = (write ?? []).flatMap((q) => /UPDATE (deliveries|notifications) SET/.exec(q)?.[1] ?? []);
    expect(updated).toEqual([
      'notifications',
      'deliveries',
      'notifications',
      'deliveries',
      'notifications',
      'deliveries',
    ]);
  });

  it("a healthy webhook's last success is written at most once a minute; a failure is written at once", async () => {
    const h = await setupHandle();
    const ok = await createWebhook(h, { url: receiverUrl('ok', unique('health-ok')) });
    await publishAndDeliver(h);
    const first = await webhookDbRow(ok.id);
    expect(first.last_success_at).not.toBeNull();
    await publishAndDeliver(h);
    // Within the minute: nothing else would change, so nothing is written.
    expect((await webhookDbRow(ok.id)).last_success_at).toBe(first.last_success_at);
    // Once the last success is older than the refresh interval, the next success writes it.
    const shard = await shardOf(h.handle);
    const old = new Date(Date.now() - HEALTH_REFRESH_MS - 1000).toISOString();
    await shard.prepare('UPDATE webhook_subscriptions SET last_success_at = ?1 WHERE id = ?2').bind(old, ok.id).run();
    await publishAndDeliver(h);
    expect(Date.parse((await webhookDbRow(ok.id)).last_success_at)).toBeGreaterThan(Date.parse(old) + 1000);
    // A failure is never held back: its streak starts at once.
    await shard
      .prepare('UPDATE webhook_subscriptions SET url = ?1 WHERE id = ?2')
      .bind(receiverUrl('fail', unique('health-fail')), ok.id)
      .run();
    await publishAndDeliver(h);
    expect(await webhookDbRow(ok.id)).toMatchObject({ consecutive_failures: 1, last_failure_class: 'http_5xx' });
  });
});
