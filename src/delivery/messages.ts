/**
 * Queue message bodies. Messages carry ids, never payloads or secrets (SPEC §1): D1 is the source of truth.
 */
import { z } from 'zod';

/** `notify-deliveries` and its DLQ: one delivery attempt to perform (or to mark dead). */
export const DeliveryMessage = z.strictObject({ deliveryId: z.string().regex(/^dlv_[0-9A-Z]{26}$/) });
export type DeliveryMessage = z.infer<typeof DeliveryMessage>;

/** `notify-events` and its DLQ: an event published by another Gharart Worker (same shape as `POST …/events`). */
export const EventMessage = z.strictObject({
  handle: z.string().min(1).max(63),
  type: z.string().min(1).max(100),
  severity: z.enum(['info', 'warning', 'critical']).optional(),
  data: z.record(z.string(), z.unknown()),
  occurredAt: z.iso.datetime({ offset: true }).optional(),
  sourceEventId: z.string().min(1).max(200).optional(),
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
