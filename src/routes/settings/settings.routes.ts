/**
 * Notification settings (docs/design.md#events-settings-and-matching): `GET` with `ETag` and `warnings`, `PUT` full
 * replace guarded by `If-Match`, and `POST …/evaluate`, the dry run that says for a sample event which recipients get
 * it and which rule decided.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { and, eq, sql } from 'drizzle-orm';
import { WRITER_ROLES } from '../../auth/scopes.ts';
import type { getDb } from '../../db/client.ts';
import { notificationSettings } from '../../db/schema.ts';
import { type MatchEvent, type MatchSettings, planRecipients } from '../../delivery/match.ts';
import {
  loadMatchContext,
  type MatchContext,
  type SettingsRow,
  toMatchSettings,
} from '../../delivery/match-context.ts';
import { config } from '../../env.ts';
import { createRouter, errorResponses, guard, jsonBody, jsonResponse } from '../../http/openapi.ts';
import { eventTypeInfo } from '../../lib/event-catalog.ts';
import { fromJsonColumn, toJsonColumn } from '../../lib/json.ts';
import { type PeakWindows, peakWindowEnd, spreadWords } from '../../lib/peak-windows.ts';
import { problems } from '../../lib/problem.ts';
import { handleDb } from '../../middleware/auth.ts';
import { OWNER_DEFAULT_ID } from '../email-subscriptions/email-subscriptions.schemas.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import { EvaluateBody, EvaluateResponse, PutSettingsBody, SettingsSchema } from './settings.schemas.ts';
import { settingsWarnings } from './settings.warnings.ts';

const etagOf = (version: number) => `"v${version}"`;

function settingsToApi(row: SettingsRow, ctx: MatchContext) {
  return {
    channels: { email: { enabled: row.emailEnabled }, webhook: { enabled: row.webhookEnabled } },
    eventFilter: fromJsonColumn<Record<string, unknown[]>>(row.eventFilter),
    ownerFallback: row.ownerFallback,
    peakWindows: fromJsonColumn<PeakWindows>(row.peakWindows),
    campaignWindowUntil: row.campaignWindowUntil,
    version: row.version,
    updatedAt: row.updatedAt,
    warnings: settingsWarnings(toMatchSettings(row), ctx.webhooks, ctx.emails),
  };
}

async function requireContext(db: ReturnType<typeof getDb>, handle: string): Promise<MatchContext> {
  const ctx = await loadMatchContext(db, handle);
  // Every provisioned handle has a settings row; its absence means the handle is gone.
  if (!ctx) throw problems.notFound();
  return ctx;
}

/** Whether an event published now would be deferred (docs/design.md#peak-campaign-windows), and why (not). */
function deferralVerdict(delivery: 'now' | 'off_peak', severity: string, windowEnd: Date | null, spreadMs: number) {
  const ends = windowEnd?.toISOString() ?? null;
  const verdict = (deferred: boolean, reason: string) => ({
    deferred,
    until: deferred ? ends : null,
    peakWindowEndsAt: ends,
    reason,
  });
  if (!windowEnd) return verdict(false, 'No peak window is open now: it would be delivered at once.');
  if (severity === 'critical') return verdict(false, 'Critical events are never deferred: delivered at once.');
  if (delivery !== 'off_peak')
    return verdict(false, 'Published with delivery "now" (the default): delivered at once, even in a peak window.');
  return verdict(
    true,
    `A peak window is open until ${ends}: its deliveries would wait, then go over ${spreadWords(spreadMs)}.`,
  );
}

const IfMatchHeader = z.object({
  'if-match': z
    .string()
    .optional()
    .openapi({ param: { name: 'if-match', in: 'header' }, description: 'The ETag from GET; a stale one → 412.' }),
});

const getRoute = createRoute(
  guard(
    { handle: true, scopes: ['notifications:read'] },
    {
      method: 'get',
      path: '/v2/handles/{handle}/notification-settings',
      operationId: 'getNotificationSettings',
      tags: ['Notification Settings'],
      summary: 'Notification settings, with warnings',
      description: 'Warnings name configurations that lose events silently, e.g. `owner_default_email_unset`.',
      request: { params: HandlePathParams },
      responses: {
        200: { ...jsonResponse(SettingsSchema, 'The settings.'), headers: { ETag: { schema: { type: 'string' } } } },
      },
    },
  ),
);

const putRoute = createRoute(
  guard(
    { handle: true, scopes: ['notifications:write'], roles: WRITER_ROLES },
    {
      method: 'put',
      path: '/v2/handles/{handle}/notification-settings',
      operationId: 'replaceNotificationSettings',
      tags: ['Notification Settings'],
      summary: 'Replace the notification settings',
      description:
        "Full replace. Send `If-Match` with the ETag you read to avoid overwriting someone else's change (412).",
      request: { params: HandlePathParams, headers: IfMatchHeader, body: jsonBody(PutSettingsBody) },
      responses: {
        200: {
          ...jsonResponse(SettingsSchema, 'The new settings.'),
          headers: { ETag: { schema: { type: 'string' } } },
        },
        ...errorResponses(400, 412, 413, 415),
      },
    },
  ),
);

