/**
 * Reading the archive records (the `archives` table) for the API and the doctor: keyset pages, one archive, the
 * archive that holds an expired notification id.
 */
import { and, desc, eq, gte, lt } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { archives } from '../db/schema.ts';

export type ArchiveRow = typeof archives.$inferSelect;

/** Archives of a handle, newest first, `limit + 1` rows from before `beforeId` (for `toPage`). */
export function listArchives(db: Db, handle: string, beforeId: string | null, limit: number): Promise<ArchiveRow[]> {
  return db
    .select()
    .from(archives)
    .where(beforeId ? and(eq(archives.handle, handle), lt(archives.id, beforeId)) : eq(archives.handle, handle))
    .orderBy(desc(archives.id))
    .limit(limit + 1)
    .all();
}

/** One archive of the handle (scoped by handle: another tenant's id is not found). */
export function findArchive(db: Db, handle: string, id: string): Promise<ArchiveRow | undefined> {
  return db
    .select()
    .from(archives)
    .where(and(eq(archives.handle, handle), eq(archives.id, id)))
    .get();
}

/**
 * The purged archive whose id range holds `notificationId`, if any: one seek on (handle, last id), so a missing
 * notification costs one more row read, not a scan.
 */
export async function archiveHolding(db: Db, handle: string, notificationId: string): Promise<ArchiveRow | null> {
  const row = await db
    .select()
    .from(archives)
    .where(and(eq(archives.handle, handle), gte(archives.lastNotificationId, notificationId)))
    .orderBy(archives.lastNotificationId)
    .limit(1)
    .get();
  if (!row || row.firstNotificationId > notificationId || row.status !== 'purged') return null;
  return row;
}
