/**
 * The test-send diagnosis (docs/design.md#test-sends, #debug-playbooks (playbook 1)): "the test passes but production
 * retries to the DLQ" answered in one response. It compares the test attempt with the subscription's recent production
 * deliveries — event types, payload sizes, latency against the timeout, classes and response snippets — and checks
 * whether the subscription's filters would even match the handle's recent events. Evidence loading is one D1 batch; the
 * analysis is pure.
 */

import { evaluateFilterPolicy, type FilterPolicy, matchesEventTypes } from '../lib/filter-policy.ts';
import { fromJsonColumn } from '../lib/json.ts';
import { asClause, asSentence } from '../lib/sentences.ts';
import type { AttemptOutcome, DeliveredEvent, WebhookRow } from './attempt.ts';
import type { MatchSettings } from './match.ts';
import { describeRetryPolicy, retryPolicyOf } from './retry-policy.ts';

const RECENT = 50;
export const AUTO_DISABLE_DAYS = 5;

export interface ProductionAttempt {
  deliveryId: string;
  notificationId: string | null;
  type: string | null;
  deliveryStatus: string;
  attempts: number;
  errorClass: string | null;
  httpStatus: number | null;
  durationMs: number;
  requestBytes: number | null;
  responseSnippet: string | null;
  at: string;
}

export interface Evidence {
  /** Latest attempt of each recent production delivery, newest first. */
  production: ProductionAttempt[];
  recentEvents: Array<{ type: string; severity: string; source: string; data: Record<string, unknown> }>;
}

export interface Finding {
  code: string;
  message: string;
}

export interface WebhookDiagnosis {
  summary: string;
  subscription: {
    status: 'active' | 'disabled';
    disabledReason: string | null;
    consecutiveFailures: number;
    failingSince: string | null;
    lastSuccessAt: string | null;
    projectedAutoDisableAt: string | null;
    secretInRotation: boolean;
    /** The retry policy in force, as a sentence: `short (5 s, 30 s, 2 min; 4 attempts)`. */
    retryPolicy: string;
    /** Deliveries per second at most; null = unpaced. */
    rateLimit: number | null;
  };
  test: {
    eventType: string;
    outcome: 'succeeded' | 'failed';
    errorClass: string | null;
    httpStatus: number | null;
    durationMs: number;
    requestBytes: number;
  };
  matching: {
    recentEventTypes: Array<{ type: string; count: number; wouldMatch: boolean; reason: string | null }>;
  };
  productionFailures: ProductionAttempt[];
  differences: Finding[];
  nextSteps: string[];
}

