/**
 * Auto-disable (docs/design.md#auto-disable): a webhook with no success for 5 days and at least 10 failed attempts in a
 * row is disabled, and the owner hears about it through a critical `webhook.endpoint_disabled` notification.
 *
 * Every disable by the service (this job's, and the consumer's on a 410) sets `disabled_alert_pending` in the same
 * statement; the alert clears it. Each run then raises the alert of every webhook still marked, one at a time, so a
 * publish that fails is tried again next minute and stops neither the others nor the disables already committed.
 */

import { onEveryShard } from '../db/shards.ts';
import { type DisabledWebhook, raiseEndpointDisabled } from '../delivery/alerts.ts';
import { runContext } from '../env.ts';

export const AUTO_DISABLE_AFTER_MS = 5 * 24 * 3600 * 1000;
export const AUTO_DISABLE_MIN_FAILURES = 10;
const BATCH = 100;
/** The disables whose owner the service tells. */
const SERVICE_REASONS = `('endpoint_gone', 'no_success_5_days')`;

/** What one run did, summed over the shards. */
export type AutoDisableResult = { disabled: number; alerted: number; alertsFailed: number };

/** The minute job on every shard at once (docs/design.md#shards). */
export async function autoDisableFailingWebhooks(env: Env, now: Date): Promise<AutoDisableResult> {
  const runs = await onEveryShard(env, (d1) => autoDisableOn(env, d1, now));
  const sum = (k: keyof AutoDisableResult) => runs.reduce((n, r) => n + r[k], 0);
  return { disabled: sum('disabled'), alerted: sum('alerted'), alertsFailed: sum('alertsFailed') };
}

async function autoDisableOn(env: Env, d1: D1Database, now: Date): Promise<AutoDisableResult> {
  const cutoff = new Date(now.getTime() - AUTO_DISABLE_AFTER_MS).toISOString();
  const at = now.toISOString();
  // One statement picks and disables: two overlapping runs cannot both disable (and mark) the same endpoint.
  const { meta } = await d1
    .prepare(
      `UPDATE webhook_subscriptions
       SET enabled = 0, disabled_reason = 'no_success_5_days', disabled_at = ?2, disabled_alert_pending = 1,
         updated_at = ?2
       WHERE id IN (
         SELECT id FROM webhook_subscriptions
         WHERE enabled = 1 AND consecutive_failures >= ?3 AND failing_since <= ?1
           AND (last_success_at IS NULL OR last_success_at <= ?1)
         LIMIT ?4)`,
    )
    .bind(cutoff, at, AUTO_DISABLE_MIN_FAILURES, BATCH)
    .run();
  // Every alert owed: the ones just disabled, and any a consumer or an earlier run failed to raise. A marker on a
  // webhook a user has re-enabled or disabled since is dropped: the user's change is newer than the alert.
  const [, owed] = await d1.batch<DisabledWebhook>([
    d1.prepare(
      `UPDATE webhook_subscriptions SET disabled_alert_pending = 0
       WHERE disabled_alert_pending = 1 AND (enabled = 1 OR disabled_reason NOT IN ${SERVICE_REASONS})`,
    ),
    d1
      .prepare(
        `SELECT id, handle, url, disabled_reason AS disabledReason, disabled_at AS disabledAt,
         consecutive_failures AS consecutiveFailures, failing_since AS failingSince
       FROM webhook_subscriptions WHERE disabled_alert_pending = 1 ORDER BY disabled_at LIMIT ?1`,
      )
      .bind(BATCH),
  ]);
  const results = owed!.results;
  const ctx = runContext(env);
  let alerted = 0;
  let alertsFailed = 0;
  for (const w of results) {
    try {
      await raiseEndpointDisabled(ctx, w);
      alerted++;
    } catch (err) {
      alertsFailed++;
      console.error(
        JSON.stringify({ level: 'error', msg: 'system_event_failed', subscriptionId: w.id, error: String(err) }),
      );
    }
  }
  return { disabled: meta.changes, alerted, alertsFailed };
}
