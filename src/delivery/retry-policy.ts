/**
 * When to try a failed delivery again (SPEC §6): Svix's schedule — 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — with
 * ±10 % jitter, 8 attempts in all (~27.6 h). A receiver's `Retry-After` (429/503) is honoured, clamped to the
 * schedule's bounds. Pure.
 */

/** Delay before attempt n+1 after attempt n failed, seconds (index 0 = after the first attempt). */
export const RETRY_DELAYS_SECONDS = [5, 300, 1800, 7200, 18000, 36000, 36000] as const;
export const MAX_ATTEMPTS = RETRY_DELAYS_SECONDS.length + 1;
export const JITTER = 0.1;
const MIN_DELAY = RETRY_DELAYS_SECONDS[0];
const MAX_DELAY = Math.max(...RETRY_DELAYS_SECONDS);

/**
 * The delay after failed attempt `attempt` (1-based), or null when it was the last one.
 * `random` is injectable so tests can pin the jitter.
 */
export function retryDelaySeconds(
  attempt: number,
  options: { retryAfterSeconds?: number | null; random?: () => number } = {},
): number | null {
  if (attempt >= MAX_ATTEMPTS) return null;
  const base = RETRY_DELAYS_SECONDS[Math.max(0, attempt - 1)]!;
  if (options.retryAfterSeconds != null && Number.isFinite(options.retryAfterSeconds)) {
    return Math.min(MAX_DELAY, Math.max(MIN_DELAY, Math.ceil(options.retryAfterSeconds)));
  }
  const r = (options.random ?? Math.random)();
  return Math.max(1, Math.round(base * (1 - JITTER + 2 * JITTER * r)));
}

/** Parses `Retry-After` (delta-seconds or an HTTP date) into seconds from now; null when absent or invalid. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}
