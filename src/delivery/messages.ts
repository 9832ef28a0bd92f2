/**
 * Queue message bodies. Messages carry ids, never payloads or secrets (docs/design.md#entry-points): D1 is the source
 * of truth.
 */
import { z } from 'zod';
import { HANDLE_PATTERN } from '../lib/handles.ts';

/**
 * `notify-deliveries` and its DLQ: one delivery attempt to perform (or to mark dead). The handle names the shard the
 * delivery lives on (docs/design.md#shards); a message sent before sharding has none, and its delivery is on SHARD_0.
 */
export const DeliveryMessage = z.strictObject({
  deliveryId: z.string().regex(/^dlv_[0-9A-Z]{26}$/),
  handle: z.string().regex(HANDLE_PATTERN).optional(),
});
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

/**
 * Queue names as bound in wrangler.toml (docs/design.md#several-delivery-queues): one events queue, and Q delivery
 * queues `notify-deliveries-<n>`, each with its DLQ `notify-deliveries-<n>-dlq`.
 */
export const QUEUES = {
  events: 'notify-events',
  eventsDlq: 'notify-events-dlq',
  /** Delivery queue `n` of 0 … Q−1. */
  deliveries: (n: number) => `notify-deliveries-${n}`,
  /** Its dead-letter queue. */
  deliveriesDlq: (n: number) => `notify-deliveries-${n}-dlq`,
  /** Email Sending's lifecycle events, published by an event subscription (docs/design.md#email-events). */
  emailEvents: 'notify-email-events',
  emailEventsDlq: 'notify-email-events-dlq',
} as const;

/** What a queue is, by its name; null for a queue this Worker does not consume. */
export type QueueRole = 'events' | 'eventsDlq' | 'deliveries' | 'deliveriesDlq' | 'emailEvents' | 'emailEventsDlq';

/**
 * The role of a queue by its name. Any `notify-deliveries-<n>` (and its DLQ) is a delivery queue, also one beyond
 * today's bindings; the unnumbered `notify-deliveries` of a single-queue deployment is served too, so its messages
 * are not stranded while an upgraded Worker drains it.
 */
export function queueRole(name: string): QueueRole | null {
  if (name === QUEUES.events) return 'events';
  if (name === QUEUES.eventsDlq) return 'eventsDlq';
  if (name === QUEUES.emailEvents) return 'emailEvents';
  if (name === QUEUES.emailEventsDlq) return 'emailEventsDlq';
  if (/^notify-deliveries(?:-(?:0|[1-9][0-9]*))?$/.test(name)) return 'deliveries';
  if (/^notify-deliveries(?:-(?:0|[1-9][0-9]*))?-dlq$/.test(name)) return 'deliveriesDlq';
  return null;
}
