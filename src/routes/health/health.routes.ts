/**
 * `GET /v2/handles/{handle}/health`: the delivery doctor (docs/design.md#routes, #debug-playbooks). Everything that
 * loses or delays events for this handle, each with the action that fixes it: failing webhooks and their projected
 * auto-disable, dead deliveries in the last 24 h, overdue deliveries (a lost queue message), pending/stale/suppressed
 * email subscriptions, the owner default email, and whether every critical event type would reach someone.
 */

import { createRoute, z } from '@hono/zod-openapi';
import { storageDegraded, storageReport } from '../../archive/storage.ts';
import { getDb } from '../../db/client.ts';
import { AUTO_DISABLE_DAYS } from '../../delivery/diagnosis.ts';
import { emailVerdictCounts, emailVerdictsOfHandle } from '../../delivery/email-diagnosis.ts';
import { planRecipients } from '../../delivery/match.ts';
import { loadMatchContext } from '../../delivery/match-context.ts';
import { MAX_BACKOFF_GRACES, overdueOfHandle, readOverdue } from '../../delivery/overdue.ts';
import { pacerStatus } from '../../delivery/pacer.ts';
import { describeRetryPolicy, type RetryPolicyName, retryPolicyOf } from '../../delivery/retry-policy.ts';
import { config } from '../../env.ts';
import { createRouter, guard, jsonResponse } from '../../http/openapi.ts';
import { EVENT_CATALOG } from '../../lib/event-catalog.ts';
import { boundaryId } from '../../lib/ids.ts';
import { spreadWords } from '../../lib/peak-windows.ts';
import { problems } from '../../lib/problem.ts';
import { asClause } from '../../lib/sentences.ts';
import { handleD1 } from '../../middleware/auth.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import { undeliverableCount } from '../notifications/notifications.repo.ts';
import { WarningSchema } from '../settings/settings.schemas.ts';
import { settingsWarnings } from '../settings/settings.warnings.ts';
import { StorageReportSchema } from './storage.schemas.ts';

const Action = z.string().openapi({ description: 'What fixes it.' });

/** The doctor's sentence on overdue deliveries: what the sweeper does with them, and when to worry. */
function overdueNext(count: number, graceSeconds: number): string {
  const span = (s: number) => (s % 60 ? `${s} s` : `${s / 60} min`);
  const them = count === 1 ? 'it' : 'them';
  return (
    `${count === 1 ? 'This delivery is' : `These ${count} deliveries are`} more than ${span(graceSeconds)} past ` +
    'the next attempt: the queue message was most likely lost (the Worker stopped mid-delivery). The minute ' +
    `sweeper sends ${them} again at its next run, oldest first; if the queue is only slow, it waits longer after ` +
    `each re-send (doubling, at most ${span(graceSeconds * MAX_BACKOFF_GRACES)}). Nothing to do unless the count ` +
    'stays: then check that the minute jobs run.'
  );
}

/** The fix for an owner default address that is set but receives nothing (unsubscribed, suppressed, pending…). */
function ownerNotDeliverableAction(handle: string, owner: Record<string, unknown>): string {
  const reason = owner.status_reason ? ` (${asClause(owner.status_reason as string)})` : '';
  const put = `PUT /v2/handles/${handle}/notifications/owner-default-email`;
  if (owner.status === 'pending_confirmation')
    return `${owner.email as string} has not confirmed yet${reason}: the owner must click the link in AWS's mail.`;
  return (
    `${owner.email as string} is ${owner.status as string}${reason}, so critical events reach nobody through it: ` +
    `set another address with ${put}, or unset it ({"email": null}) and set it again if this mailbox should ` +
    'receive mail.'
  );
}

/** The doctor's line on deferred deliveries: how many wait, and when the next goes. */
function deferredSection(row: Record<string, unknown> | undefined, spreadMs: number) {
  const count = (row?.n as number | undefined) ?? 0;
  const nextReleaseAt = (row?.next as string | null | undefined) ?? null;
  return {
    count,
    nextReleaseAt,
    next: count
      ? `${count >= 1000 ? 'At least 1000' : count} deliveries of off_peak events wait for a peak window to end; the ` +
        `minute sweeper sends them from ${nextReleaseAt}, spread over ${spreadWords(spreadMs)}. Nothing to do.`
      : null,
  };
}

