/** Personal access tokens in D1: minted, listed, revoked (the lookup that authenticates one is in auth/queries.ts). */
import { and, desc, eq, lt } from 'drizzle-orm';
import type { Db } from '../../db/client.ts';
import { type InsertOutcome, insertWithinLimit } from '../../db/insert-within-limit.ts';
import { type AccessToken, accessTokens } from '../../db/schema.ts';

/**
 * Inserts the token unless its user already holds `limit` live ones (not revoked, not expired at `now`). Count and
 * insert are one statement, so concurrent creates cannot overshoot the cap.
 */
export async function insertPatWithinLimit(
  d1: D1Database,
  row: typeof accessTokens.$inferInsert,
  limit: number,
  now: string,
): Promise<InsertOutcome> {
  const scope = { where: 'user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2', params: [row.userId, now] };
  return insertWithinLimit(d1, accessTokens, row, scope, limit);
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
