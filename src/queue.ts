/**
 * The `queue` entry point: routes a batch to its consumer by queue name. Nothing is acked that was not handled:
 * a batch from an unknown queue and a message that fails its schema are logged and retried — never dropped — so a
 * misconfiguration shows up in logs and the DLQ instead of losing events.
 */
import type { z } from 'zod';
import { DeliveryMessage, EventMessage, QUEUES } from './delivery/messages.ts';

type Consumer = (batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext) => Promise<void>;

/** Seconds before a message that could not be handled is offered again. */
const HOLD_DELAY_SECONDS = 60;

function log(level: 'warn' | 'error', msg: string, fields: Record<string, unknown>) {
  console[level](JSON.stringify({ level, msg, ...fields }));
}

/**
 * Validates each message against the queue's schema and retries every one of them: used for a consumer whose
 * processing has not been enabled in this deployment, so messages wait in the queue (and then its DLQ) instead of
 * being acknowledged unprocessed.
 */
function holdingConsumer(schema: z.ZodType): Consumer {
  return async (batch) => {
    for (const message of batch.messages) {
      const parsed = schema.safeParse(message.body);
      log('warn', parsed.success ? 'queue_message_held' : 'queue_message_invalid', {
        queue: batch.queue,
        messageId: message.id,
        attempts: message.attempts,
        ...(parsed.success ? {} : { issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) }),
      });
      message.retry({ delaySeconds: HOLD_DELAY_SECONDS });
    }
  };
}

const consumers: Record<string, Consumer> = {
  [QUEUES.events]: holdingConsumer(EventMessage),
  [QUEUES.eventsDlq]: holdingConsumer(EventMessage),
  [QUEUES.deliveries]: holdingConsumer(DeliveryMessage),
  [QUEUES.deliveriesDlq]: holdingConsumer(DeliveryMessage),
};

/** Dispatches a batch to the consumer of its queue. */
export async function handleQueue(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
  const consumer = consumers[batch.queue];
  if (!consumer) {
    log('error', 'queue_unknown', { queue: batch.queue, messages: batch.messages.length });
    batch.retryAll({ delaySeconds: HOLD_DELAY_SECONDS });
    return;
  }
  await consumer(batch, env, ctx);
}
