/**
 * The `queue` entry point: routes a batch to its consumer by queue name — every delivery queue
 * `notify-deliveries-<n>` to the same consumer, every one of their DLQs to the same dead-letter consumer
 * (docs/design.md#several-delivery-queues). A batch from an unknown queue is logged and retried — never acked — so a
 * misconfiguration shows up in logs and the DLQ instead of losing messages.
 */
import { consumeDeliveries } from './delivery/consumer.ts';
import { consumeDeadLetters } from './delivery/dead-letter.ts';
import { consumeEmailEventDeadLetters, consumeEmailEvents } from './delivery/email-events-consumer.ts';
import { consumeEventDeadLetters, consumeEvents } from './delivery/events-consumer.ts';
import { type QueueRole, queueRole } from './delivery/messages.ts';

type Consumer = (batch: MessageBatch<unknown>, env: Env) => Promise<unknown>;

/** The consumer of each kind of queue, looked up at every batch. */
export const queueConsumers: Record<QueueRole, Consumer> = {
  events: consumeEvents,
  eventsDlq: consumeEventDeadLetters,
  deliveries: consumeDeliveries,
  deliveriesDlq: consumeDeadLetters,
  emailEvents: consumeEmailEvents,
  emailEventsDlq: consumeEmailEventDeadLetters,
};

/** Dispatches a batch to the consumer of its queue. */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env, _ctx?: ExecutionContext): Promise<void> {
  const role = queueRole(batch.queue);
  if (!role) {
    console.error(
      JSON.stringify({ level: 'error', msg: 'queue_unknown', queue: batch.queue, messages: batch.messages.length }),
    );
    batch.retryAll({ delaySeconds: 60 });
    return;
  }
  await queueConsumers[role](batch, env);
}
