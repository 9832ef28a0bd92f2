/**
 * Per-route throttles through the Workers Rate Limiting bindings (docs/design.md#identity-access-and-limits), keyed by
 * principal + handle, with the IETF RateLimit headers.
 */
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env.ts';
import { problems } from '../lib/problem.ts';
import { THROTTLES, type ThrottleClass } from '../lib/throttles.ts';

export type { ThrottleClass };

/** Throttles the request; must run after `authorize` (it keys on the principal). */
export function rateLimit(kind: ThrottleClass): MiddlewareHandler<AppEnv> {
  const { binding, limit, period } = THROTTLES[kind];
  const policy = `"${kind}";q=${limit};w=${period}`;
  return async function rateLimitMiddleware(c, next) {
    const check = async () => {
      const principal = c.get('principal');
      const key = `${kind}|${principal?.key ?? 'anonymous'}|${c.req.param('handle') ?? ''}`;
      const { success } = await c.env[binding].limit({ key });
      if (!success) {
        // The binding does not say when its window resets; a full period is the safe upper bound.
        throw problems.rateLimited(
          `Too many ${kind.replace('_', ' ')} requests: at most ${limit} per ${period} s for each token and handle.`,
          period,
          { 'RateLimit-Policy': policy, RateLimit: `"${kind}";r=0;t=${period}` },
        );
      }
    };
    // The principal is not known yet on a route whose access check rides in its data batch: throttle right after it.
    const pending = c.get('pendingAccess');
    if (pending && !pending.settled) pending.throttles.push(check);
    else await check();
    await next();
    c.res.headers.set('RateLimit-Policy', policy);
  };
}
