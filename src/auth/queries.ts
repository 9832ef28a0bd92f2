/**
 * The D1 reads behind authentication (docs/design.md#identity-access-and-limits): a token with its owner's role on a
 * handle, a user's role on a handle, whether a handle exists, and the `last_used_at` touch. Each read is written once
 * as a drizzle query and run as `…Lookup`, its SQL built once per isolate (src/db/prepared.ts); middleware/auth.ts
 * runs it beside the route's own reads (`readWithAccess`), so an authenticated request waits for one round trip.
 */
import { and, eq, getTableColumns, sql } from 'drizzle-orm';
import { type Db, getDb } from '../db/client.ts';
import { allCompiled, compiled } from '../db/prepared.ts';
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

// The same three reads, built once per isolate (src/db/prepared.ts): every authenticated request makes one of them.
const patFields = { ...getTableColumns(accessTokens), role: memberships.role };
const patCompiled = () =>
  compiled<PatRow>('auth.pat+role', patFields, () =>
    patQuery(getDbOfNothing(), sql.placeholder('hash') as unknown as string, sql.placeholder('handle') as never),
  );
const patNoHandleFields = { ...getTableColumns(accessTokens), role: sql<null>`NULL` };
const patNoHandleCompiled = () =>
  compiled<PatRow>('auth.pat', patNoHandleFields, () =>
    patQuery(getDbOfNothing(), sql.placeholder('hash') as unknown as string, null),
  );
const roleCompiled = () =>
  compiled<{ role: Role }>('auth.role', { role: memberships.role }, () =>
    roleQuery(getDbOfNothing(), sql.placeholder('user') as never, sql.placeholder('handle') as never),
  );
const handleCompiled = () =>
  compiled<{ h: string }>('auth.handle', { h: handles.handle }, () =>
    handleQuery(getDbOfNothing(), sql.placeholder('handle') as never),
  );

/** A drizzle client only to build SQL with (never run): compiling needs no database. */
function getDbOfNothing(): Db {
  return getDb(NO_DATABASE);
}
const NO_DATABASE = {} as D1Database;

/** {@link patQuery}, run on the control plane `d1`: zero or one row. */
export function patLookup(d1: D1Database, tokenHash: string, handle: string | null): Promise<PatRow[]> {
  return handle
    ? allCompiled(d1, patCompiled(), { hash: tokenHash, handle })
    : allCompiled(d1, patNoHandleCompiled(), { hash: tokenHash });
}

/** {@link roleQuery}, run on the control plane `d1`: zero or one row. */
export function roleLookup(d1: D1Database, userId: string, handle: string): Promise<Array<{ role: Role }>> {
  return allCompiled(d1, roleCompiled(), { user: userId, handle });
}

/** {@link handleQuery}, run on the control plane `d1`: zero or one row. */
export function handleLookup(d1: D1Database, handle: string): Promise<Array<{ h: string }>> {
  return allCompiled(d1, handleCompiled(), { handle });
}
