/**
 * Queue message bodies. Messages carry ids, never payloads or secrets (docs/design.md#entry-points): D1 is the source
 * of truth.
 */
import { z } from 'zod';
import { HANDLE_PATTERN } from '../lib/handles.ts';

/** `notify-deliveries` and its DLQ: one delivery attempt to perform (or to mark dead). */
export const DeliveryMessage = z.strictObject({ deliveryId: z.string().regex(/^dlv_[0-9A-Z]{26}$/) });
export type DeliveryMessage = z.infer<typeof DeliveryMessage>;

/**
 * `sourceEventId`s of the service's own events start with this; clients may not use it, so nobody can publish an
 * event that pre-empts (and so silences) a system alert's de-duplication key.
 */
export const SYSTEM_SOURCE_PREFIX = 'system:';

/** An event as clients publish it (`POST …/events`): the one schema of the HTTP and the queue paths. */
export const EventInput = z.strictObject({
  type: z
    .string()
    .max(100)
    .regex(/^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$/, 'Use a dotted lower-case event type such as order.fulfilled.'),
  severity: z.enum(['info', 'warning', 'critical']).optional(),
  data: z.record(z.string(), z.unknown()),
  occurredAt: z.iso.datetime({ offset: true }).optional(),
  sourceEventId: z
    .string()
    .min(1)
    .max(200)
    .refine((v) => !v.startsWith(SYSTEM_SOURCE_PREFIX), {
      message: `sourceEventIds beginning with "${SYSTEM_SOURCE_PREFIX}" are reserved for the service's own events.`,
    })
    .optional(),
  /** `off_peak`: deliveries wait while a peak campaign window is open (docs/design.md#peak-campaign-windows). */
  delivery: z.enum(['now', 'off_peak']).optional(),
});
export type EventInput = z.infer<typeof EventInput>;

/** `notify-events` and its DLQ: an event published by another Gharart Worker, naming its handle and source. */
export const EventMessage = EventInput.extend({
  handle: z.string().regex(HANDLE_PATTERN),
  source: z.string().min(1).max(100).optional(),
});
export type EventMessage = z.infer<typeof EventMessage>;

/** Queue names as bound in wrangler.toml. */
export const QUEUES = {
  events: 'notify-events',
  eventsDlq: 'notify-events-dlq',
  deliveries: 'notify-deliveries',
  deliveriesDlq: 'notify-deliveries-dlq',
} as const;
