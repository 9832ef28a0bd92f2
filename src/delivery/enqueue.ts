/**
 * The only module that touches the queue producers. Sends `{deliveryId}` messages in chunks of at most 100 (the
 * Queues batch limit) and marks each sent chunk `queued`. A chunk whose send fails stays `pending`; the minute
 * sweeper sends it again, so a failed send is recovered, never lost.
 *
 * Deliveries are spread over the delivery queues `DELIVERIES_QUEUE_0 … _{Q-1}`
 * (docs/design.md#several-delivery-queues): each delivery always goes to the same one, picked by a stable hash of its
 * id, so its first message, the sweeper's re-enqueues and the DLQ's hand-backs share a queue (and its retries stay
 * there: a retry is the same message).
 */
import type { DeliveryMessage, EventMessage } from './messages.ts';
import { entryFieldSql, setEntrySql } from './summary.ts';

/** Queues accept at most 100 messages (and 256 KB) per sendBatch. */
export const SEND_BATCH_LIMIT = 100;

/** The delivery queue producers: `DELIVERIES_QUEUE_<n>` for n = 0 … Q−1, as many as wrangler.toml binds. */
export type DeliveryQueuesEnv = Pick<Env, 'DELIVERIES_QUEUE_0'>;

const DELIVERY_QUEUE_BINDING = /^DELIVERIES_QUEUE_(0|[1-9][0-9]*)$/;

/**
 * The delivery queue producers of `env`, in order (index n is `notify-deliveries-<n>`). Read from the bindings
 * themselves, so adding a queue is a wrangler.toml change; a gap in the numbering is a configuration error.
 */
export function deliveryQueues(env: DeliveryQueuesEnv): Queue[] {
  const found = new Map<number, Queue>();
  for (const [name, binding] of Object.entries(env)) {
    const n = DELIVERY_QUEUE_BINDING.exec(name)?.[1];
    if (n !== undefined && binding) found.set(Number(n), binding as Queue);
  }
  const queues = Array.from({ length: found.size }, (_, n) => found.get(n));
  if (!queues.length || queues.some((q) => !q)) {
    throw new Error(
      `delivery queues must be bound as DELIVERIES_QUEUE_0 … DELIVERIES_QUEUE_<Q-1> with no gap; bound: ${
        [...found.keys()].sort((a, b) => a - b).join(', ') || 'none'
      }`,
    );
  }
  return queues as Queue[];
}

/**
 * The delivery queue of a delivery, 0 … queueCount−1: FNV-1a (32 bit) of its id, modulo the count. Stable across
 * isolates and deploys; changing Q (or this function) only moves deliveries between queues that share one consumer.
 */
export function deliveryQueueIndex(deliveryId: string, queueCount: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < deliveryId.length; i++) {
    hash ^= deliveryId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % queueCount;
}

