/**
 * The `notify-email-events` consumer (docs/design.md#email-events): Cloudflare Email Sending publishes each sent mail's
 * lifecycle to this queue through a Queues event subscription. Each event names the mail by the message id `send()`
 * returned, which the delivery recorded (`provider_message_id`):
 * - `message.delivered`: the recipient's server accepted the mail — `delivered_at` and the verdict on the delivery;
 * - `message.deferred`: a temporary failure the provider retries — noted as the verdict, nothing ends;
 * - `message.bounced` (permanent, or retries exhausted): the address is suppressed with the reason, the owner alerted
 *   when it was the owner default email, and the delivery ends `dead` with the bounce as its reason;
 * - `message.complained`: the recipient marked it as spam — the address is suppressed the same way (the mail itself
 *   was delivered, so the delivery stays `succeeded`);
 * - `message.failed` / `message.rejected`: the provider gave up or refused it — the delivery ends `dead` with the
 *   provider's reason.
 * Delivery status changes go through the guarded moves of store.ts, so a redelivered event changes nothing twice.
 * A malformed event, an unknown type, or an event that names no delivery of ours even after a few retries (the send's
 * own write may not have landed yet) is recorded in `event_rejections` and acked: never dropped, never retried forever.
 */
import { z } from 'zod';
import { getDb } from '../db/client.ts';
import { findOnShards } from '../db/shards.ts';
import { bareMessageId } from '../email/message.ts';
import { type RunContext, runContext } from '../env.ts';
import { logLine } from '../lib/log.ts';
import { suppressAndAlert } from './alerts.ts';
import type { DeliveryRow } from './attempt.ts';
import { issuesText, type Rejection, settleRejections } from './rejections.ts';
import { deliveriesByIds, moveDelivery } from './store.ts';
import { recipientReasonStatement } from './summary.ts';

const RETRY_SECONDS = 10;
/** Deliveries of an event not found yet are looked for this many times (the send's write may still be landing). */
const UNMATCHED_ATTEMPTS = 3;
const TEXT_MAX = 300;

/** The verdict an email delivery reads once its provider reported it delivered. */
export const DELIVERED_VERDICT = "delivered to the recipient's server";

const TYPES = ['delivered', 'deferred', 'bounced', 'failed', 'rejected', 'complained'] as const;
type EventKind = (typeof TYPES)[number];
const TYPE_PREFIX = 'cf.email.sending.message.';

/** A part of the payload (`delivery`, `bounce`, `failure`, `rejection`, `complaint`): only its strings are read. */
const Part = z.record(z.string(), z.unknown()).optional();
/**
 * One Email Sending event as documented (docs/design.md#email-events): `type`, `source`, `payload` (the message and
 * what happened to it) and `metadata`. Only what this consumer uses is required; the rest is let through.
 */
const EmailSendingEvent = z.object({
  type: z.string().startsWith(TYPE_PREFIX),
  payload: z.object({
    messageId: z.string().min(1).max(500),
    recipient: z.string().min(3).max(320),
    delivery: Part,
    bounce: Part,
    failure: Part,
    rejection: Part,
    complaint: Part,
  }),
  metadata: z.object({ eventTimestamp: z.string().max(40).optional() }).optional(),
});
type EmailSendingEvent = z.infer<typeof EmailSendingEvent>;

/** A string field of a payload part, or ''. */
const str = (part: Record<string, unknown> | undefined, key: string): string =>
  typeof part?.[key] === 'string' ? part[key] : '';

/** The provider's own words for what happened, for a reason or a verdict. */
function detailOf(kind: EventKind, p: EmailSendingEvent['payload']): string {
  const d =
    kind === 'failed'
      ? str(p.failure, 'reason')
      : kind === 'rejected'
        ? [str(p.rejection, 'reason'), str(p.rejection, 'detail')].filter(Boolean).join(': ')
        : kind === 'complained'
          ? str(p.complaint, 'type')
          : str(p.bounce, 'reason') || str(p.delivery, 'smtpResponse');
  return (d || 'no detail given').slice(0, TEXT_MAX);
}

/** A delivery and the shard holding it (docs/design.md#shards). */
interface Found {
  d: DeliveryRow;
  d1: D1Database;
}

/**
 * The one delivery a provider message id names (ids are unique per sent mail), or null. The event names no handle, so
 * every shard is asked at once (`findOnShards`).
 */
async function deliveryFor(ctx: RunContext, messageId: string): Promise<Found | null> {
  const hit = await findOnShards(ctx.env, (d1) =>
    d1
      .prepare('SELECT id, handle FROM deliveries WHERE provider_message_id = ?1 LIMIT 1')
      .bind(messageId)
      .first<{ id: string; handle: string }>(),
  );
  if (!hit) return null;
  const [d] = await deliveriesByIds(getDb(hit.d1), [hit.found.id]);
  return d ? { d, d1: hit.d1 } : null;
}

