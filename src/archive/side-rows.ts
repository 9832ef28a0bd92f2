/**
 * The per-handle rows past the retention that are deleted without an archive (docs/design.md#retention-and-archives):
 * event rejections and test sends (with their attempts), and the expired dashboard sessions of the whole service.
 * Each step is bounded: it reads at most `limit` rows through an index in keyset order and deletes them in one batch,
 * so the rows read are the rows deleted plus a small constant whatever the tables hold.
 */
import { shardFor } from '../db/shards.ts';
import { boundaryId } from '../lib/ids.ts';

/** Rows of each kind one step deletes at most. */
export const SIDE_STEP_ROWS = 200;

const DAY_MS = 86_400_000;
const TERMINAL = `('succeeded', 'dead', 'cancelled', 'skipped')`;

/** What a step deleted, and D1's `rows_read` summed over its statements. */
export interface SideResult {
  rejections: number;
  testSends: number;
  testAttempts: number;
  rowsRead: number;
}

/**
 * Deletes up to `limit` event rejections (on the control plane) and `limit` test sends (on the handle's shard) of
 * `handle` whose ids (time-ordered) are older than `now − retentionDays`. A test send that is still open waits, as an
 * event's delivery does.
 */
export async function purgeSideRows(
  env: Pick<Env, 'DB'>,
  handle: string,
  retentionDays: number,
  now: Date,
  limit = SIDE_STEP_ROWS,
): Promise<SideResult> {
  const before = now.getTime() - retentionDays * DAY_MS;
  const [rejections, tests] = await Promise.all([
    purgeRejections(env.DB, handle, boundaryId('rej', before), limit),
    purgeTestSends(await shardFor(env, handle), handle, boundaryId('dlv', before), limit),
  ]);
  return { ...rejections, ...tests, rowsRead: rejections.rowsRead + tests.rowsRead };
}

async function purgeRejections(db: D1Database, handle: string, beforeId: string, limit: number) {
  const found = await db
    .prepare('SELECT id FROM event_rejections WHERE handle = ?1 AND id < ?2 ORDER BY id LIMIT ?3')
    .bind(handle, beforeId, limit)
    .all<{ id: string }>();
  let rowsRead = found.meta.rows_read ?? 0;
  if (!found.results.length) return { rejections: 0, rowsRead };
  const deleted = await db
    .prepare('DELETE FROM event_rejections WHERE id IN (SELECT value FROM json_each(?1))')
    .bind(JSON.stringify(found.results.map((r) => r.id)))
    .run();
  rowsRead += deleted.meta.rows_read ?? 0;
  return { rejections: deleted.meta.changes, rowsRead };
}

async function purgeTestSends(db: D1Database, handle: string, beforeId: string, limit: number) {
  const found = await db
    .prepare(
      `SELECT id FROM deliveries WHERE handle = ?1 AND notification_id IS NULL AND id < ?2
         AND status IN ${TERMINAL} ORDER BY id LIMIT ?3`,
    )
    .bind(handle, beforeId, limit)
    .all<{ id: string }>();
  let rowsRead = found.meta.rows_read ?? 0;
  if (!found.results.length) return { testSends: 0, testAttempts: 0, rowsRead };
  const testIds = JSON.stringify(found.results.map((r) => r.id));
  // One batch: a test send's attempts go with it, and only while it is still terminal (a retry reopens it).
  const closed = `SELECT id FROM deliveries WHERE id IN (SELECT value FROM json_each(?1)) AND status IN ${TERMINAL}`;
  const batch = await db.batch([
    db.prepare(`DELETE FROM delivery_attempts WHERE delivery_id IN (${closed})`).bind(testIds),
    db
      .prepare(`DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?1)) AND status IN ${TERMINAL}`)
      .bind(testIds),
  ]);
  for (const r of batch) rowsRead += r.meta.rows_read ?? 0;
  return { testAttempts: batch[0]!.meta.changes, testSends: batch[1]!.meta.changes, rowsRead };
}

/**
 * Deletes up to `limit` dashboard sessions that expired before `now` (by the expiry index), and up to `limit` event
 * rejections that name no handle older than `retentionDays`. Answers the rows deleted and D1's `rows_read`.
 */
export async function purgeGlobalRows(
  db: D1Database,
  retentionDays: number,
  now: Date,
  limit = SIDE_STEP_ROWS,
): Promise<{ sessions: number; rejections: number; rowsRead: number }> {
  const cutoff = boundaryId('rej', now.getTime() - retentionDays * DAY_MS);
  const batch = await db.batch([
    db
      .prepare(
        `DELETE FROM dashboard_sessions WHERE id IN
           (SELECT id FROM dashboard_sessions WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)`,
      )
      .bind(now.toISOString(), limit),
    db
      .prepare(
        `DELETE FROM event_rejections WHERE id IN
           (SELECT id FROM event_rejections WHERE handle IS NULL AND id < ?1 ORDER BY id LIMIT ?2)`,
      )
      .bind(cutoff, limit),
  ]);
  return {
    sessions: batch[0]!.meta.changes,
    rejections: batch[1]!.meta.changes,
    rowsRead: batch.reduce((n, r) => n + (r.meta.rows_read ?? 0), 0),
  };
}
