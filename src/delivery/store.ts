/**
 * The delivery SQL the consumer, test sends, the dead-letter consumer and redrive share (docs/design.md#consumer,
 * #statuses): the batch load, the guarded move of a delivery together with its notification's transition, the attempt
 * row, a webhook's health and the disable a 410 asks for, a test delivery's row and a redrive. Statements rather than
 * results: each caller writes them in its own `db.batch`, so a delivery and its notification never disagree.
 *
 * The guard (docs/design.md#consumer): a move applies only to the row its caller read, identified by its attempt count
 * and by being open (any of `pending`, `queued`, `retrying`), not by the exact open status — `pending → queued` is the
 * producer's transport bookkeeping and commits whenever its send returns, also while a consumer holds the row. The
 * attempt row is guarded the same way, so it is written exactly when its move is, and at most once per number.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { deliveries, emailSubscriptions, notifications, webhookSubscriptions } from '../db/schema.ts';
import { newId } from '../lib/ids.ts';
import type { AttemptOutcome, DeliveryRow } from './attempt.ts';
import {
  type BatchedMove,
  type DeliveryStatus,
  type InFlightTarget,
  OPEN_STATUSES,
  transitionStatement,
} from './summary.ts';

const sqlList = (statuses: readonly string[]) => `(${statuses.map((s) => `'${s}'`).join(', ')})`;
/** SQL list of the open statuses. */
const OPEN_SQL = sqlList(OPEN_STATUSES);
/** Statuses an attempt's outcome may still be recorded on: open, or `cancelled` while the request was in flight. */
const RECORDABLE_SQL = sqlList([...OPEN_STATUSES, 'cancelled']);

/**
 * SQL condition on `deliveries` (bound: ?<status>, ?<count>) that the row is still the one `d` was read as: open if it
 * was read open (whichever open status), otherwise the exact status; and the same attempt count.
 */
function sameRow(d: Pick<DeliveryRow, 'status'>, status: string, count: string): string {
  const state = OPEN_STATUSES.includes(d.status) ? `status IN ${OPEN_SQL}` : `status = ${status}`;
  return `${state} AND attempt_count = ${count}`;
}

/** SQL fragment: the ids in the bound JSON array. */
const idsIn = (json: string) => sql`(SELECT value FROM json_each(${json}))`;

/** The deliveries with these ids, as a query (alone, or in a batch). */
export function deliveriesByIds(db: Db, ids: readonly string[]) {
  return db
    .select()
    .from(deliveries)
    .where(sql`${deliveries.id} IN ${idsIn(JSON.stringify(ids))}`);
}

/** Every delivery, notification and subscription the ids name, in ONE D1 round trip. */
export async function loadBatch(db: Db, ids: readonly string[]) {
  const json = JSON.stringify(ids);
  const ofDeliveries = (col: 'notification_id' | 'subscription_id') =>
    sql`(SELECT ${sql.raw(col)} FROM deliveries WHERE id IN ${idsIn(json)})`;
  const [d, n, w, e] = await db.batch([
    deliveriesByIds(db, ids),
    db
      .select()
      .from(notifications)
      .where(sql`${notifications.id} IN ${ofDeliveries('notification_id')}`),
    db
      .select()
      .from(webhookSubscriptions)
      .where(sql`${webhookSubscriptions.id} IN ${ofDeliveries('subscription_id')}`),
    db
      .select()
      .from(emailSubscriptions)
      .where(sql`${emailSubscriptions.id} IN ${ofDeliveries('subscription_id')}`),
  ]);
  return {
    deliveries: new Map(d.map((r) => [r.id, r])),
    notifications: new Map(n.map((r) => [r.id, r])),
    webhooks: new Map(w.map((r) => [r.id, r])),
    emails: new Map(e.map((r) => [r.id, r])),
  };
}

export type LoadedBatch = Awaited<ReturnType<typeof loadBatch>>;

/** What a move writes besides the status. */
export interface MoveFields {
  statusReason: string | null;
  attempted: boolean;
  errorClass?: string | null;
  httpStatus?: number | null;
  nextAttemptAt?: string | null;
  /** An accepted mail's provider message id (docs/design.md#email-events); kept when not given. */
  providerMessageId?: string | null | undefined;
  now: string;
}

/**
 * The guarded UPDATE of a delivery plus its notification's transition: applies once, however often it runs, and only
 * to the row as `d` was read (see the guard above). Open statuses share the notification's `open` count, so the
 * transition from `d.status` is right whichever open status the row had when the move applied.
 */
