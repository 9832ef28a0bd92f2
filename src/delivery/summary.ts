/**
 * The per-notification projection of `deliveries` (docs/design.md#statuses): counts by state, the aggregate `status`
 * derived from them, and a per-recipient summary of the first RECIPIENT_SUMMARY_LIMIT recipients. Every statement that
 * changes a delivery is paired, in the same `db.batch`, with the statement from here that moves its notification along,
 * so the feed (one row per notification) never disagrees with the delivery log.
 */
import { notificationDeliveriesSql } from '../db/schema.ts';

/** One recipient as the feed shows it. */
export interface RecipientSummary {
  deliveryId: string;
  channel: 'webhook' | 'email';
  recipientType: 'webhook' | 'email' | 'owner_default' | 'platform_alert';
  subscriptionId: string | null;
  target: string;
  status: DeliveryStatus;
  statusReason: string | null;
  attempts: number;
  lastErrorClass: string | null;
  lastHttpStatus: number | null;
  updatedAt: string;
}

export type DeliveryStatus =
  | 'deferred'
  | 'pending'
  | 'queued'
  | 'retrying'
  | 'succeeded'
  | 'dead'
  | 'cancelled'
  | 'skipped';

/**
 * The stored form of one summary entry, keyed by its delivery id in `notifications.recipients`: the fields by position,
 * without key names, without the id the key already is, and without `channel` (it follows from `recipientType`). Less
 * than half the bytes of the object the API shows (docs/performance.md#rows-and-bytes-of-one-event).
 */
export type StoredRecipient = [
  recipientType: RecipientSummary['recipientType'],
  subscriptionId: string | null,
  target: string,
  status: DeliveryStatus,
  statusReason: string | null,
  attempts: number,
  lastErrorClass: string | null,
  lastHttpStatus: number | null,
  updatedAt: string,
];

/** The stored fields in their positions (the order of {@link StoredRecipient}). */
const STORED_FIELDS = [
  'recipientType',
  'subscriptionId',
  'target',
  'status',
  'statusReason',
  'attempts',
  'lastErrorClass',
  'lastHttpStatus',
  'updatedAt',
] as const;

type StoredField = (typeof STORED_FIELDS)[number];

/** The JSON path of a field inside one stored entry (`[3]` for `status`), to append to `$` or to `$."<deliveryId>"`. */
function entryPath(field: StoredField): string {
  return `[${STORED_FIELDS.indexOf(field)}]`;
}

/**
 * SQL: `entry` (a stored entry, SQL text) with the given fields set to the given SQL values — the one way the
 * statements here and in enqueue.ts change an entry in place.
 */
export function setEntrySql(entry: string, fields: Partial<Record<StoredField, string>>): string {
  const pairs = Object.entries(fields).map(([f, v]) => `'$${entryPath(f as StoredField)}', ${v}`);
  return `json_set(${entry}, ${pairs.join(', ')})`;
}

/** SQL: one field of `entry` (a stored entry, SQL text) as an SQL value. */
export function entryFieldSql(entry: string, field: StoredField): string {
  return `json_extract(${entry}, '$${entryPath(field)}')`;
}

/** The stored form of a summary entry. */
export function encodeRecipient(r: RecipientSummary): StoredRecipient {
  return [
    r.recipientType,
    r.subscriptionId,
    r.target,
    r.status,
    r.statusReason,
    r.attempts,
    r.lastErrorClass,
    r.lastHttpStatus,
    r.updatedAt,
  ];
}

/** The `notifications.recipients` text of these entries, in this order. */
export function encodeRecipients(entries: readonly RecipientSummary[]): string {
  return JSON.stringify(Object.fromEntries(entries.map((r) => [r.deliveryId, encodeRecipient(r)])));
}

