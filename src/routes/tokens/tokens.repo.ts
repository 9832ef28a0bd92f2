/** Personal access tokens in D1. */
import { and, desc, eq, getTableColumns, lt, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.ts';
import { type AccessToken, accessTokens, memberships } from '../../db/schema.ts';
import type { Role } from '../../lib/scopes.ts';

/** A token row with its owner's role on the handle of the request (null without a handle or a membership). */
export type PatRow = AccessToken & { role: Role | null };

/**
 * The token with this hash and, when `handle` is given, its owner's role on that handle — one query (zero or one
 * row), so an authenticated handle request costs one round trip for identity and access together; a query rather
 * than a result, so it can also ride in the route's own `db.batch` (middleware/auth.ts `batchWithAccess`).
 */
export function patQuery(db: Db, tokenHash: string, handle: string | null) {
  if (!handle) {
    return db
      .select({ ...getTableColumns(accessTokens), role: sql<Role | null>`NULL` })
      .from(accessTokens)
      .where(eq(accessTokens.tokenHash, tokenHash));
  }
  return db
    .select({ ...getTableColumns(accessTokens), role: memberships.role })
    .from(accessTokens)
    .leftJoin(memberships, and(eq(memberships.userId, accessTokens.userId), eq(memberships.handle, handle)))
    .where(eq(accessTokens.tokenHash, tokenHash));
}

/** Records that a token was used (called at most once a minute per token). */
export async function touchPat(db: Db, id: string, at: string): Promise<void> {
  await db.update(accessTokens).set({ lastUsedAt: at }).where(eq(accessTokens.id, id));
}

export async function insertPat(db: Db, row: typeof accessTokens.$inferInsert): Promise<void> {
  await db.insert(accessTokens).values(row);
}

/** One page of a user's tokens, newest first (keyset on (user_id, id)). */
export async function listPats(db: Db, userId: string, limit: number, before: string | null): Promise<AccessToken[]> {
  return db
    .select()
    .from(accessTokens)
    .where(and(eq(accessTokens.userId, userId), before ? lt(accessTokens.id, before) : undefined))
    .orderBy(desc(accessTokens.id))
    .limit(limit)
    .all();
}

/** Revokes a user's token; false when the user has no such token. Revoking twice is not an error. */
export async function revokePat(db: Db, userId: string, id: string, at: string): Promise<boolean> {
  const row = await db
    .select({ revokedAt: accessTokens.revokedAt })
    .from(accessTokens)
    .where(and(eq(accessTokens.id, id), eq(accessTokens.userId, userId)))
    .get();
  if (!row) return false;
  if (!row.revokedAt) {
    await db.update(accessTokens).set({ revokedAt: at }).where(eq(accessTokens.id, id));
  }
  return true;
}