export function moveDelivery(
  d1: D1Database,
  d: DeliveryRow,
  to: DeliveryStatus,
  fields: MoveFields,
): D1PreparedStatement[] {
  const update = d1
    .prepare(
      `UPDATE deliveries SET status = ?2, status_reason = ?3, attempt_count = ?4, last_error_class = ?5,
           last_http_status = ?6, next_attempt_at = ?7, last_attempt_at = CASE WHEN ?8 THEN ?9 ELSE last_attempt_at END,
           provider_message_id = COALESCE(?12, provider_message_id), updated_at = ?9
         WHERE id = ?1 AND ${sameRow(d, '?10', '?11')}`,
    )
    .bind(
      d.id,
      to,
      fields.statusReason,
      d.attemptCount + (fields.attempted ? 1 : 0),
      fields.errorClass ?? d.lastErrorClass,
      fields.httpStatus ?? d.lastHttpStatus,
      fields.nextAttemptAt ?? null,
      fields.attempted ? 1 : 0,
      fields.now,
      d.status,
      d.attemptCount,
      fields.providerMessageId ?? null,
    );
  const transition = transitionOf(d, to, fields);
  return transition ? [update, transitionStatement(d1, transition)] : [update];
}

/** The notification's side of moving `d` (null for a test send, which has none). */
function transitionOf(
  d: DeliveryRow,
  to: DeliveryStatus,
  fields: MoveFields,
  inFlight?: InFlightTarget,
): BatchedMove | null {
  if (!d.notificationId) return null;
  return {
    notificationId: d.notificationId,
    deliveryId: d.id,
    from: d.status,
    to,
    attempts: d.attemptCount + (fields.attempted ? 1 : 0),
    fromAttempts: d.attemptCount,
    statusReason: fields.statusReason,
    lastErrorClass: fields.errorClass ?? d.lastErrorClass,
    lastHttpStatus: fields.httpStatus ?? d.lastHttpStatus,
    at: fields.now,
    ...(inFlight ? { inFlight } : {}),
  };
}

/**
 * One attempt's move as values for {@link attemptMovesStatement}: the delivery, the attempt count it was read with,
 * then what the row becomes — and, last, the target on the row a delete cancelled while the request was in flight.
 */
export type AttemptMoveValues = readonly [
  deliveryId: string,
  attemptCountRead: number,
  to: DeliveryStatus,
  statusReason: string | null,
  errorClass: string | null,
  httpStatus: number | null,
  nextAttemptAt: string | null,
  providerMessageId: string | null,
  now: string,
  inFlightTo: DeliveryStatus,
  inFlightReason: string | null,
];

/** What an attempt's move writes besides the status (it always records an attempt). */
export type AttemptMoveFields = Omit<MoveFields, 'attempted'>;

/**
 * The move that records an attempt's outcome, as values for {@link attemptMovesStatement}, and its notification's
 * transition. An attempt is made only on a delivery read open, so the guard is always "open or cancelled in flight,
 * with the attempt count read" — the attempt row's own guard ({@link attemptsStatement}).
 */
export function attemptMove(
  d: DeliveryRow,
  to: DeliveryStatus,
  fields: AttemptMoveFields,
  inFlight: InFlightTarget,
): { values: AttemptMoveValues; transition: BatchedMove | null } {
  const values: AttemptMoveValues = [
    d.id,
    d.attemptCount,
    to,
    fields.statusReason,
    fields.errorClass ?? d.lastErrorClass,
    fields.httpStatus ?? d.lastHttpStatus,
    fields.nextAttemptAt ?? null,
    fields.providerMessageId ?? null,
    fields.now,
    inFlight.to,
    inFlight.statusReason,
  ];
  return { values, transition: transitionOf(d, to, { ...fields, attempted: true }, inFlight) };
}

/**
 * The moves that record many attempts' outcomes in ONE guarded `UPDATE … FROM` (one primary-key lookup a row), not
 * one statement each. Each applies only to its row as read: open with the attempt count read, or `cancelled` by a
 * delete while its request was in flight, which then takes the move's in-flight target instead
 * (docs/design.md#consumer). A concurrent redrive or cancel that changed the count or the status is never overwritten.
 * Each row's values are a few short strings (no receiver-sized text): a consumer batch of 100 is a few KB of JSON.
 */
