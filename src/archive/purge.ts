/**
 * One purge step for one handle (docs/design.md#retention-and-archives): the oldest expired notifications, in keyset
 * order over their time-ordered ids, are archived to R2 with their deliveries and attempts, the object is read back
 * and verified, and only then are the rows deleted, in one D1 batch guarded so that it deletes nothing unless the rows
 * are still exactly what the verified archive holds.
 *
 * - A notification with an open delivery is never purged: it, and every later one of the handle, waits.
 * - An archive recorded but not purged (a crash, a refused guard) is finished first: the same range is exported again
 *   to the same key, so nothing is lost and no line is doubled.
 * - A step reads at most STEP_ROWS rows (D1's `meta.rows_read`) plus a small constant: every statement reads through an
 *   index, and the range is cut, before anything is written, to what the rest of the step can read within the budget
 *   (`readsFor`). Only a single notification whose rows alone exceed the budget is taken whole regardless.
 */
import { notificationDeliveriesFrom } from '../db/schema.ts';
import { shardFor } from '../db/shards.ts';
import { boundaryId, newId } from '../lib/ids.ts';
import { archiveLines, gzipNdjson, type Row } from './format.ts';
import { archiveKey, writeVerified } from './objects.ts';

/**
 * The step size: the rows one step may read (D1's `meta.rows_read` summed over its statements), beyond the constant
 * STEP_READ_SLACK. docs/design.md#retention-and-archives says how it is measured.
 */
export const STEP_ROWS = 2000;
/** Rows read by a step's fixed statements (the unfinished-archive lookup, the archive row's updates). */
export const STEP_READ_SLACK = 10;
/** At most this many notifications are read to choose a step's range. */
const HEAD_LIMIT = 100;

/**
 * Rows read, measured with `meta.rows_read`, by the statements that follow the choice of a range of `n` notifications
 * with `d` deliveries and `a` attempts, per statement: the range's deliveries and attempts (each id list is a
 * `json_each` row, a seek and the rows found), the guard (the notifications' range, the deliveries by notification) and
 * the deletes (a row and its lookup each). An upper bound: test/archive/retention.test.ts checks it against D1.
 */
export function readsFor(n: number, d: number, a: number): { deliveries: number; attempts: number; rest: number } {
  const deliveries = 3 * n + d;
  const attempts = 3 * d + a;
  const guard = 5 * n + 2 * d;
  const deletes = 3 * d + 2 * a + 4 * d + 2 * n;
  return { deliveries, attempts, rest: guard + deletes };
}

const DAY_MS = 86_400_000;
// `deferred` is open too: a deferred delivery will still go (docs/design.md#peak-campaign-windows).
const OPEN_STATUSES = ['deferred', 'pending', 'queued', 'retrying'];
const OPEN = `('deferred', 'pending', 'queued', 'retrying')`;

