/**
 * The minute jobs (the Worker's `scheduled` handler: outbox sweeper, auto-disable, email reconciliation, purges) for a
 * local `wrangler dev`, which has no cron: wrangler's local dev server runs the handler on a request to
 * `/cdn-cgi/local/scheduled` (always on; `--test-scheduled` only adds `/__scheduled`). Used by `npm run dev` (every
 * minute, as the cron does in production), the soak and the end-to-end crash test (faster).
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** The trigger wrangler dev serves; `?cron=` names the cron expression the handler sees. */
export const SCHEDULED_PATH = '/cdn-cgi/local/scheduled';
/** wrangler.toml's `[triggers] crons`. */
const CRON = '* * * * *';

/** Runs the minute jobs once; resolves with the HTTP status (200 when every job succeeded, 500 when one failed). */
export async function runMinuteJobs(baseUrl: string, timeoutMs = 60_000): Promise<number> {
  const res = await fetch(`${baseUrl}${SCHEDULED_PATH}?cron=${encodeURIComponent(CRON)}`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  await res.arrayBuffer();
  return res.status;
}

export interface MinuteJobs {
  /** Stops the loop after the run in progress, if any. */
  stop(): Promise<void>;
}

/**
 * Runs the minute jobs every `everyMs` (the first run after one interval) until stopped. Each run's status, or the
 * error when the server did not answer, goes to `onRun`; a failed run never stops the loop.
 */
export function startMinuteJobs(
  baseUrl: string,
  everyMs: number,
  onRun: (result: { status: number } | { error: unknown }) => void = () => {},
): MinuteJobs {
  const abort = new AbortController();
  const loop = (async () => {
    while (!abort.signal.aborted) {
      try {
        await sleep(everyMs, undefined, { signal: abort.signal, ref: false });
      } catch {
        return; // stopped while waiting
      }
      try {
        onRun({ status: await runMinuteJobs(baseUrl) });
      } catch (error) {
        onRun({ error });
      }
    }
  })();
  return {
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