export function attemptMovesStatement(d1: D1Database, moves: readonly AttemptMoveValues[]): D1PreparedStatement {
  const names = ['id', 'n', 'to_status', 'reason', 'cls', 'http', 'next_at', 'pmid', 'at', 'c_status', 'c_reason'];
  const columns = names.map((name, i) => `j.value ->> '$[${i}]' AS ${name}`).join(', ');
  // SET reads the row as it was before the UPDATE: `cancelled` there means cancelled in flight.
  const pick = (cancelled: string, value: string) =>
    `CASE WHEN deliveries.status = 'cancelled' THEN ${cancelled} ELSE ${value} END`;
  return d1
    .prepare(
      `UPDATE deliveries SET status = ${pick('m.c_status', 'm.to_status')},
         status_reason = ${pick('m.c_reason', 'm.reason')}, attempt_count = m.n + 1, last_error_class = m.cls,
         last_http_status = m.http, next_attempt_at = ${pick('NULL', 'm.next_at')}, last_attempt_at = m.at,
         provider_message_id = COALESCE(m.pmid, deliveries.provider_message_id), updated_at = m.at
       FROM (SELECT ${columns} FROM json_each(?1) j) AS m
       WHERE deliveries.id = m.id AND deliveries.status IN ${RECORDABLE_SQL} AND deliveries.attempt_count = m.n`,
    )
    .bind(JSON.stringify(moves));
}

/**
 * The attempt row: the evidence the delivery log and the diagnosis show. Written only while the delivery is still the
 * row `d` was read as (open, or `cancelled` by a delete while the request was in flight; the same attempt count): the
 * condition under which one of the moves that record the attempt applies. Put it before those moves in the same
 * batch. `id` lets the caller find out whether it was written (`meta.changes`, or the row itself). A row already
 * holding this number can only be one written without its move before attempt rows were guarded: this attempt,
 * which the delivery's count does record, replaces it.
 */
export function attemptStatement(
  d1: D1Database,
  d: DeliveryRow,
  o: AttemptOutcome,
  now: string,
  id: string = newId('att'),
): D1PreparedStatement {
  return attemptsStatement(d1, [attemptValues(d, o, now, id)]);
}

/** One attempt row's values for {@link attemptsStatement}, in its column order, then the attempt count read. */
export type AttemptValues = readonly [
  id: string,
  deliveryId: string,
  attemptNumber: number,
  outcome: 'failed' | 'succeeded',
  errorClass: string | null,
  httpStatus: number | null,
  durationMs: number,
  requestBytes: number | null,
  responseSnippet: string | null,
  errorMessage: string | null,
  createdAt: string,
  attemptCountRead: number,
];

/** The values of `d`'s attempt with outcome `o` (see {@link attemptStatement}). */
export function attemptValues(d: DeliveryRow, o: AttemptOutcome, now: string, id: string): AttemptValues {
  const failed = o.classification.outcome === 'failed' ? o.classification : null;
  return [
    id,
    d.id,
    d.attemptCount + 1,
    failed ? 'failed' : 'succeeded',
    failed?.errorClass ?? null,
    o.httpStatus,
    o.durationMs,
    o.requestBytes,
    o.responseSnippet,
    o.errorMessage,
    now,
    d.attemptCount,
  ];
}

/** The key of the attempt row these values write. */
export const attemptKeyOf = (row: AttemptValues): AttemptKey => ({
  attemptId: row[0],
  deliveryId: row[1],
  attemptNumber: row[2],
});

/**
 * Characters of one statement's JSON parameter: D1 refuses a value over 2 MB, and a character takes at most 3 bytes.
 * A response snippet of 4 KB of control characters is 24 KB of JSON, so 100 of them need a second statement.
 */
export const ATTEMPTS_JSON_MAX_CHARS = 600_000;

/**
 * Attempt rows in runs whose JSON stays within {@link ATTEMPTS_JSON_MAX_CHARS}, in order: usually ONE run for a
 * consumer batch (one statement, not one per attempt).
 */
export function attemptRuns(rows: readonly AttemptValues[]): AttemptValues[][] {
  const runs: AttemptValues[][] = [];
  let run: AttemptValues[] = [];
  let size = 2;
  for (const row of rows) {
    const length = JSON.stringify(row).length + 1;
    if (run.length && size + length > ATTEMPTS_JSON_MAX_CHARS) {
      runs.push(run);
      run = [];
      size = 2;
    }
    run.push(row);
    size += length;
  }
  if (run.length) runs.push(run);
  return runs;
}

/** The attempt rows of many deliveries in as few statements as fit ({@link attemptRuns}). */
export function attemptsStatements(d1: D1Database, rows: readonly AttemptValues[]): D1PreparedStatement[] {
  return attemptRuns(rows).map((run) => attemptsStatement(d1, run));
}

