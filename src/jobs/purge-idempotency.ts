/**
 * Deletes idempotency records past their 24 h retention, a bounded number per run and database: the control plane
 * (writes outside a handle) and every shard (a handle's writes keep their key beside their rows).
 */
import { shardBindings } from '../db/shards.ts';

const BATCH = 1000;

export async function purgeExpiredIdempotencyKeys(env: Env, now: Date): Promise<{ deleted: number }> {
  const databases = [...new Set([env.DB, ...shardBindings(env)])];
  const deleted = await Promise.all(
    databases.map(async (d1) => {
      // D1's SQLite has no DELETE … LIMIT; bound the delete through the expiry index instead.
      const result = await d1
        .prepare(
          `DELETE FROM idempotency_keys WHERE rowid IN
             (SELECT rowid FROM idempotency_keys WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2)`,
        )
        .bind(now.toISOString(), BATCH)
        .run();
      return result.meta.changes ?? 0;
    }),
  );
  return { deleted: deleted.reduce((a, b) => a + b, 0) };
}