export const HealthReport = z
  .object({
    handle: z.string(),
    generatedAt: z.string(),
    status: z.enum(['healthy', 'degraded', 'critical']),
    webhooks: z.object({
      total: z.number().int(),
      enabled: z.number().int(),
      failing: z.array(
        z.object({
          id: z.string(),
          url: z.string(),
          consecutiveFailures: z.number().int(),
          failingSince: z.string().nullable(),
          lastFailureClass: z.string().nullable(),
          lastSuccessAt: z.string().nullable(),
          projectedAutoDisableAt: z.string().nullable(),
          retryPolicy: z.string().openapi({ description: 'The retry policy its failing deliveries follow.' }),
          action: Action,
        }),
      ),
      paced: z
        .array(
          z.object({
            id: z.string(),
            url: z.string(),
            rateLimit: z.number().int(),
            beingPaced: z.boolean().openapi({ description: 'Deliveries are waiting for their slot right now.' }),
            waiting: z.number().int().nullable().openapi({ description: 'Deliveries holding a later slot.' }),
            pacedUntil: z.string().nullable().openapi({ description: 'The last slot held: the backlog ends then.' }),
            retryPolicy: z.string(),
            note: z.string(),
          }),
        )
        .openapi({ description: 'Webhooks with a rateLimit, and whether their pacer holds deliveries back now.' }),
      disabled: z.array(
        z.object({
          id: z.string(),
          url: z.string(),
          disabledReason: z.string().nullable(),
          disabledAt: z.string().nullable(),
          action: Action,
        }),
      ),
    }),
    deadDeliveries24h: z.object({
      count: z.number().int(),
      byErrorClass: z.record(z.string(), z.number().int()),
      recent: z.array(
        z.object({
          deliveryId: z.string(),
          subscriptionId: z.string().nullable(),
          target: z.string(),
          errorClass: z.string().nullable(),
          at: z.string(),
        }),
      ),
      action: Action.nullable(),
    }),
    overdueDeliveries: z
      .object({
        count: z.number().int(),
        oldest: z
          .object({
            deliveryId: z.string(),
            status: z.string(),
            target: z.string(),
            dueAt: z.string().openapi({ description: 'When its next attempt was due.' }),
          })
          .nullable(),
        next: z.string().nullable().openapi({ description: 'What happens next, and when to worry.' }),
      })
      .openapi({
        description:
          'Queued or retrying deliveries past their due time by more than OVERDUE_AFTER_SECONDS: their queue ' +
          'message was most likely lost (docs/design.md#overdue-deliveries).',
      }),
    deferredDeliveries: z
      .object({
        count: z.number().int().openapi({ description: 'Counted up to 1000.' }),
        nextReleaseAt: z.string().nullable(),
        next: z.string().nullable(),
      })
      .openapi({
        description:
          'Deliveries of off_peak events waiting out a peak campaign window (docs/design.md#peak-campaign-windows).',
      }),
    emailSubscriptions: z.object({
      pendingConfirmation: z.array(z.object({ id: z.string(), email: z.string(), since: z.string() })),
      stale: z.array(z.object({ id: z.string(), email: z.string(), reason: z.string().nullable() })),
      suppressed: z.array(z.object({ id: z.string(), email: z.string(), reason: z.string().nullable() })),
      action: Action.nullable(),
    }),
    emailDelivery: z
      .object({
        delivered24h: z.number().int(),
        awaitingVerdict24h: z.number().int(),
        deferred24h: z.number().int(),
        refused24h: z.number().int(),
        action: Action.nullable(),
      })
      .openapi({
        description: "The last 24 h of sent mails by Email Sending's verdict (docs/design.md#email-events).",
      }),
    ownerDefaultEmail: z.object({
      state: z.enum(['set', 'unset', 'not_deliverable']),
      email: z.string().nullable(),
      action: Action.nullable(),
    }),
    criticalCoverage: z.object({
      covered: z.boolean(),
      types: z.array(z.object({ type: z.string(), recipients: z.number().int(), undeliverable: z.boolean() })),
      undeliverable24h: z.number().int(),
      action: Action.nullable(),
    }),
    warnings: z.array(WarningSchema),
    // ── Storage: retention, purge, archives, the database's size (docs/design.md#storage-budget) ──
    storage: StorageReportSchema,
  })
  .openapi('DeliveryHealth');

const healthRoute = createRoute(
  guard(
    { handle: true, scopes: ['notifications:read'] },
    {
      method: 'get',
      path: '/v2/handles/{handle}/health',
      operationId: 'getDeliveryHealth',
      tags: ['Delivery Health'],
      summary: "Delivery doctor: what loses or delays this handle's events",
      request: { params: HandlePathParams },
      responses: { 200: jsonResponse(HealthReport, 'The report.') },
    },
  ),
);

