/**
 * Daily write limit per handle (docs/design.md#identity-access-and-limits), counted in D1 per UTC day. A slot is taken
 * atomically before the write (`… DO UPDATE SET count = count + 1 WHERE count < limit RETURNING`), so concurrent writes
 * at the limit cannot overshoot it, and given back when the write does not succeed: only successful writes count.
 */
import type { MiddlewareHandler } from 'hono';
import { giveBackDailySlots, nextUtcMidnight, utcDay } from '../db/daily-counters.ts';
import { shardFor } from '../db/shards.ts';
import { type AppEnv, config } from '../env.ts';
import { type ProblemError, problems } from '../lib/problem.ts';

/** The daily limit's `RateLimit-Policy` item: a window of one UTC day. */
export const dailyPolicy = (limit: number) => `"daily";q=${limit};w=86400`;

/**
 * The 429 of the daily limit: which limit, its size, what remains (0) and when it resets, in the body and in the
 * RateLimit headers alike.
 */
export function dailyLimitProblem(limit: number, now: Date): ProblemError {
  const day = utcDay(now);
  const reset = nextUtcMidnight(now);
  const seconds = Math.ceil((reset.getTime() - now.getTime()) / 1000);
  return problems.rateLimited(
    `This handle reached its limit of ${limit} writes for ${day} (UTC); writes resume at ${reset.toISOString()}.`,
    seconds,
    { 'RateLimit-Policy': dailyPolicy(limit), RateLimit: `"daily";r=0;t=${seconds}` },
    { policy: 'daily', limit, remaining: 0, resetAt: reset.toISOString() },
  );
}

/** Enforces and counts the daily write limit of the handle in the path. */
export function dailyWriteQuota(): MiddlewareHandler<AppEnv> {
  return async function dailyWriteQuotaMiddleware(c, next) {
    const handle = c.req.param('handle');
    if (!handle) return next();
    const limit = config(c.env).dailyWriteLimit;
    const now = new Date();
    const day = utcDay(now);
    // Counted beside the handle's rows, on its shard (docs/design.md#shards).
    const d1 = await shardFor(c.env, handle);
    const slot = await d1
      .prepare(
        `INSERT INTO daily_write_counters (handle, day, count) VALUES (?1, ?2, 1)
       ON CONFLICT (handle, day) DO UPDATE SET count = count + 1 WHERE count < ?3
       RETURNING count`,
      )
      .bind(handle, day, limit)
      .first<{ count: number }>();
    if (!slot) throw dailyLimitProblem(limit, now);
    let succeeded = false;
    try {
      await next();
      succeeded = c.res.status >= 200 && c.res.status < 300;
    } finally {
      if (!succeeded) await giveBackDailySlots(d1, handle, day, 1).run();
    }
  };
}
