/**
 * The outbox sweeper (docs/design.md#outbox, #overdue-deliveries): re-enqueues deliveries that should be in the queue
 * but may not be — `pending` for over a minute (their sendBatch failed or the Worker died after the write), and
 * `queued`/`retrying` ones overdue, whose message was lost (a Worker killed mid-delivery, a message lost in
 * transport). Re-sending is safe: the consumer skips deliveries that are already terminal, and its writes are guarded.
 */

import { getDb } from '../db/client.ts';
import { deadLetterStatements } from '../delivery/dead-letter.ts';
import { releaseDeferred } from '../delivery/deferral.ts';
import { enqueueDeliveries } from '../delivery/enqueue.ts';
import { type ClaimedDelivery, claimOverdue, releaseClaims } from '../delivery/overdue.ts';
import { deliveriesByIds } from '../delivery/store.ts';
import { config } from '../env.ts';

/** Bounded work per run: a backlog drains over a few minutes rather than blowing one invocation's limits. */
const BATCH = 500;
const PENDING_AFTER_MS = 60_000;

export async function sweepOutbox(
  env: Env,
  now: Date,
): Promise<{ pending: number; overdue: number; requeued: number; dead: number; failed: number; released: number }> {
  // Deferred deliveries whose peak window ended, each at its own spread time (docs/design.md#peak-campaign-windows).
  const release = await releaseDeferred(env, now);
  const pendingBefore = new Date(now.getTime() - PENDING_AFTER_MS).toISOString();
  const [pending, overdue] = await env.DB.batch<Record<string, unknown>>([
    env.DB.prepare(
      `SELECT id FROM deliveries WHERE status = 'pending' AND updated_at < ?1 ORDER BY updated_at LIMIT ?2`,
    ).bind(pendingBefore, BATCH),
    claimOverdue(env.DB, now, config(env).overdueAfterSeconds, BATCH),
  ]);
  const pendingIds = pending!.results.map((r) => r.id as string);
  const claimed = overdue!.results as unknown as ClaimedDelivery[];
  const sent = await enqueueDeliveries(env, pendingIds);

  // Handed to the DLQ after the last attempt, but the hand-off was lost: write what the DLQ consumer would have,
  // rather than re-enqueue and make a 9th attempt.
  const lostHandOffs = claimed.filter((d) => d.status === 'retrying' && d.status_reason === 'retries_exhausted');
  let dead = 0;
  if (lostHandOffs.length) {
    const rows = await deliveriesByIds(
      getDb(env.DB),
      lostHandOffs.map((d) => d.id),
    );
    const statements = deadLetterStatements(env.DB, rows, new Date().toISOString());
    if (statements.length) await env.DB.batch(statements);
    dead = lostHandOffs.length;
  }

  const again = await enqueueDeliveries(
    env,
    claimed.filter((d) => !lostHandOffs.includes(d)).map((d) => d.id),
  );
  if (again.failed.length) await releaseClaims(env.DB, again.failed).run();
  return {
    pending: pendingIds.length,
    overdue: claimed.length,
    requeued: sent.queued.length + again.queued.length,
    dead,
    failed: sent.failed.length + again.failed.length + release.failed,
    released: release.released,
  };
}
