/**
 * `POST /v2/handles/{handle}/events` (docs/design.md#routes): publish an event. It is matched, written with its
 * deliveries in one batch and enqueued before the 202; a repeated `sourceEventId` answers with the first notification.
 * `POST …/events/batch` (docs/design.md#batch-publish): up to 100 events through the same ingest, a result per event.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Principal } from '../../auth/principal.ts';
import { WRITER_ROLES } from '../../auth/scopes.ts';
import { getDb } from '../../db/client.ts';
import {
  type BatchOutcome,
  checkEvent,
  IngestRejected,
  ingestBatch,
  ingestReads,
  ingestWithReads,
  MAX_BATCH_EVENTS,
} from '../../delivery/ingest.ts';
import { EventInput } from '../../delivery/messages.ts';
import { runContext } from '../../env.ts';
import {
  createRouter,
  errorResponses,
  fieldErrors,
  guard,
  jsonBody,
  jsonResponse,
  ProblemSchema,
} from '../../http/openapi.ts';
import { type ProblemError, problemBody, problems } from '../../lib/problem.ts';
import { batchWithAccess, handleD1 } from '../../middleware/auth.ts';
import { dailyLimitProblem } from '../../middleware/quota.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import { RecipientSummarySchema } from '../notifications/notifications.schemas.ts';

// The queue path's schema, rebuilt here with the zod that @hono/zod-openapi has extended: EventInput itself may have
// been built before that extension (delivery/ never imports Hono), and then has no `.openapi()`.
const PublishBody = z.strictObject(EventInput.shape).openapi('PublishEventRequest', {
  example: {
    type: 'order.fulfilled',
    data: { orderId: 'ord_10482', trackingNumber: 'DL123456789IN' },
    sourceEventId: 'oms-evt-77812',
  },
});

export const PublishResponse = z
  .object({
    notificationId: z.string(),
    status: z.string().openapi({ description: "The notification's aggregate status right after ingest." }),
    duplicate: z
      .boolean()
      .openapi({ description: 'True when sourceEventId was seen before (nothing new was written).' }),
    deferredUntil: z.string().nullable().openapi({
      description: 'An off_peak event in a peak campaign window: when its first deferred delivery goes.',
    }),
    recipients: z.array(RecipientSummarySchema),
  })
  .openapi('PublishEventResponse');

const publishRoute = createRoute(
  guard(
    // deferToData: token, membership, duplicate check and match context in ONE D1 round trip (ingest's reads).
    {
      handle: true,
      scopes: ['events:publish'],
      roles: WRITER_ROLES,
      throttle: 'events',
      countsTowardsDailyLimit: false,
      deferToData: true,
    },
    {
      method: 'post',
      path: '/v2/handles/{handle}/events',
      operationId: 'publishEvent',
      tags: ['Events'],
      summary: 'Publish an event',
      description:
        'Accepted events are never dropped: the notification and one delivery per recipient are stored before ' +
        "the 202, then queued. `severity` defaults to the catalog's; system types cannot be published.",
      request: { params: HandlePathParams, body: jsonBody(PublishBody) },
      responses: { 202: jsonResponse(PublishResponse, 'Accepted.'), ...errorResponses(400, 413, 415, 422) },
    },
  ),
);

/** The notification's `source`: the service's subject, or `user:<id>`. */
function publisherOf(principal: Principal): string {
  return principal.kind === 'service' ? principal.subject : `user:${principal.subject}`;
}

const BatchBody = z
  .strictObject({
    events: z
      .array(z.unknown())
      .min(1)
      .max(MAX_BATCH_EVENTS)
      .openapi({
        description:
          'Up to 100 PublishEventRequest objects. An invalid one gets its own 400 or 422 in `results`; the others ' +
          'are still accepted.',
      }),
    delivery: z.enum(['now', 'off_peak']).optional().openapi({
      description: 'The default `delivery` of every event that names none (off_peak: wait out peak campaign windows).',
    }),
  })
  .openapi('PublishEventBatchRequest', {
    example: {
      delivery: 'off_peak',
      events: [
        { type: 'order.fulfilled', data: { orderId: 'ord_1', trackingNumber: 'DL1' }, sourceEventId: 'bf-1' },
        { type: 'order.fulfilled', data: { orderId: 'ord_2', trackingNumber: 'DL2' }, sourceEventId: 'bf-2' },
      ],
    },
  });

const BatchItemResult = z
  .object({
    index: z.number().int().openapi({ description: 'The position of the event in the request.' }),
    status: z.number().int().openapi({
      description: '202 stored, 200 a duplicate (nothing written), or the status of `problem` (nothing written).',
    }),
    notificationId: z.string().optional(),
    duplicate: z.boolean().optional(),
    deferredUntil: z.string().nullable().optional(),
    problem: ProblemSchema.optional(),
  })
  .openapi('PublishEventBatchItemResult');

export const BatchResponse = z
  .object({
    stored: z.number().int(),
    duplicates: z.number().int(),
    refused: z.number().int(),
    results: z.array(BatchItemResult),
  })
  .openapi('PublishEventBatchResponse');

