/**
 * The `notify-deliveries` consumer (docs/design.md#consumer): one attempt per message.
 *
 * Per batch: ONE D1 round trip loads every delivery, notification and subscription the batch names; the attempts run
 * with at most MAX_CONCURRENT_SENDS at once; ONE D1 batch writes every outcome (attempt rows, guarded delivery
 * updates, notification counts, subscription health); only then is each message acked or retried. A delivery already
 * terminal is acked untouched (at-least-once safe), and a message whose processing throws is retried alone.
 */
import { sql } from 'drizzle-orm';
import { getDb } from '../db/client.ts';
import { deliveries, emailSubscriptions, notifications, webhookSubscriptions } from '../db/schema.ts';
import { config } from '../env.ts';
import { newId } from '../lib/ids.ts';
import { createLimiter } from '../lib/limiter.ts';
import {
  type AttemptOutcome,
  type DeliveryRow,
  type EmailRow,
  eventOf,
  performAttempt,
  type WebhookRow,
} from './attempt.ts';
import { ingestEvent } from './ingest.ts';
import { DeliveryMessage } from './messages.ts';
import { type Rejection, recordRejections } from './rejections.ts';
import { retryDelaySeconds } from './retry-policy.ts';
import { type DeliveryStatus, TERMINAL_STATUSES, transitionStatement } from './summary.ts';

/** A Worker invocation may hold 6 simultaneous outbound connections in production. */
export const MAX_CONCURRENT_SENDS = 6;
/** `max_retries = 7` in wrangler.toml: the 8th delivery of a message is its last before the DLQ. */
export const QUEUE_MAX_DELIVERIES = 8;
/** Delay before a message whose outcome could not be written is offered again. */
const WRITE_FAILURE_RETRY_SECONDS = 5;

export interface ConsumerReport {
  messages: number;
  attempts: number;
  acked: number;
  retried: number;
  d1RoundTrips: number;
  peakConcurrency: number;
}

type Decision = { ack: true } | { ack: false; delaySeconds: number };

interface Planned {
  message: Message<unknown>;
  decision: Decision;
  statements: D1PreparedStatement[];
}

/** SQL fragment: the ids in the bound JSON array. */
const idsIn = (json: string) => sql`(SELECT value FROM json_each(${json}))`;

async function loadBatch(env: Env, ids: string[]) {
  const db = getDb(env.DB);
  const json = JSON.stringify(ids);
  const ofDeliveries = (col: 'notification_id' | 'subscription_id') =>
    sql`(SELECT ${sql.raw(col)} FROM deliveries WHERE id IN ${idsIn(json)})`;
  const [d, n, w, e] = await db.batch([
    db
      .select()
      .from(deliveries)
      .where(sql`${deliveries.id} IN ${idsIn(json)}`),
    db
      .select()
      .from(notifications)
      .where(sql`${notifications.id} IN ${ofDeliveries('notification_id')}`),
    db
      .select()
      .from(webhookSubscriptions)
      .where(sql`${webhookSubscriptions.id} IN ${ofDeliveries('subscription_id')}`),
    db
      .select()
      .from(emailSubscriptions)
      .where(sql`${emailSubscriptions.id} IN ${ofDeliveries('subscription_id')}`),
  ]);
  return {
    deliveries: new Map(d.map((r) => [r.id, r])),
    notifications: new Map(n.map((r) => [r.id, r])),
    webhooks: new Map(w.map((r) => [r.id, r])),
    emails: new Map(e.map((r) => [r.id, r])),
  };
}

/** The guarded UPDATE of a delivery plus its notification's transition: applies once, however often it runs. */
export function moveDelivery(
  d1: D1Database,
  d: DeliveryRow,
  to: DeliveryStatus,
  fields: {
    statusReason: string | null;
    attempted: boolean;
    errorClass?: string | null;
    httpStatus?: number | null;
    nextAttemptAt?: string | null;
    now: string;
  },
): D1PreparedStatement[] {
  const attempts = d.attemptCount + (fields.attempted ? 1 : 0);
  const statements = [
    d1
      .prepare(
        `UPDATE deliveries SET status = ?2, status_reason = ?3, attempt_count = ?4, last_error_class = ?5,
           last_http_status = ?6, next_attempt_at = ?7, last_attempt_at = CASE WHEN ?8 THEN ?9 ELSE last_attempt_at END,
           updated_at = ?9
         WHERE id = ?1 AND status = ?10 AND attempt_count = ?11`,
      )
      .bind(
        d.id,
        to,
        fields.statusReason,
        attempts,
        fields.errorClass ?? d.lastErrorClass,
        fields.httpStatus ?? d.lastHttpStatus,
        fields.nextAttemptAt ?? null,
        fields.attempted ? 1 : 0,
        fields.now,
        d.status,
        d.attemptCount,
      ),
  ];
  if (d.notificationId) {
    statements.push(
      transitionStatement(d1, {
        notificationId: d.notificationId,
        deliveryId: d.id,
        from: d.status,
        to,
        attempts,
        statusReason: fields.statusReason,
        lastErrorClass: fields.errorClass ?? d.lastErrorClass,
        lastHttpStatus: fields.httpStatus ?? d.lastHttpStatus,
        at: fields.now,
      }),
    );
  }
  return statements;
}