export interface EnqueueResult {
  /** Sent to the queue. */
  queued: string[];
  failed: string[];
  sendBatchCalls: number;
  /**
   * False when the rows could not be marked: sent rows not marked `queued` stay `pending` (the sweeper sends them
   * again); with `written: 'queued'`, rows whose send failed stay `queued` (the overdue sweep sends them again).
   */
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
 * Enqueues pending deliveries of one shard, each on its own queue (`deliveryQueueIndex`), and marks the sent ones
 * `queued` there (only rows still `pending`: a concurrent sweeper or consumer may have moved them). Each message
 * carries the delivery's handle, which names its shard (docs/design.md#shards). The queues are sent to side by side,
 * each in chunks of ≤ 100: n deliveries cost at most ⌈n/100⌉ + Q − 1 sendBatch calls. `delaySeconds` postpones the
 * first attempt (used for redrives).
 */
export async function enqueueDeliveries(
  env: DeliveryQueuesEnv,
  shard: D1Database,
  deliveries: readonly QueuedDelivery[],
  options: {
    delaySeconds?: number;
    /**
     * `queued`: the rows were written `queued` already (ingest, docs/design.md#outbox): nothing is written for the
     * sent ones, and only those whose send failed are put back to `pending`. Default `pending`: the sent ones are
     * marked `queued`.
     */
    written?: 'pending' | 'queued';
  } = {},
): Promise<EnqueueResult> {
  const result: EnqueueResult = { queued: [], failed: [], sendBatchCalls: 0, marked: true };
  const queues = deliveryQueues(env);
  const perQueue = queues.map((): QueuedDelivery[] => []);
  for (const d of deliveries) perQueue[deliveryQueueIndex(d.deliveryId, queues.length)]!.push(d);
  const sendAll = async (queue: Queue, list: readonly QueuedDelivery[], n: number) => {
    for (let i = 0; i < list.length; i += SEND_BATCH_LIMIT) {
      const slice = list.slice(i, i + SEND_BATCH_LIMIT);
      const chunk = slice.map((d) => d.deliveryId);
      try {
        result.sendBatchCalls++;
        enqueueStats.sendBatchCalls++;
        await queue.sendBatch(
          slice.map(({ deliveryId, handle }) => ({
            body: { deliveryId, handle } satisfies DeliveryMessage,
            contentType: 'json' as const,
            ...(options.delaySeconds ? { delaySeconds: options.delaySeconds } : {}),
          })),
        );
        result.queued.push(...chunk);
      } catch (err) {
        result.failed.push(...chunk);
        console.warn(
          JSON.stringify({
            level: 'warn',
            msg: 'enqueue_failed',
            queue: n,
            deliveries: chunk.length,
            error: String(err),
          }),
        );
      }
    }
  };
  await Promise.all(queues.map((queue, n) => sendAll(queue, perQueue[n]!, n)));
  if (options.written === 'queued') {
    if (result.failed.length) {
      // Tried twice (a D1 blip), and never throws: a row left `queued` without its message is re-sent by the overdue
      // sweep instead.
      await markPending(shard, result.failed)
        .catch(async () => {
          await new Promise((resolve) => setTimeout(resolve, 200));
          await markPending(shard, result.failed);
        })
        .catch((err: unknown) => {
          result.marked = false;
          console.warn(
            JSON.stringify({
              level: 'warn',
              msg: 'mark_pending_failed',
              deliveries: result.failed.length,
              error: String(err),
            }),
          );
        });
    }
    return result;
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

/**
 * Puts deliveries that wait for their pace (docs/design.md#pacing) back on their own queues as new messages, each
 * with its delay. A wait is not a retry of the old message: it never spends the queue's `max_retries`, so waiting
 * can never lead a message to the DLQ. Returns the ids sent; the caller acks their old messages only then (a crash
 * between the two leaves a duplicate message, which the consumer's guards make harmless).
 */
export async function requeueDeliveries(
  env: DeliveryQueuesEnv,
  waits: readonly (QueuedDelivery & { delaySeconds: number })[],
): Promise<Set<string>> {
  const sent = new Set<string>();
  const queues = deliveryQueues(env);
  const perQueue = queues.map((): (QueuedDelivery & { delaySeconds: number })[] => []);
  for (const w of waits) perQueue[deliveryQueueIndex(w.deliveryId, queues.length)]!.push(w);
  await Promise.all(
    queues.map(async (queue, n) => {
      const list = perQueue[n]!;
      for (let i = 0; i < list.length; i += SEND_BATCH_LIMIT) {
        const slice = list.slice(i, i + SEND_BATCH_LIMIT);
        try {
          enqueueStats.sendBatchCalls++;
          await queue.sendBatch(
            slice.map(({ deliveryId, handle, delaySeconds }) => ({
              body: { deliveryId, handle } satisfies DeliveryMessage,
              contentType: 'json' as const,
              ...(delaySeconds > 0 ? { delaySeconds } : {}),
            })),
          );
          for (const w of slice) sent.add(w.deliveryId);
        } catch (err) {
          console.warn(
            JSON.stringify({
              level: 'warn',
              msg: 'requeue_failed',
              queue: n,
              deliveries: slice.length,
              error: String(err),
            }),
          );
        }
      }
    }),
  );
  return sent;
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
               CASE WHEN j.key IN (SELECT value FROM json_each(?1))
                         AND ${entryFieldSql('j.value', 'status')} = 'pending'
                    THEN ${setEntrySql('j.value', { status: `'queued'`, updatedAt: '?2' })} ELSE json(j.value) END)
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

/**
 * `queued` → `pending` for deliveries written `queued` whose send failed, with their notifications' summaries, so the
 * sweeper's pending pass sends them within a minute. Guarded (still `queued`, never attempted): a send that failed
 * after all reached the queue may already have been consumed.
 */
async function markPending(d1: D1Database, ids: string[]): Promise<void> {
  const now = new Date().toISOString();
  const idList = JSON.stringify(ids);
  const unsent = `SELECT id FROM deliveries
    WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'queued' AND attempt_count = 0`;
  await d1.batch([
    d1
      .prepare(
        `UPDATE notifications SET
           recipients = (SELECT json_group_object(j.key,
               CASE WHEN j.key IN (${unsent}) THEN ${setEntrySql('j.value', { status: `'pending'`, updatedAt: '?2' })}
                    ELSE json(j.value) END)
             FROM json_each(notifications.recipients) j)
         WHERE id IN (SELECT notification_id FROM deliveries WHERE id IN (${unsent})) AND recipients <> '{}'`,
      )
      .bind(idList, now),
    d1.prepare(`UPDATE deliveries SET status = 'pending', updated_at = ?2 WHERE id IN (${unsent})`).bind(idList, now),
  ]);
}

/**
 * Publishes events to `notify-events` (used by other Workers through the same schema; here for tests and tools). One
 * events queue is enough: docs/design.md#several-delivery-queues says why.
 */
export async function publishEvents(env: Pick<Env, 'EVENTS_QUEUE'>, events: EventMessage[]): Promise<void> {
  for (let i = 0; i < events.length; i += SEND_BATCH_LIMIT) {
    await env.EVENTS_QUEUE.sendBatch(
      events.slice(i, i + SEND_BATCH_LIMIT).map((body) => ({ body, contentType: 'json' as const })),
    );
  }
}