/** The entries of a `notifications.recipients` text as the API shows them, in stored order. */
export function decodeRecipients(text: string): RecipientSummary[] {
  const stored = JSON.parse(text) as Record<string, StoredRecipient>;
  return Object.entries(stored).map(([deliveryId, e]) => ({
    deliveryId,
    channel: e[0] === 'webhook' ? 'webhook' : 'email',
    recipientType: e[0],
    subscriptionId: e[1],
    target: e[2],
    status: e[3],
    statusReason: e[4],
    attempts: e[5],
    lastErrorClass: e[6],
    lastHttpStatus: e[7],
    updatedAt: e[8],
  }));
}

/** Recipients listed individually on the notification row; larger fan-outs list the first ones and count the rest. */
export const RECIPIENT_SUMMARY_LIMIT = 25;

export const OPEN_STATUSES: readonly DeliveryStatus[] = ['pending', 'queued', 'retrying'];
export const TERMINAL_STATUSES: readonly DeliveryStatus[] = ['succeeded', 'dead', 'cancelled', 'skipped'];
/** Open in the ledger's sense: the open statuses, and `deferred` (docs/design.md#peak-campaign-windows). */
const OPEN_SQL = `('deferred', 'pending', 'queued', 'retrying')`;

type Bucket = 'open' | 'succeeded' | 'dead' | 'none';

function bucket(status: DeliveryStatus): Bucket {
  // A deferred delivery (docs/design.md#peak-campaign-windows) is open: it will go, only later.
  if (status === 'deferred' || OPEN_STATUSES.includes(status)) return 'open';
  if (status === 'succeeded' || status === 'dead') return status;
  return 'none';
}

/**
 * The aggregate of a critical notification, from its handle's own deliveries (the platform alert is not one of them:
 * it tells the platform that nobody of the handle's got the event). `undeliverable` while nobody is open, succeeded
 * or dead — at ingest, or later when every delivery ended without reaching anyone (cancelled, skipped) — and left
 * again as soon as one is redriven (a re-enabled webhook's `recover`). A critical event has at most a few hundred
 * deliveries (the caps on subscriptions), read by notificationDeliveriesSql. `status` is each delivery's status as
 * SQL of `d` (a statement written before its moves reads the statuses they are about to write).
 */
const criticalAggregateSql = (status = 'd.status') => `(SELECT CASE
    WHEN sum(${status} IN ${OPEN_SQL}) > 0 THEN 'delivering'
    WHEN sum(${status} = 'succeeded') > 0 AND sum(${status} = 'dead') > 0 THEN 'partially_failed'
    WHEN sum(${status} = 'succeeded') > 0 THEN 'delivered'
    WHEN sum(${status} = 'dead') > 0 THEN 'failed'
    ELSE 'undeliverable' END
  FROM deliveries d
  WHERE ${notificationDeliveriesSql('d', 'notifications.id')} AND d.recipient_type <> 'platform_alert')`;

/**
 * Aggregate status from (new) counts. A critical event is never a quiet `no_recipients`: its status follows its
 * handle's deliveries ({@link criticalAggregateSql}, given `criticalStatus`), so `undeliverable` is neither sticky nor
 * missed after ingest.
 */
function aggregateSql(open: string, succeeded: string, dead: string, criticalStatus?: string): string {
  return `CASE
    WHEN severity = 'critical' THEN ${criticalAggregateSql(criticalStatus)}
    WHEN ${open} > 0 THEN 'delivering'
    WHEN ${succeeded} > 0 AND ${dead} > 0 THEN 'partially_failed'
    WHEN ${succeeded} > 0 THEN 'delivered'
    WHEN ${dead} > 0 THEN 'failed'
    ELSE 'no_recipients' END`;
}

/**
 * SQL: `alert_check_at` after a delivery of this notification ended without reaching anyone (`ended` a bound 0/1):
 * a critical one may just have become `undeliverable`, which the minute job then tells the platform alert address.
 */
const alertCheckSql = (ended: string, at: string) =>
  `CASE WHEN ${ended} AND severity = 'critical' THEN ${at} ELSE alert_check_at END`;

