/**
 * The delivery SQL the consumer, test sends, the dead-letter consumer and redrive share (docs/design.md#consumer,
 * #statuses): the batch load, the guarded move of a delivery together with its notification's transition, the attempt
 * row, a webhook's health, a test delivery's row and a redrive. Statements rather than results: each caller writes
 * them in its own `db.batch`, so a delivery and its notification never disagree.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { deliveries, emailSubscriptions, notifications, webhookSubscriptions } from '../db/schema.ts';
import { newId } from '../lib/ids.ts';
import type { AttemptOutcome, DeliveryRow } from './attempt.ts';
import { type DeliveryStatus, transitionStatement } from './summary.ts';

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
  now: string;
}

/** The guarded UPDATE of a delivery plus its notification's transition: applies once, however often it runs. */
export function moveDelivery(
  d1: D1Database,
  d: DeliveryRow,
  to: DeliveryStatus,
  fields: MoveFields,
): D1PreparedStatement[] {
  const attempts = d.attemptCount + (fields.attempted ? 1 : 0);
  const statements = [
    d1
      .prepare(
        `UPDATE deliveries SET status = ?2, status_reason = ?3, attempt_count = ?4, last_error_class = ?5,
           last_http_status = ?6, next_attempt_at = ?7, last_attempt_at = CASE WHEN ?8 THEN ?9 ELSE last_attempt_at END,
           updated_at = ?9
         WHERE id = ?1 AND status = ?10 AND attempt_count = ?11`,
      )
      .bind(
        d.id,
        to,
        fields.statusReason,
        attempts,
        fields.errorClass ?? d.lastErrorClass,
        fields.httpStatus ?? d.lastHttpStatus,
        fields.nextAttemptAt ?? null,
        fields.attempted ? 1 : 0,
        fields.now,
        d.status,
        d.attemptCount,
      ),
  ];
  if (d.notificationId) {
    statements.push(
      transitionStatement(d1, {
        notificationId: d.notificationId,
        deliveryId: d.id,
        from: d.status,
        to,
        attempts,
        statusReason: fields.statusReason,
        lastErrorClass: fields.errorClass ?? d.lastErrorClass,
        lastHttpStatus: fields.httpStatus ?? d.lastHttpStatus,
        at: fields.now,
      }),
    );
  }
  return statements;
}

/** The attempt row: the evidence the delivery log and the diagnosis show. */
export function attemptStatement(d1: D1Database, d: DeliveryRow, o: AttemptOutcome, now: string): D1PreparedStatement {
  const failed = o.classification.outcome === 'failed' ? o.classification : null;
  return d1
    .prepare(
      `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, error_class, http_status, duration_ms,
         request_bytes, response_snippet, error_message, created_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)`,
    )
    .bind(
      newId('att'),
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
    );
}

/** Net effect of one batch's outcomes on one webhook's health. */
export interface WebhookHealth {
  failuresSinceSuccess: number;
  succeeded: boolean;
  lastFailureClass: string | null;
  /** A 410 answered: the endpoint is disabled (`endpoint_gone`) by this write. */
  gone: boolean;
}

/** Writes a webhook's health: its failure streak, and the disable a 410 asks for. */
export function webhookHealthStatement(d1: D1Database, id: string, h: WebhookHealth, now: string): D1PreparedStatement {
  if (h.succeeded) {
    return d1
      .prepare(
        `UPDATE webhook_subscriptions SET consecutive_failures = ?2,
           failing_since = CASE WHEN ?2 > 0 THEN ?3 ELSE NULL END, last_success_at = ?3,
           last_failure_at = CASE WHEN ?2 > 0 THEN ?3 ELSE last_failure_at END,
           last_failure_class = COALESCE(?4, last_failure_class), updated_at = ?3
         WHERE id = ?1`,
      )
      .bind(id, h.failuresSinceSuccess, now, h.lastFailureClass);
  }
  return d1
    .prepare(
      `UPDATE webhook_subscriptions SET consecutive_failures = consecutive_failures + ?2,
         failing_since = COALESCE(failing_since, ?3), last_failure_at = ?3, last_failure_class = ?4, updated_at = ?3,
         enabled = CASE WHEN ?5 THEN 0 ELSE enabled END,
         disabled_reason = CASE WHEN ?5 AND enabled = 1 THEN 'endpoint_gone' ELSE disabled_reason END,
         disabled_at = CASE WHEN ?5 AND enabled = 1 THEN ?3 ELSE disabled_at END
       WHERE id = ?1`,
    )
    .bind(id, h.failuresSinceSuccess, now, h.lastFailureClass, h.gone ? 1 : 0);
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