/**
 * The attempt rows of many deliveries in one statement, each guarded as {@link attemptStatement} says. It answers the
 * ids of the rows it wrote (`RETURNING`), so the caller knows which attempts it recorded. The rows travel as one JSON
 * parameter (D1 allows 100 bound values a query): keep it under D1's 2 MB a value ({@link attemptsStatements}).
 */
export function attemptsStatement(d1: D1Database, rows: readonly AttemptValues[]): D1PreparedStatement {
  const v = (i: number) => `j.value ->> '$[${i}]'`;
  return d1
    .prepare(
      `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, error_class, http_status, duration_ms,
         request_bytes, response_snippet, error_message, created_at)
       SELECT ${Array.from({ length: 11 }, (_, i) => v(i)).join(', ')}
       FROM json_each(?1) j
       WHERE EXISTS (SELECT 1 FROM deliveries
         WHERE id = ${v(1)} AND attempt_count = ${v(11)} AND status IN ${RECORDABLE_SQL})
       ON CONFLICT (delivery_id, attempt_number) DO UPDATE SET id = excluded.id, outcome = excluded.outcome,
         error_class = excluded.error_class, http_status = excluded.http_status, duration_ms = excluded.duration_ms,
         request_bytes = excluded.request_bytes, response_snippet = excluded.response_snippet,
         error_message = excluded.error_message, created_at = excluded.created_at
       RETURNING id`,
    )
    .bind(JSON.stringify(rows));
}

/** An attempt row a write means to store: its key (delivery, number) and the id unique to that write. */
export interface AttemptKey {
  attemptId: string;
  deliveryId: string;
  attemptNumber: number;
}

/**
 * SQL: the attempt row of `key` (a JSON `[id, deliveryId, attemptNumber]`, e.g. `j.value`) is stored, by THIS write
 * (its id). A primary-key lookup: the table has no index on `id`.
 */
const attemptStored = (key: string) =>
  `EXISTS (SELECT 1 FROM delivery_attempts a WHERE a.delivery_id = ${key} ->> '$[1]'
     AND a.attempt_number = ${key} ->> '$[2]' AND a.id = ${key} ->> '$[0]')`;

/** The keys of attempt rows as one JSON parameter for {@link attemptStored}. */
export const attemptKeysJson = (keys: readonly AttemptKey[]) =>
  JSON.stringify(keys.map((k) => [k.attemptId, k.deliveryId, k.attemptNumber]));

/** Which of these attempt rows are stored (by their writes): one primary-key lookup each. */
export function storedAttemptsStatement(d1: D1Database, keys: readonly AttemptKey[]): D1PreparedStatement {
  return d1
    .prepare(`SELECT j.value ->> '$[0]' AS id FROM json_each(?1) j WHERE ${attemptStored('j.value')}`)
    .bind(attemptKeysJson(keys));
}

/** One production attempt on a webhook as its health sees it: the attempt row that records it, what it observed. */
export interface HealthOutcome extends AttemptKey {
  succeeded: boolean;
  errorClass: string | null;
}

/**
 * A webhook's health over one batch's attempts on it, in the order they finished: its failure streak, last success
 * and failure. Only attempts whose rows the same batch wrote count (an attempt of a copy that lost its move — the
 * same message run twice at once — is not the webhook's), so put it after the attempt rows and the moves.
 */
export function webhookHealthStatement(
  d1: D1Database,
  id: string,
  outcomes: readonly HealthOutcome[],
  now: string,
): D1PreparedStatement {
  const list = JSON.stringify(
    outcomes.map((o) => [o.attemptId, o.deliveryId, o.attemptNumber, o.succeeded ? 1 : 0, o.errorClass]),
  );
  // o: the recorded outcomes with their order; s: the last success; f: the failures after it (all, without one).
  return d1
    .prepare(
      `WITH o AS (
         SELECT CAST(j.key AS INTEGER) AS k, j.value ->> '$[3]' AS ok, j.value ->> '$[4]' AS cls FROM json_each(?2) j
         WHERE ${attemptStored('j.value')}),
       s AS (SELECT max(k) AS k FROM o WHERE ok = 1),
       f AS (SELECT count(*) AS n FROM o WHERE ok = 0 AND k > COALESCE((SELECT k FROM s), -1))
       UPDATE webhook_subscriptions SET
         consecutive_failures = (SELECT n FROM f)
           + CASE WHEN (SELECT k FROM s) IS NULL THEN consecutive_failures ELSE 0 END,
         failing_since = CASE WHEN (SELECT n FROM f) = 0 THEN CASE WHEN (SELECT k FROM s) IS NULL THEN failing_since END
           WHEN (SELECT k FROM s) IS NULL THEN COALESCE(failing_since, ?3) ELSE ?3 END,
         last_success_at = CASE WHEN (SELECT k FROM s) IS NULL THEN last_success_at ELSE ?3 END,
         last_failure_at = CASE WHEN (SELECT n FROM f) > 0 THEN ?3 ELSE last_failure_at END,
         last_failure_class = COALESCE((SELECT cls FROM o WHERE ok = 0 ORDER BY k DESC LIMIT 1), last_failure_class),
         updated_at = ?3
       WHERE id = ?1 AND EXISTS (SELECT 1 FROM o)`,
    )
    .bind(id, list, now);
}

