/**
 * The reads of `GET /v2/handles/{handle}/usage` (docs/design.md#usage): ONE `db.batch`, each statement an index lookup
 * whose rows read are bounded whatever the handle's traffic — the day's counter row, the subscriptions (at most the
 * caps), the oldest notification, the purge state, and the deferred deliveries counted up to a bound.
 */
import { utcDay } from '../../db/daily-counters.ts';

/** Deferred deliveries are counted up to this many; past it the usage says "at least". */
export const DEFERRED_COUNT_BOUND = 1000;

export interface UsageRows {
  retentionDays: number;
  writes: number;
  events: number;
  webhooks: number;
  emailSubscriptions: number;
  oldestNotificationAt: string | null;
  archives: { count: number; bytes: number };
  deferred: { count: number; nextReleaseAt: string | null };
  /** D1's own metadata: the database's size, and the rows the batch read (tests hold it to a bound). */
  sizeBytes: number;
  rowsRead: number;
}

/** Reads everything the usage call reports for `handle` on `now`'s UTC day, in one round trip. */
export async function readUsage(d1: D1Database, handle: string, now: Date): Promise<UsageRows> {
  const results = await d1.batch<Record<string, unknown>>([
    d1.prepare('SELECT retention_days FROM handles WHERE handle = ?1').bind(handle),
    d1
      .prepare('SELECT count, events FROM daily_write_counters WHERE handle = ?1 AND day = ?2')
      .bind(handle, utcDay(now)),
    d1.prepare('SELECT count(*) AS n FROM webhook_subscriptions WHERE handle = ?1').bind(handle),
    d1.prepare(`SELECT count(*) AS n FROM email_subscriptions WHERE handle = ?1 AND kind = 'standard'`).bind(handle),
    d1.prepare('SELECT created_at FROM notifications WHERE handle = ?1 ORDER BY id LIMIT 1').bind(handle),
    d1.prepare('SELECT archives, archived_bytes FROM purge_state WHERE handle = ?1').bind(handle),
    d1
      .prepare(
        `SELECT count(*) AS n, min(next_attempt_at) AS next FROM (SELECT next_attempt_at FROM deliveries
           WHERE handle = ?1 AND status = 'deferred' ORDER BY next_attempt_at LIMIT ?2)`,
      )
      .bind(handle, DEFERRED_COUNT_BOUND),
  ]);
  const [h, day, hooks, subs, oldest, purge, deferred] = results.map((r) => r.results[0]);
  return {
    retentionDays: (h?.retention_days as number | undefined) ?? 30,
    writes: (day?.count as number | undefined) ?? 0,
    events: (day?.events as number | undefined) ?? 0,
    webhooks: (hooks?.n as number | undefined) ?? 0,
    emailSubscriptions: (subs?.n as number | undefined) ?? 0,
    oldestNotificationAt: (oldest?.created_at as string | undefined) ?? null,
    archives: {
      count: (purge?.archives as number | undefined) ?? 0,
      bytes: (purge?.archived_bytes as number | undefined) ?? 0,
    },
    deferred: {
      count: (deferred?.n as number | undefined) ?? 0,
      nextReleaseAt: (deferred?.next as string | null | undefined) ?? null,
    },
    sizeBytes: results[0]!.meta.size_after ?? 0,
    rowsRead: results.reduce((sum, r) => sum + (r.meta.rows_read ?? 0), 0),
  };
}
