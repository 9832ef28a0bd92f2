import { z } from '@hono/zod-openapi';
import { HandleParam } from '../../http/openapi.ts';
import { DeliveryCoreFields } from '../../http/schemas.ts';
import { idPattern } from '../../lib/ids.ts';

export const DELIVERY_ID = idPattern('dlv');

export const AttemptSchema = z
  .object({
    attemptNumber: z.number().int(),
    outcome: z.enum(['succeeded', 'failed']),
    errorClass: z.string().nullable(),
    httpStatus: z.number().int().nullable(),
    durationMs: z.number().int(),
    requestBytes: z.number().int().nullable(),
    responseSnippet: z.string().nullable().openapi({ description: 'At most 4 KB of what the endpoint answered.' }),
    errorMessage: z.string().nullable(),
    at: z.string(),
  })
  .openapi('DeliveryAttempt');

export const DeliverySchema = z
  .object({
    id: z.string(),
    kind: z.enum(['event', 'test']),
    notificationId: z.string().nullable(),
    ...DeliveryCoreFields,
    attemptCount: z.number().int(),
    nextAttemptAt: z.string().nullable(),
    replayId: z.string().nullable().openapi({
      description: 'Set on a delivery a replay made (POST …/webhooks/{id}/replay): the replay it belongs to.',
    }),
    createdAt: z.string(),
    attempts: z.array(AttemptSchema),
  })
  .openapi('Delivery');

export const DeliveryParams = z.object({
  handle: HandleParam,
  id: z
    .string()
    .regex(DELIVERY_ID)
    .openapi({ param: { name: 'id', in: 'path' } }),
});
