/**
 * One purge step for one handle (docs/design.md#retention-and-archives): the oldest expired notifications, in keyset
 * order over their time-ordered ids, are archived to R2 with their deliveries and attempts, the object is read back
 * and verified, and only then are the rows deleted, in one D1 batch guarded so that it deletes nothing unless the rows
 * are still exactly what the verified archive holds.
 *
 * - A notification with an open delivery is never purged: it, and every later one of the handle, waits.
 * - An archive recorded but not purged (a crash, a refused guard) is finished first: the same range is exported again
 *   to the same key, so nothing is lost and no line is doubled.
 * - Every statement reads through an index: the rows read by a step are the rows it archives plus a small constant.
 */
import { boundaryId, newId } from '../lib/ids.ts';
import { archiveLines, gzipNdjson, type Row } from './format.ts';
import { archiveKey, writeVerified } from './objects.ts';

/** At most this many notifications per step. */
export const STEP_NOTIFICATIONS = 100;
/** …and at most about this many deliveries (the sum of the notifications' recipient counts). */
export const STEP_DELIVERIES = 1000;

const DAY_MS = 86_400_000;
// `deferred` is open too: a deferred delivery will still go (docs/design.md#peak-campaign-windows).
const OPEN = `('deferred', 'pending', 'queued', 'retrying')`;

/** The notifications of the handle in [?2, ?3] (the archive's range), by the (handle, id) index. */
const RANGE = 'SELECT id FROM notifications WHERE handle = ?1 AND id BETWEEN ?2 AND ?3';
const RANGE_DELIVERIES = `SELECT id FROM deliveries WHERE notification_id IN (${RANGE})`;

/** What a step did. */
export interface StepResult {
  /** `purged`: a range left D1; `waiting`: the oldest expired notification is still open; `idle`: nothing expired. */
  outcome: 'purged' | 'waiting' | 'idle' | 'refused';
  archiveId?: string;
  notifications: number;
  deliveries: number;
  attempts: number;
  /** The open notification everything waits on (`waiting`). */
  waitingOn?: string;
  /** Size of the archive object written (`purged`). */
  bytes?: number;
  /** D1's `rows_read` summed over the step's statements. */
  rowsRead: number;
  /** …and per statement, in order (what a bound on `rowsRead` names when it fails). */
  reads: number[];
}

/** Test seams: what runs between the verified archive and the delete (a crash, a delivery racing the purge). */
export interface StepHooks {
  beforeDelete?: () => Promise<void>;
}

interface PendingArchive {
  id: string;
  first: string;
  last: string;
  period: string;
  key: string;
  notificationCount: number;
}

const periodOf = (createdAt: string) => createdAt.slice(0, 10);

/**
 * Runs one step for `handle` with `retentionDays` as of `now`. Throws when R2 or D1 fail; nothing is deleted then.
 */
