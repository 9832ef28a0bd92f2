/**
 * The only module that touches the queue producers. Sends `{deliveryId}` messages in chunks of at most 100 (the
 * Queues batch limit) and marks each sent chunk `queued`. A chunk whose send fails stays `pending`; the minute
 * sweeper sends it again, so a failed send is recovered, never lost.
 */
import type { DeliveryMessage, EventMessage } from './messages.ts';

/** Queues accept at most 100 messages (and 256 KB) per sendBatch. */
export const SEND_BATCH_LIMIT = 100;

export interface EnqueueResult {
  /** Sent to the queue. */
  queued: string[];
  failed: string[];
  sendBatchCalls: number;
  /** False when the sent rows could not be marked `queued` (they stay `pending`; the sweeper sends them again). */
  marked: boolean;
}

/** A delivery to enqueue: its id and its handle, which names its shard (docs/design.md#shards). */
export interface QueuedDelivery {
  deliveryId: string;
  handle: string;
}

/** Counts sendBatch calls per isolate; tests and the bench read it to check fan-out cost. */
export const enqueueStats = { sendBatchCalls: 0 };

/**
 * Enqueues pending deliveries of one shard and marks the sent ones `queued` there (only rows still `pending`: a
 * concurrent sweeper or consumer may have moved them). Each message carries the delivery's handle, which names its
 * shard. `delaySeconds` postpones the first attempt (used for redrives).
 */
export async function enqueueDeliveries(
  env: Pick<Env, 'DELIVERIES_QUEUE'>,
  shard: D1Database,
  deliveries: readonly QueuedDelivery[],
  options: { delaySeconds?: number } = {},
): Promise<EnqueueResult> {
  const result: EnqueueResult = { queued: [], failed: [], sendBatchCalls: 0, marked: true };
  for (let i = 0; i < deliveries.length; i += SEND_BATCH_LIMIT) {
    const chunk = deliveries.slice(i, i + SEND_BATCH_LIMIT);
    const ids = chunk.map((d) => d.deliveryId);
    try {
      result.sendBatchCalls++;
      enqueueStats.sendBatchCalls++;
      await env.DELIVERIES_QUEUE.sendBatch(
        chunk.map(({ deliveryId, handle }) => ({
          body: { deliveryId, handle } satisfies DeliveryMessage,
          contentType: 'json' as const,
          ...(options.delaySeconds ? { delaySeconds: options.delaySeconds } : {}),
        })),
      );
      result.queued.push(...ids);
    } catch (err) {
      result.failed.push(...ids);
      console.warn(
        JSON.stringify({ level: 'warn', msg: 'enqueue_failed', deliveries: chunk.length, error: String(err) }),
      );
    }
  }
  if (result.queued.length) {
    // The messages are sent: a failure here must not reach the caller, whose rows are stored (a retried publish or
    // events message would store the event twice). Rows left `pending` are re-sent by the sweeper, and the consumer
    // takes a `pending` row like a `queued` one (docs/design.md#outbox).
    await markQueued(shard, result.queued).catch((err: unknown) => {
      result.marked = false;
      console.warn(
        JSON.stringify({
          level: 'warn',
          msg: 'mark_queued_failed',
          deliveries: result.queued.length,
          error: String(err),
        }),
      );
    });
  }
  return result;
}

/** `pending` → `queued` for the given deliveries, with their notifications' summaries, in one batch. */
async function markQueued(d1: D1Database, ids: string[]): Promise<void> {
  const now = new Date().toISOString();
  // json_each over a bound JSON array: one statement for any number of ids, no SQL built from values.
  const idList = JSON.stringify(ids);
  await d1.batch([
    d1
      .prepare(
        `UPDATE notifications SET
           recipients = (SELECT json_group_object(j.key,
               CASE WHEN j.key IN (SELECT value FROM json_each(?1)) AND json_extract(j.value, '$.status') = 'pending'
                    THEN json_set(j.value, '$.status', 'queued', '$.updatedAt', ?2) ELSE json(j.value) END)
             FROM json_each(notifications.recipients) j)
         WHERE id IN (SELECT notification_id FROM deliveries
                      WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'pending')
           AND recipients <> '{}'`,
      )
      .bind(idList, now),
    d1
      .prepare(
        `UPDATE deliveries SET status = 'queued', updated_at = ?2
         WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'pending'`,
      )
      .bind(idList, now),
  ]);
}

/** Publishes events to `notify-events` (used by other Workers through the same schema; here for tests and tools). */
export async function publishEvents(env: Pick<Env, 'EVENTS_QUEUE'>, events: EventMessage[]): Promise<void> {
  for (let i = 0; i < events.length; i += SEND_BATCH_LIMIT) {
    await env.EVENTS_QUEUE.sendBatch(
      events.slice(i, i + SEND_BATCH_LIMIT).map((body) => ({ body, contentType: 'json' as const })),
    );
  }
}
