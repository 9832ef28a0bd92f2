/**
 * `POST /v2/handles/{handle}/events` (docs/design.md#routes): publish an event. It is matched, written with its
 * deliveries in one batch and enqueued before the 202; a repeated `sourceEventId` answers with the first notification.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Principal } from '../../auth/principal.ts';
import { WRITER_ROLES } from '../../auth/scopes.ts';
import { getDb } from '../../db/client.ts';
import { checkEvent, IngestRejected, ingestReads, ingestWithReads } from '../../delivery/ingest.ts';
import { EventInput } from '../../delivery/messages.ts';
import { runContext } from '../../env.ts';
import { createRouter, errorResponses, guard, jsonBody, jsonResponse } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';
import { batchWithAccess, handleD1 } from '../../middleware/auth.ts';
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

export const eventsRoutes = createRouter().openapi(publishRoute, async (c) => {
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
    if (err instanceof IngestRejected) {
      if (err.code === 'data_too_large') throw problems.payloadTooLarge(ctx.cfg.maxEventDataBytes, err.message);
      if (err.code === 'unknown_handle') throw problems.notFound();
      throw problems.unprocessable(err.message, { code: err.code, ...err.details });
    }
    throw err;
  }
});
