/** Handles and memberships in D1 (provisioned by the control plane); the reads that authorize requests are in auth/. */
import { and, eq, inArray, sql } from 'drizzle-orm';
import { handleQuery, roleQuery } from '../../auth/queries.ts';
import type { Role } from '../../auth/scopes.ts';
import type { Db } from '../../db/client.ts';
import { type Handle, handles, type Membership, memberships, notificationSettings } from '../../db/schema.ts';

/** The user's role on the handle, or null when they are not a member. */
export async function findRole(db: Db, userId: string, handle: string): Promise<Role | null> {
  const row = await roleQuery(db, userId, handle).get();
  return row?.role ?? null;
}

/** Whether the handle exists. */
export async function handleExists(db: Db, handle: string): Promise<boolean> {
  return Boolean(await handleQuery(db, handle).get());
}

export async function getHandle(db: Db, handle: string): Promise<Handle | undefined> {
  return db.select().from(handles).where(eq(handles.handle, handle)).get();
}

/**
 * Creates the handle with its default settings (and optionally its first owner), or renames it. One `db.batch`, so a
 * handle never exists without its settings row.
 */
export async function upsertHandle(
  db: Db,
  input: { handle: string; displayName: string; ownerUserId: string | null; retentionDays?: number; now: string },
): Promise<{ row: Handle; created: boolean }> {
  const existing = await getHandle(db, input.handle);
  const { handle, displayName, retentionDays, now } = input;
  // Retention: the default (30 days) for a new handle when not given; unchanged on an existing one when not given.
  const retention = retentionDays === undefined ? {} : { retentionDays };
  const ops = [
    db
      .insert(handles)
      .values({ handle, displayName, ...retention, createdAt: now, updatedAt: now })
      .onConflictDoUpdate({ target: handles.handle, set: { displayName, ...retention, updatedAt: now } }),
    db.insert(notificationSettings).values({ handle, updatedAt: now }).onConflictDoNothing(),
  ] as const;
  if (input.ownerUserId) {
    await db.batch([
      ...ops,
      db
        .insert(memberships)
        .values({ handle, userId: input.ownerUserId, role: 'owner', createdAt: now, updatedAt: now })
        .onConflictDoUpdate({
          target: [memberships.handle, memberships.userId],
          set: { role: 'owner', updatedAt: now },
        }),
    ]);
  } else {
    await db.batch(ops);
  }
  const row = (await getHandle(db, handle))!;
  return { row, created: !existing };
}

export async function getMembership(db: Db, handle: string, userId: string): Promise<Membership | undefined> {
  return db
    .select()
    .from(memberships)
    .where(and(eq(memberships.handle, handle), eq(memberships.userId, userId)))
    .get();
}

export async function countOwners(db: Db, handle: string): Promise<number> {
  const row = await db
    .select({ n: sql<number>`count(*)` })
    .from(memberships)
    .where(and(eq(memberships.handle, handle), eq(memberships.role, 'owner')))
    .get();
  return row?.n ?? 0;
}

export async function upsertMembership(
  db: Db,
  input: { handle: string; userId: string; role: Role; now: string },
): Promise<Membership> {
  const { handle, userId, role, now } = input;
  await db
    .insert(memberships)
    .values({ handle, userId, role, createdAt: now, updatedAt: now })
    .onConflictDoUpdate({ target: [memberships.handle, memberships.userId], set: { role, updatedAt: now } });
  return (await getMembership(db, handle, userId))!;
}

export async function deleteMembership(db: Db, handle: string, userId: string): Promise<void> {
  await db.delete(memberships).where(and(eq(memberships.handle, handle), eq(memberships.userId, userId)));
}

/** The handles a user is a member of, with their role (the dashboard's handle switcher), by handle name. */
export async function handlesOfUser(db: Db, userId: string, limit: number) {
  return db
    .select({ handle: handles.handle, displayName: handles.displayName, role: memberships.role })
    .from(memberships)
    .innerJoin(handles, eq(handles.handle, memberships.handle))
    .where(eq(memberships.userId, userId))
    .orderBy(memberships.handle)
    .limit(limit)
    .all();
}

/** Existing handles among `names` (a service token's `handles` claim), or the first `limit` of all for `*`. */
export async function existingHandles(db: Db, names: '*' | readonly string[], limit: number) {
  const base = db.select({ handle: handles.handle, displayName: handles.displayName }).from(handles);
  const rows =
    names === '*'
      ? await base.orderBy(handles.handle).limit(limit).all()
      : names.length
        ? await base
            .where(inArray(handles.handle, [...names].slice(0, limit)))
            .orderBy(handles.handle)
            .all()
        : [];
  return rows;
}