/** Loads the evidence for one webhook in one D1 round trip. */
export async function loadWebhookEvidence(d1: D1Database, webhook: WebhookRow): Promise<Evidence> {
  const recentDeliveries = `SELECT id FROM deliveries WHERE subscription_id = ?1 AND kind = 'event'
    ORDER BY id DESC LIMIT ${RECENT}`;
  const [attempts, events] = await d1.batch<Record<string, unknown>>([
    d1
      .prepare(
        `SELECT d.id AS delivery_id, d.notification_id, d.status AS delivery_status, d.attempt_count, n.type,
                a.error_class, a.http_status, a.duration_ms, a.request_bytes, a.response_snippet, a.created_at
         FROM deliveries d
         JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt_number = d.attempt_count
         LEFT JOIN notifications n ON n.id = d.notification_id
         WHERE d.id IN (${recentDeliveries})
         ORDER BY d.id DESC`,
      )
      .bind(webhook.id),
    d1
      .prepare(
        `SELECT type, severity, source, data FROM notifications WHERE handle = ?1 ORDER BY id DESC LIMIT ${RECENT}`,
      )
      .bind(webhook.handle),
  ]);
  return {
    production: attempts!.results.map((r) => ({
      deliveryId: r.delivery_id as string,
      notificationId: (r.notification_id as string | null) ?? null,
      type: (r.type as string | null) ?? null,
      deliveryStatus: r.delivery_status as string,
      attempts: r.attempt_count as number,
      errorClass: (r.error_class as string | null) ?? null,
      httpStatus: (r.http_status as number | null) ?? null,
      durationMs: r.duration_ms as number,
      requestBytes: (r.request_bytes as number | null) ?? null,
      responseSnippet: (r.response_snippet as string | null)?.slice(0, 500) ?? null,
      at: r.created_at as string,
    })),
    recentEvents: events!.results.map((r) => ({
      type: r.type as string,
      severity: r.severity as string,
      source: r.source as string,
      data: JSON.parse(r.data as string) as Record<string, unknown>,
    })),
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : 0;
};

/** Compares the test with production and says what differs and what to do. */
/** What to do about a timeout: answer within the limit, never "it timed out" again. */
function timeoutStep(timeoutMs: number): string {
  return (
    `Make the endpoint answer 2xx within ${timeoutMs} ms: acknowledge the request at once and do the work ` +
    'afterwards (a queue or a background job).'
  );
}

/** The next step for a failed test, by error class: an action, not the failure again. */
function testFailureStep(errorClass: string, httpStatus: number | null, timeoutMs: number): string {
  switch (errorClass) {
    case 'timeout':
      return timeoutStep(timeoutMs);
    case 'network':
      return (
        'Check that the endpoint is reachable from the internet: its host resolves and its port accepts ' +
        'connections.'
      );
    case 'tls':
      return "Fix the endpoint's TLS certificate: it must be valid, unexpired and issued for the webhook's host.";
    case 'http_3xx':
      return 'Register the final URL the redirect points to: PATCH …/webhooks/{id} {"url": …}.';
    case 'http_4xx':
      return httpStatus === 401 || httpStatus === 403
        ? "Check that the receiver verifies the signature with this webhook's current secret (webhook-signature)."
        : `Fix what makes the endpoint refuse the request with HTTP ${httpStatus ?? '4xx'}: check the URL's path ` +
            'and what the receiver expects of the body.';
    case 'http_5xx':
      return `Fix the endpoint's server error (HTTP ${httpStatus ?? '5xx'}); its logs for this request say why.`;
    case 'blocked_destination':
      return 'Point the webhook at a public https endpoint.';
    case 'payload_too_large':
      return "Raise the endpoint's request size limit: it refused the body as too large.";
    default:
      return 'Fix the endpoint, then run the test again.';
  }
}

export function diagnoseWebhook(input: {
  webhook: WebhookRow;
  settings: MatchSettings;
  event: DeliveredEvent;
  outcome: AttemptOutcome;
  evidence: Evidence;
  timeoutMs: number;
  now: number;
  /** The deployment's `RETRY_DELAYS_SECONDS` (empty: Svix's schedule): what the `default` policy means. */
  defaultDelays?: readonly number[];
}): WebhookDiagnosis {
  const { webhook: w, outcome, evidence } = input;
  const testOk = outcome.classification.outcome === 'succeeded';
  const testClass = outcome.classification.outcome === 'failed' ? outcome.classification.errorClass : null;
  const secretInRotation = Boolean(w.previousSecretExpiresAt && Date.parse(w.previousSecretExpiresAt) > input.now);
  const failures = evidence.production.filter((p) => p.errorClass !== null);
  const differences: Finding[] = [];
  const nextSteps: string[] = [];

  // Would the subscription receive what this handle actually publishes?
  const eventTypes = fromJsonColumn<string[]>(w.eventTypes);
  const filterPolicy = fromJsonColumn<FilterPolicy>(w.filterPolicy);
  const byType = new Map<string, { count: number; wouldMatch: boolean; reason: string | null }>();
  for (const e of evidence.recentEvents) {
    const entry = byType.get(e.type) ?? { count: 0, wouldMatch: false, reason: null as string | null };
    entry.count++;
    let reason: string | null = null;
    if (!matchesEventTypes(eventTypes, e.type)) reason = `not in eventTypes (${(eventTypes ?? []).join(', ')})`;
    else {
      const v = evaluateFilterPolicy(input.settings.eventFilter, e);
      const own = v.match ? evaluateFilterPolicy(filterPolicy, e) : v;
      if (!own.match)
        reason = `${v.match ? 'filterPolicy' : "the handle's eventFilter"} excludes it at ${own.key}: ${own.reason}`;
    }
    if (!reason) entry.wouldMatch = true;
    else entry.reason ??= reason;
    byType.set(e.type, entry);
  }
  const recentEventTypes = [...byType.entries()].map(([type, v]) => ({
    type,
    count: v.count,
    wouldMatch: v.wouldMatch,
    reason: v.wouldMatch ? null : v.reason,
  }));

  if (!w.enabled) {
    differences.push({
      code: 'subscription_disabled',
      message:
        `The subscription is disabled (${w.disabledReason ?? 'by a user'}): production deliveries are ` +
        'skipped while test sends still go out.',
    });
    nextSteps.push(
      'Re-enable it with PATCH …/webhooks/{id} {"enabled": true}, then POST …/webhooks/{id}/recover to ' +
        'redeliver what was skipped.',
    );
  }
  if (!input.settings.webhookEnabled) {
    differences.push({
      code: 'channel_disabled',
      message: 'The webhook channel is disabled in the notification settings: production sends nothing.',
    });
    nextSteps.push('Enable channels.webhook in PUT …/notification-settings.');
  }
  if (recentEventTypes.length && !recentEventTypes.some((t) => t.wouldMatch)) {
    differences.push({
      code: 'filters_exclude_recent_events',
      message:
        `None of the handle's ${evidence.recentEvents.length} most recent events would reach this ` +
        `subscription (types: ${recentEventTypes.map((t) => t.type).join(', ')}).`,
    });
    nextSteps.push('Check eventTypes and filterPolicy with POST …/notification-settings/evaluate.');
  }

  if (failures.length) {
    const failingTypes = [...new Set(failures.map((f) => f.type).filter((t): t is string => t !== null))];
    const classes = [...new Set(failures.map((f) => f.errorClass))];
    if (testOk) {
      if (failingTypes.length && !failingTypes.includes(input.event.type)) {
        differences.push({
          code: 'event_type_specific',
          message:
            `Production failures are ${failingTypes.join(', ')} events; the test sent ` +
            `${input.event.type}, which the endpoint accepted.`,
        });
        const sample = failures.find((f) => f.notificationId)?.notificationId;
        if (sample)
          nextSteps.push(`Replay a failing event: POST …/webhooks/{id}/test {"notificationId": "${sample}"}.`);
      }
      const prodBytes = median(failures.map((f) => f.requestBytes ?? 0));
      if (prodBytes > 2 * outcome.requestBytes && prodBytes - outcome.requestBytes > 1024) {
        differences.push({
          code: 'payload_size',
          message:
            `Failing production requests are larger (median ${prodBytes} bytes) than the test ` +
            `(${outcome.requestBytes} bytes); the endpoint may reject or be slow on large bodies.`,
        });
      }
      if (classes.includes('timeout')) {
        differences.push({
          code: 'latency',
          message:
            `Production attempts timed out after ${input.timeoutMs} ms, while the test answered in ` +
            `${outcome.durationMs} ms.`,
        });
        nextSteps.push(timeoutStep(input.timeoutMs));
      }
      const rejected = failures.find((f) => f.errorClass === 'http_4xx' && f.responseSnippet);
      if (rejected) {
        differences.push({
          code: 'receiver_rejects_payload',
          message:
            `The endpoint answered HTTP ${rejected.httpStatus} to production delivery ` +
            `${rejected.deliveryId} with "${asClause(rejected.responseSnippet!)}".`,
        });
      }
    }
    const throttled = failures.filter((f) => f.httpStatus === 429).length;
    if (throttled) {
      differences.push({
        code: 'receiver_rate_limited',
        message:
          `The endpoint answered 429 Too Many Requests to ${throttled} production deliveries` +
          (w.rateLimit ? ` while paced at ${w.rateLimit} per second.` : '; nothing paces its deliveries.'),
      });
      nextSteps.push(
        'Pace the deliveries below what the endpoint accepts: PATCH …/webhooks/{id} {"rateLimit": <per second>}.',
      );
    }
    if (classes.includes('blocked_destination')) {
      differences.push({
        code: 'blocked_destination',
        message: 'Production sends were blocked: the URL resolves to or names a non-public address.',
      });
      nextSteps.push('Point the webhook at a public https endpoint.');
    }
    if (classes.includes('http_3xx')) {
      differences.push({
        code: 'redirect',
        message: 'The endpoint answers with a redirect, which is never followed.',
      });
      nextSteps.push('Register the final URL the redirect points to: PATCH …/webhooks/{id} {"url": …}.');
    }
  }
  if (secretInRotation) {
    differences.push({
      code: 'secret_in_rotation',
      message:
        'A secret rotation is in progress: webhook-signature carries two signatures; the receiver must accept ' +
        'a request when any of them verifies.',
    });
  }
  // The summary says how the test failed; the step says what to do about it, once.
  if (!testOk && testClass) {
    const step = testFailureStep(testClass, outcome.httpStatus, input.timeoutMs);
    if (!nextSteps.includes(step)) nextSteps.push(step);
  }
  if (failures.length) nextSteps.push('Once fixed, redeliver with POST …/webhooks/{id}/recover {"since": …}.');

  const projected =
    w.enabled && w.failingSince
      ? new Date(Date.parse(w.failingSince) + AUTO_DISABLE_DAYS * 86_400_000).toISOString()
      : null;
  const first = differences[0] ? asClause(differences[0].message) : null;
  const production = evidence.production.length;
  const summary = asSentence(
    testOk
      ? failures.length
        ? `The test succeeded, but ${failures.length} of the last ${production} production ` +
          `deliveries failed${first ? `: ${first}` : ''}`
        : first
          ? `The test succeeded, but ${first}`
          : production
            ? `The test succeeded and the last ${production} production deliveries succeeded too`
            : 'The test succeeded; there are no production deliveries yet to compare it with'
      : `The test failed with ${testClass}${outcome.httpStatus ? ` (HTTP ${outcome.httpStatus})` : ''}` +
          `${outcome.errorMessage ? `: ${asClause(outcome.errorMessage)}` : ''}`,
  );

  return {
    summary,
    subscription: {
      status: w.enabled ? 'active' : 'disabled',
      disabledReason: w.disabledReason,
      consecutiveFailures: w.consecutiveFailures,
      failingSince: w.failingSince,
      lastSuccessAt: w.lastSuccessAt,
      projectedAutoDisableAt: projected,
      secretInRotation,
      retryPolicy: describeRetryPolicy(retryPolicyOf(w, input.defaultDelays)),
      rateLimit: w.rateLimit,
    },
    test: {
      eventType: input.event.type,
      outcome: testOk ? 'succeeded' : 'failed',
      errorClass: testClass,
      httpStatus: outcome.httpStatus,
      durationMs: outcome.durationMs,
      requestBytes: outcome.requestBytes,
    },
    matching: { recentEventTypes },
    productionFailures: failures.slice(0, 10),
    differences,
    nextSteps,
  };
}