/** The aggregate status a new notification starts with, for the counts of its deliveries. */
export function initialStatus(counts: { open: number; succeeded: number; dead: number }, undeliverable: boolean) {
  if (undeliverable) return 'undeliverable' as const;
  if (counts.open > 0) return 'delivering' as const;
  return 'no_recipients' as const;
}

export interface Transition {
  notificationId: string;
  deliveryId: string;
  from: DeliveryStatus;
  to: DeliveryStatus;
  attempts: number;
  statusReason: string | null;
  lastErrorClass: string | null;
  lastHttpStatus: number | null;
  at: string;
}

/** {@link transitionStatement}'s json_set arguments: `?2` is the entry's path, the values are bound ?6 … ?11. */
const MOVED_FIELDS = (
  [
    ['status', 6],
    ['statusReason', 7],
    ['attempts', 8],
    ['lastErrorClass', 9],
    ['lastHttpStatus', 10],
    ['updatedAt', 11],
  ] as const
)
  .map(([f, i]) => `?2 || '${entryPath(f)}', ?${i}`)
  .join(', ');

/**
 * Moves one delivery's notification along: counts, aggregate status, and the recipient's summary entry when it has
 * one. Put it right after the guarded delivery UPDATE in the same batch: `changes() = 1` makes it apply only if that
 * UPDATE changed the row, so a duplicate queue message can never count a transition twice.
 */
export function transitionStatement(d1: D1Database, t: Transition): D1PreparedStatement {
  const d = { open: 0, succeeded: 0, dead: 0 };
  const from = bucket(t.from);
  const to = bucket(t.to);
  if (from !== 'none') d[from] -= 1;
  if (to !== 'none') d[to] += 1;
  const path = `$."${t.deliveryId}"`;
  return d1
    .prepare(
      `UPDATE notifications SET
         open_count = open_count + ?3, succeeded_count = succeeded_count + ?4, dead_count = dead_count + ?5,
         status = ${aggregateSql('open_count + ?3', 'succeeded_count + ?4', 'dead_count + ?5')},
         alert_check_at = ${alertCheckSql('?12', '?11')},
         recipients = CASE WHEN json_type(recipients, ?2) IS NULL THEN recipients
           ELSE json_set(recipients, ${MOVED_FIELDS}) END,
         updated_at = ?11
       WHERE id = ?1 AND changes() = 1`,
    )
    .bind(
      t.notificationId,
      path,
      d.open,
      d.succeeded,
      d.dead,
      t.to,
      t.statusReason,
      t.attempts,
      t.lastErrorClass,
      t.lastHttpStatus,
      t.at,
      from === 'open' && to === 'none' ? 1 : 0,
    );
}

/**
 * Where an attempt's outcome takes a delivery that a delete cancelled while its request was in flight
 * (docs/design.md#consumer): from `cancelled`, with the attempt counted.
 */
export interface InFlightTarget {
  to: DeliveryStatus;
  statusReason: string | null;
}

/** A move as {@link batchTransitionStatement} counts it: read open with `fromAttempts`, maybe cancelled since. */
export interface BatchedMove extends Transition {
  fromAttempts: number;
  /** An attempt's outcome: its move also applies to the row cancelled in flight, to this target. */
  inFlight?: InFlightTarget | undefined;
}

/** A branch of a batched move as bound JSON: the target, and its deltas to the counts (`e`: it ended unreached). */
function branchJson(from: DeliveryStatus, to: DeliveryStatus, reason: string | null) {
  const f = bucket(from);
  const t = bucket(to);
  const delta = (b: Bucket) => (f === b ? -1 : 0) + (t === b ? 1 : 0);
  return {
    status: to,
    reason,
    o: delta('open'),
    s: delta('succeeded'),
    x: delta('dead'),
    e: f === 'open' && t === 'none' ? 1 : 0,
  };
}

