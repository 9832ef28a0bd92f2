/**
 * Daily write limit per handle (docs/design.md#identity-access-and-limits), counted in D1 per UTC day. A slot is taken
 * atomically before the write (`… DO UPDATE SET count = count + 1 WHERE count < limit RETURNING`), so concurrent writes
 * at the limit cannot overshoot it, and given back when the write does not succeed: only successful writes count.
 */
import type { MiddlewareHandler } from 'hono';
import { shardFor } from '../db/shards.ts';
import { type AppEnv, config } from '../env.ts';
import { problems } from '../lib/problem.ts';

function utcDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function nextUtcMidnight(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1));
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
    if (!slot) {
      const reset = nextUtcMidnight(now);
      const p = problems.rateLimited(
        `This handle reached its limit of ${limit} writes for ${day} (UTC); writes resume at ${reset.toISOString()}.`,
        Math.ceil((reset.getTime() - now.getTime()) / 1000),
      );
      p.extensions.resetAt = reset.toISOString();
      p.extensions.limit = limit;
      throw p;
    }
    let succeeded = false;
    try {
      await next();
      succeeded = c.res.status >= 200 && c.res.status < 300;
    } finally {
      if (!succeeded) {
        await d1
          .prepare('UPDATE daily_write_counters SET count = count - 1 WHERE handle = ?1 AND day = ?2 AND count > 0')
          .bind(handle, day)
          .run();
      }
    }
  };
}