/** Why `cancelOpenDeliveries` cancels: the only change that can reach a delivery while its attempt is in flight. */
const CANCELLED_IN_FLIGHT_REASON = 'subscription_deleted';

/**
 * The outcome of an attempt whose subscription was deleted while the request was in flight: the DELETE made the row
 * `cancelled`, so the guarded move of the outcome changed nothing, yet the request was made and its attempt row is
 * written. Without these statements the delivery said `cancelled` with no attempt although the endpoint had the event
 * (found by `npm run soak`). An endpoint that accepted it has it: `succeeded`. A failure leaves it `cancelled` (never
 * retried) with the attempt counted. Guarded like any move (status `cancelled`, the attempt count read before the
 * attempt), so they apply only when the move of the outcome did not.
 */
function settleCancelledInFlight(
  d1: D1Database,
  d: DeliveryRow,
  o: AttemptOutcome,
  now: string,
): D1PreparedStatement[] {
  const cancelled: DeliveryRow = { ...d, status: 'cancelled', statusReason: CANCELLED_IN_FLIGHT_REASON };
  const fields = { attempted: true, httpStatus: o.httpStatus, now };
  const c = o.classification;
  return c.outcome === 'succeeded'
    ? moveDelivery(d1, cancelled, 'succeeded', { ...fields, statusReason: null })
    : moveDelivery(d1, cancelled, 'cancelled', {
        ...fields,
        errorClass: c.errorClass,
        statusReason: CANCELLED_IN_FLIGHT_REASON,
      });
}

/** The attempt row: the evidence the delivery log and the diagnosis show. */
export function attemptStatement(d1: D1Database, d: DeliveryRow, o: AttemptOutcome, now: string): D1PreparedStatement {
  const failed = o.classification.outcome === 'failed' ? o.classification : null;
  return d1
    .prepare(
      `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, error_class, http_status, duration_ms,
         request_bytes, response_snippet, error_message, created_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)`,
    )
    .bind(
      newId('att'),
      d.id,
      d.attemptCount + 1,
      failed ? 'failed' : 'succeeded',
      failed?.errorClass ?? null,
      o.httpStatus,
      o.durationMs,
      o.requestBytes,
      o.responseSnippet,
      o.errorMessage,
      now,
    );
}

/** Net effect of this batch's outcomes on one webhook's health, in message order. */
interface Health {
  failuresSinceSuccess: number;
  succeeded: boolean;
  lastFailureClass: string | null;
  gone: boolean;
}

function healthStatement(d1: D1Database, id: string, h: Health, now: string): D1PreparedStatement {
  if (h.succeeded) {
    return d1
      .prepare(
        `UPDATE webhook_subscriptions SET consecutive_failures = ?2,
           failing_since = CASE WHEN ?2 > 0 THEN ?3 ELSE NULL END, last_success_at = ?3,
           last_failure_at = CASE WHEN ?2 > 0 THEN ?3 ELSE last_failure_at END,
           last_failure_class = COALESCE(?4, last_failure_class), updated_at = ?3
         WHERE id = ?1`,
      )
      .bind(id, h.failuresSinceSuccess, now, h.lastFailureClass);
  }
  return d1
    .prepare(
      `UPDATE webhook_subscriptions SET consecutive_failures = consecutive_failures + ?2,
         failing_since = COALESCE(failing_since, ?3), last_failure_at = ?3, last_failure_class = ?4, updated_at = ?3,
         enabled = CASE WHEN ?5 THEN 0 ELSE enabled END,
         disabled_reason = CASE WHEN ?5 AND enabled = 1 THEN 'endpoint_gone' ELSE disabled_reason END,
         disabled_at = CASE WHEN ?5 AND enabled = 1 THEN ?3 ELSE disabled_at END
       WHERE id = ?1`,
    )
    .bind(id, h.failuresSinceSuccess, now, h.lastFailureClass, h.gone ? 1 : 0);
}

