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
