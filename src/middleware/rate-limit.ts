/**
 * Per-route throttles through the Workers Rate Limiting bindings (docs/design.md#identity-access-and-limits), keyed by
 * principal + handle, with the IETF RateLimit headers: the policy, and what remains and when the window resets.
 */
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env.ts';
import { problems } from '../lib/problem.ts';
import {
  countThrottled,
  THROTTLES,
  type ThrottleClass,
  throttleKey,
  throttlePolicy,
  throttleState,
} from '../lib/throttles.ts';

export type { ThrottleClass };

/** Adds a `RateLimit-Policy` (or `RateLimit`) item unless the header already names this class. */
function addItem(headers: Headers, name: string, kind: string, item: string): void {
  const existing = headers.get(name);
  if (!existing) headers.set(name, item);
  else if (!existing.includes(`"${kind}"`)) headers.set(name, `${existing}, ${item}`);
}

/** Throttles the request; must run after `authorize` (it keys on the principal). */
export function rateLimit(kind: ThrottleClass): MiddlewareHandler<AppEnv> {
  const { binding, limit, period } = THROTTLES[kind];
  const policy = throttlePolicy(kind);
  return async function rateLimitMiddleware(c, next) {
    let key = '';
    const check = async () => {
      const principal = c.get('principal');
      key = throttleKey(kind, principal?.key ?? 'anonymous', c.req.param('handle') ?? '');
      const { success } = await c.env[binding].limit({ key });
      if (!success) {
        // The binding does not say when its window resets; a full period is the safe upper bound.
        throw problems.rateLimited(
          `Too many ${kind.replace('_', ' ')} requests: at most ${limit} per ${period} s for each token and handle.`,
          period,
          { 'RateLimit-Policy': policy, RateLimit: `"${kind}";r=0;t=${period}` },
          { policy: kind, limit, remaining: 0, windowSeconds: period },
        );
      }
      countThrottled(kind, key);
    };
    // The principal is not known yet on a route whose access check rides in its data batch: throttle right after it.
    const pending = c.get('pendingAccess');
    if (pending && !pending.settled) pending.throttles.push(check);
    else await check();
    await next();
    addItem(c.res.headers, 'RateLimit-Policy', kind, policy);
    if (key && c.res.status < 400) {
      const state = throttleState(kind, key);
      addItem(c.res.headers, 'RateLimit', kind, `"${kind}";r=${state.remaining};t=${state.resetSeconds}`);
    }
  };
}
