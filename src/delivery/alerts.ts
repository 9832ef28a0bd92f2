/**
 * Owner alerts (docs/design.md#auto-disable, #email): the service's own critical events, ingested like any event so
 * they reach the owner default email. Every alert is raised here; whoever saw the change happen (the deliveries
 * consumer, a minute job, a test-send route) calls this module, once per change.
 */
import { onEveryShard, shardFor } from '../db/shards.ts';
import { type SnsSubscriptionRow, staleReason } from '../email/sns-subscriptions.ts';
import { applyFeedback, type Feedback, type SuppressedSubscription } from '../email/suppression.ts';
import type { RunContext } from '../env.ts';
import type { WebhookRow } from './attempt.ts';
import { type IngestResult, ingestEvent } from './ingest.ts';
import { SYSTEM_SOURCE_PREFIX } from './messages.ts';

/** Why an endpoint was disabled, with what the owner needs to know about it. */
export type EndpointDisabledReason =
  | { reason: 'endpoint_gone'; detail: string }
  | { reason: 'no_success_5_days'; consecutiveFailures: number; failingSince: string };

function raise(ctx: RunContext, handle: string, type: string, data: Record<string, unknown>) {
  return ingestEvent(ctx, { handle, type, data, source: 'system' }, { system: true });
}

/** A disabled webhook as its `webhook.endpoint_disabled` alert needs it. */
export type DisabledWebhook = Pick<
  WebhookRow,
  'id' | 'handle' | 'url' | 'disabledReason' | 'disabledAt' | 'consecutiveFailures' | 'failingSince'
>;

/** Why the service disabled it, from the row: a 410 (consumer), or 5 days of failures (auto-disable). */
function whyDisabled(w: DisabledWebhook): EndpointDisabledReason {
  return w.disabledReason === 'no_success_5_days'
    ? { reason: 'no_success_5_days', consecutiveFailures: w.consecutiveFailures, failingSince: w.failingSince ?? '' }
    : { reason: 'endpoint_gone', detail: 'The endpoint answered 410 Gone.' };
}

/**
 * `webhook.endpoint_disabled` for one disable, then its `disabled_alert_pending` marker cleared. Whoever disabled the
 * webhook (the deliveries consumer on a 410, the auto-disable job) calls this right after; the auto-disable job calls
 * it again for every marker left set (a publish that failed). The event's `sourceEventId` names the disable (webhook
 * id and `disabledAt`), so however often it is raised, a disable has one notification; a later disable of the same
 * webhook, after a re-enable, has its own.
 */
export async function raiseEndpointDisabled(ctx: RunContext, w: DisabledWebhook): Promise<IngestResult> {
  const result = await ingestEvent(
    ctx,
    {
      handle: w.handle,
      type: 'webhook.endpoint_disabled',
      data: { subscriptionId: w.id, url: w.url, ...whyDisabled(w) },
      sourceEventId: `${SYSTEM_SOURCE_PREFIX}webhook.endpoint_disabled:${w.id}:${w.disabledAt}`,
      source: 'system',
    },
    { system: true },
  );
  await (await shardFor(ctx.env, w.handle))
    .prepare('UPDATE webhook_subscriptions SET disabled_alert_pending = 0 WHERE id = ?1 AND disabled_at IS ?2')
    .bind(w.id, w.disabledAt)
    .run();
  return result;
}

/** `email.subscription_stale`: the subscription's ARN no longer exists at SNS, so it just became `stale`. */
export function alertSubscriptionStale(
  ctx: RunContext,
  sub: Pick<SnsSubscriptionRow, 'id' | 'handle' | 'emailNormalized' | 'providerRef'>,
): Promise<IngestResult> {
  return raise(ctx, sub.handle, 'email.subscription_stale', {
    subscriptionId: sub.id,
    email: sub.emailNormalized,
    provider: 'sns',
    subscriptionArn: sub.providerRef,
    action: staleReason(sub.id),
  });
}

/**
 * `email.owner_default_suppressed`: a bounce or complaint (any provider) just suppressed the handle's owner default
 * email, the one recipient critical events are guaranteed to reach. Raised like every alert: whoever else of the handle
 * can receive a critical event gets it, and when nobody can, the platform alert address does (`undeliverable`).
 */
export function alertOwnerDefaultSuppressed(
  ctx: RunContext,
  sub: Pick<SuppressedSubscription, 'id' | 'handle' | 'emailNormalized' | 'reason'>,
  provider: string,
): Promise<IngestResult> {
  return raise(ctx, sub.handle, 'email.owner_default_suppressed', {
    subscriptionId: sub.id,
    email: sub.emailNormalized,
    provider,
    reason: sub.reason,
    action:
      'Critical events no longer reach the owner default email. Set a working one with PUT ' +
      '…/notifications/owner-default-email, or add another recipient for critical events.',
  });
}

/**
 * What every provider's feedback does with a bounce or complaint (the Resend and SNS routes, the Email Sending events
 * consumer): suppress (email/suppression.ts), then raise the owner alert for each owner default email that was
 * suppressed, once — a redelivered event suppresses nothing new. Returns how many subscriptions were suppressed.
 */
export async function suppressAndAlert(ctx: RunContext, feedback: Feedback): Promise<number> {
  // An address may be subscribed on handles of every shard (docs/design.md#shards).
  const suppressed = (await onEveryShard(ctx.env, (d1) => applyFeedback(d1, feedback))).flat();
  for (const sub of suppressed) {
    if (sub.kind !== 'owner_default') continue;
    // The suppression is stored either way; a failed alert is logged loudly, and the owner default email's status
    // (`suppressed`, with the reason) stays visible in the API, the health report and the settings warnings.
    await alertOwnerDefaultSuppressed(ctx, sub, feedback.provider).catch((err: unknown) =>
      console.error(
        JSON.stringify({ level: 'error', msg: 'system_event_failed', subscriptionId: sub.id, error: String(err) }),
      ),
    );
  }
  return suppressed.length;
}
