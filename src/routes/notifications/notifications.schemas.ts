import { z } from '@hono/zod-openapi';
import { HandleParam, PageQuery } from '../../http/openapi.ts';
import { SeveritySchema, TimestampSchema } from '../../http/schemas.ts';
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
  status: z.enum(NOTIFICATION_STATUSES).optional().openapi({ param: { name: 'status', in: 'query' } }),
  type: z.string().min(1).max(100).optional().openapi({ param: { name: 'type', in: 'query' }, example: 'order.fulfilled' }),
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
    channel: z.enum(['webhook', 'email']),
    recipientType: z.enum(['webhook', 'email', 'owner_default', 'platform_alert']),
    subscriptionId: z.string().nullable(),
    target: z.string(),
    status: z.enum(['pending', 'queued', 'retrying', 'succeeded', 'dead', 'cancelled', 'skipped']),
    statusReason: z.string().nullable(),
    attempts: z.number().int(),
    lastErrorClass: z.string().nullable(),
    lastHttpStatus: z.number().int().nullable(),
    updatedAt: z.string(),
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
  deliveries: z.array(RecipientSummarySchema),
};

export const NotificationSummarySchema = z.object(base).openapi('NotificationSummary');
export const NotificationSchema = z
  .object({ ...base, data: z.record(z.string(), z.unknown()) })
  .openapi('Notification');

export const NotificationParams = z.object({
  handle: HandleParam,
  id: z.string().regex(NOTIFICATION_ID).openapi({ param: { name: 'id', in: 'path' } }),
});
