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
 * What is wrong with a list of retry delays, in one sentence naming the first bad entry, or null when the queue can
 * carry it out: 1 … 7 delays (n delays give n + 1 attempts), each a whole number of seconds from 1 to 43,200. One rule
 * for the `RETRY_DELAYS_SECONDS` var and a webhook's custom retry policy (docs/design.md#retry-policies).
 */
export function retryDelaysProblem(
  delays: readonly number[],
  written: (i: number) => string = (i) => JSON.stringify(delays[i]),
): string | null {
  if (!delays.length) return 'needs at least one delay (n delays give n + 1 attempts).';
  const bad = delays.findIndex((n) => !(Number.isInteger(n) && n >= 1 && n <= QUEUE_MAX_DELAY_SECONDS));
  if (bad >= 0) {
    return (
      `entry ${bad + 1} (${written(bad)}) must be a whole number of seconds from 1 to ` +
      `${QUEUE_MAX_DELAY_SECONDS.toLocaleString('en')} (Queues' longest message delay, 12 h).`
    );
  }
  if (delays.length > DELIVERIES_QUEUE_MAX_RETRIES) {
    return (
      `has ${delays.length} delays; notify-deliveries delivers a message at most ${DELIVERIES_QUEUE_MAX_RETRIES + 1} ` +
      `times (max_retries = ${DELIVERIES_QUEUE_MAX_RETRIES}), so at most ${DELIVERIES_QUEUE_MAX_RETRIES} delays: the ` +
      'ones past that would never be used.'
    );
  }
  return null;
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
  const delays = entries.map((v) => (/^\d+$/.test(v) ? Number(v) : Number.NaN));
  const problem = retryDelaysProblem(delays, (i) => JSON.stringify(entries[i]));
  if (problem) throw new ConfigError(`RETRY_DELAYS_SECONDS${problem.startsWith('entry') ? ':' : ''} ${problem}`);
  return delays;
}
