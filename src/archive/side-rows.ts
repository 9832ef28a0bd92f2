/**
 * The per-handle rows past the retention that are deleted without an archive (docs/design.md#retention-and-archives):
 * event rejections, test sends and the deliveries a replay made for notifications already archived (with their
 * attempts), and the expired dashboard sessions of the whole service. Each step is bounded by the rows it may read
 * (D1's `meta.rows_read`): SIDE_STEP_ROWS plus SIDE_READ_SLACK, a third for each kind. It reads through an index in
 * keyset order and deletes in one batch, so no step reads more than its budget whatever the tables hold.
 */
import { boundaryId } from '../lib/ids.ts';

/** The step size: the rows one step of `purgeSideRows` may read, beyond SIDE_READ_SLACK. */
export const SIDE_STEP_ROWS = 2000;
/** Rows read by the fixed part of a step (the ends of the index ranges, the empty answers). */
export const SIDE_READ_SLACK = 10;

/**
 * Rows read per row removed, measured with `meta.rows_read` (test/archive/side-rows.test.ts checks the sums): a
 * rejection is read by the keyset select and by the range delete; a test send by the select, by the attempts' lookup
 * (the range, then a seek by delivery) and by its delete; an attempt when found and when deleted. A session or a
 * handle-less rejection: the keyset subquery, the seek by id and the delete.
 */
const READS_PER_REJECTION = 2;
const READS_PER_TEST_SEND = 5;
const READS_PER_TEST_ATTEMPT = 2;
/**
 * A replay's delivery, deleted by id: the select (its index entry, row and the look for its notification: 1 counted),
 * the attempts' delete (finding the delivery again: 5 besides its attempt's 2) and its own delete with its index
 * entries (6).
 */
const READS_PER_REPLAYED = 12;
const READS_PER_GLOBAL_ROW = 4;

const DAY_MS = 86_400_000;
const TERMINAL = `('succeeded', 'dead', 'cancelled', 'skipped')`;

/** What a step deleted, and D1's `rows_read` summed over its statements (and per statement). */
export interface SideResult {
  rejections: number;
  testSends: number;
  testAttempts: number;
  /** Deliveries a replay made for notifications that are archived and gone, and their attempts. */
  replayed: number;
  replayedAttempts: number;
  rowsRead: number;
  reads: number[];
}

/**
 * Deletes the oldest event rejections, test sends and replayed deliveries of archived notifications of `handle` whose
 * ids (time-ordered) are older than `now − retentionDays`, as many as `budget` rows read allow. A delivery that is
 * still open waits, as an event's does. A replay's delivery of a notification still in D1 is left to the archive purge,
 * which exports it with its notification.
 */