/**
 * The transitions of several deliveries of ONE notification, in one statement (the consumer's batch: one
 * notification write however many of its deliveries the batch moved). Put it BEFORE the guarded moves in the same
 * batch: each transition counts only if its delivery is still the row it was read as (open, with the attempt count it
 * was read with) — or, for a move with `inFlight`, that row cancelled by a delete since (the same attempt count): the
 * exact guards under which its move then applies (a batch runs alone, in order), and the branch the move takes. A
 * critical notification's status is read from its deliveries with the statuses these moves write; `at` is its
 * `updated_at` (and `alert_check_at` when a delivery of a critical one ended without reaching anyone).
 */
export function batchTransitionStatement(
  d1: D1Database,
  notificationId: string,
  moves: readonly BatchedMove[],
  at: string,
): D1PreparedStatement {
  const list = JSON.stringify(
    moves.map((t) => ({
      id: t.deliveryId,
      n: t.fromAttempts,
      attempts: t.attempts,
      cls: t.lastErrorClass,
      http: t.lastHttpStatus,
      at: t.at,
      m: branchJson(t.from, t.to, t.statusReason),
      ...(t.inFlight ? { c: branchJson('cancelled', t.inFlight.to, t.inFlight.statusReason) } : {}),
    })),
  );
  // live: each move's delivery as it is now (its status, if it still has the attempt count it was read with); t: the
  // moves that will apply, by the branch each takes (each delivery read once); n: their sums.
  const sum = (k: string) => `(SELECT ${k} FROM n)`;
  const status = aggregateSql(
    `open_count + ${sum('o')}`,
    `succeeded_count + ${sum('s')}`,
    `dead_count + ${sum('x')}`,
    'COALESCE((SELECT t.status FROM t WHERE t.id = d.id), d.status)',
  );
  return d1
    .prepare(
      `WITH live AS MATERIALIZED (
         SELECT j.value AS v, (SELECT d.status FROM deliveries d WHERE d.id = j.value ->> '$.id'
           AND d.attempt_count = j.value ->> '$.n') AS status FROM json_each(?2) j),
       branch AS MATERIALIZED (
         SELECT v, CASE WHEN status IN ('pending', 'queued', 'retrying') THEN v -> '$.m'
           WHEN status = 'cancelled' THEN v -> '$.c' END AS b FROM live),
       t AS MATERIALIZED (
         SELECT v ->> '$.id' AS id, b ->> '$.status' AS status, b ->> '$.reason' AS reason,
           v ->> '$.attempts' AS attempts, v ->> '$.cls' AS cls, v ->> '$.http' AS http, v ->> '$.at' AS at,
           b ->> '$.o' AS o, b ->> '$.s' AS s, b ->> '$.x' AS x, b ->> '$.e' AS e
         FROM branch WHERE b IS NOT NULL),
       n AS MATERIALIZED (SELECT count(*) AS k, sum(o) AS o, sum(s) AS s, sum(x) AS x, sum(e) AS e FROM t)
       UPDATE notifications SET
         open_count = open_count + ${sum('o')}, succeeded_count = succeeded_count + ${sum('s')},
         dead_count = dead_count + ${sum('x')},
         status = ${status},
         alert_check_at = ${alertCheckSql(`${sum('e')} > 0`, '?3')},
         recipients = CASE WHEN recipients = '{}' THEN recipients ELSE (SELECT json_group_object(r.key,
             CASE WHEN t.id IS NULL THEN json(r.value)
               ELSE ${setEntrySql('r.value', {
                 status: 't.status',
                 statusReason: 't.reason',
                 attempts: 't.attempts',
                 lastErrorClass: 't.cls',
                 lastHttpStatus: 't.http',
                 updatedAt: 't.at',
               })} END)
           FROM json_each(notifications.recipients) r LEFT JOIN t ON t.id = r.key) END,
         updated_at = ?3
       WHERE id = ?1 AND ${sum('k')} > 0`,
    )
    .bind(notificationId, list, at);
}

/**
 * A new status reason on a recipient's summary entry without a move (an email delivery confirmed delivered by its
 * provider): the feed reads what the delivery row says.
 */
