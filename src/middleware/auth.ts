/**
 * Authentication and authorization (docs/design.md#identity-access-and-limits): the Hono side of src/auth/, which
 * holds the principal, the token formats, the checks of a rule and the D1 lookups.
 *
 * `authorize(rule)` is attached to each route through `guard()` (src/http/openapi.ts). It turns the bearer token into
 * a {@link Principal} and, for routes under `/v2/handles/{handle}`, the caller's role there:
 *
 * - JWT: verified with jose, no database read; the `scope` claim gives scopes; a `handles` claim marks a service token.
 * - PAT: the checksum is checked first, so a mistyped token costs no database read; then one query returns the token
 *   row joined with the caller's membership of the handle in the path (one round trip for token + role).
 * - Hot paths (`deferToData`: the feed reads, and publishing, whose ingest reads carry it): the lookup is
 *   not sent on its own. The route sends it first in its own `db.batch` (`batchWithAccess`), so token, membership and
 *   data cost ONE D1 round trip, and the rows are checked before any data is used; throttles wait for the principal.
 *   If the route answers without that batch (a validation error), the lookup runs alone first, so the order of
 *   answers below never changes. A request with an Idempotency-Key is not deferred (its key is claimed under the
 *   principal before the route runs).
 *
 * Order of answers: 401 (no or bad credential) → 403 missing scope (independent of the handle, so not an oracle) →
 * 404 when the caller is not a member (identical to a handle that does not exist) → 403 missing role.
 */
import type { BatchItem } from 'drizzle-orm/batch';
import type { Context, MiddlewareHandler } from 'hono';
import { type AccessRule, type PendingAccess, requireRole, requireScopes, requireTokenHandle } from '../auth/access.ts';
import { hasValidChecksum, isPatLike } from '../auth/pat.ts';
import { type HandleRole, jwtPrincipal, type Principal, patPrincipal, patTouchDue } from '../auth/principal.ts';
import { handleQuery, type PatRow, patQuery, roleQuery, touchPat } from '../auth/queries.ts';
import { type Db, getDb } from '../db/client.ts';
import { cachedPlacement, placementOf, requireWritable, shardAt, shardFor } from '../db/shards.ts';
import { type AppEnv, config } from '../env.ts';
import { sha256Hex } from '../lib/crypto.ts';
import { problems } from '../lib/problem.ts';

function bearerToken(c: Context<AppEnv>): string {
  const header = c.req.header('authorization');
  if (!header) throw problems.unauthenticated('Send an Authorization: Bearer <token> header.', 'invalid_request');
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!match) throw problems.unauthenticated('The Authorization header must use the Bearer scheme.', 'invalid_request');
  return match[1]!;
}

function waitUntil(c: Context<AppEnv>, work: Promise<unknown>) {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // No execution context (direct app.fetch in a script): let it run unawaited, errors already caught below.
    void work;
  }
}

/** The checks a PAT's row must pass, in order; the principal and its role on `handle`. */
function patAccess(c: Context<AppEnv>, rule: AccessRule, handle: string | null, row: PatRow | undefined) {
  const now = Date.now();
  const principal = patPrincipal(row, now);
  if (patTouchDue(row!, now)) {
    waitUntil(
      c,
      touchPat(getDb(c.env.DB), row!.id, new Date(now).toISOString()).catch((err: unknown) =>
        console.warn(JSON.stringify({ level: 'warn', msg: 'pat_touch_failed', error: String(err) })),
      ),
    );
  }
  requireScopes(principal, rule);
  requireTokenHandle(principal, handle);
  return { principal, role: handle ? row!.role : null };
}

/** Sets the principal (and role) once every check passed. */
function admit(
  c: Context<AppEnv>,
  rule: AccessRule,
  handle: string | null,
  principal: Principal,
  role: HandleRole | null,
) {
  if (handle) {
    if (!role) throw problems.notFound();
    requireRole(role, rule);
    c.set('role', role);
  }
  c.set('principal', principal);
}

