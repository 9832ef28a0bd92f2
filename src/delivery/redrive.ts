/**
 * Redrive (docs/design.md#routes `…/recover`, `…/deliveries/{id}/retry`): `dead` or `skipped` deliveries go back to
 * `pending` with a fresh retry schedule (`retry_base`), their notifications' counts move back to "open", and they are
 * enqueued. Attempt history is kept: attempt numbers keep counting. `rows` are of one handle, on `shard`.
 */

import type { DeliveryRow } from './attempt.ts';
import { enqueueDeliveries } from './enqueue.ts';
import { redriveStatements } from './store.ts';

export const REDRIVABLE = ['dead', 'skipped'] as const;

export async function redrive(
  env: Env,
  shard: D1Database,
  rows: readonly DeliveryRow[],
): Promise<{ redriven: string[]; enqueued: number }> {
  const now = new Date().toISOString();
  const eligible = rows.filter((d) => (REDRIVABLE as readonly string[]).includes(d.status));
  const statements = eligible.flatMap((d) => redriveStatements(shard, d, now));
  if (statements.length) await shard.batch(statements);
  const ids = eligible.map((d) => d.id);
  const queued = eligible.map((d) => ({ deliveryId: d.id, handle: d.handle }));
  const sent = ids.length ? await enqueueDeliveries(env, shard, queued) : { queued: [] };
  return { redriven: ids, enqueued: sent.queued.length };
}
