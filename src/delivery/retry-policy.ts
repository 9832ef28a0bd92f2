/**
 * When to try a failed delivery again (docs/design.md#retry-schedule): Svix's schedule — 5 s, 5 min, 30 min, 2 h, 5 h,
 * 10 h, 10 h — with ±10 % jitter, 8 attempts in all (~27.6 h). A receiver's `Retry-After` (429/503) is honoured,
 * clamped to the schedule's bounds. Pure.
 */
import { QUEUE_MAX_DELAY_SECONDS } from '../lib/retry-delays.ts';

/** Delay before attempt n+1 after attempt n failed, seconds (index 0 = after the first attempt). */
export const RETRY_DELAYS_SECONDS = [5, 300, 1800, 7200, 18000, 36000, 36000] as const;
export const MAX_ATTEMPTS = RETRY_DELAYS_SECONDS.length + 1;
export const JITTER = 0.1;
const MIN_DELAY = RETRY_DELAYS_SECONDS[0];
const MAX_DELAY = Math.max(...RETRY_DELAYS_SECONDS);

/** The `short` policy, for test endpoints: 5 s, 30 s, 2 min — 4 attempts within ~3 min. */
export const SHORT_RETRY_DELAYS_SECONDS = [5, 30, 120] as const;

export const RETRY_POLICY_NAMES = ['default', 'short', 'custom'] as const;
export type RetryPolicyName = (typeof RETRY_POLICY_NAMES)[number];

/** A webhook's retry policy in force (docs/design.md#retry-policies): its name and the delays it means. */
export interface RetryPolicy {
  name: RetryPolicyName;
  delaysSeconds: readonly number[];
  maxAttempts: number;
}

/**
 * The policy in force for a webhook (`undefined`: an email, which always follows the default). `default` is the
 * deployment's `RETRY_DELAYS_SECONDS` when set, else Svix's schedule; a custom list that no longer reads as one
 * (never written by the API, which checks it) falls back to the default rather than to no retries at all.
 */
export function retryPolicyOf(
  webhook: { retryPolicy: RetryPolicyName; retryDelays: string | null } | undefined,
  deploymentDefault: readonly number[] = [],
): RetryPolicy {
  const of = (name: RetryPolicyName, delaysSeconds: readonly number[]) => ({
    name,
    delaysSeconds,
    maxAttempts: delaysSeconds.length + 1,
  });
  const fallback = of('default', deploymentDefault.length ? deploymentDefault : RETRY_DELAYS_SECONDS);
  if (webhook?.retryPolicy === 'short') return of('short', SHORT_RETRY_DELAYS_SECONDS);
  if (webhook?.retryPolicy !== 'custom') return fallback;
  try {
    const delays: unknown = JSON.parse(webhook.retryDelays ?? 'null');
    if (Array.isArray(delays) && delays.length && delays.every((n) => Number.isInteger(n) && n >= 1)) {
      return of('custom', delays as number[]);
    }
  } catch {
    // Falls through to the default.
  }
  return fallback;
}

/** The policy as a sentence for the diagnosis, the doctor and the dashboard: `short (5 s, 30 s, 2 min; 4 attempts)`. */
export function describeRetryPolicy(p: RetryPolicy): string {
  const span = (s: number) => (s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`);
  return `${p.name} (${p.delaysSeconds.map(span).join(', ')}; ${p.maxAttempts} attempts)`;
}

/**
 * The delay after failed attempt `attempt` (1-based), or null when it was the last one.
 * `schedule` replaces the default delays (a deployment may shorten them, e.g. for an end-to-end test);
 * `random` is injectable so tests can pin the jitter.
 */
export function retryDelaySeconds(
  attempt: number,
  options: { retryAfterSeconds?: number | null; random?: () => number; schedule?: readonly number[] } = {},
): number | null {
  const schedule = options.schedule?.length ? options.schedule : RETRY_DELAYS_SECONDS;
  if (attempt >= schedule.length + 1) return null;
  const base = schedule[Math.max(0, attempt - 1)]!;
  if (options.retryAfterSeconds != null && Number.isFinite(options.retryAfterSeconds)) {
    return Math.min(MAX_DELAY, Math.max(MIN_DELAY, Math.ceil(options.retryAfterSeconds)));
  }
  const r = (options.random ?? Math.random)();
  // Rounding must not push the delay out of ±10 % (on the 5 s step, 5.5 would round to 6).
  const lo = Math.ceil(base * (1 - JITTER));
  // Nor past what Queues accepts as a delay (a custom schedule may use the full 12 h).
  const hi = Math.min(QUEUE_MAX_DELAY_SECONDS, Math.floor(base * (1 + JITTER)));
  return Math.min(hi, Math.max(lo, Math.round(base * (1 - JITTER + 2 * JITTER * r))));
}

/** The three HTTP-date forms of RFC 9110 §5.6.7 (IMF-fixdate, RFC 850, asctime); anything else is ignored. */
const HTTP_DATE = [
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/,
  /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/,
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/,
];

/**
 * Parses `Retry-After` (delta-seconds or an HTTP date) into seconds from now; null when absent or malformed, so a
 * malformed value falls back to the schedule instead of meaning "retry now".
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed), Number.MAX_SAFE_INTEGER);
  if (!HTTP_DATE.some((re) => re.test(trimmed))) return null;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}