/** Consumes one batch of `notify-deliveries`. */
export async function consumeDeliveries(batch: MessageBatch<unknown>, env: Env): Promise<ConsumerReport> {
  const cfg = config(env);
  const d1 = env.DB;
  const report: ConsumerReport = {
    messages: batch.messages.length,
    attempts: 0,
    acked: 0,
    retried: 0,
    d1RoundTrips: 0,
    peakConcurrency: 0,
  };
  const now = () => new Date().toISOString();

  const rejections: Rejection[] = [];
  const valid: Array<{ message: Message<unknown>; deliveryId: string }> = [];
  for (const message of batch.messages) {
    const parsed = DeliveryMessage.safeParse(message.body);
    if (parsed.success) valid.push({ message, deliveryId: parsed.data.deliveryId });
    else
      rejections.push({
        queue: batch.queue,
        message,
        handle: null,
        reason: `invalid delivery message: ${parsed.error.issues[0]?.message ?? 'schema'}`,
      });
  }

  const loaded = valid.length ? await loadBatch(env, [...new Set(valid.map((v) => v.deliveryId))]) : null;
  if (loaded) report.d1RoundTrips++;
  const limiter = createLimiter(MAX_CONCURRENT_SENDS);
  const health = new Map<string, Health & { handle: string; url: string }>();
  const gone: WebhookRow[] = [];

  const seen = new Set<string>();
  const plans = await Promise.all(
    valid.map(async ({ message, deliveryId }): Promise<Planned> => {
      try {
        // The same delivery twice in one batch (a duplicate send): one attempt, both messages acked.
        if (seen.has(deliveryId)) return { message, decision: { ack: true }, statements: [] };
        seen.add(deliveryId);
        const d = loaded!.deliveries.get(deliveryId);
        // Unknown (its handle was deleted) or already terminal (a duplicate message): nothing left to do.
        if (!d || TERMINAL_STATUSES.includes(d.status)) return { message, decision: { ack: true }, statements: [] };
        const t = now();
        const event = eventOf(d, d.notificationId ? loaded!.notifications.get(d.notificationId) : undefined);
        if (!event) {
          return {
            message,
            decision: { ack: true },
            statements: moveDelivery(d1, d, 'cancelled', {
              statusReason: 'notification_missing',
              attempted: false,
              now: t,
            }),
          };
        }
        let webhook: WebhookRow | undefined;
        if (d.channel === 'webhook') {
          webhook = d.subscriptionId ? loaded!.webhooks.get(d.subscriptionId) : undefined;
          if (!webhook)
            return {
              message,
              decision: { ack: true },
              statements: moveDelivery(d1, d, 'cancelled', {
                statusReason: 'subscription_deleted',
                attempted: false,
                now: t,
              }),
            };
          // A test send goes to a disabled endpoint on purpose (to see whether it is back); production does not.
          if (!webhook.enabled && d.kind !== 'test') {
            return {
              message,
              decision: { ack: true },
              statements: moveDelivery(d1, d, 'skipped', {
                statusReason: 'subscription_disabled',
                attempted: false,
                now: t,
              }),
            };
          }
        } else if (d.recipientType !== 'platform_alert') {
          const sub: EmailRow | undefined = d.subscriptionId ? loaded!.emails.get(d.subscriptionId) : undefined;
          if (!sub)
            return {
              message,
              decision: { ack: true },
              statements: moveDelivery(d1, d, 'cancelled', {
                statusReason: 'subscription_deleted',
                attempted: false,
                now: t,
              }),
            };
          // Nothing but its confirmation mail reaches an address that has not confirmed (or that bounced, or left).
          if (sub.status !== 'active') {
            return {
              message,
              decision: { ack: true },
              statements: moveDelivery(d1, d, 'skipped', {
                statusReason: `subscription_${sub.status}`,
                attempted: false,
                now: t,
              }),
            };
          }
        }

        const outcome = await limiter.run(() => performAttempt(env, { delivery: d, event, webhook }));
        report.attempts++;
        const at = now();
        const c = outcome.classification;
        const statements = [attemptStatement(d1, d, outcome, at)];
        let decision: Decision = { ack: true };
        if (c.outcome === 'succeeded') {
          statements.push(
            ...moveDelivery(d1, d, 'succeeded', {
              statusReason: null,
              attempted: true,
              httpStatus: outcome.httpStatus,
              now: at,
            }),
          );
        } else {
          const fields = { attempted: true, errorClass: c.errorClass, httpStatus: outcome.httpStatus, now: at };
          const delay = c.retryable
            ? retryDelaySeconds(d.attemptCount + 1 - d.retryBase, {
                retryAfterSeconds: c.retryAfterSeconds,
                schedule: cfg.retryDelaysSeconds,
              })
            : null;
          if (!c.retryable) {
            statements.push(...moveDelivery(d1, d, 'dead', { ...fields, statusReason: c.errorClass }));
          } else if (delay !== null) {
            const next = new Date(Date.now() + delay * 1000).toISOString();
            statements.push(
              ...moveDelivery(d1, d, 'retrying', { ...fields, statusReason: 'retry_scheduled', nextAttemptAt: next }),
            );
            decision = { ack: false, delaySeconds: delay };
          } else if (message.attempts >= QUEUE_MAX_DELIVERIES) {
            // The schedule is spent and so are the queue's retries: retrying hands the message to the DLQ, whose
            // consumer writes `dead` (docs/design.md#delivery).
            statements.push(...moveDelivery(d1, d, 'retrying', { ...fields, statusReason: 'retries_exhausted' }));
            decision = { ack: false, delaySeconds: 0 };
          } else {
            // Spent schedule, but this message is a re-enqueued one the queue would retry further: stop here.
            statements.push(...moveDelivery(d1, d, 'dead', { ...fields, statusReason: 'retries_exhausted' }));
          }
        }
        statements.push(...settleCancelledInFlight(d1, d, outcome, at));
        if (webhook && d.kind === 'event') {
          const h = health.get(webhook.id) ?? {
            failuresSinceSuccess: 0,
            succeeded: false,
            lastFailureClass: null,
            gone: false,
            handle: webhook.handle,
            url: webhook.url,
          };
          if (c.outcome === 'succeeded') {
            h.succeeded = true;
            h.failuresSinceSuccess = 0;
          } else {
            h.failuresSinceSuccess++;
            h.lastFailureClass = c.errorClass;
            if (c.disableSubscription && webhook.enabled && !h.gone) {
              h.gone = true;
              gone.push(webhook);
            }
          }
          health.set(webhook.id, h);
        }
        return { message, decision, statements };
      } catch (err) {
        // A corrupt row or a bug: this message alone is retried; the rest of the batch goes on.
        console.error(
          JSON.stringify({ level: 'error', msg: 'delivery_attempt_crashed', deliveryId, error: String(err) }),
        );
        return { message, decision: { ack: false, delaySeconds: WRITE_FAILURE_RETRY_SECONDS }, statements: [] };
      }
    }),
  );
  report.peakConcurrency = limiter.peak;

  const writes = [
    ...plans.flatMap((p) => p.statements),
    ...[...health.entries()].map(([id, h]) => healthStatement(d1, id, h, now())),
    ...recordRejections(d1, rejections),
  ];
  let written = true;
  if (writes.length) {
    try {
      await d1.batch(writes);
      report.d1RoundTrips++;
    } catch (err) {
      written = false;
      console.error(
        JSON.stringify({
          level: 'error',
          msg: 'delivery_outcomes_not_written',
          messages: plans.length,
          error: String(err),
        }),
      );
    }
  }
  for (const p of plans) {
    if (written && p.decision.ack) {
      p.message.ack();
      report.acked++;
    } else {
      p.message.retry({
        delaySeconds: written && !p.decision.ack ? p.decision.delaySeconds : WRITE_FAILURE_RETRY_SECONDS,
      });
      report.retried++;
    }
  }
  for (const r of rejections) {
    if (written) r.message.ack();
    else r.message.retry({ delaySeconds: WRITE_FAILURE_RETRY_SECONDS });
  }

  // A 410 disabled the endpoint: tell the owner (critical, so it reaches the owner default email).
  if (written) {
    for (const w of gone) {
      await ingestEvent(
        env,
        {
          handle: w.handle,
          type: 'webhook.endpoint_disabled',
          data: {
            subscriptionId: w.id,
            url: w.url,
            reason: 'endpoint_gone',
            detail: 'The endpoint answered 410 Gone.',
          },
          source: 'system',
        },
        { system: true },
      ).catch((err: unknown) =>
        console.error(JSON.stringify({ level: 'error', msg: 'system_event_failed', error: String(err) })),
      );
    }
  }
  return report;
}