const batchRoute = createRoute(
  guard(
    // Each stored event counts against the daily write limit, taken for the whole batch up front (see the handler).
    {
      handle: true,
      scopes: ['events:publish'],
      roles: WRITER_ROLES,
      throttle: 'events',
      countsTowardsDailyLimit: false,
      deferToData: true,
    },
    {
      method: 'post',
      path: '/v2/handles/{handle}/events/batch',
      operationId: 'publishEventBatch',
      tags: ['Events'],
      summary: 'Publish up to 100 events',
      description:
        'For backfills and bulk work: one request, one match of the handle, a result per event (its notification ' +
        'id, `duplicate`, or a problem of its own). Each event is stored whole or not at all. Each stored event ' +
        'counts against the daily write limit, checked for the whole batch first: the events past it get 429 and ' +
        'nothing of them is written. The whole batch is idempotent under one `Idempotency-Key`.',
      request: { params: HandlePathParams, body: jsonBody(BatchBody) },
      responses: { 200: jsonResponse(BatchResponse, 'A result per event.'), ...errorResponses(400, 413, 415, 422) },
    },
  ),
);

/** An ingest rejection as the problem a publisher hears (the single publish throws it, the batch lists it). */
function rejectionProblem(err: IngestRejected, maxBytes: number): ProblemError {
  if (err.code === 'data_too_large') return problems.payloadTooLarge(maxBytes, err.message);
  if (err.code === 'unknown_handle') return problems.notFound();
  return problems.unprocessable(err.message, { code: err.code, ...err.details });
}

export const eventsRoutes = createRouter()
  .openapi(publishRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const body = c.req.valid('json');
    const ctx = runContext(c.env);
    try {
      const event = checkEvent(ctx.cfg, { handle, ...body });
      // Token, membership, duplicate check and match context in ONE D1 round trip; the access check is settled (401,
      // 403, 404) before ingest sees a row, and only then is the caller known.
      const shard = await handleD1(c);
      const db = getDb(shard);
      const rows = await batchWithAccess(c, db, ingestReads(db, event));
      const result = await ingestWithReads(ctx, shard, event, publisherOf(c.get('principal')!), rows);
      c.header('Location', `/v2/handles/${handle}/notifications/${result.notificationId}`);
      return c.json(result, 202);
    } catch (err) {
      if (err instanceof IngestRejected) throw rejectionProblem(err, ctx.cfg.maxEventDataBytes);
      throw err;
    }
  })
  .openapi(batchRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const body = c.req.valid('json');
    const ctx = runContext(c.env);
    const requestId = c.get('requestId');
    const results: z.infer<typeof BatchItemResult>[] = new Array(body.events.length);
    // Each event is checked on its own: an invalid one is that event's 400, never the whole batch's.
    const valid: { index: number; event: z.infer<typeof PublishBody> }[] = [];
    for (const [index, item] of body.events.entries()) {
      const parsed = PublishBody.safeParse(item);
      if (parsed.success) valid.push({ index, event: parsed.data });
      else {
        const errors = fieldErrors(parsed.error.issues, `body.events.${index}`);
        results[index] = { index, status: 400, problem: problemBody(problems.validation(errors), requestId) as never };
      }
    }
    const source = () => publisherOf(c.get('principal')!);
    // The handle's shard (docs/design.md#shards); the access lookup rides with the batch's reads on it.
    const shard = await handleD1(c);
    const db = getDb(shard);
    // With no valid event the access check still has to be settled (401, 403, 404 before any answer).
    if (!valid.length) await batchWithAccess(c, db, ingestReads(db, { handle, sourceEventId: undefined }));
    const outcomes = valid.length
      ? await ingestBatch(
          ctx,
          handle,
          valid.map((v) => ({ ...v.event, delivery: v.event.delivery ?? body.delivery, source: '' })),
          {
            dailyLimit: ctx.cfg.dailyWriteLimit,
            shard,
            read: (queries) => batchWithAccess(c, db, queries),
            sourceOf: source,
          },
        )
      : [];
    const now = new Date();
    for (const [k, outcome] of outcomes.entries()) {
      const index = valid[k]!.index;
      results[index] = itemResult(index, outcome, (p) => problemBody(p, requestId), ctx.cfg, now);
    }
    const count = (f: (r: z.infer<typeof BatchItemResult>) => boolean) => results.filter(f).length;
    return c.json(
      {
        stored: count((r) => r.status === 202),
        duplicates: count((r) => r.status === 200),
        refused: count((r) => r.status >= 400),
        results,
      },
      200,
    );
  });

/** One event's result in the batch answer. */
function itemResult(
  index: number,
  outcome: BatchOutcome,
  render: (p: ProblemError) => ReturnType<typeof problemBody>,
  cfg: { maxEventDataBytes: number; dailyWriteLimit: number },
  now: Date,
): z.infer<typeof BatchItemResult> {
  const problem = (p: ProblemError) => ({ index, status: p.status, problem: render(p) as never });
  switch (outcome.kind) {
    case 'stored':
    case 'duplicate': {
      const r = outcome.result;
      return {
        index,
        status: outcome.kind === 'stored' ? 202 : 200,
        notificationId: r.notificationId,
        duplicate: r.duplicate,
        deferredUntil: r.deferredUntil,
      };
    }
    case 'rejected':
      return problem(rejectionProblem(outcome.error, cfg.maxEventDataBytes));
    case 'over_daily_limit':
      return problem(dailyLimitProblem(cfg.dailyWriteLimit, now));
    case 'failed':
      return problem(problems.unavailable('This event could not be stored; send it again (with its sourceEventId).'));
  }
}
