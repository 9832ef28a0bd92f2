/**
 * The platform alert address (PLATFORM_ALERT_EMAIL, docs/design.md#owner-fallback-and-undeliverable): a critical
 * event nobody of the handle's can receive goes there as a `platform_alert` delivery. Ingest adds it when the event is
 * `undeliverable` from the start; this minute job adds it when a critical notification becomes `undeliverable` later —
 * its deliveries cancelled (subscription deleted, owner email unset) or skipped (webhook disabled, address no longer
 * active) before anyone got it. summary.ts marks those notifications (`alert_check_at`) in the statement that moves
 * the delivery; the job looks only at marked ones, at most once each: one platform alert per notification, ever.
 */
import { notificationDeliveriesSql } from '../db/schema.ts';
import { onEveryShard } from '../db/shards.ts';
import { config } from '../env.ts';
import { newId } from '../lib/ids.ts';
import { enqueueDeliveries } from './enqueue.ts';
import { encodeRecipient, RECIPIENT_SUMMARY_LIMIT, type RecipientSummary } from './summary.ts';

/** The status reason of a platform alert delivery. */
export const PLATFORM_ALERT_REASON = 'undeliverable_critical_event';
/** Notifications looked at per run (three statements each, in one batch). */
const BATCH = 50;
/** Without an alert address nothing is sent; marks older than this are dropped so they do not pile up. */
const UNALERTED_MARK_TTL_MS = 24 * 60 * 60_000;

interface Marked {
  id: string;
  handle: string;
  alertCheckAt: string;
}

/** What one run did, summed over the shards. */
export type UndeliverableRun = {
  checked: number;
  alerted: number;
  enqueued: number;
  dropped: number;
};

/**
 * The minute job: a platform alert for each marked notification that is now `undeliverable` and has none yet, on
 * every shard. `only.handle` limits a run to one handle's notifications (tests share databases with other tests'
 * marks).
 */
export async function alertUndeliverable(
  env: Env,
  now: Date,
  only: { handle?: string } = {},
): Promise<UndeliverableRun> {
  const runs = await onEveryShard(env, (d1) => alertUndeliverableOn(env, d1, now, only));
  const sum = (k: keyof UndeliverableRun) => runs.reduce((n, r) => n + r[k], 0);
  return { checked: sum('checked'), alerted: sum('alerted'), enqueued: sum('enqueued'), dropped: sum('dropped') };
}

async function alertUndeliverableOn(
  env: Env,
  d1: D1Database,
  now: Date,
  only: { handle?: string },
): Promise<UndeliverableRun> {
  const address = config(env).platformAlertEmail;
  if (!address) {
    // Nothing to tell, and nowhere to tell it. Fresh marks are left alone: a deployment's configuration is one for
    // every invocation, so this only forgets what an address set later would be a day too late for.
    const cutoff = new Date(now.getTime() - UNALERTED_MARK_TTL_MS).toISOString();
    const { meta } = await d1
      .prepare(
        'UPDATE notifications SET alert_check_at = NULL WHERE alert_check_at IS NOT NULL AND alert_check_at < ?1',
      )
      .bind(cutoff)
      .run();
    return { checked: 0, alerted: 0, enqueued: 0, dropped: meta.changes ?? 0 };
  }
  const { results: marked } = await d1
    .prepare(
      'SELECT id, handle, alert_check_at AS alertCheckAt FROM notifications ' +
        'WHERE alert_check_at IS NOT NULL AND (?2 IS NULL OR handle = ?2) ' +
        'ORDER BY alert_check_at LIMIT ?1',
    )
    .bind(BATCH, only.handle ?? null)
    .all<Marked>();
  if (!marked.length) return { checked: 0, alerted: 0, enqueued: 0, dropped: 0 };
  const at = now.toISOString();
  const ids = marked.map(() => newId('dlv'));
  const statements = marked.flatMap((n, i) => alertStatements(d1, n, ids[i]!, address, at));
  const results = await d1.batch(statements);
  // Three statements per notification, the first the INSERT: a change there is an alert made.
  const made = marked
    .map((n, i) => ({ deliveryId: ids[i]!, handle: n.handle }))
    .filter((_, i) => (results[i * 3]?.meta.changes ?? 0) === 1);
  const sent = made.length ? await enqueueDeliveries(env, d1, made) : { queued: [] };
  return { checked: marked.length, alerted: made.length, enqueued: sent.queued.length, dropped: 0 };
}

/**
 * For one marked notification: its platform alert delivery if it is `undeliverable` and has none (guarded in SQL,
 * so a run racing another, or a notification redriven meanwhile, adds nothing), the notification's counts and
 * summary when it was added, and the mark cleared unless a newer one was set since it was read.
 */
function alertStatements(
  d1: D1Database,
  n: Marked,
  deliveryId: string,
  address: string,
  at: string,
): D1PreparedStatement[] {
  const entry: RecipientSummary = {
    deliveryId,
    channel: 'email',
    recipientType: 'platform_alert',
    subscriptionId: null,
    target: address,
    status: 'pending',
    statusReason: PLATFORM_ALERT_REASON,
    attempts: 0,
    lastErrorClass: null,
    lastHttpStatus: null,
    updatedAt: at,
  };
  return [
    d1
      .prepare(
        'INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, ' +
          'target, status, status_reason, attempt_count, retry_base, created_at, updated_at) ' +
          "SELECT ?1, n.handle, n.id, 'event', 'email', 'platform_alert', NULL, ?2, 'pending', ?3, 0, 0, ?4, ?4 " +
          "FROM notifications n WHERE n.id = ?5 AND n.severity = 'critical' AND n.status = 'undeliverable' " +
          `AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE ${notificationDeliveriesSql('d', '?5')} ` +
          "AND d.recipient_type = 'platform_alert')",
      )
      .bind(deliveryId, address, PLATFORM_ALERT_REASON, at, n.id),
    // The platform alert is open: counted like any delivery (the critical aggregate leaves it out, summary.ts).
    d1
      .prepare(
        'UPDATE notifications SET open_count = open_count + 1, recipient_count = recipient_count + 1, ' +
          'recipients = CASE WHEN (SELECT count(*) FROM json_each(recipients)) < ?4 ' +
          'THEN json_set(recipients, ?2, json(?3)) ELSE recipients END, updated_at = ?5 ' +
          'WHERE id = ?1 AND changes() = 1',
      )
      .bind(n.id, `$."${deliveryId}"`, JSON.stringify(encodeRecipient(entry)), RECIPIENT_SUMMARY_LIMIT, at),
    d1
      .prepare('UPDATE notifications SET alert_check_at = NULL WHERE id = ?1 AND alert_check_at = ?2')
      .bind(n.id, n.alertCheckAt),
  ];
}
