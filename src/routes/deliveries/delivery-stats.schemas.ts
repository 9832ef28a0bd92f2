/** The answers of the delivery statistics routes (docs/design.md#delivery-charts). */
import { z } from '@hono/zod-openapi';

const count = z.number().int();

export const OutcomeBucketSchema = z
  .object({
    start: z.string().openapi({ description: 'Start of the bucket (UTC, aligned to the hour or the day).' }),
    succeeded: count,
    retrying: count.openapi({ description: 'Still open: pending, queued or retrying.' }),
    dead: count,
    skipped: count.openapi({ description: 'Skipped or cancelled: never sent, on purpose.' }),
  })
  .openapi('OutcomeBucket');

export const LatencyBucketSchema = z
  .object({
    start: z.string(),
    attempts: count,
    p50Ms: count.nullable(),
    p95Ms: count.nullable(),
  })
  .openapi('LatencyBucket');

export const ErrorClassCountSchema = z
  .object({ errorClass: z.string(), last24h: count, last7d: count })
  .openapi('ErrorClassCount');

const series = {
  generatedAt: z.string(),
  hourly: z.array(OutcomeBucketSchema).openapi({
    description: 'Deliveries created in each of the last 24 hours (oldest first), by their status now.',
  }),
  daily: z.array(OutcomeBucketSchema).openapi({ description: 'The same for each of the last 7 UTC days.' }),
};

export const DeliveryStatsSchema = z.object(series).openapi('DeliveryStats');

export const WebhookDeliveryStatsSchema = z
  .object({
    ...series,
    latencyHourly: z.array(LatencyBucketSchema).openapi({
      description: 'Attempts made in each of the last 24 hours with their duration p50 and p95 (nearest rank).',
    }),
    latencyDaily: z.array(LatencyBucketSchema).openapi({ description: 'The same for each of the last 7 UTC days.' }),
    errorClasses: z.array(ErrorClassCountSchema).openapi({
      description: 'Failed attempts by error class (at most 20 classes, the most frequent first).',
    }),
  })
  .openapi('WebhookDeliveryStats');
