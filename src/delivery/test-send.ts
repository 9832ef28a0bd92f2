/**
 * Test sends (docs/design.md#test-sends): the production builder, signer, HTTP client (or mail provider) and
 * classifier, run synchronously and recorded as a delivery of kind `test` with its attempt row. Test sends never touch
 * the subscription's health counters, so they cannot trip or reset auto-disable.
 */

import { shardFor } from '../db/shards.ts';
import { runContext } from '../env.ts';
import { eventTypeInfo } from '../lib/event-catalog.ts';
import { newId } from '../lib/ids.ts';
import {
  type AttemptOutcome,
  type DeliveredEvent,
  type DeliveryRow,
  type NotificationRow,
  performAttempt,
  type WebhookRow,
} from './attempt.ts';
import { attemptStatement, insertTestDelivery, moveDelivery } from './store.ts';

/**
 * The status reason of a test delivery its request never finished (cancelled, or its final write failed): the sweeper
 * finds the row `pending` and the consumer ends it `cancelled` without an attempt. A test send is one synchronous
 * attempt, so it never gets the production retry schedule nor reaches an endpoint disabled since.
 */
export const TEST_SEND_INTERRUPTED = 'test_send_interrupted';

export interface TestSendInput {
  handle: string;
  channel: 'webhook' | 'email';
  recipientType: 'webhook' | 'email' | 'owner_default';
  subscriptionId: string;
  target: string;
  /** A catalog sample, or a real notification replayed. */
  event: DeliveredEvent;
  webhook?: WebhookRow;
  /** Why the test was sent, kept as the delivery's status reason (default `test_send`). */
  reason?: 'test_send' | 'owner_default_changed';
}

/** The event a test send delivers: a replayed notification, or the sample of `eventType` from the catalog. */
export function testEvent(
  handle: string,
  source: { notification?: NotificationRow; eventType?: string },
): DeliveredEvent | null {
  if (source.notification) {
    const n = source.notification;
    return {
      id: n.id,
      handle,
      type: n.type,
      severity: n.severity,
      occurredAt: n.occurredAt,
      data: JSON.parse(n.data) as Record<string, unknown>,
      test: true,
    };
  }
  const info = eventTypeInfo(source.eventType ?? 'order.created');
  if (!info) return null;
  return {
    id: newId('ntf'),
    handle,
    type: info.type,
    severity: info.defaultSeverity,
    occurredAt: new Date().toISOString(),
    data: info.sample,
    test: true,
  };
}

/** Sends one test delivery now, through the production path, and records it with its attempt. */
export async function runTestSend(
  env: Env,
  input: TestSendInput,
): Promise<{ delivery: DeliveryRow; outcome: AttemptOutcome }> {
  const now = new Date().toISOString();
  const delivery: DeliveryRow = {
    id: newId('dlv'),
    handle: input.handle,
    notificationId: null,
    kind: 'test',
    channel: input.channel,
    recipientType: input.recipientType,
    subscriptionId: input.subscriptionId,
    target: input.target,
    status: 'pending',
    statusReason: input.reason ?? 'test_send',
    attemptCount: 0,
    lastErrorClass: null,
    lastHttpStatus: null,
    nextAttemptAt: null,
    lastAttemptAt: null,
    retryBase: 0,
    requeuedUpdatedAt: null,
    requeueDueAt: null,
    payload: JSON.stringify(input.event),
    providerMessageId: null,
    deliveredAt: null,
    providerVerdict: null,
    replayId: null,
    idFromNotification: false,
    createdAt: now,
    updatedAt: now,
  };
  const d1 = await shardFor(env, input.handle);
  await insertTestDelivery(d1, delivery).run();
  const outcome = await performAttempt(runContext(env), { delivery, event: input.event, webhook: input.webhook });
  const at = new Date().toISOString();
  const c = outcome.classification;
  // A test send is one attempt: it succeeds or it is dead, never retried.
  const to = c.outcome === 'succeeded' ? 'succeeded' : 'dead';
  await d1.batch([
    attemptStatement(d1, delivery, outcome, at),
    ...moveDelivery(d1, delivery, to, {
      // The reason says why it was sent; the class of a failure is in last_error_class.
      statusReason: delivery.statusReason,
      attempted: true,
      errorClass: c.outcome === 'failed' ? c.errorClass : null,
      httpStatus: outcome.httpStatus,
      providerMessageId: outcome.providerMessageId,
      now: at,
    }),
  ]);
  return {
    delivery: { ...delivery, status: to, attemptCount: 1, providerMessageId: outcome.providerMessageId ?? null },
    outcome,
  };
}
