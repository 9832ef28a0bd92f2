/**
 * The per-recipient summary kept on each notification (`notifications.recipients`) and its aggregate `status`
 * (SPEC §6). Both are projections of `deliveries`; every statement that changes deliveries also runs the matching
 * statements from here in the same `db.batch`, so the feed (one row per notification) never disagrees with the log.
 */

/** One recipient as the feed shows it. */
export interface RecipientSummary {
  deliveryId: string;
  channel: 'webhook' | 'email';
  recipientType: 'webhook' | 'email' | 'owner_default' | 'platform_alert';
  subscriptionId: string | null;
  target: string;
  status: 'pending' | 'queued' | 'retrying' | 'succeeded' | 'dead' | 'cancelled' | 'skipped';
  statusReason: string | null;
  attempts: number;
  lastErrorClass: string | null;
  lastHttpStatus: number | null;
  updatedAt: string;
}

export const OPEN_STATUSES = ['pending', 'queued', 'retrying'] as const;
const OPEN_SQL = `('pending', 'queued', 'retrying')`;

/**
 * SQL expression computing a notification's aggregate status from its `recipients` JSON:
 * open deliveries → delivering; all terminal → delivered / partially_failed / failed by succeeded vs dead;
 * nothing sent (only skipped/cancelled, or none) → no_recipients. `undeliverable` is set at ingest and kept.
 */
export const AGGREGATE_STATUS_SQL = `CASE
  WHEN status = 'undeliverable' THEN 'undeliverable'
  WHEN EXISTS (SELECT 1 FROM json_each(recipients) r WHERE json_extract(r.value, '$.status') IN ${OPEN_SQL}) THEN 'delivering'
  WHEN EXISTS (SELECT 1 FROM json_each(recipients) r WHERE json_extract(r.value, '$.status') = 'succeeded') THEN
    CASE WHEN EXISTS (SELECT 1 FROM json_each(recipients) r WHERE json_extract(r.value, '$.status') = 'dead')
      THEN 'partially_failed' ELSE 'delivered' END
  WHEN EXISTS (SELECT 1 FROM json_each(recipients) r WHERE json_extract(r.value, '$.status') = 'dead') THEN 'failed'
  ELSE 'no_recipients'
END`;

/**
 * Statements (for one D1 batch) that cancel every open delivery of a subscription — in the deliveries table and in
 * the summaries of their notifications — and refresh those notifications' aggregate status. Used when a subscription
 * is deleted: its pending work becomes visible as `cancelled`, never silently dropped.
 */
export function cancelOpenDeliveries(
  d1: D1Database,
  handle: string,
  subscriptionId: string,
  reason: string,
  now: string,
): D1PreparedStatement[] {
  // Scoped by handle as well as id: a guessed id from another tenant must never reach that tenant's deliveries.
  const affected = `SELECT notification_id FROM deliveries WHERE subscription_id = ?1 AND handle = ?4 AND status IN ${OPEN_SQL}`;
  return [
    d1
      .prepare(
        `UPDATE notifications SET
           recipients = (SELECT json_group_object(j.key,
               CASE WHEN json_extract(j.value, '$.subscriptionId') = ?1
                         AND json_extract(j.value, '$.status') IN ${OPEN_SQL}
                    THEN json_set(j.value, '$.status', 'cancelled', '$.statusReason', ?2, '$.updatedAt', ?3)
                    ELSE json(j.value) END)
             FROM json_each(notifications.recipients) j),
           updated_at = ?3
         WHERE id IN (${affected})`,
      )
      .bind(subscriptionId, reason, now, handle),
    d1
      .prepare(`UPDATE notifications SET status = ${AGGREGATE_STATUS_SQL} WHERE id IN (${affected})`)
      .bind(subscriptionId, null, null, handle),
    d1
      .prepare(
        `UPDATE deliveries SET status = 'cancelled', status_reason = ?2, updated_at = ?3
         WHERE subscription_id = ?1 AND handle = ?4 AND status IN ${OPEN_SQL}`,
      )
      .bind(subscriptionId, reason, now, handle),
  ];
}
