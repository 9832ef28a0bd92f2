/**
 * The outbox sweeper (docs/design.md#outbox): re-enqueues deliveries that should be in the queue but may not be —
 * `pending` for over a minute (their sendBatch failed or the Worker died after the write), and, as a second net,
 * `queued`/`retrying` ones long past due (a message lost in transport). Re-sending is safe: the consumer skips
 * deliveries that are already terminal.
 */
import { enqueueDeliveries } from '../delivery/enqueue.ts';

/** Bounded work per run: a backlog drains over a few minutes rather than blowing one invocation's limits. */
const BATCH = 500;
const PENDING_AFTER_MS = 60_000;
/** Far beyond queue latency; a retrying delivery is overdue this long after its next attempt was due. */
const STUCK_AFTER_MS = 60 * 60_000;

export async function sweepOutbox(
  env: Env,
  now: Date,
): Promise<{ pending: number; stuck: number; requeued: number; failed: number }> {
  const pendingBefore = new Date(now.getTime() - PENDING_AFTER_MS).toISOString();
  const stuckBefore = new Date(now.getTime() - STUCK_AFTER_MS).toISOString();
  const [pending, stuck] = await env.DB.batch<{ id: string }>([
    env.DB.prepare(
      `SELECT id FROM deliveries WHERE status = 'pending' AND updated_at < ?1 ORDER BY updated_at LIMIT ?2`,
    ).bind(pendingBefore, BATCH),
    env.DB.prepare(
      `SELECT id FROM deliveries WHERE status IN ('queued', 'retrying')
         AND updated_at < ?1 AND COALESCE(next_attempt_at, updated_at) < ?1 ORDER BY updated_at LIMIT ?2`,
    ).bind(stuckBefore, BATCH),
  ]);
  const pendingIds = pending!.results.map((r) => r.id);
  const stuckIds = stuck!.results.map((r) => r.id);
  const sent = await enqueueDeliveries(env, pendingIds);
  let stuckSent = 0;
  if (stuckIds.length) {
    // These are already queued/retrying: send again and touch them, so the next run does not send them again.
    const again = await enqueueDeliveries(env, stuckIds);
    stuckSent = again.queued.length;
    if (again.queued.length) {
      await env.DB.prepare(`UPDATE deliveries SET updated_at = ?2 WHERE id IN (SELECT value FROM json_each(?1))`)
        .bind(JSON.stringify(again.queued), now.toISOString())
        .run();
    }
  }
  return {
    pending: pendingIds.length,
    stuck: stuckIds.length,
    requeued: sent.queued.length + stuckSent,
    failed: sent.failed.length,
  };
}
