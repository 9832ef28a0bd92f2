/** Deletes idempotency records past their 24 h retention, a bounded number per run. */
const BATCH = 1000;

export async function purgeExpiredIdempotencyKeys(env: Env, now: Date): Promise<{ deleted: number }> {
  // D1's SQLite has no DELETE … LIMIT; bound the delete through the expiry index instead.
  const result = await env.DB.prepare(
    `DELETE FROM idempotency_keys WHERE rowid IN
       (SELECT rowid FROM idempotency_keys WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2)`,
  )
    .bind(now.toISOString(), BATCH)
    .run();
  return { deleted: result.meta.changes ?? 0 };
}
