/**
 * Overdue deliveries (docs/design.md#overdue-deliveries): a `queued` or `retrying` delivery whose next attempt was due
 * more than a grace ago (`OVERDUE_AFTER_SECONDS`, 5 min) has most likely lost its queue message — the Worker was killed
 * mid-delivery, or the message was lost in transport. The sweeper re-enqueues it (`claimOverdue`), the doctor counts it
 * (`overdueOfHandle`). The due time is `DELIVERY_DUE_AT`, SQL over the row's own columns, indexed.
 *
 * No re-send storm under a long queue backlog: a re-enqueue moves the delivery's due time forward by a backoff that
 * grows with how late it already is (the time since it was first due, at least one grace, at most
 * MAX_BACKOFF_GRACES graces). While nothing happens to the row, it is re-enqueued after 1, 3, 7, 15… graces, so at
 * most once per grace and, once the backoff is capped, once an hour with the default grace. Rows left `pending`
 * (`claimPending`) get the same backoff after their first re-send a minute on.
 */
import { DELIVERY_DUE_AT } from '../db/schema.ts';

/** The backoff after a re-enqueue grows up to this many graces (an hour with the default 5 min). */
export const MAX_BACKOFF_GRACES = 12;

/** Due before this instant = overdue at `now`. */
export function overdueCutoff(now: Date, graceSeconds: number): string {
  return new Date(now.getTime() - graceSeconds * 1000).toISOString();
}

/** A delivery the sweeper claimed: re-enqueue it, or, when its DLQ hand-off was lost, write it dead. */
export interface ClaimedDelivery {
  id: string;
  handle: string;
  status: 'queued' | 'retrying';
  status_reason: string | null;
}

/**
 * Leaves out the deliveries of a handle moving between shards (docs/design.md#moving-a-handle): the shard's copy of
 * its row says so. On the source its rows are being copied and a write after the last pass would be lost; on the
 * target they are not live yet. The sweep after the move finds them.
 */
export const NOT_MOVING = 'handle NOT IN (SELECT handle FROM handles WHERE moving_since IS NOT NULL)';

/**
 * Picks up to `limit` overdue deliveries, oldest due first, and moves each one's due time forward in the same
 * statement (two overlapping sweeps cannot both claim a row). The new due time is `now` plus the backoff; the row's
 * `updated_at` is recorded with it, so the first write of anyone else (an attempt, a move) makes it void.
 */
export function claimOverdue(d1: D1Database, now: Date, graceSeconds: number, limit: number): D1PreparedStatement {
  return d1
    .prepare(
      `UPDATE deliveries SET requeued_updated_at = updated_at,
         requeue_due_at = strftime('%Y-%m-%dT%H:%M:%fZ', julianday(?1) + MIN(?3, MAX(?2,
           (julianday(?1) - julianday(COALESCE(next_attempt_at, updated_at))) * 86400.0)) / 86400.0)
       WHERE id IN (
         SELECT id FROM deliveries WHERE status in ('queued', 'retrying') AND ${DELIVERY_DUE_AT} < ?4
           AND ${NOT_MOVING}
         ORDER BY ${DELIVERY_DUE_AT} LIMIT ?5)
       RETURNING id, handle, status, status_reason`,
    )
    .bind(now.toISOString(), graceSeconds, graceSeconds * MAX_BACKOFF_GRACES, overdueCutoff(now, graceSeconds), limit);
}

/**
 * Picks up to `limit` deliveries left `pending` since before `pendingBefore`, oldest first, and claims them like
 * `claimOverdue`: the first re-send comes a minute after the row was written (its send may simply have failed), and
 * each later one only after the same growing backoff (at least one grace), because a `pending` row whose message did
 * go out waits in the queue's backlog like a `queued` one: under a stalled consumer, no re-send storm. The rows are
 * found through the partial index `deliveries_pending_idx` (`status = 'pending'`), oldest first.
 */
export function claimPending(
  d1: D1Database,
  now: Date,
  pendingBefore: string,
  graceSeconds: number,
  limit: number,
): D1PreparedStatement {
  return d1
    .prepare(
      `UPDATE deliveries SET requeued_updated_at = updated_at,
         requeue_due_at = strftime('%Y-%m-%dT%H:%M:%fZ', julianday(?1) + MIN(?3, MAX(?2,
           (julianday(?1) - julianday(updated_at)) * 86400.0)) / 86400.0)
       WHERE id IN (
         SELECT id FROM deliveries
         WHERE status = 'pending' AND updated_at < ?4
           AND (requeued_updated_at IS NOT updated_at OR requeue_due_at < ?1) AND ${NOT_MOVING}
         ORDER BY updated_at LIMIT ?5)
       RETURNING id, handle`,
    )
    .bind(now.toISOString(), graceSeconds, graceSeconds * MAX_BACKOFF_GRACES, pendingBefore, limit);
}

/** Undoes a claim whose message could not be sent: the next sweep tries again instead of waiting out the backoff. */
export function releaseClaims(d1: D1Database, ids: readonly string[]): D1PreparedStatement {
  return d1
    .prepare(
      `UPDATE deliveries SET requeued_updated_at = NULL, requeue_due_at = NULL
       WHERE id IN (SELECT value FROM json_each(?1)) AND requeued_updated_at = updated_at`,
    )
    .bind(JSON.stringify(ids));
}

/** A handle's overdue deliveries: how many, and the one due longest ago. */
export interface OverdueSummary {
  count: number;
  oldest: { deliveryId: string; status: string; target: string; dueAt: string } | null;
}

/** The doctor's two reads (count, oldest) as statements for the route's batch; `readOverdue` turns their rows. */
export function overdueOfHandle(d1: D1Database, handle: string, now: Date, graceSeconds: number) {
  const cutoff = overdueCutoff(now, graceSeconds);
  const where = `status in ('queued', 'retrying') AND ${DELIVERY_DUE_AT} < ?2 AND handle = ?1`;
  return [
    d1.prepare(`SELECT count(*) AS n FROM deliveries WHERE ${where}`).bind(handle, cutoff),
    d1
      .prepare(
        `SELECT id, status, target, ${DELIVERY_DUE_AT} AS due_at FROM deliveries WHERE ${where}
         ORDER BY ${DELIVERY_DUE_AT} LIMIT 1`,
      )
      .bind(handle, cutoff),
  ] as const;
}

/** The summary from the results of `overdueOfHandle`'s statements. */
export function readOverdue(count: D1Result<Record<string, unknown>>, oldest: D1Result<Record<string, unknown>>) {
  const row = oldest.results[0];
  return {
    count: Number(count.results[0]?.n ?? 0),
    oldest: row
      ? {
          deliveryId: row.id as string,
          status: row.status as string,
          target: row.target as string,
          dueAt: row.due_at as string,
        }
      : null,
  } satisfies OverdueSummary;
}
