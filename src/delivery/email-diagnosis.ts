/**
 * The email test-send diagnosis (docs/design.md#test-sends, #debug-playbooks (playbooks 2 and 3)): the subscription's
 * confirmation and suppression state, whether the test mail was accepted, and the subscription's recent production
 * failures.
 */
import { asClause } from '../lib/sentences.ts';
import type { AttemptOutcome, EmailRow } from './attempt.ts';

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
    nextSteps,
  };
}