/**
 * The disable a 410 asks for, marked as owing its `webhook.endpoint_disabled` alert (`disabled_alert_pending`).
 * Guarded: it applies only if the webhook is enabled and one of these 410 attempts was recorded by the same batch,
 * so `meta.changes` says whether THIS write disabled it — two concurrent 410s disable (and alert) once.
 */
export function disableGoneStatement(
  d1: D1Database,
  id: string,
  goneAttempts: readonly AttemptKey[],
  now: string,
): D1PreparedStatement {
  return d1
    .prepare(
      `UPDATE webhook_subscriptions SET enabled = 0, disabled_reason = 'endpoint_gone', disabled_at = ?3,
         disabled_alert_pending = 1, updated_at = ?3
       WHERE id = ?1 AND enabled = 1 AND EXISTS (SELECT 1 FROM json_each(?2) j WHERE ${attemptStored('j.value')})`,
    )
    .bind(id, attemptKeysJson(goneAttempts), now);
}

/** The status reason of a delivery handed back to the queue by the dead-letter consumer. */
export const REQUEUED_FROM_DLQ = 'requeued_from_dlq';

/**
 * The mark of a delivery the dead-letter consumer handed back to the queue (docs/design.md#retry-schedule): its status
 * reason only, guarded like a move. The next recorded attempt replaces it; finding it still there means the queue
 * gave up on the delivery twice with nothing recorded in between.
 */
export function requeuedFromDlqStatement(d1: D1Database, d: DeliveryRow, now: string): D1PreparedStatement {
  return d1
    .prepare(
      `UPDATE deliveries SET status_reason = '${REQUEUED_FROM_DLQ}', updated_at = ?2
       WHERE id = ?1 AND ${sameRow(d, '?3', '?4')}`,
    )
    .bind(d.id, now, d.status, d.attemptCount);
}

/** The row of a test delivery (kind `test`, `pending`, its event in `payload`), written before its one attempt. */
export function insertTestDelivery(d1: D1Database, d: DeliveryRow): D1PreparedStatement {
  return d1
    .prepare(
      `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
         status, status_reason, attempt_count, retry_base, payload, created_at, updated_at)
       VALUES (?1, ?2, NULL, 'test', ?3, ?4, ?5, ?6, 'pending', ?9, 0, 0, ?7, ?8, ?8)`,
    )
    .bind(
      d.id,
      d.handle,
      d.channel,
      d.recipientType,
      d.subscriptionId,
      d.target,
      d.payload,
      d.createdAt,
      d.statusReason,
    );
}

/**
 * A `dead` or `skipped` delivery back to `pending` with a fresh retry schedule (`retry_base`), its notification's
 * counts moved back to open; guarded by the status it was read with.
 */
export function redriveStatements(d1: D1Database, d: DeliveryRow, now: string): D1PreparedStatement[] {
  const update = d1
    .prepare(
      `UPDATE deliveries SET status = 'pending', status_reason = 'redriven', retry_base = attempt_count,
         next_attempt_at = NULL, updated_at = ?2
       WHERE id = ?1 AND status = ?3`,
    )
    .bind(d.id, now, d.status);
  if (!d.notificationId) return [update];
  return [
    update,
    transitionStatement(d1, {
      notificationId: d.notificationId,
      deliveryId: d.id,
      from: d.status,
      to: 'pending',
      attempts: d.attemptCount,
      statusReason: 'redriven',
      lastErrorClass: d.lastErrorClass,
      lastHttpStatus: d.lastHttpStatus,
      at: now,
    }),
  ];
}