/** Methods that change nothing: they go on while a handle moves between shards. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

interface Lookup {
  query: BatchItem<'sqlite'> & { all(): Promise<unknown[]> };
  apply(rows: unknown[]): { principal: Principal; role: HandleRole | null };
}

/** The middleware enforcing `rule`; sets `principal` (and `role` for handle routes). */
export function authorize(rule: AccessRule): MiddlewareHandler<AppEnv> {
  return async function authorizeMiddleware(c, next) {
    const token = bearerToken(c);
    const handle = rule.handle ? (c.req.param('handle') ?? null) : null;
    const db = getDb(c.env.DB);
    let lookup: Lookup;

    if (isPatLike(token)) {
      if (!hasValidChecksum(token)) {
        throw problems.unauthenticated(
          'The personal access token is malformed or mistyped (its checksum does not match).',
        );
      }
      if (rule.jwtOnly || rule.serviceOnly) {
        throw problems.forbidden('Personal access tokens cannot be used for this operation; use a JWT.');
      }
      const query = patQuery(db, await sha256Hex(token), handle);
      lookup = { query, apply: (rows) => patAccess(c, rule, handle, rows[0] as PatRow | undefined) };
    } else {
      const principal = await jwtPrincipal(token, { ...config(c.env).jwt, secret: c.env.JWT_SECRET ?? null });
      if (rule.serviceOnly && principal.kind !== 'service') {
        throw problems.forbidden('Only service tokens of the Gharart control plane may call this operation.');
      }
      requireScopes(principal, rule);
      if (!handle) {
        admit(c, rule, null, principal, null);
        return next();
      }
      if (principal.serviceHandles) {
        const granted = principal.serviceHandles === '*' || principal.serviceHandles.includes(handle);
        if (!granted) throw problems.notFound();
        lookup = {
          query: handleQuery(db, handle),
          apply: (rows) => ({ principal, role: rows.length ? 'service' : null }),
        };
      } else {
        lookup = {
          query: roleQuery(db, principal.subject, handle),
          apply: (rows) => ({ principal, role: (rows[0] as { role: HandleRole } | undefined)?.role ?? null }),
        };
      }
    }

    // An Idempotency-Key is claimed under the principal before the route runs, so such a request resolves it now.
    if (rule.deferToData && handle && c.req.header('idempotency-key') === undefined) {
      const throttles: Array<() => Promise<void>> = [];
      let settled = false;
      const pending: PendingAccess = {
        query: lookup.query,
        run: () => lookup.query.all(),
        get settled() {
          return settled;
        },
        throttles,
        async settle(rows) {
          settled = true;
          const { principal, role } = lookup.apply(rows);
          admit(c, rule, handle, principal, role);
          if (!SAFE_METHODS.has(c.req.method)) await requireWritable(c.env, handle);
          for (const throttle of throttles) await throttle();
        },
      };
      c.set('pendingAccess', pending);
      await next();
      // Never answer a deferred route unchecked: a route that did not batch its lookup gets it checked here.
      if (!settled) await resolveAccess(c);
      return;
    }
    if (!handle) {
      const { principal, role } = lookup.apply(await lookup.query.all());
      admit(c, rule, null, principal, role);
      return next();
    }
    // The directory (usually cached) is read beside the access lookup, not after it.
    const [rows, placement] = await Promise.all([lookup.query.all(), placementOf(c.env, handle)]);
    const { principal, role } = lookup.apply(rows);
    admit(c, rule, handle, principal, role);
    if (!placement) throw problems.notFound();
    if (!SAFE_METHODS.has(c.req.method)) await requireWritable(c.env, handle);
    await next();
  };
}

/** Settles a deferred access check on its own (no-op when there is none, or it is settled). */
export async function resolveAccess(c: Context<AppEnv>): Promise<void> {
  const pending = c.get('pendingAccess');
  if (pending && !pending.settled) await pending.settle(await pending.run());
}

/**
 * The D1 database of the request's `{handle}` (docs/design.md#shards). With a deferred access lookup and no cached
 * placement, the lookup and the directory read go to the control plane at once and access is settled first, so an
 * unknown handle answers exactly as a handle the caller may not see.
 */
export async function handleD1(c: Context<AppEnv>): Promise<D1Database> {
  const handle = c.req.param('handle');
  if (!handle) throw new Error('handleD1 outside a /v2/handles/{handle} route');
  const cached = cachedPlacement(c.env, handle);
  if (cached) return shardAt(c.env, cached.shard);
  const pending = c.get('pendingAccess');
  if (pending && !pending.settled) {
    const [access, placement] = await Promise.all([pending.run(), placementOf(c.env, handle)]);
    await pending.settle(access);
    if (!placement) throw problems.notFound();
    return shardAt(c.env, placement.shard);
  }
  return shardFor(c.env, handle);
}

/** {@link handleD1} as a drizzle client. */
export async function handleDb(c: Context<AppEnv>): Promise<Db> {
  return getDb(await handleD1(c));
}

/**
 * Runs the route's read queries (built on `db`, the handle's shard from {@link handleDb}) in one D1 batch while the
 * deferred access lookup runs on the control plane at the same time (see `deferToData`): one round trip of latency.
 * The lookup's rows are checked before the data is returned, so a caller without access gets the same 401/403/404
 * and never the data. Without a deferred lookup it is simply `db.batch(queries)`.
 */
export async function batchWithAccess<T extends readonly [BatchItem<'sqlite'>, ...BatchItem<'sqlite'>[]]>(
  c: Context<AppEnv>,
  db: Db,
  queries: T,
): Promise<unknown[][]> {
  const pending = c.get('pendingAccess');
  if (!pending || pending.settled) return (await db.batch(queries)) as unknown[][];
  const [access, data] = await Promise.allSettled([pending.run(), db.batch(queries)]);
  if (access.status === 'rejected') throw access.reason;
  await pending.settle(access.value);
  if (data.status === 'rejected') throw data.reason;
  return data.value as unknown as unknown[][];
}
