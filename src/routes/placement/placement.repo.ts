/**
 * The handle's own rows on its shard for `GET /v2/handles/{handle}/placement` (docs/design.md#shards): ONE `db.batch`
 * on the shard, each count walking an index named with `INDEXED BY` (so no planner statistics can turn it into a scan;
 * attempts by their own key) and stopping at PLACEMENT_COUNT_BOUND, so the rows read stay bounded however much the
 * handle stores.
 */
import { notificationDeliveriesFrom } from '../../db/schema.ts';

/** Each count stops here; past it the report says "at least". */
export const PLACEMENT_COUNT_BOUND = 1000;

/** A count that stopped at the bound (or whose source did) is a lower bound. */
export interface BoundedCount {
  count: number;
  atLeast: boolean;
}

export interface HandleRows {
  retentionDays: number;
  notifications: BoundedCount;
  deliveries: BoundedCount;
  attempts: BoundedCount;
  /** D1's own metadata: the rows the batch read (a test holds it to a bound). */
  rowsRead: number;
}

/** The first PLACEMENT_COUNT_BOUND notification ids of the handle, from `notifications_handle_idx`. */
const NOTIFICATION_IDS = `SELECT id FROM notifications INDEXED BY notifications_handle_idx WHERE handle = ?1 LIMIT ?2`;

/**
 * Delivery ids of the handle, at most the bound: those of the notifications above (notificationDeliveriesFrom) and
 * its test sends, which have no notification (`deliveries_test_sends_idx`). Deliveries carry no index on the handle
 * alone; these two reach every one of them.
 */
const DELIVERY_IDS = `SELECT d.id FROM ${notificationDeliveriesFrom(NOTIFICATION_IDS)}
  UNION ALL SELECT id FROM deliveries INDEXED BY deliveries_test_sends_idx WHERE handle = ?1 AND notification_id IS NULL
  LIMIT ?2`;

/**
 * Reads the handle's retention and its bounded row counts from its shard, in one round trip. Attempts need no index
 * named: their table is keyed by (delivery, number) WITHOUT ROWID, so a lookup by delivery is the table's own order.
 */
export async function readHandleRows(d1: D1Database, handle: string): Promise<HandleRows> {
  const bound = PLACEMENT_COUNT_BOUND;
  const results = await d1.batch<Record<string, unknown>>([
    d1.prepare('SELECT retention_days FROM handles WHERE handle = ?1').bind(handle),
    d1.prepare(`SELECT count(*) AS n FROM (${NOTIFICATION_IDS})`).bind(handle, bound),
    d1.prepare(`SELECT count(*) AS n FROM (${DELIVERY_IDS})`).bind(handle, bound),
    d1
      .prepare(
        `SELECT count(*) AS n FROM (SELECT 1 FROM (${DELIVERY_IDS}) d
           JOIN delivery_attempts a ON a.delivery_id = d.id LIMIT ?2)`,
      )
      .bind(handle, bound),
  ]);
  const [h, notifications, deliveries, attempts] = results.map((r) => r.results[0]);
  const n = (row: Record<string, unknown> | undefined) => Number(row?.n ?? 0);
  // A count stops at the bound; one drawn from a source that stopped there is a lower bound too.
  const nCount = { count: n(notifications), atLeast: n(notifications) >= bound };
  const dCount = { count: n(deliveries), atLeast: n(deliveries) >= bound || nCount.atLeast };
  const aCount = { count: n(attempts), atLeast: n(attempts) >= bound || dCount.atLeast };
  return {
    retentionDays: (h?.retention_days as number | undefined) ?? 30,
    notifications: nCount,
    deliveries: dCount,
    attempts: aCount,
    rowsRead: results.reduce((sum, r) => sum + (r.meta.rows_read ?? 0), 0),
  };
}