export async function purgeStep(
  env: Env,
  handle: string,
  retentionDays: number,
  now: Date,
  hooks: StepHooks = {},
): Promise<StepResult> {
  const db = env.DB;
  let rowsRead = 0;
  const reads: number[] = [];
  const count = (meta: { rows_read?: number }) => {
    rowsRead += meta.rows_read ?? 0;
    reads.push(meta.rows_read ?? 0);
  };
  const done = (r: Omit<StepResult, 'rowsRead' | 'reads'>): StepResult => ({ ...r, rowsRead, reads });
  const none = { notifications: 0, deliveries: 0, attempts: 0 };

  // 1. An archive recorded earlier but not purged is finished first, over the same range and key.
  const cutoff = boundaryId('ntf', now.getTime() - retentionDays * DAY_MS);
  const [unfinished, head] = await db.batch<Row>([
    db
      .prepare(
        `SELECT id, first_notification_id, last_notification_id, period, object_key, notification_count
         FROM archives WHERE handle = ?1 AND status <> 'purged' LIMIT 1`,
      )
      .bind(handle),
    db
      .prepare(
        `SELECT id, open_count, recipient_count, created_at FROM notifications
         WHERE handle = ?1 AND id < ?2 ORDER BY id LIMIT ?3`,
      )
      .bind(handle, cutoff, STEP_NOTIFICATIONS),
  ]);
  count(unfinished!.meta);
  count(head!.meta);

  let archive: PendingArchive;
  const u = unfinished!.results[0];
  if (u) {
    archive = {
      id: u.id as string,
      first: u.first_notification_id as string,
      last: u.last_notification_id as string,
      period: u.period as string,
      key: u.object_key as string,
      notificationCount: u.notification_count as number,
    };
  } else {
    // 2. The longest run of expired, closed notifications from the oldest one, within one UTC day and the budget.
    const rows = head!.results;
    if (!rows.length) return done({ outcome: 'idle', ...none });
    const period = periodOf(rows[0]!.created_at as string);
    const picked: Row[] = [];
    let deliveries = 0;
    for (const r of rows) {
      if ((r.open_count as number) > 0) break;
      if (periodOf(r.created_at as string) !== period) break;
      if (picked.length && deliveries + (r.recipient_count as number) > STEP_DELIVERIES) break;
      deliveries += r.recipient_count as number;
      picked.push(r);
    }
    if (!picked.length) return done({ outcome: 'waiting', waitingOn: rows[0]!.id as string, ...none });
    const first = picked[0]!.id as string;
    const last = picked[picked.length - 1]!.id as string;
    archive = {
      id: newId('arc', now.getTime()),
      first,
      last,
      period,
      key: archiveKey(handle, period, first),
      notificationCount: picked.length,
    };
    const recorded = await db
      .prepare(
        `INSERT INTO archives (id, handle, period, object_key, first_notification_id, last_notification_id,
           notification_count, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8)`,
      )
      .bind(archive.id, handle, period, archive.key, first, last, picked.length, now.toISOString())
      .run();
    count(recorded.meta);
  }

  // 3. Everything in the range, in one round trip.
  const range = [handle, archive.first, archive.last] as const;
  const [nRows, dRows, aRows] = await db.batch<Row>([
    db.prepare(`SELECT * FROM notifications WHERE handle = ?1 AND id BETWEEN ?2 AND ?3 ORDER BY id`).bind(...range),
    db.prepare(`SELECT * FROM deliveries WHERE notification_id IN (${RANGE})`).bind(...range),
    db.prepare(`SELECT * FROM delivery_attempts WHERE delivery_id IN (${RANGE_DELIVERIES})`).bind(...range),
  ]);
  for (const r of [nRows!, dRows!, aRows!]) count(r.meta);
  const notifications = nRows!.results;
  const deliveries = dRows!.results;
  const attempts = aRows!.results;
  const sizes = { notifications: notifications.length, deliveries: deliveries.length, attempts: attempts.length };
  // Rows gone already (another run purged this range) or not all there: write nothing over a good object.
  if (notifications.length !== archive.notificationCount) return done({ outcome: 'refused', ...sizes });
  const open = deliveries.find((d) => ['deferred', 'pending', 'queued', 'retrying'].includes(d.status as string));
  if (open) return done({ outcome: 'waiting', waitingOn: open.notification_id as string, ...sizes });

  // 4. Write and verify the object, then record what it holds.
  const bytes = await gzipNdjson(archiveLines(notifications, deliveries, attempts));
  const object = await writeVerified(env.ARCHIVE, archive.key, bytes, {
    handle,
    period: archive.period,
    firstNotificationId: archive.first,
    lastNotificationId: archive.last,
  });
  const verified = await db
    .prepare(
      `UPDATE archives SET status = 'verified', bytes = ?2, sha256 = ?3, delivery_count = ?4, attempt_count = ?5,
         verified_at = ?6
       WHERE id = ?1 AND status IN ('pending', 'verified')`,
    )
    .bind(archive.id, object.bytes, object.sha256, deliveries.length, attempts.length, now.toISOString())
    .run();
  count(verified.meta);

  await hooks.beforeDelete?.();

  // 5. Delete, in one batch, only if the rows are still what the verified object holds: the same notifications
  //    (count, last change) and the same deliveries (count, last change, attempts, none open). Attempts are only
  //    ever written in the batch that moves their delivery, so a new attempt changes the deliveries' fingerprint.
  const fingerprint = (rows: Row[]) =>
    `${rows.length}|${rows.reduce((m, r) => ((r.updated_at as string) > m ? (r.updated_at as string) : m), '')}`;
  const attemptTotal = deliveries.reduce((n, d) => n + (d.attempt_count as number), 0);
  const purging = `EXISTS (SELECT 1 FROM archives WHERE id = ?4 AND status = 'purging')`;
  const at = now.toISOString();
  // The deletes name the exported deliveries (one JSON parameter) rather than walking the range again.
  const deliveryIds = JSON.stringify(deliveries.map((d) => d.id));
  const batch = await db.batch([
    db
      .prepare(
        `UPDATE archives SET status = 'purging' WHERE id = ?4 AND status = 'verified' AND sha256 = ?5
           AND (SELECT count(*) || '|' || ifnull(max(updated_at), '') FROM notifications
                WHERE handle = ?1 AND id BETWEEN ?2 AND ?3) = ?6
           AND (SELECT count(*) || '|' || ifnull(max(updated_at), '') || '|' || ifnull(sum(attempt_count), 0) || '|'
                  || ifnull(sum(+status IN ${OPEN}), 0)
                FROM deliveries WHERE notification_id IN (${RANGE})) = ?7`,
      )
      .bind(
        ...range,
        archive.id,
        object.sha256,
        fingerprint(notifications),
        `${fingerprint(deliveries)}|${attemptTotal}|0`,
      ),
    db
      .prepare(
        `DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT value FROM json_each(?1))
           AND EXISTS (SELECT 1 FROM archives WHERE id = ?2 AND status = 'purging')`,
      )
      .bind(deliveryIds, archive.id),
    db
      .prepare(
        `DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?1))
           AND EXISTS (SELECT 1 FROM archives WHERE id = ?2 AND status = 'purging')`,
      )
      .bind(deliveryIds, archive.id),
    db
      .prepare(`DELETE FROM notifications WHERE handle = ?1 AND id BETWEEN ?2 AND ?3 AND ${purging}`)
      .bind(...range, archive.id),
    db
      .prepare(`UPDATE archives SET status = 'purged', purged_at = ?2 WHERE id = ?1 AND status = 'purging'`)
      .bind(archive.id, at),
  ]);
  for (const r of batch) count(r.meta);
  if (batch[4]!.meta.changes !== 1) return done({ outcome: 'refused', archiveId: archive.id, ...sizes });
  return done({ outcome: 'purged', archiveId: archive.id, bytes: object.bytes, ...sizes });
}
