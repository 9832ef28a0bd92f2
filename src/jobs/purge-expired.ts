/**
 * Retention (docs/design.md#retention-and-archives): each minute, the handles the job visited longest ago get a few
 * purge steps each (archive to R2, verify, then delete; src/archive/purge.ts), and what happened is kept per handle
 * for the doctor. Bounded: at most HANDLES_PER_RUN × STEPS_PER_HANDLE steps a run, each a bounded number of rows.
 */

import { purgeStep, type StepResult } from '../archive/purge.ts';
import { purgeGlobalRows, purgeSideRows } from '../archive/side-rows.ts';
import { type PurgeOutcome, recordPurge } from '../archive/state.ts';
import { onEveryShard, shardFor } from '../db/shards.ts';
import { config } from '../env.ts';

export const HANDLES_PER_RUN = 5;
/** 10 steps of ≤ 100 notifications: a handle sheds up to 1,000 notifications a minute (1.44 million a day). */
export const STEPS_PER_HANDLE = 10;
/** Event rejections that name no handle are kept as long as a handle's default retention. */
const GLOBAL_RETENTION_DAYS = 30;

/** What one run did, summed over the shards. */
export type PurgeRun = {
  handles: number;
  purgedNotifications: number;
  archives: number;
  failed: number;
  expiredSessions: number;
};

/** Purges what expired on up to HANDLES_PER_RUN handles of each shard (docs/design.md#shards). */
export async function purgeExpiredData(env: Env, now: Date): Promise<PurgeRun> {
  const cfg = config(env);
  if (!cfg.purgeEnabled) return { handles: 0, purgedNotifications: 0, archives: 0, failed: 0, expiredSessions: 0 };
  const clock = new Date(now.getTime() + cfg.purgeClockAheadMs);
  // Service-wide rows: expired dashboard sessions (by the real time) and rejections that name no handle.
  const global = await purgeGlobalRows(env.DB, GLOBAL_RETENTION_DAYS, now);
  const runs = await onEveryShard(env, (d1) => purgeShard(env, d1, now, clock));
  const sum = (k: 'handles' | 'purgedNotifications' | 'archives' | 'failed') => runs.reduce((n, r) => n + r[k], 0);
  return {
    handles: sum('handles'),
    purgedNotifications: sum('purgedNotifications'),
    archives: sum('archives'),
    failed: sum('failed'),
    expiredSessions: global.sessions,
  };
}

/** One shard's longest-unvisited handles (its own copy of their rows holds the retention); none that is moving. */
async function purgeShard(env: Env, d1: D1Database, now: Date, clock: Date) {
  const { results: due } = await d1
    .prepare(`SELECT handle, retention_days FROM handles WHERE moving_since IS NULL ORDER BY purge_checked_at LIMIT ?1`)
    .bind(HANDLES_PER_RUN)
    .all<{ handle: string; retention_days: number }>();
  let purgedNotifications = 0;
  let archives = 0;
  let failed = 0;
  for (const h of due) {
    // Marked first: a handle whose purge keeps failing must not starve the others.
    await d1
      .prepare('UPDATE handles SET purge_checked_at = ?2 WHERE handle = ?1')
      .bind(h.handle, now.toISOString())
      .run();
    const outcome = await purgeHandle(env, h.handle, h.retention_days, clock);
    purgedNotifications += outcome.totals.notifications;
    archives += outcome.archives;
    if (outcome.error) failed++;
  }
  return { handles: due.length, purgedNotifications, archives, failed };
}

/**
 * Up to `steps` purge steps for one handle, until one purges nothing, then one step of its rows deleted without an
 * archive (rejections, test sends); the outcome is kept for the doctor.
 */
export async function purgeHandle(
  env: Env,
  handle: string,
  retentionDays: number,
  now: Date,
  steps = STEPS_PER_HANDLE,
): Promise<PurgeOutcome> {
  const outcome: PurgeOutcome = {
    totals: { notifications: 0, deliveries: 0, attempts: 0 },
    archives: 0,
    bytes: 0,
    waitingOn: null,
    error: null,
  };
  try {
    for (let i = 0; i < steps; i++) {
      const step: StepResult = await purgeStep(env, handle, retentionDays, now);
      if (step.outcome === 'waiting') outcome.waitingOn = step.waitingOn ?? null;
      if (step.outcome !== 'purged') break;
      outcome.archives++;
      outcome.bytes += step.bytes ?? 0;
      outcome.totals.notifications += step.notifications;
      outcome.totals.deliveries += step.deliveries;
      outcome.totals.attempts += step.attempts;
    }
    // Then one bounded step of the rows deleted without an archive (rejections, test sends).
    // The handle's test sends are on its shard, its rejections on the control plane (docs/design.md#shards).
    await purgeSideRows(await shardFor(env, handle), handle, retentionDays, now);
    await purgeSideRows(env.DB, handle, retentionDays, now);
  } catch (err) {
    outcome.error = String(err).slice(0, 500);
    console.error(JSON.stringify({ level: 'error', msg: 'purge_failed', handle, error: outcome.error }));
  }
  await recordPurge(await shardFor(env, handle), handle, now, outcome);
  return outcome;
}
