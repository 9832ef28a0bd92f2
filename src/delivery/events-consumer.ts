/**
 * The `notify-events` consumer: events from other Gharart Workers, validated with the same schema as
 * `POST …/events` and ingested the same way. A message that can never be accepted (bad schema, unknown handle,
 * system type, oversize data) is recorded in `event_rejections` with its reason and acked; a transient failure
 * (D1 down) is retried, and after the queue's retries the events DLQ consumer records it.
 */
import { runContext } from '../env.ts';
import { findJsonHazard, jsonHazardMessage, jsonPathText } from '../lib/json.ts';
import { type BatchOutcome, type IngestRequest, ingestBatch, MAX_BATCH_EVENTS } from './ingest.ts';
import { EventMessage } from './messages.ts';
import { type Rejection, recordRejections, settleRejections } from './rejections.ts';

const RETRY_SECONDS = 10;

type BatchRequest = Omit<IngestRequest, 'handle'>;

/** A transient failure (D1 down): the message comes again; after the queue's retries the DLQ consumer records it. */
function retryIngest(message: Message<unknown>, err: unknown): void {
  console.error(
    JSON.stringify({ level: 'error', msg: 'event_ingest_failed', messageId: message.id, error: String(err) }),
  );
  message.retry({ delaySeconds: RETRY_SECONDS });
}

export async function consumeEvents(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const ctx = runContext(env);
  const rejections: Rejection[] = [];
  const byHandle = new Map<string, { message: Message<unknown>; handle: string | null; request: BatchRequest }[]>();
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
    const group = byHandle.get(target) ?? [];
    group.push({ message, handle, request: { ...event, source: source ?? 'queue:notify-events' } });
    byHandle.set(target, group);
  }
  // Each handle's events through the batch ingest the HTTP batch uses (docs/design.md#batch-publish): one read and one
  // write for the group, a result per message. The queue is the data plane: no daily write limit.
  for (const [target, group] of byHandle) {
    for (let i = 0; i < group.length; i += MAX_BATCH_EVENTS) {
      const part = group.slice(i, i + MAX_BATCH_EVENTS);
      let outcomes: BatchOutcome[];
      try {
        outcomes = await ingestBatch(
          ctx,
          target,
          part.map((p) => p.request),
        );
      } catch (err) {
        for (const p of part) retryIngest(p.message, err);
        continue;
      }
      for (const [k, outcome] of outcomes.entries()) {
        const { message, handle } = part[k]!;
        if (outcome.kind === 'stored' || outcome.kind === 'duplicate') message.ack();
        else if (outcome.kind === 'rejected') {
          const reason = `${outcome.error.code}: ${outcome.error.message}`;
          rejections.push({ queue: batch.queue, message, handle, reason });
        } else retryIngest(message, outcome.kind === 'failed' ? outcome.error : outcome.kind);
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
