/**
 * The email test-send diagnosis (docs/design.md#test-sends, #debug-playbooks (playbooks 2 and 3)): the subscription's
 * confirmation and suppression state, whether the test mail was accepted, the provider's later verdicts on the
 * subscription's mails (Email Sending events, docs/design.md#email-events), and its recent production failures. The
 * doctor's summary of those verdicts for a handle lives here too ({@link emailVerdictsOfHandle}).
 */
import { boundaryId } from '../lib/ids.ts';
import { asClause } from '../lib/sentences.ts';
import type { AttemptOutcome, EmailRow } from './attempt.ts';
import { DELIVERED_VERDICT } from './email-events-consumer.ts';

/** The provider's verdicts on a subscription's recent mails, newest first (docs/design.md#email-events). */
export interface ProviderVerdicts {
  /** The last time the provider reported one of its mails delivered to the recipient's server. */
  lastDeliveredAt: string | null;
  recent: Array<{ deliveryId: string; kind: 'event' | 'test'; verdict: string; at: string }>;
}

const VERDICTS_SHOWN = 5;

/** The verdicts Email Sending reported on this subscription's mails (test sends included). */
export async function loadProviderVerdicts(d1: D1Database, subscriptionId: string): Promise<ProviderVerdicts> {
  const { results } = await d1
    .prepare(
      `SELECT id, kind, provider_verdict verdict, updated_at at, max(delivered_at) OVER () last FROM deliveries
       WHERE subscription_id = ?1 AND provider_verdict IS NOT NULL ORDER BY id DESC LIMIT ${VERDICTS_SHOWN}`,
    )
    .bind(subscriptionId)
    .all<ProviderVerdicts['recent'][number] & { id?: string; last: string | null }>();
  return {
    lastDeliveredAt: results[0]?.last ?? null,
    recent: results.map(({ id, kind, verdict, at }) => ({ deliveryId: id!, kind, verdict, at })),
  };
}

/** A handle's email deliveries of the last 24 h as the provider judged them (the doctor's `emailDelivery`). */
export interface EmailVerdictCounts {
  delivered24h: number;
  awaitingVerdict24h: number;
  deferred24h: number;
  refused24h: number;
  action: string | null;
}

/** SQL: a sent mail with no verdict yet (accepted, nothing heard since). */
const SILENT = "delivered_at IS NULL AND provider_verdict IS NULL AND status = 'succeeded'";

/**
 * The doctor's count of a handle's recent sent mails by the provider's verdict, read through each subscription's
 * deliveries (deliveries_subscription_idx) from the 24-hour id boundary on: one statement for the doctor's batch.
 */
export function emailVerdictsOfHandle(d1: D1Database, handle: string, nowMs: number): D1PreparedStatement {
  return d1
    .prepare(
      `SELECT count(delivered_at) delivered, sum(${SILENT}) awaiting, min(CASE WHEN ${SILENT} THEN last_attempt_at END)
       oldest_awaiting, sum(delivered_at IS NULL AND provider_verdict LIKE 'deferred:%') deferred,
       sum(substr(provider_verdict, 1, instr(provider_verdict, ':')) IN ('bounced:', 'failed:', 'rejected:')) refused
       FROM deliveries WHERE subscription_id IN (SELECT id FROM email_subscriptions WHERE handle = ?1) AND id >= ?2
       AND provider_message_id IS NOT NULL`,
    )
    .bind(handle, boundaryId('dlv', nowMs - 86_400_000));
}

/** How long a sent mail may go without any verdict before the doctor suspects the event subscription. */
const VERDICT_EXPECTED_MS = 3_600_000;

/** The doctor's reading of {@link emailVerdictsOfHandle}'s row. */
export function emailVerdictCounts(row: Record<string, unknown> = {}, nowMs: number): EmailVerdictCounts {
  const n = (k: string) => Number(row[k] ?? 0);
  // Nothing heard on any mail, the oldest accepted over an hour ago (no oldest: NaN, never silent).
  const silent =
    !n('delivered') &&
    !n('deferred') &&
    !n('refused') &&
    nowMs - Date.parse(String(row.oldest_awaiting)) > VERDICT_EXPECTED_MS;
  return {
    delivered24h: n('delivered'),
    awaitingVerdict24h: n('awaiting'),
    deferred24h: n('deferred'),
    refused24h: n('refused'),
    action: silent
      ? "Email Sending reported nothing on mail accepted over an hour ago: check the sending domain's event " +
        'subscription to notify-email-events (docs/operations.md).'
      : n('refused')
        ? 'Mails bounced or were refused after acceptance: see the suppressed addresses and the email test diagnosis.'
        : null,
  };
}

export interface EmailDiagnosis {
  summary: string;
  subscription: {
    kind: 'standard' | 'owner_default';
    email: string;
    status: string;
    statusReason: string | null;
    confirmedAt: string | null;
    provider: string;
  };
  test: {
    sent: boolean;
    outcome: 'succeeded' | 'failed' | 'not_sent';
    errorClass: string | null;
    detail: string | null;
  };
  productionFailures: Array<{
    deliveryId: string;
    notificationId: string | null;
    errorClass: string | null;
    status: string;
    at: string;
  }>;
  providerCheck: { provider: string; reference: string; state: string } | null;
  /** What the provider later reported on this subscription's mails; null for providers that report nothing. */
  providerVerdicts: ProviderVerdicts | null;
  nextSteps: string[];
}

