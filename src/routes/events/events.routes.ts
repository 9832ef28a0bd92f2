/**
 * `POST /v2/handles/{handle}/events` (docs/design.md#routes): publish an event. It is matched, written with its deliveries in one
 * batch and enqueued before the 202; a repeated `sourceEventId` answers with the first notification.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { WRITER_ROLES } from '../../auth/scopes.ts';
import { IngestRejected, ingestEvent } from '../../delivery/ingest.ts';
import { EventInput } from '../../delivery/messages.ts';
import { config } from '../../env.ts';
import { createRouter, errorResponses, guard, jsonBody, jsonResponse } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import { RecipientSummarySchema } from '../notifications/notifications.schemas.ts';

const PublishBody = EventInput.openapi('PublishEventRequest', {
  example: {
    type: 'order.fulfilled',
    data: { orderId: 'ord_10482', trackingNumber: 'DL123456789IN' },
    sourceEventId: 'oms-evt-77812',
  },
});

const PublishResponse = z
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
    // deferToData: token, membership, duplicate check and match context in ONE D1 round trip (ingest's first batch).
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
      tags: ['Events'],
      summary: 'Publish an event',
      description:
        "Accepted events are never dropped: the notification and one delivery per recipient are stored before the 202, then queued. `severity` defaults to the catalog's; system types cannot be published.",
      request: { params: HandlePathParams, body: jsonBody(PublishBody) },
      responses: { 202: jsonResponse(PublishResponse, 'Accepted.'), ...errorResponses(400, 413, 415, 422) },
    },
  ),
);

export const eventsRoutes = createRouter().openapi(publishRoute, async (c) => {
  const { handle } = c.req.valid('param');
  const body = c.req.valid('json');
  const pending = c.get('pendingAccess');
  try {
    const result = await ingestEvent(
      c.env,
      {
        handle,
        ...body,
        // The caller is known once the access check in ingest's first batch has run.
        source: () => {
          const principal = c.get('principal')!;
          return principal.kind === 'service' ? principal.subject : `user:${principal.subject}`;
        },
      },
      { access: pending && !pending.settled ? pending : undefined },
    );
    c.header('Location', `/v2/handles/${handle}/notifications/${result.notificationId}`);
    return c.json(result, 202);
  } catch (err) {
    if (err instanceof IngestRejected) {
      if (err.code === 'data_too_large') throw problems.payloadTooLarge(config(c.env).maxEventDataBytes, err.message);
      if (err.code === 'unknown_handle') throw problems.notFound();
      throw problems.unprocessable(err.message, { code: err.code });
    }
    throw err;
  }
});
