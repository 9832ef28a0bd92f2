/**
 * The D1 reads behind authentication (docs/design.md#identity-access-and-limits): a token with its owner's role on a
 * handle, a user's role on a handle, whether a handle exists, and the `last_used_at` touch. Each read is a query
 * rather than a result, so it can ride in a route's own `db.batch` (middleware/auth.ts `batchWithAccess`).
 */
import { and, eq, getTableColumns, sql } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { type AccessToken, accessTokens, handles, memberships } from '../db/schema.ts';
import type { Role } from './scopes.ts';

/** A token row with its owner's role on the handle of the request (null without a handle or a membership). */
export type PatRow = AccessToken & { role: Role | null };

/**
 * The token with this hash and, when `handle` is given, its owner's role on that handle — one query (zero or one
 * row), so an authenticated handle request costs one round trip for identity and access together.
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

/** Records that a token was used (called at most once a minute per token, see `patTouchDue`). */
export async function touchPat(db: Db, id: string, at: string): Promise<void> {
  await db.update(accessTokens).set({ lastUsedAt: at }).where(eq(accessTokens.id, id));
}

/** The user's membership role on the handle (zero or one row). */
export function roleQuery(db: Db, userId: string, handle: string) {
  return db
    .select({ role: memberships.role })
    .from(memberships)
    .where(and(eq(memberships.handle, handle), eq(memberships.userId, userId)));
}

/** The handle's key if it exists (zero or one row). */
export function handleQuery(db: Db, handle: string) {
  return db.select({ h: handles.handle }).from(handles).where(eq(handles.handle, handle));
}
