import { z } from '@hono/zod-openapi';
import { HandleParam, PageQuery } from '../../http/openapi.ts';
import { DeliveryCoreFields, SeveritySchema, TimestampSchema } from '../../http/schemas.ts';
import { idPattern } from '../../lib/ids.ts';

export const NOTIFICATION_ID = idPattern('ntf');

export const NOTIFICATION_STATUSES = [
  'delivering',
  'delivered',
  'partially_failed',
  'failed',
  'no_recipients',
  'undeliverable',
] as const;

export const FeedQuery = PageQuery.extend({
  status: z
    .enum(NOTIFICATION_STATUSES)
    .optional()
    .openapi({ param: { name: 'status', in: 'query' } }),
  type: z
    .string()
    .min(1)
    .max(100)
    .optional()
    .openapi({
      param: { name: 'type', in: 'query' },
      example: 'order.*',
      description: 'An event type (`order.fulfilled`), a prefix (`order.*`) or `*`, as in eventTypes.',
    }),
  severity: SeveritySchema.optional().openapi({ param: { name: 'severity', in: 'query' } }),
  since: TimestampSchema.optional().openapi({
    param: { name: 'since', in: 'query' },
    description: 'Only notifications accepted at or after this time.',
  }),
  until: TimestampSchema.optional().openapi({
    param: { name: 'until', in: 'query' },
    description: 'Only notifications accepted before this time.',
  }),
});

export const RecipientSummarySchema = z
  .object({
    deliveryId: z.string(),
    ...DeliveryCoreFields,
    attempts: z.number().int(),
  })
  .openapi('RecipientDelivery');

const base = {
  id: z.string().openapi({ example: 'ntf_01JD3Q7X9T0000000000000000' }),
  type: z.string(),
  severity: SeveritySchema,
  status: z.enum(NOTIFICATION_STATUSES),
  source: z.string(),
  sourceEventId: z.string().nullable(),
  occurredAt: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  recipientCount: z.number().int(),
  deliveryCounts: z.object({ open: z.number().int(), succeeded: z.number().int(), dead: z.number().int() }).openapi({
    description: 'Deliveries still in progress, succeeded and dead; skipped and cancelled make up the rest.',
  }),
  deliveries: z.array(RecipientSummarySchema).openapi({
    description: 'One entry per recipient (the first 25 for larger fan-outs; see recipientCount).',
  }),
};

export const NotificationSummarySchema = z.object(base).openapi('NotificationSummary');
export const NotificationSchema = z
  .object({ ...base, data: z.record(z.string(), z.unknown()) })
  .openapi('Notification');

export const NotificationParams = z.object({
  handle: HandleParam,
  id: z
    .string()
    .regex(NOTIFICATION_ID)
    .openapi({ param: { name: 'id', in: 'path' } }),
});
