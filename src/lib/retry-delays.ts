/**
 * What the `notify-deliveries` queue allows a retry schedule (docs/design.md#retry-schedule), and the parsing of
 * `RETRY_DELAYS_SECONDS`: a custom schedule the queue cannot carry out is a configuration error, never a schedule
 * quietly cut short or a `retry()` refused at run time. Pure.
 */

/** Queues' longest `delaySeconds` on a message: 12 h. */
export const QUEUE_MAX_DELAY_SECONDS = 43_200;
/** `max_retries` of `notify-deliveries` in wrangler.toml: 8 deliveries of a message, so at most 7 delays. */
export const DELIVERIES_QUEUE_MAX_RETRIES = 7;

/** A var the Worker cannot run with; its message names the var and what to change. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * `RETRY_DELAYS_SECONDS`: comma-separated whole seconds, the delay after attempt 1, 2, …. Empty means the default
 * schedule (`[]`). Each delay is 1 … 43,200 s, and there are at most 7 (n delays give n + 1 attempts); anything else
 * throws a {@link ConfigError}.
 */
export function parseRetryDelays(raw: string | undefined): number[] {
  const value = raw?.trim() ?? '';
  if (!value) return [];
  const entries = value.split(',').map((v) => v.trim());
  const delays = entries.map((v, i) => {
    const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
    if (!(n >= 1 && n <= QUEUE_MAX_DELAY_SECONDS)) {
      throw new ConfigError(
        `RETRY_DELAYS_SECONDS: entry ${i + 1} (${JSON.stringify(v)}) must be a whole number of seconds from 1 to ` +
          `${QUEUE_MAX_DELAY_SECONDS.toLocaleString('en')} (Queues' longest message delay, 12 h).`,
      );
    }
    return n;
  });
  if (delays.length > DELIVERIES_QUEUE_MAX_RETRIES) {
    throw new ConfigError(
      `RETRY_DELAYS_SECONDS has ${delays.length} delays; notify-deliveries delivers a message at most ` +
        `${DELIVERIES_QUEUE_MAX_RETRIES + 1} times (max_retries = ${DELIVERIES_QUEUE_MAX_RETRIES}), so at most ` +
        `${DELIVERIES_QUEUE_MAX_RETRIES} delays: the ones past that would never be used.`,
    );
  }
  return delays;
}
