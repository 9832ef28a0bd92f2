/**
 * The storage budget (docs/design.md#storage-budget): the database's size from D1's own metadata (`meta.size_after`),
 * its share of the limit, and each handle's retention, purge and archives, for the doctor (`…/health`) and
 * `GET /v2/health`.
 */

import { reportedSize } from '../db/shards.ts';

/** Past this share of the limit the doctor says so and the platform alert goes out. */
export const STORAGE_ALERT_PERCENT = 80;

/** The database's size and its share of the limit. */
export interface DatabaseSize {
  sizeBytes: number;
  limitBytes: number;
  usedPercent: number;
}

/** Size from a statement's `meta.size_after` (every D1 answer carries it). */
export function sizeOf(meta: { size_after?: number }, limitBytes: number): DatabaseSize {
  const sizeBytes = meta.size_after ?? 0;
  return { sizeBytes, limitBytes, usedPercent: Math.round((sizeBytes / limitBytes) * 10_000) / 100 };
}

/** Asks D1 for its size (`reportedSize`: one statement that reads no row) and its share of the limit. */
export async function databaseSize(db: D1Database, limitBytes: number): Promise<DatabaseSize> {
  return sizeOf({ size_after: await reportedSize(db) }, limitBytes);
}

/** The doctor's storage section for one handle. */
export interface StorageReport {
  retentionDays: number;
  database: DatabaseSize;
  oldestNotificationAt: string | null;
  purge: {
    lastRunAt: string | null;
    lastPurgeAt: string | null;
    waitingOn: string | null;
    lastError: string | null;
    purged: { notifications: number; deliveries: number; attempts: number };
  };
  archives: { count: number; bytes: number; latestId: string | null; latestPeriod: string | null };
  action: string | null;
}

/** How long past its retention a handle's oldest notification may stay before the doctor calls storage degraded. */
export const PURGE_BEHIND_MS = 86_400_000;

/**
 * Whether storage makes the doctor's status `degraded`: the database past STORAGE_ALERT_PERCENT of its limit, or the
 * handle's oldest notification more than PURGE_BEHIND_MS past its retention (the purge has waited on an open delivery,
 * or failed, for that long). A purge that waits for minutes is normal and shown only in `storage.action`.
 */
export function storageDegraded(report: StorageReport, nowMs: number): boolean {
  if (report.database.usedPercent >= STORAGE_ALERT_PERCENT) return true;
  if (!report.oldestNotificationAt) return false;
  return Date.parse(report.oldestNotificationAt) < nowMs - report.retentionDays * 86_400_000 - PURGE_BEHIND_MS;
}

/** Builds the storage section: one D1 batch, each statement an index lookup. */
export async function storageReport(db: D1Database, handle: string, limitBytes: number): Promise<StorageReport> {
  const [h, oldest, state, arc] = await db.batch<Record<string, unknown>>([
    db.prepare('SELECT retention_days FROM handles WHERE handle = ?1').bind(handle),
    db.prepare('SELECT created_at FROM notifications WHERE handle = ?1 ORDER BY id LIMIT 1').bind(handle),
    db.prepare('SELECT * FROM purge_state WHERE handle = ?1').bind(handle),
    db.prepare('SELECT id, period FROM archives WHERE handle = ?1 ORDER BY id DESC LIMIT 1').bind(handle),
  ]);
  const database = sizeOf(h!.meta, limitBytes);
  const retentionDays = (h!.results[0]?.retention_days as number | undefined) ?? 30;
  const s = state!.results[0];
  const latest = arc!.results[0];
  const purge = {
    lastRunAt: (s?.last_run_at as string | undefined) ?? null,
    lastPurgeAt: (s?.last_purge_at as string | null | undefined) ?? null,
    waitingOn: (s?.waiting_on as string | null | undefined) ?? null,
    lastError: (s?.last_error as string | null | undefined) ?? null,
    purged: {
      notifications: (s?.purged_notifications as number | undefined) ?? 0,
      deliveries: (s?.purged_deliveries as number | undefined) ?? 0,
      attempts: (s?.purged_attempts as number | undefined) ?? 0,
    },
  };
  const actions: string[] = [];
  if (database.usedPercent >= STORAGE_ALERT_PERCENT) {
    actions.push(
      `The database is at ${database.usedPercent} % of its ${database.limitBytes}-byte limit: lower retentionDays ` +
        '(PUT /v2/internal/handles/{handle}) on the busiest handles before writes start failing.',
    );
  }
  if (purge.lastError) actions.push(`The last purge failed (${purge.lastError}); it is retried every minute.`);
  if (purge.waitingOn) {
    actions.push(
      `Notification ${purge.waitingOn} is past the retention but still has open deliveries; it and every later ` +
        'notification stay until they end (see …/notifications/{id}).',
    );
  }
  return {
    retentionDays,
    database,
    oldestNotificationAt: (oldest!.results[0]?.created_at as string | undefined) ?? null,
    purge,
    archives: {
      count: (s?.archives as number | undefined) ?? 0,
      bytes: (s?.archived_bytes as number | undefined) ?? 0,
      latestId: (latest?.id as string | undefined) ?? null,
      latestPeriod: (latest?.period as string | undefined) ?? null,
    },
    action: actions.length ? actions.join(' ') : null,
  };
}