export function recipientReasonStatement(d1: D1Database, notificationId: string, deliveryId: string, reason: string) {
  return d1
    .prepare(
      `UPDATE notifications SET recipients = json_set(recipients, ?2 || '${entryPath('statusReason')}', ?3)
       WHERE id = ?1 AND json_type(recipients, ?2) IS NOT NULL`,
    )
    .bind(notificationId, `$."${deliveryId}"`, reason);
}

/**
 * A delivery added to an existing notification (a replay, docs/design.md#replay): one more recipient, open. Put it
 * right after the delivery's INSERT … ON CONFLICT DO NOTHING: `changes() = 1` makes it count only an insert that
 * happened, so a repeated replay never counts one twice.
 */
export function addedDeliveryStatement(d1: D1Database, notificationId: string, at: string): D1PreparedStatement {
  return d1
    .prepare(
      `UPDATE notifications SET recipient_count = recipient_count + 1, open_count = open_count + 1,
         status = ${aggregateSql('open_count + 1', 'succeeded_count', 'dead_count')}, updated_at = ?2
       WHERE id = ?1 AND changes() = 1`,
    )
    .bind(notificationId, at);
}

/**
 * Statements (for one D1 batch) that cancel every open delivery of a subscription — in the deliveries table and in
 * the summaries of their notifications — and recount those notifications. Used when a subscription is deleted: its
 * pending work becomes visible as `cancelled`, never silently dropped.
 */
export function cancelOpenDeliveries(
  d1: D1Database,
  handle: string,
  subscriptionId: string,
  reason: string,
  now: string,
): D1PreparedStatement[] {
  // Scoped by handle as well as id: a guessed id from another tenant must never reach that tenant's deliveries.
  // `+status`: look the rows up by subscription (deliveries_subscription_idx), never through the partial index of
  // every open delivery, which the planner may prefer once tables are analysed (the bench measured an 11,000-row scan).
  const affected = `SELECT notification_id FROM deliveries
    WHERE subscription_id = ?1 AND handle = ?4 AND +status IN ${OPEN_SQL}`;
  const justCancelled = `SELECT notification_id FROM deliveries
    WHERE subscription_id = ?1 AND handle = ?4 AND status = 'cancelled' AND status_reason = ?2 AND updated_at = ?3`;
  const count = (statuses: string) =>
    `(SELECT count(*) FROM deliveries d
      WHERE ${notificationDeliveriesSql('d', 'notifications.id')} AND d.status IN ${statuses})`;
  return [
    d1
      .prepare(
        `UPDATE notifications SET
           recipients = (SELECT json_group_object(j.key,
               CASE WHEN ${entryFieldSql('j.value', 'subscriptionId')} = ?1
                         AND ${entryFieldSql('j.value', 'status')} IN ${OPEN_SQL}
                    THEN ${setEntrySql('j.value', { status: `'cancelled'`, statusReason: '?2', updatedAt: '?3' })}
                    ELSE json(j.value) END)
             FROM json_each(notifications.recipients) j),
           updated_at = ?3
         WHERE id IN (${affected})`,
      )
      .bind(subscriptionId, reason, now, handle),
    d1
      .prepare(
        `UPDATE deliveries SET status = 'cancelled', status_reason = ?2, updated_at = ?3
         WHERE subscription_id = ?1 AND handle = ?4 AND +status IN ${OPEN_SQL}`,
      )
      .bind(subscriptionId, reason, now, handle),
    // Recount from the deliveries themselves (rare: only on delete), then derive the status from the new counts.
    d1
      .prepare(
        `UPDATE notifications SET
           open_count = ${count(OPEN_SQL)},
           succeeded_count = ${count(`('succeeded')`)},
           dead_count = ${count(`('dead')`)}
         WHERE id IN (${justCancelled})`,
      )
      .bind(subscriptionId, reason, now, handle),
    d1
      .prepare(
        `UPDATE notifications SET status = ${aggregateSql('open_count', 'succeeded_count', 'dead_count')},
           alert_check_at = ${alertCheckSql('1', '?3')}
         WHERE id IN (${justCancelled})`,
      )
      .bind(subscriptionId, reason, now, handle),
  ];
}
