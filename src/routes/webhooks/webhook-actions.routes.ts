/**
 * What a user does to a webhook beyond editing it (docs/design.md#routes, #debug-playbooks (playbook 1)): send a test
 * and read the diagnosis, rotate the secret, read the delivery log, and recover dead or skipped deliveries.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { WRITER_ROLES } from '../../auth/scopes.ts';
import { diagnoseWebhook, loadWebhookEvidence } from '../../delivery/diagnosis.ts';
import { loadMatchContext } from '../../delivery/match-context.ts';
import { redrive } from '../../delivery/redrive.ts';
import { newWebhookSecret } from '../../delivery/signing.ts';
import { runTestSend, testEvent } from '../../delivery/test-send.ts';
import { config } from '../../env.ts';
import { createRouter, errorResponses, guard, jsonBody, jsonResponse, PageQuery, pageOf } from '../../http/openapi.ts';
import { TimestampSchema } from '../../http/schemas.ts';
import { encryptSecret, importEncryptionKey } from '../../lib/crypto.ts';
import { defaultTestEventType } from '../../lib/event-catalog.ts';
import { boundaryId } from '../../lib/ids.ts';
import { fromJsonColumn } from '../../lib/json.ts';
import { decodeCursor, encodeCursor } from '../../lib/pagination.ts';
import { problems } from '../../lib/problem.ts';
import { handleD1, handleDb } from '../../middleware/auth.ts';
import { answerInBatch } from '../../middleware/idempotency.ts';
import { deliveryLog, deliveryToApi, redrivableSince } from '../deliveries/deliveries.repo.ts';
import { AttemptSchema, DELIVERY_ID, DeliverySchema } from '../deliveries/deliveries.schemas.ts';
import { getNotification } from '../notifications/notifications.repo.ts';
import { NOTIFICATION_ID } from '../notifications/notifications.schemas.ts';
import { getWebhook, rotateWebhookSecret } from './webhooks.repo.ts';
import { webhookToApi } from './webhooks.routes.ts';
import { WebhookParams, WebhookSchema } from './webhooks.schemas.ts';

const write = { handle: true, scopes: ['webhooks:write' as const], roles: WRITER_ROLES };

const TestBody = z
  .strictObject({
    eventType: z
      .string()
      .max(100)
      .optional()
      .openapi({ description: 'Send the catalog sample of this type (default: the first type the webhook receives).' }),
    notificationId: z
      .string()
      .regex(NOTIFICATION_ID)
      .optional()
      .openapi({ description: 'Replay this real notification instead.' }),
  })
  .refine((b) => !(b.eventType && b.notificationId), 'Send eventType or notificationId, not both.')
  .openapi('WebhookTestRequest');

const Finding = z.object({ code: z.string(), message: z.string() });
const DiagnosisSchema = z
  .object({
    summary: z.string(),
    subscription: z.object({
      status: z.enum(['active', 'disabled']),
      disabledReason: z.string().nullable(),
      consecutiveFailures: z.number().int(),
      failingSince: z.string().nullable(),
      lastSuccessAt: z.string().nullable(),
      projectedAutoDisableAt: z.string().nullable(),
      secretInRotation: z.boolean(),
      retryPolicy: z.string().openapi({
        description: 'The retry policy in force: `short (5 s, 30 s, 2 min; 4 attempts)`.',
        example: 'default (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; 8 attempts)',
      }),
      rateLimit: z.number().int().nullable(),
    }),
    test: z.object({
      eventType: z.string(),
      outcome: z.enum(['succeeded', 'failed']),
      errorClass: z.string().nullable(),
      httpStatus: z.number().int().nullable(),
      durationMs: z.number().int(),
      requestBytes: z.number().int(),
    }),
    matching: z.object({
      recentEventTypes: z.array(
        z.object({ type: z.string(), count: z.number().int(), wouldMatch: z.boolean(), reason: z.string().nullable() }),
      ),
    }),
    productionFailures: z.array(
      z.object({
        deliveryId: z.string(),
        notificationId: z.string().nullable(),
        type: z.string().nullable(),
        deliveryStatus: z.string(),
        attempts: z.number().int(),
        errorClass: z.string().nullable(),
        httpStatus: z.number().int().nullable(),
        durationMs: z.number().int(),
        requestBytes: z.number().int().nullable(),
        responseSnippet: z.string().nullable(),
        at: z.string(),
      }),
    ),
    differences: z.array(Finding),
    nextSteps: z.array(z.string()),
  })
  .openapi('WebhookDiagnosis');

export const TestResponse = z
  .object({ deliveryId: z.string(), attempt: AttemptSchema, diagnosis: DiagnosisSchema })
  .openapi('WebhookTestResult');

const testRoute = createRoute(
  guard(
    { ...write, throttle: 'test_sends' },
    {
      method: 'post',
      path: '/v2/handles/{handle}/webhooks/{id}/test',
      operationId: 'testWebhook',
      tags: ['Webhooks'],
      summary: 'Send a signed test delivery and diagnose the endpoint',
      description:
        'Runs the production builder, signer and HTTP client synchronously (recorded as a delivery of kind ' +
        'test) and compares the result with recent production deliveries: the diagnosis names what differs ' +
        '(event types, payload size, latency, secret rotation, filters) and what to do.',
      request: { params: WebhookParams, body: { ...jsonBody(TestBody), required: false } },
      responses: {
        200: jsonResponse(TestResponse, 'The attempt and the diagnosis.'),
        ...errorResponses(400, 413, 415),
      },
    },
  ),
);

const RotateBody = z
  .strictObject({
    graceHours: z
      .number()
      .int()
      .min(0)
      .max(168)
      .default(24)
      .openapi({ description: 'How long the old secret keeps signing too.' }),
  })
  .openapi('RotateSecretRequest');

export const RotatedWebhookSchema = WebhookSchema.extend({ secret: z.string() }).openapi('RotatedWebhook');

const rotateRoute = createRoute(
  guard(write, {
    method: 'post',
    path: '/v2/handles/{handle}/webhooks/{id}/rotate-secret',
    operationId: 'rotateWebhookSecret',
    tags: ['Webhooks'],
    summary: 'Rotate the signing secret',
    description:
      'Returns the new secret once. During the grace period every delivery carries a signature with each secret.',
    request: { params: WebhookParams, body: { ...jsonBody(RotateBody), required: false } },
    responses: {
      200: jsonResponse(RotatedWebhookSchema, 'The new secret, shown once.'),
      ...errorResponses(400, 413, 415),
    },
  }),
);

const DeliveryLogQuery = PageQuery;
const logRoute = createRoute(
  guard(
    { handle: true, scopes: ['webhooks:read'] },
    {
      method: 'get',
      path: '/v2/handles/{handle}/webhooks/{id}/deliveries',
      operationId: 'listWebhookDeliveries',
      tags: ['Webhooks'],
      summary: 'Delivery log: each delivery with every attempt',
      description: 'Newest first; each attempt with its class, HTTP status, duration and response snippet.',
      request: { params: WebhookParams, query: DeliveryLogQuery },
      responses: { 200: jsonResponse(pageOf(DeliverySchema, 'DeliveryPage'), 'One page.'), ...errorResponses(400) },
    },
  ),
);

const RecoverBody = z
  .strictObject({
    since: TimestampSchema.openapi({
      description: 'Redeliver dead and skipped deliveries created at or after this time.',
    }),
  })
  .openapi('RecoverRequest');
const RECOVER_LIMIT = 200;
export const RecoverResultSchema = z
  .object({ redriven: z.array(z.string()), enqueued: z.number().int(), more: z.boolean() })
  .openapi('RecoverResult');
const recoverRoute = createRoute(
  guard(write, {
    method: 'post',
    path: '/v2/handles/{handle}/webhooks/{id}/recover',
    operationId: 'recoverWebhookDeliveries',
    tags: ['Webhooks'],
    summary: 'Redeliver dead and skipped deliveries since a time',
    description: `At most ${RECOVER_LIMIT} per call, oldest first; call again while \`more\` is true.`,
    request: { params: WebhookParams, body: jsonBody(RecoverBody) },
    responses: {
      202: jsonResponse(RecoverResultSchema, 'Queued again.'),
      ...errorResponses(400, 413, 415),
    },
  }),
);

export const webhookActionsRoutes = createRouter()
  .openapi(testRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const body = (await c.req.text()) ? c.req.valid('json') : {};
    const db = await handleDb(c);
    const webhook = await getWebhook(db, handle, id);
    if (!webhook) throw problems.notFound();
    let event: ReturnType<typeof testEvent>;
    if (body.notificationId) {
      const notification = await getNotification(db, handle, body.notificationId);
      if (!notification) throw problems.unprocessable(`No notification ${body.notificationId} on this handle.`);
      event = testEvent(handle, { notification });
    } else {
      const eventType = body.eventType ?? defaultTestEventType(fromJsonColumn<string[]>(webhook.eventTypes));
      event = testEvent(handle, { eventType });
      if (!event) throw problems.unprocessable(`Unknown event type ${body.eventType}; see GET /v2/event-types.`);
    }
    const { delivery, outcome } = await runTestSend(c.env, {
      handle,
      channel: 'webhook',
      recipientType: 'webhook',
      subscriptionId: webhook.id,
      target: webhook.url,
      event: event!,
      webhook,
    });
    const [ctx, evidence] = await Promise.all([
      loadMatchContext(db, handle),
      loadWebhookEvidence(await handleD1(c), webhook),
    ]);
    const diagnosis = diagnoseWebhook({
      webhook,
      settings: ctx!.settings,
      event: event!,
      outcome,
      evidence,
      timeoutMs: config(c.env).webhookTimeoutMs,
      now: Date.now(),
      defaultDelays: config(c.env).retryDelaysSeconds,
    });
    const failed = outcome.classification.outcome === 'failed' ? outcome.classification : null;
    return c.json(
      {
        deliveryId: delivery.id,
        attempt: {
          attemptNumber: 1,
          outcome: failed ? ('failed' as const) : ('succeeded' as const),
          errorClass: failed?.errorClass ?? null,
          httpStatus: outcome.httpStatus,
          durationMs: outcome.durationMs,
          requestBytes: outcome.requestBytes,
          responseSnippet: outcome.responseSnippet,
          errorMessage: outcome.errorMessage,
          at: delivery.updatedAt,
        },
        diagnosis,
      },
      200,
    );
  })
  .openapi(rotateRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const { graceHours } = (await c.req.text()) ? c.req.valid('json') : { graceHours: 24 };
    const db = await handleDb(c);
    const current = await getWebhook(db, handle, id);
    if (!current) throw problems.notFound();
    const secret = newWebhookSecret();
    const now = new Date();
    const next = {
      secretEncrypted: await encryptSecret(secret, await importEncryptionKey(c.env.ENCRYPTION_KEY)),
      previousSecretEncrypted: graceHours > 0 ? current.secretEncrypted : null,
      previousSecretExpiresAt: graceHours > 0 ? new Date(now.getTime() + graceHours * 3600_000).toISOString() : null,
      updatedAt: now.toISOString(),
    };
    const rotated = { ...webhookToApi({ ...current, ...next }, true, config(c.env).retryDelaysSeconds), secret };
    // Recorded with the write: a retry after a lost answer replays this secret instead of rotating again, which would
    // drop the secret the receiver still holds (docs/reliability.md#scenarios).
    const answer = await answerInBatch(c, { status: 200, body: rotated });
    if (!(await rotateWebhookSecret(await handleD1(c), current, next, answer))) throw problems.notFound();
    return c.json(rotated, 200);
  })
  .openapi(logRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const { limit, cursor } = c.req.valid('query');
    const db = await handleDb(c);
    if (!(await getWebhook(db, handle, id))) throw problems.notFound();
    const rows = await deliveryLog(db, handle, id, limit + 1, decodeCursor(cursor, DELIVERY_ID));
    const items = rows.slice(0, limit);
    return c.json(
      {
        data: items.map((r) => deliveryToApi(r.row, r.attempts)),
        nextCursor: rows.length > limit ? encodeCursor(items[items.length - 1]!.row.id) : null,
      },
      200,
    );
  })
  .openapi(recoverRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const { since } = c.req.valid('json');
    const db = await handleDb(c);
    const webhook = await getWebhook(db, handle, id);
    if (!webhook) throw problems.notFound();
    if (!webhook.enabled) {
      throw problems.conflict(
        'The subscription is disabled; enable it first (PATCH {"enabled": true}), or its deliveries would be ' +
          'skipped again.',
      );
    }
    const rows = await redrivableSince(db, handle, id, boundaryId('dlv', Date.parse(since)), RECOVER_LIMIT + 1);
    const result = await redrive(c.env, await handleD1(c), rows.slice(0, RECOVER_LIMIT));
    return c.json({ ...result, more: rows.length > RECOVER_LIMIT }, 202);
  });
