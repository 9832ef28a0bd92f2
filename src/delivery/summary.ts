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
 * deliveries (the caps on subscriptions), read by notificationDeliveriesSql.
 */
const CRITICAL_AGGREGATE_SQL = `(SELECT CASE
    WHEN sum(d.status IN ${OPEN_SQL}) > 0 THEN 'delivering'
    WHEN sum(d.status = 'succeeded') > 0 AND sum(d.status = 'dead') > 0 THEN 'partially_failed'
    WHEN sum(d.status = 'succeeded') > 0 THEN 'delivered'
    WHEN sum(d.status = 'dead') > 0 THEN 'failed'
    ELSE 'undeliverable' END
  FROM deliveries d
  WHERE ${notificationDeliveriesSql('d', 'notifications.id')} AND d.recipient_type <> 'platform_alert')`;

/**
 * Aggregate status from (new) counts. A critical event is never a quiet `no_recipients`: its status follows its
 * handle's deliveries ({@link CRITICAL_AGGREGATE_SQL}), so `undeliverable` is neither sticky nor missed after ingest.
 */
function aggregateSql(open: string, succeeded: string, dead: string): string {
  return `CASE
    WHEN severity = 'critical' THEN ${CRITICAL_AGGREGATE_SQL}
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
 * The transitions of several deliveries of ONE notification that is not critical, in one statement (the consumer's
 * batch: one notification write however many of its deliveries the batch moved). Put it BEFORE the guarded moves in
 * the same batch: each transition counts only if its delivery is still the open row with the attempt count it was
 * read with — exactly the guard under which its move then applies (a batch runs alone, in order). A critical
 * notification's status is read from its deliveries after the moves: use {@link transitionStatement} for those.
 */
export function batchTransitionStatement(
  d1: D1Database,
  notificationId: string,
  moves: readonly (Transition & { fromAttempts: number })[],
  at: string,
): D1PreparedStatement {
  const list = JSON.stringify(
    moves.map((t) => {
      const from = bucket(t.from);
      const to = bucket(t.to);
      const delta = (b: Bucket) => (from === b ? -1 : 0) + (to === b ? 1 : 0);
      return {
        id: t.deliveryId,
        n: t.fromAttempts,
        status: t.to,
        reason: t.statusReason,
        attempts: t.attempts,
        cls: t.lastErrorClass,
        http: t.lastHttpStatus,
        at: t.at,
        o: delta('open'),
        s: delta('succeeded'),
        x: delta('dead'),
      };
    }),
  );
  // t: the transitions whose moves will apply (each delivery read once); n: their sums.
  const sum = (k: string) => `(SELECT ${k} FROM n)`;
  const status = aggregateSql(`open_count + ${sum('o')}`, `succeeded_count + ${sum('s')}`, `dead_count + ${sum('x')}`);
  return d1
    .prepare(
      `WITH t AS MATERIALIZED (
         SELECT j.value ->> '$.id' AS id, j.value ->> '$.status' AS status, j.value ->> '$.reason' AS reason,
           j.value ->> '$.attempts' AS attempts, j.value ->> '$.cls' AS cls, j.value ->> '$.http' AS http,
           j.value ->> '$.at' AS at, j.value ->> '$.o' AS o, j.value ->> '$.s' AS s, j.value ->> '$.x' AS x
         FROM json_each(?2) j
         WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = j.value ->> '$.id'
           AND d.status IN ('pending', 'queued', 'retrying') AND d.attempt_count = j.value ->> '$.n')),
       n AS MATERIALIZED (SELECT count(*) AS k, sum(o) AS o, sum(s) AS s, sum(x) AS x FROM t)
       UPDATE notifications SET
         open_count = open_count + ${sum('o')}, succeeded_count = succeeded_count + ${sum('s')},
         dead_count = dead_count + ${sum('x')},
         status = ${status},
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
       WHERE id = ?1 AND (SELECT k FROM n) > 0`,
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