export async function loadEmailFailures(d1: D1Database, subscriptionId: string) {
  const { results } = await d1
    .prepare(
      `SELECT id, notification_id, last_error_class, status, updated_at FROM deliveries
       WHERE subscription_id = ?1 AND kind = 'event' AND (status = 'dead' OR last_error_class IS NOT NULL)
       ORDER BY id DESC LIMIT 10`,
    )
    .bind(subscriptionId)
    .all<{
      id: string;
      notification_id: string | null;
      last_error_class: string | null;
      status: string;
      updated_at: string;
    }>();
  return results.map((r) => ({
    deliveryId: r.id,
    notificationId: r.notification_id,
    errorClass: r.last_error_class,
    status: r.status,
    at: r.updated_at,
  }));
}

export function diagnoseEmail(
  sub: EmailRow,
  outcome: AttemptOutcome | null,
  failures: EmailDiagnosis['productionFailures'],
  providerCheck: EmailDiagnosis['providerCheck'] = null,
  verdicts: ProviderVerdicts | null = null,
): EmailDiagnosis {
  const nextSteps: string[] = [];
  let summary: string;
  if (sub.status === 'pending_confirmation') {
    summary =
      `${sub.email} has not confirmed its subscription, so it receives nothing but the confirmation ` +
      'mail; no test was sent.';
    nextSteps.push('Ask the recipient to click the link in the confirmation mail (or resend it).');
  } else if (sub.status === 'stale') {
    summary =
      `${sub.email} is stale (${asClause(sub.statusReason ?? 'the provider no longer knows this subscription')}), ` +
      'so no test was sent.';
    nextSteps.push(
      `Re-subscribe the address: DELETE /v2/handles/${sub.handle}/notifications/email-subscriptions/${sub.id}, ` +
        `then POST /v2/handles/${sub.handle}/notifications/email-subscriptions {"email": "${sub.email}"}.`,
    );
  } else if (sub.status !== 'active') {
    const reason = sub.statusReason ? ` (${asClause(sub.statusReason)})` : '';
    summary = `${sub.email} is ${sub.status}${reason}, so no test was sent.`;
    nextSteps.push(
      sub.status === 'unsubscribed'
        ? 'Only the recipient can opt in again: delete this subscription and subscribe the address again, which ' +
            'mails them a new confirmation link.'
        : 'Fix the cause at the mailbox (a full or closed mailbox, a spam complaint), then delete this subscription ' +
            'and subscribe the address again.',
    );
  } else if (outcome?.classification.outcome === 'succeeded') {
    summary = `The test mail to ${sub.email} was accepted by the ${sub.provider} provider.`;
    if (verdicts) {
      summary += verdicts.lastDeliveredAt
        ? ` Email Sending last reported a mail ${DELIVERED_VERDICT} at ${verdicts.lastDeliveredAt}.`
        : " Email Sending has not yet reported any of its mails delivered to the recipient's server.";
      nextSteps.push(
        'Email Sending reports on this mail within minutes: run the test again to see its verdict under ' +
          'providerVerdicts (delivered, deferred, bounced, failed, rejected).',
      );
      const refused = verdicts.recent.find((v) => /^(?:bounced|failed|rejected|deferred):/.test(v.verdict));
      if (refused) nextSteps.push(`Email Sending on ${refused.deliveryId}: ${asClause(refused.verdict)}.`);
    }
  } else {
    const cls = outcome?.classification.outcome === 'failed' ? outcome.classification.errorClass : 'unknown';
    summary =
      `The test mail to ${sub.email} failed (${cls}` +
      `${outcome?.errorMessage ? `: ${asClause(outcome.errorMessage)}` : ''}).`;
    nextSteps.push(
      cls === 'provider_permanent'
        ? 'The provider refuses this address or sender: check the address and the sending domain.'
        : 'A transient provider failure: try again shortly.',
    );
  }
  if (failures.length)
    nextSteps.push(
      'Recent production failures: ' +
        `${failures.map((f) => `${f.deliveryId} (${f.errorClass ?? f.status})`).join(', ')}; redeliver with ` +
        'POST …/deliveries/{id}/retry.',
    );
  return {
    summary,
    subscription: {
      kind: sub.kind,
      email: sub.email,
      status: sub.status,
      statusReason: sub.statusReason,
      confirmedAt: sub.confirmedAt,
      provider: sub.provider,
    },
    test: outcome
      ? {
          sent: true,
          outcome: outcome.classification.outcome,
          errorClass: outcome.classification.outcome === 'failed' ? outcome.classification.errorClass : null,
          detail: outcome.errorMessage ?? outcome.responseSnippet,
        }
      : { sent: false, outcome: 'not_sent', errorClass: null, detail: null },
    productionFailures: failures,
    providerCheck,
    providerVerdicts: verdicts,
    nextSteps,
  };
}
