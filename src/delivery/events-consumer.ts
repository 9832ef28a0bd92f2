/**
 * The `notify-events` consumer: events from other Gharart Workers, validated with the same schema as
 * `POST …/events` and ingested the same way. A message that can never be accepted (bad schema, unknown handle,
 * system type, oversize data) is recorded in `event_rejections` with its reason and acked; a transient failure
 * (D1 down) is retried, and after the queue's retries the events DLQ consumer records it.
 */
import { runContext } from '../env.ts';
import { findJsonHazard, jsonHazardMessage, jsonPathText } from '../lib/json.ts';
import { IngestRejected, ingestEvent } from './ingest.ts';
import { EventMessage } from './messages.ts';
import { type Rejection, recordRejections, settleRejections } from './rejections.ts';

const RETRY_SECONDS = 10;

export async function consumeEvents(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const ctx = runContext(env);
  const rejections: Rejection[] = [];
  for (const message of batch.messages) {
    const handle =
      typeof (message.body as { handle?: unknown })?.handle === 'string'
        ? (message.body as { handle: string }).handle
        : null;
    // The rule of every JSON body (middleware/body-guard.ts), on the message as received: the schema would drop a
    // `__proto__` key before anyone saw it.
    const hazard = findJsonHazard(message.body);
    if (hazard) {
      const reason = `invalid event: ${jsonPathText('(message)', hazard.path)}: ${jsonHazardMessage(hazard)}`;
      rejections.push({ queue: batch.queue, message, handle, reason });
      continue;
    }
    const parsed = EventMessage.safeParse(message.body);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ');
      rejections.push({ queue: batch.queue, message, handle, reason: `invalid event: ${issues}` });
      continue;
    }
    const { handle: target, source, ...event } = parsed.data;
    try {
      await ingestEvent(ctx, { ...event, handle: target, source: source ?? 'queue:notify-events' });
      message.ack();
    } catch (err) {
      if (err instanceof IngestRejected) {
        rejections.push({ queue: batch.queue, message, handle, reason: `${err.code}: ${err.message}` });
      } else {
        console.error(
          JSON.stringify({ level: 'error', msg: 'event_ingest_failed', messageId: message.id, error: String(err) }),
        );
        message.retry({ delaySeconds: RETRY_SECONDS });
      }
    }
  }
  await settleRejections(env.DB, rejections, RETRY_SECONDS);
}

/** `notify-events-dlq`: events whose ingest kept failing; recorded so they can be found and replayed. */
export async function consumeEventDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const rejections: Rejection[] = batch.messages.map((message) => ({
    queue: batch.queue,
    message,
    handle:
      typeof (message.body as { handle?: unknown })?.handle === 'string'
        ? (message.body as { handle: string }).handle
        : null,
    reason: 'retries_exhausted: ingest kept failing',
  }));
  try {
    await env.DB.batch(recordRejections(env.DB, rejections));
    batch.ackAll();
  } catch (err) {
    console.error(JSON.stringify({ level: 'error', msg: 'event_dead_letters_not_written', error: String(err) }));
    batch.retryAll({ delaySeconds: 30 });
  }
}