/** The verdict on the delivery (and `delivered_at` for a delivery), not a status change: no move is needed. */
function verdictStatement(d1: D1Database, d: DeliveryRow, verdict: string, deliveredAt: string | null, now: string) {
  return d1
    .prepare(
      'UPDATE deliveries SET provider_verdict = ?2, delivered_at = COALESCE(delivered_at, ?3), status_reason = CASE ' +
        "WHEN ?3 IS NOT NULL AND status = 'succeeded' THEN ?2 ELSE status_reason END, updated_at = ?4 " +
        'WHERE id = ?1 AND (?3 IS NOT NULL OR delivered_at IS NULL)',
    )
    .bind(d.id, verdict.slice(0, TEXT_MAX), deliveredAt, now);
}

/** Applies one event to its delivery and its address; throws only on a failure worth retrying (D1). */
async function applyEvent(ctx: RunContext, kind: EventKind, e: EmailSendingEvent, found: Found | null) {
  const d = found?.d ?? null;
  const now = new Date().toISOString();
  const detail = detailOf(kind, e.payload);
  if (kind === 'bounced' || kind === 'complained') {
    // The address, whether or not the mail was a delivery of ours (a confirmation or support mail is not).
    await suppressAndAlert(ctx, {
      kind: kind === 'bounced' ? 'bounce' : 'complaint',
      email: e.payload.recipient,
      subscriptionId: d?.channel === 'email' && d.recipientType !== 'platform_alert' ? d.subscriptionId : null,
      detail,
      provider: 'cloudflare',
    });
  }
  if (!found || !d) return;
  const { d1 } = found;
  const statements: D1PreparedStatement[] = [];
  if (kind === 'delivered') {
    statements.push(verdictStatement(d1, d, DELIVERED_VERDICT, e.metadata?.eventTimestamp ?? now, now));
    if (d.notificationId && d.status === 'succeeded')
      statements.push(recipientReasonStatement(d1, d.notificationId, d.id, DELIVERED_VERDICT));
  } else if (kind === 'deferred' || kind === 'complained') {
    statements.push(verdictStatement(d1, d, `${kind}: ${detail}`, null, now));
  } else {
    // bounced, failed, rejected: the mail never reached the recipient; the delivery ends with the provider's reason.
    const reason = `${kind}: ${detail}`;
    statements.push(verdictStatement(d1, d, reason, null, now));
    if (d.status === 'succeeded') {
      statements.push(
        ...moveDelivery(d1, d, 'dead', {
          statusReason: `provider_${kind}: ${detail}`.slice(0, TEXT_MAX),
          attempted: false,
          errorClass: 'provider_permanent',
          now,
        }),
      );
    }
  }
  await d1.batch(statements);
}

/** Consumes a batch of Email Sending events (queue `notify-email-events`). */
export async function consumeEmailEvents(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const ctx = runContext(env);
  const rejections: Rejection[] = [];
  const reject = (message: Message<unknown>, reason: string) =>
    rejections.push({ queue: batch.queue, message, handle: null, reason });
  for (const message of batch.messages) {
    const parsed = EmailSendingEvent.safeParse(message.body);
    if (!parsed.success) {
      reject(message, `invalid email event: ${issuesText(parsed.error)}`);
      continue;
    }
    const kind = parsed.data.type.slice(TYPE_PREFIX.length) as EventKind;
    if (!TYPES.includes(kind)) {
      reject(message, `unknown email event type: ${parsed.data.type.slice(0, 100)}`);
      continue;
    }
    try {
      const d = await deliveryFor(ctx, bareMessageId(parsed.data.payload.messageId));
      if (!d && message.attempts < UNMATCHED_ATTEMPTS) {
        message.retry({ delaySeconds: RETRY_SECONDS });
        continue;
      }
      await applyEvent(ctx, kind, parsed.data, d);
      if (d) message.ack();
      else reject(message, `no delivery has the provider message id of this ${kind} event`);
    } catch (err) {
      logLine('error', 'email_event_failed', { messageId: message.id, error: String(err) });
      message.retry({ delaySeconds: RETRY_SECONDS });
    }
  }
  await settleRejections(env.DB, rejections, RETRY_SECONDS);
}

/** `notify-email-events-dlq`: events whose handling kept failing; recorded so they can be found and replayed. */
export async function consumeEmailEventDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  await settleRejections(
    env.DB,
    batch.messages.map((message) => ({
      queue: batch.queue,
      message,
      handle: null,
      reason: 'retries_exhausted: applying the email event kept failing',
    })),
    30,
  );
}
