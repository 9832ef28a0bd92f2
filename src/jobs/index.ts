/**
 * The `scheduled` entry point (cron `* * * * *`): runs each minute job, isolated so one failing job neither stops the
 * others nor hides its error.
 */
import { alertUndeliverable } from '../delivery/platform-alerts.ts';
import { autoDisableFailingWebhooks } from './auto-disable.ts';
import { purgeExpiredData } from './purge-expired.ts';
import { purgeExpiredIdempotencyKeys } from './purge-idempotency.ts';
import { reconcileSnsSubscriptions } from './reconcile-email.ts';
import { checkStorageBudget } from './storage-alert.ts';
import { sweepOutbox } from './sweeper.ts';

type Job = (env: Env, now: Date) => Promise<Record<string, unknown>>;

const JOBS: Record<string, Job> = {
  sweepOutbox,
  autoDisableFailingWebhooks,
  reconcileSnsSubscriptions,
  purgeExpiredIdempotencyKeys,
  alertUndeliverable: (env, now) => alertUndeliverable(env, now),
  // Retention and the storage budget (docs/design.md#retention-and-archives).
  purgeExpiredData,
  checkStorageBudget,
};

export async function handleScheduled(
  controller: ScheduledController,
  env: Env,
  _ctx?: ExecutionContext,
): Promise<void> {
  const now = new Date(controller.scheduledTime);
  const results = await Promise.allSettled(
    Object.entries(JOBS).map(async ([name, job]) => [name, await job(env, now)] as const),
  );
  let failed = 0;
  for (const [i, r] of results.entries()) {
    const name = Object.keys(JOBS)[i];
    if (r.status === 'fulfilled') {
      console.log(JSON.stringify({ level: 'info', msg: 'job_done', job: name, cron: controller.cron, ...r.value[1] }));
    } else {
      failed++;
      console.error(JSON.stringify({ level: 'error', msg: 'job_failed', job: name, error: String(r.reason) }));
    }
  }
  // Failing the invocation makes the failure visible in Workers metrics, not only in logs.
  if (failed) throw new Error(`${failed} scheduled job(s) failed`);
}
