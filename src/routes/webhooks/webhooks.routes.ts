/**
 * Webhook subscriptions (docs/design.md#routes): list, create (secret shown once), get, update, delete.
 * URL rules (SSRF) are checked here at registration and again by the pipeline before every send.
 */

import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { WRITER_ROLES } from '../../auth/scopes.ts';
import { MAX_RATE_LIMIT } from '../../delivery/pacer.ts';
import { retryPolicyOf } from '../../delivery/retry-policy.ts';
import { newWebhookSecret } from '../../delivery/signing.ts';
import { type AppEnv, config } from '../../env.ts';
import { createRouter, errorResponses, guard, jsonBody, jsonResponse, PageQuery, pageOf } from '../../http/openapi.ts';
import { requireKnownEventTypes } from '../../http/schemas.ts';
import { encryptSecret, importEncryptionKey } from '../../lib/crypto.ts';
import { headerValueProblem, shownHeaderValue } from '../../lib/http-fields.ts';
import { boundaryId, newId } from '../../lib/ids.ts';
import { fromJsonColumn, toJsonColumn } from '../../lib/json.ts';
import { decodeCursor, toPage } from '../../lib/pagination.ts';
import { problems } from '../../lib/problem.ts';
import { retryDelaysProblem } from '../../lib/retry-delays.ts';
import { checkWebhookUrl } from '../../lib/url-rules.ts';
import { handleD1, handleDb } from '../../middleware/auth.ts';
import { answerInBatch } from '../../middleware/idempotency.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import {
  deleteWebhook,
  getWebhook,
  hourlyActivity,
  insertWebhook,
  listWebhooks,
  updateWebhook,
  type WebhookRow,
} from './webhooks.repo.ts';
import {
  CreatedWebhookSchema,
  CreateWebhookBody,
  UpdateWebhookBody,
  WEBHOOK_ID,
  WebhookParams,
  WebhookSchema,
} from './webhooks.schemas.ts';

/**
 * Whether the caller may change the handle's webhooks (webhooks:write and a writer role; a service token acts as an
 * admin): only then are custom header values shown (docs/design.md#api-conventions).
 */
function canWriteWebhooks(c: Context<AppEnv>): boolean {
  const role = c.get('role');
  return (
    c.get('principal')?.scopes.has('webhooks:write') === true &&
    (role === 'service' || (role !== undefined && WRITER_ROLES.includes(role)))
  );
}