export async function purgeSideRows(
  db: D1Database,
  handle: string,
  retentionDays: number,
  now: Date,
  budget = SIDE_STEP_ROWS,
): Promise<SideResult> {
  const before = now.getTime() - retentionDays * DAY_MS;
  const share = Math.floor(budget / 3);
  const [rejections, tests, replayed] = await db.batch<{ id: string; attempt_count: number }>([
    db
      .prepare('SELECT id FROM event_rejections WHERE handle = ?1 AND id < ?2 ORDER BY id LIMIT ?3')
      .bind(handle, boundaryId('rej', before), Math.floor(share / READS_PER_REJECTION)),
    db
      .prepare(
        `SELECT id, attempt_count FROM deliveries WHERE handle = ?1 AND notification_id IS NULL AND id < ?2
           AND status IN ${TERMINAL} ORDER BY id LIMIT ?3`,
      )
      .bind(handle, boundaryId('dlv', before), Math.floor(share / (READS_PER_TEST_SEND + READS_PER_TEST_ATTEMPT))),
    // `deliveries_replays_idx`; only those whose notification is gone (archived and purged without them).
    db
      .prepare(
        `SELECT id, attempt_count FROM deliveries d WHERE handle = ?1 AND replay_id IS NOT NULL AND id < ?2
           AND status IN ${TERMINAL} AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = d.notification_id)
         ORDER BY id LIMIT ?3`,
      )
      .bind(handle, boundaryId('dlv', before), Math.floor(share / (READS_PER_REPLAYED + READS_PER_TEST_ATTEMPT))),
  ]);
  const reads = [rejections!.meta.rows_read ?? 0, tests!.meta.rows_read ?? 0, replayed!.meta.rows_read ?? 0];
  const sum = () => reads.reduce((n, r) => n + r, 0);
  // The deliveries whose deletes, with their attempts, still fit their third of the budget.
  const fitting = (rows: { id: string; attempt_count: number }[], perRow: number) => {
    const ids: string[] = [];
    let cost = 0;
    for (const t of rows) {
      cost += perRow + READS_PER_TEST_ATTEMPT * t.attempt_count;
      if (ids.length && cost > share) break;
      ids.push(t.id);
    }
    return ids;
  };
  const sends = fitting(tests!.results, READS_PER_TEST_SEND);
  const replays = fitting(replayed!.results, READS_PER_REPLAYED);
  const gone = rejections!.results;
  if (gone.length === 0 && sends.length === 0 && replays.length === 0) {
    return { rejections: 0, testSends: 0, testAttempts: 0, replayed: 0, replayedAttempts: 0, rowsRead: sum(), reads };
  }
  // One batch of range deletes: a test send's attempts go with it, and only while it is still terminal (a retry
  // reopens it; an open test send inside the range stays).
  const sendRange = `handle = ?1 AND notification_id IS NULL AND id BETWEEN ?2 AND ?3 AND status IN ${TERMINAL}`;
  const [firstSend, lastSend] = sends.length ? [sends[0]!, sends[sends.length - 1]!] : ['', ''];
  const [firstRej, lastRej] = gone.length ? [gone[0]!.id, gone[gone.length - 1]!.id] : ['', ''];
  // A replay's deliveries by their ids (a range would take in those whose notification is still here), still closed.
  const replayIds = `SELECT id FROM deliveries WHERE id IN (SELECT value FROM json_each(?1)) AND status IN ${TERMINAL}`;
  const batch = await db.batch([
    db
      .prepare('DELETE FROM event_rejections WHERE handle = ?1 AND id BETWEEN ?2 AND ?3')
      .bind(handle, firstRej, lastRej),
    db
      .prepare(`DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE ${sendRange})`)
      .bind(handle, firstSend, lastSend),
    db.prepare(`DELETE FROM deliveries WHERE ${sendRange}`).bind(handle, firstSend, lastSend),
    db.prepare(`DELETE FROM delivery_attempts WHERE delivery_id IN (${replayIds})`).bind(JSON.stringify(replays)),
    db.prepare(`DELETE FROM deliveries WHERE id IN (${replayIds})`).bind(JSON.stringify(replays)),
  ]);
  for (const r of batch) reads.push(r.meta.rows_read ?? 0);
  return {
    rejections: batch[0]!.meta.changes,
    testAttempts: batch[1]!.meta.changes,
    testSends: batch[2]!.meta.changes,
    replayedAttempts: batch[3]!.meta.changes,
    replayed: batch[4]!.meta.changes,
    rowsRead: sum(),
    reads,
  };
}

/**
 * Deletes dashboard sessions that expired before `now` (by the expiry index) and event rejections that name no handle
 * older than `retentionDays`, each within half of `budget` rows read. Answers the rows deleted and D1's `rows_read`.
 */
export async function purgeGlobalRows(
  db: D1Database,
  retentionDays: number,
  now: Date,
  budget = SIDE_STEP_ROWS,
): Promise<{ sessions: number; rejections: number; rowsRead: number }> {
  const limit = Math.floor(budget / 2 / READS_PER_GLOBAL_ROW);
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
