/**
 * Owner alerts (docs/design.md#auto-disable, #email): the service's own critical events, ingested like any event so
 * they reach the owner default email. Every alert is raised here; whoever saw the change happen (the deliveries
 * consumer, a minute job, a test-send route) calls this module, once per change.
 */
import { type SnsSubscriptionRow, staleReason } from '../email/sns-subscriptions.ts';
import type { SuppressedSubscription } from '../email/suppression.ts';
import type { RunContext } from '../env.ts';
import type { WebhookRow } from './attempt.ts';
import { type IngestResult, ingestEvent } from './ingest.ts';

/** Why an endpoint was disabled, with what the owner needs to know about it. */
export type EndpointDisabledReason =
  | { reason: 'endpoint_gone'; detail: string }
  | { reason: 'no_success_5_days'; consecutiveFailures: number; failingSince: string };

function raise(ctx: RunContext, handle: string, type: string, data: Record<string, unknown>) {
  return ingestEvent(ctx, { handle, type, data, source: 'system' }, { system: true });
}

/** `webhook.endpoint_disabled`: the endpoint answered 410 Gone (consumer), or failed for 5 days (auto-disable). */
export function alertEndpointDisabled(
  ctx: RunContext,
  webhook: Pick<WebhookRow, 'id' | 'handle' | 'url'>,
  why: EndpointDisabledReason,
): Promise<IngestResult> {
  return raise(ctx, webhook.handle, 'webhook.endpoint_disabled', {
    subscriptionId: webhook.id,
    url: webhook.url,
    ...why,
  });
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