const evaluateRoute = createRoute(
  guard(
    { handle: true, scopes: ['notifications:read'], throttle: 'reads', sideEffectFree: true },
    {
      method: 'post',
      path: '/v2/handles/{handle}/notification-settings/evaluate',
      operationId: 'evaluateNotificationSettings',
      tags: ['Notification Settings'],
      summary: 'Dry run: who would receive this event, and why not',
      description:
        'Evaluates the saved settings (or the `settings` in the body) and every subscription against a sample ' +
        'event (`eventType` from the catalog, or your own `event`). Nothing is sent or stored.',
      request: { params: HandlePathParams, body: jsonBody(EvaluateBody) },
      responses: {
        200: jsonResponse(EvaluateResponse, "Each recipient's verdict."),
        ...errorResponses(400, 413, 415, 422),
      },
    },
  ),
);

export const settingsRoutes = createRouter()
  .openapi(getRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const ctx = await requireContext(await handleDb(c), handle);
    c.header('ETag', etagOf(ctx.settingsRow.version));
    return c.json(settingsToApi(ctx.settingsRow, ctx), 200);
  })
  .openapi(putRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const body = c.req.valid('json');
    const ifMatch = c.req.header('if-match');
    const db = await handleDb(c);
    const ctx = await requireContext(db, handle);
    const current = ctx.settingsRow.version;
    if (
      ifMatch !== undefined &&
      ifMatch.trim() !== '*' &&
      !ifMatch
        .split(',')
        .map((t) => t.trim())
        .includes(etagOf(current))
    ) {
      throw problems.preconditionFailed(
        `The settings changed since you read them (now ${etagOf(current)}); GET them again and retry.`,
      );
    }
    // The version check is repeated in the UPDATE itself, so two concurrent PUTs cannot both win.
    const updated = await db
      .update(notificationSettings)
      .set({
        emailEnabled: body.channels.email.enabled,
        webhookEnabled: body.channels.webhook.enabled,
        eventFilter: toJsonColumn(body.eventFilter),
        ownerFallback: body.ownerFallback,
        ...(body.peakWindows !== undefined ? { peakWindows: toJsonColumn(body.peakWindows) } : {}),
        version: sql`${notificationSettings.version} + 1`,
        updatedAt: new Date().toISOString(),
      })
      .where(and(eq(notificationSettings.handle, handle), eq(notificationSettings.version, current)))
      .returning()
      .get();
    if (!updated)
      throw problems.preconditionFailed('The settings changed while this request ran; GET them again and retry.');
    c.header('ETag', etagOf(updated.version));
    return c.json(settingsToApi(updated, ctx), 200);
  })
  .openapi(evaluateRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const body = c.req.valid('json');
    let event: MatchEvent & { source: string | null };
    if (body.eventType !== undefined) {
      const info = eventTypeInfo(body.eventType);
      if (!info) throw problems.unprocessable(`Unknown event type ${body.eventType}; see GET /v2/event-types.`);
      event = { type: info.type, severity: info.defaultSeverity, source: null, data: info.sample };
    } else {
      const e = body.event!;
      event = {
        type: e.type,
        severity: e.severity ?? eventTypeInfo(e.type)?.defaultSeverity ?? 'info',
        source: e.source ?? null,
        data: e.data,
      };
    }
    const ctx = await requireContext(await handleDb(c), handle);
    const settings: MatchSettings = body.settings
      ? {
          emailEnabled: body.settings.channels.email.enabled,
          webhookEnabled: body.settings.channels.webhook.enabled,
          eventFilter: body.settings.eventFilter,
          ownerFallback: body.settings.ownerFallback,
        }
      : ctx.settings;
    const plan = planRecipients(event, settings, ctx.webhooks, ctx.emails);
    const windows =
      body.settings?.peakWindows !== undefined
        ? body.settings.peakWindows
        : fromJsonColumn<PeakWindows>(ctx.settingsRow.peakWindows);
    const deferral = deferralVerdict(
      body.delivery ?? 'now',
      event.severity,
      peakWindowEnd(windows, ctx.settingsRow.campaignWindowUntil, new Date()),
      config(c.env).releaseSpreadMs,
    );
    return c.json(
      {
        event,
        recipients: plan.recipients.map((r) =>
          r.recipientType === 'owner_default' ? { ...r, subscriptionId: OWNER_DEFAULT_ID } : r,
        ),
        undeliverable: plan.undeliverable,
        deferral,
        settingsSource: body.settings ? ('request' as const) : ('saved' as const),
      },
      200,
    );
  });
