/**
 * Auto-disable (docs/design.md#auto-disable): a webhook with no success for 5 days and at least 10 failed attempts in a
 * row is disabled, and the owner hears about it through a critical `webhook.endpoint_disabled` notification.
 */
import { alertEndpointDisabled } from '../delivery/alerts.ts';
import { runContext } from '../env.ts';

export const AUTO_DISABLE_AFTER_MS = 5 * 24 * 3600 * 1000;
export const AUTO_DISABLE_MIN_FAILURES = 10;
const BATCH = 100;

export async function autoDisableFailingWebhooks(env: Env, now: Date): Promise<{ disabled: number }> {
  const cutoff = new Date(now.getTime() - AUTO_DISABLE_AFTER_MS).toISOString();
  const at = now.toISOString();
  // One statement picks and disables: two overlapping runs cannot both notify for the same endpoint.
  const { results } = await env.DB.prepare(
    `UPDATE webhook_subscriptions
     SET enabled = 0, disabled_reason = 'no_success_5_days', disabled_at = ?2, updated_at = ?2
     WHERE id IN (
       SELECT id FROM webhook_subscriptions
       WHERE enabled = 1 AND consecutive_failures >= ?3 AND failing_since <= ?1
         AND (last_success_at IS NULL OR last_success_at <= ?1)
       LIMIT ?4)
     RETURNING id, handle, url, consecutive_failures, failing_since`,
  )
    .bind(cutoff, at, AUTO_DISABLE_MIN_FAILURES, BATCH)
    .all<{ id: string; handle: string; url: string; consecutive_failures: number; failing_since: string }>();
  const ctx = runContext(env);
  for (const w of results) {
    await alertEndpointDisabled(ctx, w, {
      reason: 'no_success_5_days',
      consecutiveFailures: w.consecutive_failures,
      failingSince: w.failing_since,
    });
  }
  return { disabled: results.length };
}
