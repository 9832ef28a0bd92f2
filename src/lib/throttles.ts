/**
 * The per-route throttles (docs/design.md#identity-access-and-limits). The Rate Limiting bindings in wrangler.toml
 * enforce them; this table names the binding of each class and mirrors its numbers for the `RateLimit-Policy` header (a
 * test checks they agree).
 */
export type ThrottleClass = 'reads' | 'writes' | 'test_sends' | 'support' | 'events';

export const THROTTLES = {
  reads: { binding: 'RATE_LIMIT_READS', limit: 300, period: 60 },
  writes: { binding: 'RATE_LIMIT_WRITES', limit: 60, period: 60 },
  test_sends: { binding: 'RATE_LIMIT_TEST_SENDS', limit: 10, period: 60 },
  support: { binding: 'RATE_LIMIT_SUPPORT', limit: 5, period: 60 },
  events: { binding: 'RATE_LIMIT_EVENTS', limit: 6000, period: 60 },
} as const satisfies Record<ThrottleClass, { binding: string; limit: number; period: number }>;

/** The `RateLimit-Policy` item of a class: `"<class>";q=<limit>;w=<period>`. */
export function throttlePolicy(kind: ThrottleClass): string {
  return `"${kind}";q=${THROTTLES[kind].limit};w=${THROTTLES[kind].period}`;
}

/** The key a class is counted under: one budget per class, principal and handle. */
export function throttleKey(kind: ThrottleClass, principalKey: string, handle: string): string {
  return `${kind}|${principalKey}|${handle}`;
}

/**
 * What this Worker instance has counted per throttle key, in fixed windows of the class's period
 * (docs/design.md#usage). The binding enforces the limit and does not say what remains; this count does, as seen by
 * one instance: what remains is at most what it tells (other instances may have counted more).
 */
const counted = new Map<string, { window: number; used: number }>();
const MAX_KEYS = 10_000;

function windowOf(kind: ThrottleClass, nowMs: number): number {
  return Math.floor(nowMs / (THROTTLES[kind].period * 1000));
}

/** Counts one request under `key`. */
export function countThrottled(kind: ThrottleClass, key: string, nowMs = Date.now()): void {
  const window = windowOf(kind, nowMs);
  const entry = counted.get(key);
  if (entry && entry.window === window) entry.used++;
  else {
    // Old windows are worthless: drop them all when the map grows, so it stays bounded.
    if (counted.size >= MAX_KEYS) for (const [k, v] of counted) if (v.window !== window) counted.delete(k);
    counted.set(key, { window, used: 1 });
  }
}

/** A class's budget for one key: its limit, what remains in this window, and the seconds until the window resets. */
export function throttleState(
  kind: ThrottleClass,
  key: string,
  nowMs = Date.now(),
): { limit: number; windowSeconds: number; remaining: number; resetSeconds: number } {
  const { limit, period } = THROTTLES[kind];
  const window = windowOf(kind, nowMs);
  const entry = counted.get(key);
  const used = entry && entry.window === window ? entry.used : 0;
  const resetSeconds = Math.max(1, Math.ceil(((window + 1) * period * 1000 - nowMs) / 1000));
  return { limit, windowSeconds: period, remaining: Math.max(0, limit - used), resetSeconds };
}
