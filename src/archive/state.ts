/**
 * What the purge job did for a handle (the `purge_state` row), kept for the doctor's storage report.
 */

/** The outcome of one handle's purge in one run. */
export interface PurgeOutcome {
  totals: { notifications: number; deliveries: number; attempts: number };
  archives: number;
  /** Bytes of the archives written. */
  bytes: number;
  /** The oldest expired notification that is still open, when the purge waits on it. */
  waitingOn: string | null;
  error: string | null;
}

/** Adds a run's outcome to the handle's purge state (one upsert). */
export async function recordPurge(db: D1Database, handle: string, now: Date, o: PurgeOutcome): Promise<void> {
  const at = now.toISOString();
  await db
    .prepare(
      `INSERT INTO purge_state (handle, last_run_at, last_purge_at, waiting_on, last_error,
         purged_notifications, purged_deliveries, purged_attempts, archives, archived_bytes)
       VALUES (?1, ?2, CASE WHEN ?3 > 0 THEN ?2 END, ?4, ?5, ?6, ?7, ?8, ?3, ?9)
       ON CONFLICT (handle) DO UPDATE SET last_run_at = ?2,
         last_purge_at = CASE WHEN ?3 > 0 THEN ?2 ELSE last_purge_at END,
         waiting_on = ?4, last_error = ?5,
         purged_notifications = purged_notifications + ?6, purged_deliveries = purged_deliveries + ?7,
         purged_attempts = purged_attempts + ?8, archives = archives + ?3, archived_bytes = archived_bytes + ?9`,
    )
    .bind(
      handle,
      at,
      o.archives,
      o.waitingOn,
      o.error,
      o.totals.notifications,
      o.totals.deliveries,
      o.totals.attempts,
      o.bytes,
    )
    .run();
}