export const healthRoutes = createRouter().openapi(healthRoute, async (c) => {
  const { handle } = c.req.valid('param');
  const d1 = await handleD1(c);
  const db = getDb(d1);
  const now = Date.now();
  const dayAgo = new Date(now - 86_400_000).toISOString();
  const grace = config(c.env).overdueAfterSeconds;
  const [ctx, [dead, undeliverable, webhookRows, emailRows, verdicts, deferred, overdueCount, overdueOldest], storage] =
    await Promise.all([
      loadMatchContext(db, handle),
      d1.batch<Record<string, unknown>>([
        d1
          .prepare(
            `SELECT id, subscription_id, target, last_error_class, updated_at FROM deliveries
         WHERE handle = ?1 AND status = 'dead' AND kind = 'event' AND updated_at >= ?2
         ORDER BY updated_at DESC LIMIT 1000`,
          )
          .bind(handle, dayAgo),
        undeliverableCount(d1, handle, boundaryId('ntf', now - 86_400_000)),
        d1
          .prepare(
            `SELECT id, url, enabled, consecutive_failures, failing_since, last_failure_class, last_success_at,
           disabled_reason, disabled_at, retry_policy, retry_delays, rate_limit
         FROM webhook_subscriptions WHERE handle = ?1`,
          )
          .bind(handle),
        d1
          .prepare(
            `SELECT id, kind, email, status, status_reason, created_at FROM email_subscriptions WHERE handle = ?1`,
          )
          .bind(handle),
        emailVerdictsOfHandle(d1, handle, now),
        d1
          .prepare(
            `SELECT count(*) AS n, min(next_attempt_at) AS next FROM (SELECT next_attempt_at FROM deliveries
           WHERE handle = ?1 AND status = 'deferred' ORDER BY next_attempt_at LIMIT 1000)`,
          )
          .bind(handle),
        ...overdueOfHandle(d1, handle, new Date(now), grace),
      ]),
      storageReport(d1, handle, config(c.env).d1SizeLimitBytes),
    ]);
  if (!ctx) throw problems.notFound();

  const webhooks = webhookRows!.results;
  const policyOf = (w: Record<string, unknown>) =>
    describeRetryPolicy(
      retryPolicyOf(
        { retryPolicy: w.retry_policy as RetryPolicyName, retryDelays: (w.retry_delays as string | null) ?? null },
        config(c.env).retryDelaysSeconds,
      ),
    );
  const paced = await Promise.all(
    webhooks
      .filter((w) => w.enabled && w.rate_limit)
      .map(async (w) => {
        const id = w.id as string;
        const status = await pacerStatus(c.env.PACER, id);
        const rate = w.rate_limit as number;
        const beingPaced = (status?.waiting ?? 0) > 0;
        return {
          id,
          url: w.url as string,
          rateLimit: rate,
          beingPaced,
          waiting: status?.waiting ?? null,
          pacedUntil: status?.pacedUntil ?? null,
          retryPolicy: policyOf(w),
          note: !status
            ? 'Its pacer could not be asked just now; its deliveries wait until it answers.'
            : beingPaced
              ? `Being paced: ${status.waiting} deliveries wait for their slot at ${rate} per second, the last at ` +
                `${status.pacedUntil}. Nothing to do: they go in order, without using an attempt.`
              : `Paced at ${rate} per second; nothing is waiting.`,
        };
      }),
  );
  const failing = webhooks
    .filter((w) => w.enabled && (w.consecutive_failures as number) > 0)
    .map((w) => ({
      id: w.id as string,
      url: w.url as string,
      consecutiveFailures: w.consecutive_failures as number,
      failingSince: (w.failing_since as string | null) ?? null,
      lastFailureClass: (w.last_failure_class as string | null) ?? null,
      lastSuccessAt: (w.last_success_at as string | null) ?? null,
      projectedAutoDisableAt: w.failing_since
        ? new Date(Date.parse(w.failing_since as string) + AUTO_DISABLE_DAYS * 86_400_000).toISOString()
        : null,
      retryPolicy: policyOf(w),
      action:
        `Run POST /v2/handles/${handle}/webhooks/${w.id as string}/test and read the diagnosis; fix the ` +
        'endpoint before it is disabled.',
    }));
  const disabled = webhooks
    .filter((w) => !w.enabled)
    .map((w) => ({
      id: w.id as string,
      url: w.url as string,
      disabledReason: (w.disabled_reason as string | null) ?? null,
      disabledAt: (w.disabled_at as string | null) ?? null,
      action:
        `Fix the endpoint, PATCH …/webhooks/${w.id as string} {"enabled": true}, then POST ` +
        `…/webhooks/${w.id as string}/recover.`,
    }));

  const deadRows = dead!.results;
  const byErrorClass: Record<string, number> = {};
  for (const d of deadRows) {
    const cls = (d.last_error_class as string | null) ?? 'unknown';
    byErrorClass[cls] = (byErrorClass[cls] ?? 0) + 1;
  }

  const emails = emailRows!.results.filter((e) => e.kind === 'standard');
  const pick = (status: string) => emails.filter((e) => e.status === status);
  const owner = emailRows!.results.find((e) => e.kind === 'owner_default');
  const ownerState = !owner ? 'unset' : owner.status === 'active' ? 'set' : 'not_deliverable';

  const critical = EVENT_CATALOG.filter((e) => e.defaultSeverity === 'critical' && !e.system).map((e) => {
    const plan = planRecipients(
      { type: e.type, severity: 'critical', source: null, data: e.sample },
      ctx.settings,
      ctx.webhooks,
      ctx.emails,
    );
    return {
      type: e.type,
      recipients: plan.recipients.filter((r) => r.outcome === 'deliver').length,
      undeliverable: plan.undeliverable,
    };
  });
  const covered = critical.every((t) => !t.undeliverable);
  const undeliverable24h = (undeliverable!.results[0]?.n as number) ?? 0;

  const overdue = readOverdue(overdueCount!, overdueOldest!);

  const status =
    !covered || undeliverable24h > 0
      ? 'critical'
      : failing.length ||
          deadRows.length ||
          disabled.length ||
          ownerState !== 'set' ||
          overdue.count ||
          storageDegraded(storage, now)
        ? 'degraded'
        : 'healthy';

  return c.json(
    {
      handle,
      generatedAt: new Date(now).toISOString(),
      status,
      webhooks: {
        total: webhooks.length,
        enabled: webhooks.filter((w) => w.enabled).length,
        failing,
        disabled,
        paced,
      },
      deadDeliveries24h: {
        count: deadRows.length,
        byErrorClass,
        recent: deadRows.slice(0, 20).map((d) => ({
          deliveryId: d.id as string,
          subscriptionId: (d.subscription_id as string | null) ?? null,
          target: d.target as string,
          errorClass: (d.last_error_class as string | null) ?? null,
          at: d.updated_at as string,
        })),
        action: deadRows.length
          ? "Read each delivery's attempts in …/webhooks/{id}/deliveries; redeliver with " +
            '…/deliveries/{id}/retry or …/webhooks/{id}/recover.'
          : null,
      },
      overdueDeliveries: { ...overdue, next: overdue.count ? overdueNext(overdue.count, grace) : null },
      deferredDeliveries: deferredSection(deferred!.results[0], config(c.env).releaseSpreadMs),
      emailSubscriptions: {
        pendingConfirmation: pick('pending_confirmation').map((e) => ({
          id: e.id as string,
          email: e.email as string,
          since: e.created_at as string,
        })),
        stale: pick('stale').map((e) => ({
          id: e.id as string,
          email: e.email as string,
          reason: (e.status_reason as string | null) ?? null,
        })),
        suppressed: pick('suppressed').map((e) => ({
          id: e.id as string,
          email: e.email as string,
          reason: (e.status_reason as string | null) ?? null,
        })),
        action:
          pick('pending_confirmation').length || pick('stale').length || pick('suppressed').length
            ? 'Pending addresses must click their confirmation link; stale and suppressed ones must be deleted ' +
              'and subscribed again.'
            : null,
      },
      emailDelivery: emailVerdictCounts(verdicts!.results[0]!, now),
      ownerDefaultEmail: {
        state: ownerState,
        email: (owner?.email as string | undefined) ?? null,
        action:
          ownerState === 'set'
            ? null
            : ownerState === 'unset'
              ? `Set an owner default email with PUT /v2/handles/${handle}/notifications/owner-default-email: ` +
                'without it, critical events have no guaranteed recipient.'
              : ownerNotDeliverableAction(handle, owner!),
      },
      criticalCoverage: {
        covered,
        types: critical,
        undeliverable24h,
        action: covered
          ? null
          : 'Set an owner default email, or a subscription that matches every critical event type.',
      },
      warnings: settingsWarnings(ctx.settings, ctx.webhooks, ctx.emails),
      storage,
    },
    200,
  );
});
