/**
 * The outbox sweeper (docs/design.md#outbox, #overdue-deliveries): re-enqueues deliveries that should be in the queue
 * but may not be — `pending` for over a minute (their sendBatch failed or the Worker died after the write), and
 * `queued`/`retrying` ones overdue, whose message was lost (a Worker killed mid-delivery, a message lost in
 * transport). Re-sending is safe: the consumer skips deliveries that are already terminal, and its writes are guarded.
 */

import { getDb } from '../db/client.ts';
import { onEveryShard } from '../db/shards.ts';
import { deadLetterStatements } from '../delivery/dead-letter.ts';
import { releaseDeferred } from '../delivery/deferral.ts';
import { enqueueDeliveries } from '../delivery/enqueue.ts';
import { type ClaimedDelivery, claimOverdue, NOT_MOVING, releaseClaims } from '../delivery/overdue.ts';
import { deliveriesByIds } from '../delivery/store.ts';
import { config } from '../env.ts';

/** Bounded work per run: a backlog drains over a few minutes rather than blowing one invocation's limits. */
const BATCH = 500;
const PENDING_AFTER_MS = 60_000;

/** What one sweep did, summed over the shards. */
export type SweepResult = {
  pending: number;
  overdue: number;
  requeued: number;
  dead: number;
  failed: number;
  released: number;
};

/** The minute sweep of every shard (docs/design.md#shards), at once. */
export async function sweepOutbox(env: Env, now: Date): Promise<SweepResult> {
  const runs = await onEveryShard(env, (d1) => sweepShard(env, d1, now));
  const sum = (k: keyof SweepResult) => runs.reduce((n, r) => n + r[k], 0);
  return {
    pending: sum('pending'),
    overdue: sum('overdue'),
    requeued: sum('requeued'),
    dead: sum('dead'),
    failed: sum('failed'),
    released: sum('released'),
  };
}

/**
 * One shard's sweep: its deferred deliveries whose time came released, its pending and overdue deliveries
 * re-enqueued, lost DLQ hand-offs written dead.
 */
export async function sweepShard(env: Env, d1: D1Database, now: Date): Promise<SweepResult> {
  // Deferred deliveries whose peak window ended, each at its own spread time (docs/design.md#peak-campaign-windows).
  const release = await releaseDeferred(env, d1, now);
  const pendingBefore = new Date(now.getTime() - PENDING_AFTER_MS).toISOString();
  const [pending, overdue] = await d1.batch<Record<string, unknown>>([
    d1
      .prepare(
        `SELECT id, handle FROM deliveries WHERE status = 'pending' AND updated_at < ?1 AND ${NOT_MOVING}
         ORDER BY updated_at LIMIT ?2`,
      )
      .bind(pendingBefore, BATCH),
    claimOverdue(d1, now, config(env).overdueAfterSeconds, BATCH),
  ]);
  const pendingRows = pending!.results.map((r) => ({ deliveryId: r.id as string, handle: r.handle as string }));
  const claimed = overdue!.results as unknown as ClaimedDelivery[];
  const sent = await enqueueDeliveries(env, d1, pendingRows);

  // Handed to the DLQ after the last attempt, but the hand-off was lost: write what the DLQ consumer would have,
  // rather than re-enqueue and make a 9th attempt.
  const lostHandOffs = claimed.filter((d) => d.status === 'retrying' && d.status_reason === 'retries_exhausted');
  let dead = 0;
  if (lostHandOffs.length) {
    const rows = await deliveriesByIds(
      getDb(d1),
      lostHandOffs.map((d) => d.id),
    );
    const statements = deadLetterStatements(d1, rows, new Date().toISOString());
    if (statements.length) await d1.batch(statements);
    dead = lostHandOffs.length;
  }

  const again = await enqueueDeliveries(
    env,
    d1,
    claimed.filter((d) => !lostHandOffs.includes(d)).map((d) => ({ deliveryId: d.id, handle: d.handle })),
  );
  if (again.failed.length) await releaseClaims(d1, again.failed).run();
  return {
    pending: pendingRows.length,
    overdue: claimed.length,
    requeued: sent.queued.length + again.queued.length,
    dead,
    failed: sent.failed.length + again.failed.length + release.failed,
    released: release.released,
  };
}
