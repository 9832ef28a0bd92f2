/** Handles and memberships in D1 (provisioned by the control plane); the reads that authorize requests are in auth/. */
import { and, eq, inArray, sql } from 'drizzle-orm';
import { handleQuery, roleQuery } from '../../auth/queries.ts';
import type { Role } from '../../auth/scopes.ts';
import { type Db, getDb } from '../../db/client.ts';
import { type Handle, handles, type Membership, memberships, notificationSettings } from '../../db/schema.ts';
import { leastLoadedShard, shardAt } from '../../db/shards.ts';

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
 * Creates the handle with its default settings (and optionally its first owner), or renames it. A new handle goes to
 * the least-loaded shard (docs/design.md#shards). The shard gets its copy of the handle row (its foreign keys and the
 * retention the purge reads) and the settings row first, in one batch; then the control plane gets the handle with its
 * directory entry and the owner, in one batch: a handle in the directory always has its rows on its shard, and a
 * retried PUT finishes a half-done one on the same shard.
 */
export async function upsertHandle(
  env: Pick<Env, 'DB'>,
  input: { handle: string; displayName: string; ownerUserId: string | null; retentionDays?: number; now: string },
): Promise<{ row: Handle; created: boolean }> {
  const db = getDb(env.DB);
  const existing = await getHandle(db, input.handle);
  const { handle, displayName, retentionDays, now } = input;
  const shard = existing ? existing.shard : await leastLoadedShard(env);
  const shardDb = getDb(shardAt(env, shard));
  // Retention: the default (30 days) for a new handle when not given; unchanged on an existing one when not given.
  const retention = retentionDays === undefined ? {} : { retentionDays };
  const handleRow = (target: Db) =>
    target
      .insert(handles)
      .values({ handle, displayName, ...retention, shard, createdAt: now, updatedAt: now })
      .onConflictDoUpdate({ target: handles.handle, set: { displayName, ...retention, updatedAt: now } });
  await shardDb.batch([
    handleRow(shardDb),
    shardDb.insert(notificationSettings).values({ handle, updatedAt: now }).onConflictDoNothing(),
  ]);
  if (input.ownerUserId) {
    await db.batch([
      handleRow(db),
      db
        .insert(memberships)
        .values({ handle, userId: input.ownerUserId, role: 'owner', createdAt: now, updatedAt: now })
        .onConflictDoUpdate({
          target: [memberships.handle, memberships.userId],
          set: { role: 'owner', updatedAt: now },
        }),
    ]);
  } else {
    await handleRow(db).run();
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

/** True while the handle has another owner: the last one may neither leave nor lose the role. */
const MORE_THAN_ONE_OWNER = (handle: string) => sql`(
  SELECT count(*) FROM ${memberships} WHERE ${memberships.handle} = ${handle} AND ${memberships.role} = 'owner'
) > 1`;

type MembershipRow = { handle: string; user_id: string; role: Role; created_at: string; updated_at: string };

const fromRow = (r: MembershipRow): Membership => ({
  handle: r.handle,
  userId: r.user_id,
  role: r.role,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/**
 * Adds a member or sets a member's role, unless that would demote the handle's last owner (`last_owner`, nothing
 * written). Check and change are ONE statement (an upsert whose update is conditional on the owner count), so
 * concurrent demotions cannot each see "another owner is left" and together leave none.
 */
export async function setMemberRole(
  db: Db,
  input: { handle: string; userId: string; role: Role; now: string },
): Promise<{ row: Membership; created: boolean } | 'last_owner'> {
  const { handle, userId, role, now } = input;
  const rows = await db.all<MembershipRow>(sql`
    INSERT INTO ${memberships} (handle, user_id, role, created_at, updated_at)
    VALUES (${handle}, ${userId}, ${role}, ${now}, ${now})
    ON CONFLICT (handle, user_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at
    WHERE ${memberships.role} <> 'owner' OR excluded.role = 'owner' OR ${MORE_THAN_ONE_OWNER(handle)}
    RETURNING handle, user_id, role, created_at, updated_at`);
  const row = rows[0];
  if (!row) return 'last_owner';
  // An insert wrote created_at = now; an update kept the original (the same millisecond is harmless: 201 vs 200).
  return { row: fromRow(row), created: row.created_at === now };
}

/**
 * Removes a member unless it is the handle's last owner. One conditional DELETE: concurrent removals of several
 * owners leave at least one whatever their interleaving. `not_found` when there was no such member.
 */
export async function removeMember(
  db: Db,
  handle: string,
  userId: string,
): Promise<'removed' | 'last_owner' | 'not_found'> {
  const removed = await db.all(sql`
    DELETE FROM ${memberships}
    WHERE ${memberships.handle} = ${handle} AND ${memberships.userId} = ${userId}
      AND (${memberships.role} <> 'owner' OR ${MORE_THAN_ONE_OWNER(handle)})
    RETURNING handle`);
  if (removed.length) return 'removed';
  return (await getMembership(db, handle, userId)) ? 'last_owner' : 'not_found';
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
