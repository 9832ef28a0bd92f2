/**
 * Email subscriptions kept at AWS SNS (EMAIL_PROVIDER=sns, docs/design.md#email): each is an SNS email subscription on
 * the handle's topic, whose FilterPolicy names the subscription itself (so one Publish reaches exactly one recipient;
 * our own matching has already decided who gets what) plus its event types. SNS runs the double opt-in; its state is
 * mirrored by the reconcile job and by test sends. A subscription whose ARN no longer exists becomes `stale`; the check
 * says when it just became so, and its caller tells the owner, once, through a critical `email.subscription_stale`
 * notification (delivery/alerts.ts).
 */
import { shardFor } from '../db/shards.ts';
import { config } from '../env.ts';
import { type SnsClient, SnsError, snsClient } from './providers/sns/client.ts';
import { toSnsFilterPolicy } from './providers/sns/filter-policy.ts';
import { ensureHandleTopic } from './sns-topics.ts';

export interface SnsSubscriptionRow {
  id: string;
  handle: string;
  kind: 'standard' | 'owner_default';
  emailNormalized: string;
  eventTypes: string | null;
  providerRef: string | null;
}

const PENDING = 'AWS SNS sent its own confirmation mail; waiting for the address to confirm.';

export function staleReason(id: string): string {
  return (
    'The SNS subscription no longer exists (unsubscribed or deleted at AWS). Re-subscribe: DELETE ' +
    `…/notifications/email-subscriptions/${id}, then POST …/notifications/email-subscriptions again.`
  );
}

/** Subscribes the address at SNS and records the ARN and the mirrored state. Errors are kept in status_reason. */
export async function subscribeAtSns(env: Env, sub: SnsSubscriptionRow): Promise<{ ok: boolean; detail: string }> {
  const now = new Date().toISOString();
  try {
    const sns = snsClient(env);
    const topicArn = await ensureHandleTopic(env, config(env).aws, sns, sub.handle);
    const { policy } = toSnsFilterPolicy({
      eventTypes: sub.kind === 'standard' && sub.eventTypes ? (JSON.parse(sub.eventTypes) as string[]) : null,
      filterPolicy: null,
      subscriptionId: sub.id,
    });
    const { subscriptionArn, pendingConfirmation } = await sns.subscribe(topicArn, sub.emailNormalized, policy);
    await (await shardFor(env, sub.handle))
      .prepare(
        `UPDATE email_subscriptions SET provider = 'sns', provider_ref = ?2, provider_checked_at = ?3, updated_at = ?3,
         status = ?4, status_reason = ?5, confirmed_at = CASE WHEN ?4 = 'active' THEN ?3 ELSE confirmed_at END
       WHERE id = ?1`,
      )
      .bind(
        sub.id,
        subscriptionArn,
        now,
        pendingConfirmation ? 'pending_confirmation' : 'active',
        pendingConfirmation ? PENDING : null,
      )
      .run();
    return { ok: true, detail: pendingConfirmation ? PENDING : 'Subscribed at AWS SNS.' };
  } catch (err) {
    const detail =
      'AWS SNS refused the subscription ' +
      `(${err instanceof SnsError ? `${err.code}: ${err.message}` : String(err)}); try again with POST ` +
      '…/resend-confirmation.';
    await (await shardFor(env, sub.handle))
      .prepare(`UPDATE email_subscriptions SET provider = 'sns', status_reason = ?2, updated_at = ?3 WHERE id = ?1`)
      .bind(sub.id, detail.slice(0, 500), now)
      .run();
    return { ok: false, detail };
  }
}

/** Best effort: a failure leaves an orphan at SNS that our `subscription` filter keeps from ever receiving mail. */
export async function unsubscribeAtSns(env: Env, arn: string | null): Promise<void> {
  if (!arn) return;
  try {
    await snsClient(env).unsubscribe(arn);
  } catch (err) {
    console.warn(JSON.stringify({ level: 'warn', msg: 'sns_unsubscribe_failed', arn, error: String(err) }));
  }
}

/** What SNS said of a subscription's ARN, and whether this check is the one that made the subscription `stale`. */
export interface SnsCheck {
  state: Awaited<ReturnType<SnsClient['checkSubscription']>>;
  /** True once per subscription: its caller raises the owner alert (delivery/alerts.ts `alertSubscriptionStale`). */
  becameStale: boolean;
}

/**
 * Checks one subscription's ARN and mirrors the answer: confirmed → active, not found → stale. Returns the state SNS
 * reported and whether the subscription became stale just now.
 */
export async function checkAtSns(
  env: Env,
  sub: Pick<SnsSubscriptionRow, 'id' | 'handle' | 'emailNormalized' | 'providerRef'>,
): Promise<SnsCheck> {
  const now = new Date().toISOString();
  const state = await snsClient(env).checkSubscription(sub.providerRef!);
  const d1 = await shardFor(env, sub.handle);
  if (state === 'not_found') {
    const changed = await d1
      .prepare(
        `UPDATE email_subscriptions SET status = 'stale', status_reason = ?2, provider_checked_at = ?3, updated_at = ?3
       WHERE id = ?1 AND status <> 'stale' RETURNING id`,
      )
      .bind(sub.id, staleReason(sub.id), now)
      .first();
    return { state, becameStale: Boolean(changed) };
  }
  await d1
    .prepare(
      `UPDATE email_subscriptions SET provider_checked_at = ?3,
       status = CASE WHEN ?2 = 'confirmed' AND status = 'pending_confirmation' THEN 'active' ELSE status END,
       status_reason = CASE WHEN ?2 = 'confirmed' AND status = 'pending_confirmation' THEN NULL ELSE status_reason END,
       confirmed_at = CASE WHEN ?2 = 'confirmed' AND confirmed_at IS NULL THEN ?3 ELSE confirmed_at END,
       updated_at = ?3
     WHERE id = ?1`,
    )
    .bind(sub.id, state, now)
    .run();
  return { state, becameStale: false };
}