/** The notifications of the handle in [?2, ?3] (the archive's range), by the (handle, id) index. */
const RANGE = 'SELECT id FROM notifications WHERE handle = ?1 AND id BETWEEN ?2 AND ?3';

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
  const db = await shardFor(env, handle);
  let rowsRead = 0;
  const reads: number[] = [];
  const count = (meta: { rows_read?: number }) => {
    rowsRead += meta.rows_read ?? 0;
    reads.push(meta.rows_read ?? 0);
  };
  const done = (r: Omit<StepResult, 'rowsRead' | 'reads'>): StepResult => ({ ...r, rowsRead, reads });
  const none = { notifications: 0, deliveries: 0, attempts: 0 };
  /** Would a range of this size still fit the step, with what has been read so far? */
  const fits = (n: number, d: number, a: number) => {
    const r = readsFor(n, d, a);
    return rowsRead + r.deliveries + r.attempts + r.rest <= STEP_ROWS;
  };

  // 1. An archive recorded earlier but not purged is finished first, over the same range and key.
  const unfinished = await db
    .prepare(
      `SELECT id, first_notification_id, last_notification_id, period, object_key, notification_count
       FROM archives WHERE handle = ?1 AND status <> 'purged' LIMIT 1`,
    )
    .bind(handle)
    .all<Row>();
  count(unfinished.meta);

  let archive: PendingArchive;
  let notifications: Row[];
  let deliveries: Row[];
  const u = unfinished.results[0];
  if (u) {
    archive = {
      id: u.id as string,
      first: u.first_notification_id as string,
      last: u.last_notification_id as string,
      period: u.period as string,
      key: u.object_key as string,
      notificationCount: u.notification_count as number,
    };
    const range = [handle, archive.first, archive.last] as const;
    const [nRows, dRows] = await db.batch<Row>([
      db.prepare(`SELECT * FROM notifications WHERE handle = ?1 AND id BETWEEN ?2 AND ?3 ORDER BY id`).bind(...range),
      db.prepare(`SELECT d.* FROM ${notificationDeliveriesFrom(RANGE)}`).bind(...range),
    ]);
    count(nRows!.meta);
    count(dRows!.meta);
    notifications = nRows!.results;
    deliveries = dRows!.results;
    // Rows gone already (another run purged this range) or not all there: write nothing over a good object.
    if (notifications.length !== archive.notificationCount) {
      return done({
        outcome: 'refused',
        notifications: notifications.length,
        deliveries: deliveries.length,
        attempts: 0,
      });
    }
  } else {
    // 2. The oldest expired notifications, whole (they are the export's rows), then the longest run of closed ones
    //    from the oldest, within one UTC day, cut to what the step can still read.
    const cutoff = boundaryId('ntf', now.getTime() - retentionDays * DAY_MS);
    const head = await db
      .prepare(`SELECT * FROM notifications WHERE handle = ?1 AND id < ?2 ORDER BY id LIMIT ?3`)
      .bind(handle, cutoff, HEAD_LIMIT)
      .all<Row>();
    count(head.meta);
    const rows = head.results;
    if (!rows.length) return done({ outcome: 'idle', ...none });
    const period = periodOf(rows[0]!.created_at as string);
    const picked: Row[] = [];
    let recipients = 0;
    for (const r of rows) {
      if ((r.open_count as number) > 0) break;
      if (periodOf(r.created_at as string) !== period) break;
      // Attempts are not known yet: a terminal delivery has at least one, as a rule.
      const d = recipients + (r.recipient_count as number);
      if (picked.length && !fits(picked.length + 1, d, d)) break;
      recipients += r.recipient_count as number;
      picked.push(r);
    }
    if (!picked.length) return done({ outcome: 'waiting', waitingOn: rows[0]!.id as string, ...none });
    const dRows = await db
      .prepare(`SELECT d.* FROM ${notificationDeliveriesFrom('SELECT value AS id FROM json_each(?1)')}`)
      .bind(JSON.stringify(picked.map((r) => r.id)))
      .all<Row>();
    count(dRows.meta);
    // Cut again now that the deliveries' attempt counts are known; a delivery row that is open stops the run there.
    const of = new Map<string, Row[]>();
    for (const d of dRows.results)
      of.set(d.notification_id as string, [...(of.get(d.notification_id as string) ?? []), d]);
    notifications = [];
    deliveries = [];
    let attemptTotal = 0;
    for (const n of picked) {
      const ds = of.get(n.id as string) ?? [];
      const open = ds.some((d) => OPEN_STATUSES.includes(d.status as string));
      if (open && !notifications.length) return done({ outcome: 'waiting', waitingOn: n.id as string, ...none });
      const attempts = attemptTotal + ds.reduce((k, d) => k + (d.attempt_count as number), 0);
      if (open || (notifications.length && !fits(notifications.length + 1, deliveries.length + ds.length, attempts))) {
        break;
      }
      notifications.push(n);
      deliveries.push(...ds);
      attemptTotal = attempts;
    }
    const first = notifications[0]!.id as string;
    const last = notifications[notifications.length - 1]!.id as string;
    archive = {
      id: newId('arc', now.getTime()),
      first,
      last,
      period,
      key: archiveKey(handle, period, first),
      notificationCount: notifications.length,
    };
    const recorded = await db
      .prepare(
        `INSERT INTO archives (id, handle, period, object_key, first_notification_id, last_notification_id,
           notification_count, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8)`,
      )
      .bind(archive.id, handle, period, archive.key, first, last, notifications.length, now.toISOString())
      .run();
    count(recorded.meta);
  }

  // 3. The deliveries' attempts, by the deliveries' ids.
  const deliveryIds = JSON.stringify(deliveries.map((d) => d.id));
  const notificationIds = JSON.stringify(notifications.map((n) => n.id));
  const aRows = await db
    .prepare('SELECT * FROM delivery_attempts WHERE delivery_id IN (SELECT value FROM json_each(?1))')
    .bind(deliveryIds)
    .all<Row>();
  count(aRows.meta);
  const attempts = aRows.results;
  const sizes = { notifications: notifications.length, deliveries: deliveries.length, attempts: attempts.length };
  const open = deliveries.find((d) => OPEN_STATUSES.includes(d.status as string));
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

  // 5. Delete, in one batch, only if the rows are still what the verified object holds. The guard is two aggregates,
  //    not a re-read: the notifications' (handle, id) range (count, last change) and their deliveries by notification
  //    (count, last change, attempts, none open). Attempts are only ever written in the batch that moves their
  //    delivery, so a new attempt changes the deliveries' aggregate.
  const fingerprint = (rows: Row[]) =>
    `${rows.length}|${rows.reduce((m, r) => ((r.updated_at as string) > m ? (r.updated_at as string) : m), '')}`;
  const attemptTotal = deliveries.reduce((n, d) => n + (d.attempt_count as number), 0);
  const purging = `EXISTS (SELECT 1 FROM archives WHERE id = ?4 AND status = 'purging')`;
  const at = now.toISOString();
  const range = [handle, archive.first, archive.last] as const;
  const batch = await db.batch([
    db
      .prepare(
        `UPDATE archives SET status = 'purging' WHERE id = ?4 AND status = 'verified' AND sha256 = ?5
           AND (SELECT count(*) || '|' || ifnull(max(updated_at), '') FROM notifications
                WHERE handle = ?1 AND id BETWEEN ?2 AND ?3) = ?6
           AND (SELECT count(*) || '|' || ifnull(max(d.updated_at), '') || '|' || ifnull(sum(d.attempt_count), 0) || '|'
                  || ifnull(sum(+d.status IN ${OPEN}), 0)
                FROM ${notificationDeliveriesFrom('SELECT value AS id FROM json_each(?8)')}) = ?7`,
      )
      .bind(
        ...range,
        archive.id,
        object.sha256,
        fingerprint(notifications),
        `${fingerprint(deliveries)}|${attemptTotal}|0`,
        notificationIds,
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
