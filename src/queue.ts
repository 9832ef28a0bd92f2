/**
 * The `queue` entry point: routes a batch to its consumer by queue name. A batch from an unknown queue is logged and
 * retried — never acked — so a misconfiguration shows up in logs and the DLQ instead of losing messages.
 */
import { consumeDeliveries } from './delivery/consumer.ts';
import { consumeDeadLetters } from './delivery/dead-letter.ts';
import { consumeEmailEventDeadLetters, consumeEmailEvents } from './delivery/email-events-consumer.ts';
import { consumeEventDeadLetters, consumeEvents } from './delivery/events-consumer.ts';
import { QUEUES } from './delivery/messages.ts';

type Consumer = (batch: MessageBatch<unknown>, env: Env) => Promise<unknown>;

const consumers: Record<string, Consumer> = {
  [QUEUES.events]: consumeEvents,
  [QUEUES.eventsDlq]: consumeEventDeadLetters,
  [QUEUES.deliveries]: consumeDeliveries,
  [QUEUES.deliveriesDlq]: consumeDeadLetters,
  [QUEUES.emailEvents]: consumeEmailEvents,
  [QUEUES.emailEventsDlq]: consumeEmailEventDeadLetters,
};

/** Dispatches a batch to the consumer of its queue. */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env, _ctx?: ExecutionContext): Promise<void> {
  const consumer = consumers[batch.queue];
  if (!consumer) {
    console.error(
      JSON.stringify({ level: 'error', msg: 'queue_unknown', queue: batch.queue, messages: batch.messages.length }),
    );
    batch.retryAll({ delaySeconds: 60 });
    return;
  }
  await consumer(batch, env);
}
