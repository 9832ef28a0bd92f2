/**
 * The `notify-deliveries-dlq` consumer (docs/design.md#retry-schedule): a message lands here when Queues gave up on it
 * (8 deliveries). Queues counts deliveries, not recorded attempts — a failed write, a crashed invocation or an
 * unreadable batch retries a message with nothing recorded — so the rows decide, never the count alone:
 *
 * - the schedule is spent (`retries_exhausted`, or every attempt since the last redrive made): `dead`, with the last
 *   error class it had, and its notification's aggregate status follows;
 * - attempts are left: handed back to the queue on a fresh message, due when the row says (`requeued_from_dlq`);
 * - already handed back once and nothing recorded since (a row that crashes every consumer): `dead`
 *   (`redelivery_exhausted`), so a crash loop ends.
 */
import { getDb } from '../db/client.ts';
import { byShard } from '../db/shards.ts';
import { runContext } from '../env.ts';
import type { DeliveryRow } from './attempt.ts';
import { enqueueDeliveries } from './enqueue.ts';
import { DeliveryMessage } from './messages.ts';
import { type Rejection, recordRejections } from './rejections.ts';
import { type RetryPolicyName, retryDelaySeconds, retryPolicyOf } from './retry-policy.ts';
import { deliveriesByIds, moveDelivery, REQUEUED_FROM_DLQ, requeuedFromDlqStatement } from './store.ts';
import { OPEN_STATUSES } from './summary.ts';

/** Queues' longest `delaySeconds` (12 h). */
const MAX_QUEUE_DELAY_SECONDS = 12 * 3600;

/** What the rows say about a delivery the queue gave up on. */
function verdict(d: DeliveryRow, schedule: readonly number[]): 'dead' | 'crash_loop' | 'requeue' {
  const since = d.attemptCount - d.retryBase;
  const spent = since > 0 && retryDelaySeconds(since, { schedule, random: () => 0.5 }) === null;
  if (spent || d.statusReason === 'retries_exhausted') return 'dead';
  return d.statusReason === REQUEUED_FROM_DLQ ? 'crash_loop' : 'requeue';
}

/**
 * `dead` (`retries_exhausted`) for each of these deliveries still open: the sweeper's lost hand-offs, rows whose
 * schedule the consumer already found spent (status reason `retries_exhausted`) but whose DLQ message was lost.
 */
export function deadLetterStatements(d1: D1Database, rows: readonly DeliveryRow[], now: string): D1PreparedStatement[] {
  return rows
    .filter((d) => OPEN_STATUSES.includes(d.status))
    .flatMap((d) => moveDelivery(d1, d, 'dead', { statusReason: 'retries_exhausted', attempted: false, now }));
}

/** The retry policies of the webhooks these deliveries go to, by subscription id (one read; emails have none). */
async function webhookPolicies(d1: D1Database, rows: readonly DeliveryRow[]) {
  const ids = [
    ...new Set(rows.filter((d) => d.channel === 'webhook' && d.subscriptionId).map((d) => d.subscriptionId)),
  ];
  const out = new Map<string, { retryPolicy: RetryPolicyName; retryDelays: string | null }>();
  if (!ids.length) return out;
  const { results } = await d1
    .prepare(
      `SELECT id, retry_policy, retry_delays FROM webhook_subscriptions
       WHERE id IN (SELECT value FROM json_each(?1))`,
    )
    .bind(JSON.stringify(ids))
    .all<{ id: string; retry_policy: RetryPolicyName; retry_delays: string | null }>();
  for (const r of results) out.set(r.id, { retryPolicy: r.retry_policy, retryDelays: r.retry_delays });
  return out;
}

export async function consumeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const rejections: Rejection[] = [];
  const idOf = new Map<Message<unknown>, string>();
  const messages: { id: string; handle: string | undefined }[] = [];
  for (const message of batch.messages) {
    const parsed = DeliveryMessage.safeParse(message.body);
    if (parsed.success) {
      idOf.set(message, parsed.data.deliveryId);
      messages.push({ id: parsed.data.deliveryId, handle: parsed.data.handle });
    } else rejections.push({ queue: batch.queue, message, handle: null, reason: 'invalid dead-letter message' });
  }
  // By shard (docs/design.md#shards), the batch's handles looked up at once; a moving handle's messages wait.
  const { groups, moving } = await byShard(env, messages, (m) => m.handle);
  const failed = new Set(moving.map((m) => m.id));
  try {
    await Promise.all([
      ...[...groups].map(async ([d1, group]) => {
        for (const id of await deadLettersOn(env, d1, [...new Set(group.map((m) => m.id))])) failed.add(id);
      }),
      rejections.length ? env.DB.batch(recordRejections(env.DB, rejections)) : null,
    ]);
  } catch (err) {
    console.error(JSON.stringify({ level: 'error', msg: 'dead_letters_not_written', error: String(err) }));
    batch.retryAll({ delaySeconds: 30 });
    return;
  }
  for (const message of batch.messages) {
    const id = idOf.get(message);
    if (id && failed.has(id)) message.retry({ delaySeconds: 30 });
    else message.ack();
  }
}

/** One shard's dead letters: written in one batch; the ids whose fresh message could not be sent. */
async function deadLettersOn(env: Env, d1: D1Database, ids: readonly string[]): Promise<string[]> {
  const { cfg } = runContext(env);
  const now = new Date();
  const at = now.toISOString();
  const failed: string[] = [];
  const rows = ids.length ? await deliveriesByIds(getDb(d1), ids) : [];
  // The webhooks' own retry policies live on the same shard as their deliveries.
  const policies = await webhookPolicies(d1, rows);
  const statements: D1PreparedStatement[] = [];
  for (const d of rows.filter((r) => OPEN_STATUSES.includes(r.status))) {
    const policy = retryPolicyOf(d.subscriptionId ? policies.get(d.subscriptionId) : undefined, cfg.retryDelaysSeconds);
    const v = verdict(d, policy.delaysSeconds);
    if (v !== 'requeue') {
      const statusReason = v === 'dead' ? 'retries_exhausted' : 'redelivery_exhausted';
      statements.push(...moveDelivery(d1, d, 'dead', { statusReason, attempted: false, now: at }));
      continue;
    }
    const due = d.nextAttemptAt ? Math.ceil((Date.parse(d.nextAttemptAt) - now.getTime()) / 1000) : 0;
    const delaySeconds = Math.min(MAX_QUEUE_DELAY_SECONDS, Math.max(0, due));
    const sent = await enqueueDeliveries(env, d1, [{ deliveryId: d.id, handle: d.handle }], { delaySeconds }).catch(
      () => ({ queued: [] }),
    );
    // Marked only once it is on its fresh message: a message retried here must find it unmarked.
    if (sent.queued.length) statements.push(requeuedFromDlqStatement(d1, d, at));
    else failed.push(d.id);
  }
  if (statements.length) await d1.batch(statements);
  return failed;
}
