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