/** Custom headers as the caller may see them: names always, values per {@link shownHeaderValue}. */
function shownHeaders(headers: Record<string, string> | null, canWrite: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    Object.defineProperty(out, name, {
      value: shownHeaderValue(name, value, canWrite),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** 422 naming the first custom header whose value could not be sent (every delivery would fail). */
function requireSendableHeaders(headers: Record<string, string> | undefined): void {
  for (const [name, value] of Object.entries(headers ?? {})) {
    const problem = headerValueProblem(value);
    if (problem) {
      throw problems.unprocessable(`The value of header ${name} ${problem}`, {
        field: `headers.${name}`,
        header: name,
      });
    }
  }
}

/** A retry policy and rate as sent, checked against the service's bounds (a 422 naming the field) and as columns. */
function endpointControls(body: {
  retryPolicy?: { name: WebhookRow['retryPolicy']; delaysSeconds?: number[] | undefined } | undefined;
  rateLimit?: number | null | undefined;
}): Partial<Pick<WebhookRow, 'retryPolicy' | 'retryDelays' | 'rateLimit'>> {
  const out: Partial<Pick<WebhookRow, 'retryPolicy' | 'retryDelays' | 'rateLimit'>> = {};
  const policy = body.retryPolicy;
  if (policy) {
    const delays = policy.delaysSeconds;
    if (policy.name !== 'custom' && delays !== undefined) {
      throw problems.unprocessable(
        `retryPolicy.delaysSeconds belongs to a custom policy; "${policy.name}" has its own delays. Send ` +
          '{"name": "custom", "delaysSeconds": [10, 60, 600]} to choose them.',
        { field: 'retryPolicy.delaysSeconds' },
      );
    }
    const problem = policy.name === 'custom' ? retryDelaysProblem(delays ?? []) : null;
    if (problem) {
      throw problems.unprocessable(`retryPolicy.delaysSeconds ${problem}`, {
        field: 'retryPolicy.delaysSeconds',
        example: [10, 60, 600],
      });
    }
    out.retryPolicy = policy.name;
    out.retryDelays = policy.name === 'custom' ? JSON.stringify(delays) : null;
  }
  if (body.rateLimit !== undefined) {
    const r = body.rateLimit;
    if (r !== null && !(Number.isInteger(r) && r >= 1 && r <= MAX_RATE_LIMIT)) {
      throw problems.unprocessable(
        `rateLimit must be a whole number of deliveries per second from 1 to ${MAX_RATE_LIMIT} (or null for no ` +
          `limit); got ${JSON.stringify(r)}.`,
        { field: 'rateLimit', example: 20 },
      );
    }
    out.rateLimit = r;
  }
  return out;
}

/**
 * The API view of a subscription row; header values only for a caller who `canWrite` (see canWriteWebhooks).
 * `defaultDelays` is the deployment's `RETRY_DELAYS_SECONDS` (empty: Svix's schedule), what `default` means.
 */
export function webhookToApi(row: WebhookRow, canWrite: boolean, defaultDelays: readonly number[] = []) {
  const policy = retryPolicyOf(row, defaultDelays);
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    eventTypes: fromJsonColumn<string[]>(row.eventTypes),
    filterPolicy: fromJsonColumn<Record<string, unknown[]>>(row.filterPolicy),
    headers: shownHeaders(fromJsonColumn<Record<string, string>>(row.headers), canWrite),
    enabled: row.enabled,
    status: row.enabled ? ('active' as const) : ('disabled' as const),
    disabledReason: row.disabledReason,
    disabledAt: row.disabledAt,
    health: {
      consecutiveFailures: row.consecutiveFailures,
      failingSince: row.failingSince,
      lastSuccessAt: row.lastSuccessAt,
      lastFailureAt: row.lastFailureAt,
      lastFailureClass: row.lastFailureClass,
    },
    retryPolicy: { name: policy.name, delaysSeconds: [...policy.delaysSeconds], maxAttempts: policy.maxAttempts },
    rateLimit: row.rateLimit,
    secretRotation:
      row.previousSecretExpiresAt && Date.parse(row.previousSecretExpiresAt) > Date.now()
        ? { previousSecretExpiresAt: row.previousSecretExpiresAt }
        : null,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** 422 naming the URL rule that failed. */
function requireAllowedUrl(c: Context<AppEnv>, url: string): string {
  const check = checkWebhookUrl(url, { allowInsecure: config(c.env).allowInsecureWebhookTargets });
  if (!check.ok) throw problems.unprocessable(check.message, { rule: check.rule, field: 'url' });
  return check.url.toString();
}

const read = { handle: true, scopes: ['webhooks:read' as const] };
const write = { handle: true, scopes: ['webhooks:write' as const], roles: WRITER_ROLES };

const WebhookListQuery = PageQuery.extend({
  include: z
    .enum(['activity'])
    .optional()
    .openapi({
      param: { name: 'include', in: 'query' },
      description: '`activity`: add `activity24h` to each subscription.',
    }),
});

export const WebhookListItemSchema = WebhookSchema.extend({
  activity24h: z
    .object({ succeeded: z.array(z.number().int()), failed: z.array(z.number().int()) })
    .optional()
    .openapi({
      description: 'With include=activity: attempts per hour over the last 24 h, oldest hour first (24 entries each).',
    }),
}).openapi('WebhookListItem');

const listRoute = createRoute(
  guard(read, {
    method: 'get',
    path: '/v2/handles/{handle}/webhooks',
    operationId: 'listWebhooks',
    tags: ['Webhooks'],
    summary: 'List webhook subscriptions with their health',
    description: "`include=activity` adds each subscription's attempts per hour over the last 24 h (`activity24h`).",
    request: { params: HandlePathParams, query: WebhookListQuery },
    responses: {
      200: jsonResponse(pageOf(WebhookListItemSchema, 'WebhookPage'), 'Newest first.'),
      ...errorResponses(400),
    },
  }),
);

const createWebhookRoute = createRoute(
  guard(write, {
    method: 'post',
    path: '/v2/handles/{handle}/webhooks',
    operationId: 'createWebhook',
    tags: ['Webhooks'],
    summary: 'Create a webhook subscription',
    description:
      'Returns the signing secret once. The URL must be https on port 443 or 8443 with a public DNS name (no ' +
      'IP literals, localhost or internal names).',
    request: { params: HandlePathParams, body: jsonBody(CreateWebhookBody) },
    responses: {
      201: jsonResponse(CreatedWebhookSchema, 'Created; keep the secret.'),
      ...errorResponses(400, 413, 415),
    },
  }),
);

const getRoute = createRoute(
  guard(read, {
    method: 'get',
    path: '/v2/handles/{handle}/webhooks/{id}',
    operationId: 'getWebhook',
    tags: ['Webhooks'],
    summary: 'Get one webhook subscription',
    request: { params: WebhookParams },
    responses: { 200: jsonResponse(WebhookSchema, 'The subscription.') },
  }),
);

const updateRoute = createRoute(
  guard(write, {
    method: 'patch',
    path: '/v2/handles/{handle}/webhooks/{id}',
    operationId: 'updateWebhook',
    tags: ['Webhooks'],
    summary: 'Change a webhook subscription',
    description: 'Only the fields sent change. Re-enabling a disabled subscription clears its failure streak.',
    request: { params: WebhookParams, body: jsonBody(UpdateWebhookBody) },
    responses: { 200: jsonResponse(WebhookSchema, 'The updated subscription.'), ...errorResponses(400, 413, 415) },
  }),
);

const deleteRoute = createRoute(
  guard(write, {
    method: 'delete',
    path: '/v2/handles/{handle}/webhooks/{id}',
    operationId: 'deleteWebhook',
    tags: ['Webhooks'],
    summary: 'Delete a webhook subscription',
    description: 'Its pending deliveries become `cancelled` (visible in the feed, not dropped).',
    request: { params: WebhookParams },
    responses: { 204: { description: 'Deleted.' } },
  }),
);

export const webhooksRoutes = createRouter()
  .openapi(listRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const { limit, cursor, include } = c.req.valid('query');
    const rows = await listWebhooks(await handleDb(c), handle, limit + 1, decodeCursor(cursor, WEBHOOK_ID));
    const page = toPage(rows, limit);
    const canWrite = canWriteWebhooks(c);
    const activity =
      include === 'activity'
        ? await hourlyActivity(
            await handleD1(c),
            page.items.map((r) => r.id),
            Date.now(),
            (ms) => boundaryId('dlv', ms),
          )
        : null;
    return c.json(
      {
        data: page.items.map((r) => ({
          ...webhookToApi(r, canWrite, config(c.env).retryDelaysSeconds),
          ...(activity ? { activity24h: activity.get(r.id)! } : {}),
        })),
        nextCursor: page.nextCursor,
      },
      200,
    );
  })
  .openapi(createWebhookRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const body = c.req.valid('json');
    const url = requireAllowedUrl(c, body.url);
    requireSendableHeaders(body.headers);
    requireKnownEventTypes(body.eventTypes);
    const controls = endpointControls(body);
    const max = config(c.env).maxWebhooksPerHandle;
    const secret = newWebhookSecret();
    const now = new Date();
    const row: WebhookRow = {
      id: newId('whk', now.getTime()),
      handle,
      url,
      description: body.description ?? null,
      eventTypes: toJsonColumn(body.eventTypes),
      filterPolicy: toJsonColumn(body.filterPolicy),
      headers: toJsonColumn(body.headers ?? {}),
      enabled: body.enabled,
      disabledReason: body.enabled ? null : 'disabled_by_user',
      disabledAt: body.enabled ? null : now.toISOString(),
      disabledAlertPending: false,
      secretEncrypted: await encryptSecret(secret, await importEncryptionKey(c.env.ENCRYPTION_KEY)),
      previousSecretEncrypted: null,
      previousSecretExpiresAt: null,
      consecutiveFailures: 0,
      failingSince: null,
      lastSuccessAt: null,
      lastFailureAt: null,
      lastFailureClass: null,
      retryPolicy: controls.retryPolicy ?? 'default',
      retryDelays: controls.retryDelays ?? null,
      rateLimit: controls.rateLimit ?? null,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
    };
    const location = `/v2/handles/${handle}/webhooks/${row.id}`;
    const created = { ...webhookToApi(row, true, config(c.env).retryDelaysSeconds), secret };
    // The answer is recorded with the row: a retry after a lost answer replays it (docs/reliability.md#scenarios).
    const answer = await answerInBatch(c, { status: 201, body: created, headers: { Location: location } });
    if ((await insertWebhook(await handleD1(c), row, max, answer)) !== 'inserted') {
      throw problems.unprocessable(`A handle can have at most ${max} webhook subscriptions; delete one first.`, {
        limit: max,
      });
    }
    c.header('Location', location);
    return c.json(created, 201);
  })
  .openapi(getRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const row = await getWebhook(await handleDb(c), handle, id);
    if (!row) throw problems.notFound();
    return c.json(webhookToApi(row, canWriteWebhooks(c), config(c.env).retryDelaysSeconds), 200);
  })
  .openapi(updateRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const body = c.req.valid('json');
    requireSendableHeaders(body.headers);
    requireKnownEventTypes(body.eventTypes);
    const controls = endpointControls(body);
    const db = await handleDb(c);
    const current = await getWebhook(db, handle, id);
    if (!current) throw problems.notFound();
    const now = new Date().toISOString();
    const changes: Partial<WebhookRow> = { updatedAt: now, ...controls };
    if (body.url !== undefined) changes.url = requireAllowedUrl(c, body.url);
    if (body.description !== undefined) changes.description = body.description;
    if (body.eventTypes !== undefined) changes.eventTypes = toJsonColumn(body.eventTypes);
    if (body.filterPolicy !== undefined) changes.filterPolicy = toJsonColumn(body.filterPolicy);
    if (body.headers !== undefined) changes.headers = toJsonColumn(body.headers);
    if (body.enabled === true && !current.enabled) {
      // Re-enabling starts from a clean slate, or auto-disable would trip again on the old streak.
      Object.assign(changes, {
        enabled: true,
        disabledReason: null,
        disabledAt: null,
        consecutiveFailures: 0,
        failingSince: null,
      });
    } else if (body.enabled === false && current.enabled) {
      Object.assign(changes, { enabled: false, disabledReason: 'disabled_by_user', disabledAt: now });
    }
    const row = await updateWebhook(db, handle, id, changes);
    if (!row) throw problems.notFound();
    return c.json(webhookToApi(row, true, config(c.env).retryDelaysSeconds), 200);
  })
  .openapi(deleteRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const exists = await getWebhook(await handleDb(c), handle, id);
    if (!exists || !(await deleteWebhook(await handleD1(c), handle, id, new Date().toISOString())))
      throw problems.notFound();
    return c.body(null, 204);
  });
