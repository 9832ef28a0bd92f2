/**
 * Authentication and authorization (SPEC §3).
 *
 * `authorize(rule)` is attached to each route through `guard()` (src/http/openapi.ts). It turns the bearer token into
 * a {@link Principal} and, for routes under `/v2/handles/{handle}`, the caller's role there:
 *
 * - JWT: verified with jose, no database read; the `scope` claim gives scopes; a `handles` claim marks a service token.
 * - PAT: the checksum is checked first, so a mistyped token costs no database read; then one query returns the token
 *   row joined with the caller's membership of the handle in the path (one round trip for token + role).
 *
 * Order of answers: 401 (no or bad credential) → 403 missing scope (independent of the handle, so not an oracle) →
 * 404 when the caller is not a member (identical to a handle that does not exist) → 403 missing role.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { config, type AppEnv } from '../env.ts';
import { getDb } from '../db/client.ts';
import { sha256Hex } from '../lib/crypto.ts';
import { JwtRejected, verifyJwt } from '../lib/jwt.ts';
import { hasValidChecksum, isPatLike } from '../lib/pat.ts';
import { problems } from '../lib/problem.ts';
import {
  IMPLICIT_SCOPES,
  missingScopes,
  parseScopes,
  type Role,
  type Scope,
} from '../lib/scopes.ts';
import { findRole, handleExists } from '../routes/internal/internal.repo.ts';
import { findPatForRequest, touchPat } from '../routes/tokens/tokens.repo.ts';

/** Who is calling. */
export interface Principal {
  /** User id (JWT `sub` / PAT owner) or the service's subject. */
  subject: string;
  kind: 'user' | 'service';
  method: 'jwt' | 'pat';
  scopes: ReadonlySet<Scope>;
  /** The PAT's id, when authenticated by PAT. */
  tokenId: string | null;
  /** The handle a PAT is restricted to, if any. */
  tokenHandle: string | null;
  /** Service tokens: the handles they may act on (`*` = all). */
  serviceHandles: '*' | readonly string[] | null;
  /** A stable key for per-principal state (idempotency keys, throttles): `user:<id>` or `service:<sub>`. */
  key: string;
}

/** A caller's standing on a handle: a membership role, or `service` for a service token granted the handle. */
export type HandleRole = Role | 'service';

/** Parsed but not yet resolved credential (kept for later middleware). */
export type Credential = { kind: 'jwt'; principal: Principal } | { kind: 'pat'; hash: string };

/** What a route requires. */
export interface AccessRule {
  /** Scopes the token must carry (all of them). */
  scopes?: Scope[];
  /** At least one of these scopes (e.g. a delivery redrive: webhooks:write or notifications:write). */
  anyOfScopes?: Scope[];
  /** The route has a `{handle}` path parameter: the caller must be a member (or a service granted it). */
  handle?: boolean;
  /** Roles allowed on the handle; default: any member. Writers are owner/admin (`WRITER_ROLES`). */
  roles?: readonly Role[];
  /** Personal access tokens are refused (e.g. minting or revoking tokens). */
  jwtOnly?: boolean;
  /** Only service tokens (control-plane provisioning). */
  serviceOnly?: boolean;
}

/** Refresh `last_used_at` at most this often per token, so reads do not turn into writes. */
const TOUCH_INTERVAL_MS = 60_000;

function bearerToken(c: Context<AppEnv>): string {
  const header = c.req.header('authorization');
  if (!header) throw problems.unauthenticated('Send an Authorization: Bearer <token> header.', 'invalid_request');
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!match) throw problems.unauthenticated('The Authorization header must use the Bearer scheme.', 'invalid_request');
  return match[1]!;
}

async function principalFromJwt(c: Context<AppEnv>, token: string): Promise<Principal> {
  const cfg = config(c.env);
  let payload;
  try {
    payload = await verifyJwt(token, { ...cfg.jwt, secret: c.env.JWT_SECRET ?? null });
  } catch (err) {
    if (err instanceof JwtRejected) throw problems.unauthenticated(err.message);
    throw err;
  }
  const handlesClaim = payload.handles;
  const serviceHandles =
    handlesClaim === '*'
      ? ('*' as const)
      : Array.isArray(handlesClaim) && handlesClaim.every((h) => typeof h === 'string')
        ? (handlesClaim as string[])
        : null;
  const sub = payload.sub!;
  const kind = serviceHandles !== null || parseScopes(payload.scope).has('internal:provision') ? 'service' : 'user';
  return {
    subject: sub,
    kind,
    method: 'jwt',
    scopes: withImplicit(parseScopes(payload.scope), kind),
    tokenId: null,
    tokenHandle: null,
    serviceHandles,
    key: `${kind}:${sub}`,
  };
}

function withImplicit(scopes: Set<Scope>, kind: 'user' | 'service'): Set<Scope> {
  if (kind === 'user') for (const s of IMPLICIT_SCOPES) scopes.add(s);
  return scopes;
}

function requireScopes(principal: Principal, rule: AccessRule) {
  const missing = missingScopes(principal.scopes, rule.scopes ?? []);
  if (missing.length) throw problems.missingScopes(missing);
  if (rule.anyOfScopes && !rule.anyOfScopes.some((s) => principal.scopes.has(s))) {
    throw problems.missingScopes(rule.anyOfScopes, true);
  }
}

function checkRole(role: HandleRole, rule: AccessRule) {
  if (!rule.roles) return;
  // A service token granted the handle acts like an admin: it can never do what only an owner may.
  const effective: Role = role === 'service' ? 'admin' : role;
  if (!rule.roles.includes(effective)) throw problems.missingRole([...rule.roles], role);
}

function waitUntil(c: Context<AppEnv>, work: Promise<unknown>) {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // No execution context (direct app.fetch in a script): let it run unawaited, errors already caught below.
    void work;
  }
}

/** The middleware enforcing `rule`; sets `principal` (and `role` for handle routes). */
export function authorize(rule: AccessRule): MiddlewareHandler<AppEnv> {
  return async function authorizeMiddleware(c, next) {
    const token = bearerToken(c);
    const handle = rule.handle ? c.req.param('handle') ?? null : null;
    let principal: Principal;
    let role: HandleRole | null = null;

    if (isPatLike(token)) {
      if (!hasValidChecksum(token)) {
        throw problems.unauthenticated('The personal access token is malformed or mistyped (its checksum does not match).');
      }
      if (rule.jwtOnly || rule.serviceOnly) {
        throw problems.forbidden('Personal access tokens cannot be used for this operation; use a JWT.');
      }
      const row = await findPatForRequest(getDb(c.env.DB), await sha256Hex(token), handle);
      if (!row) throw problems.unauthenticated('The personal access token is not recognised.');
      const now = Date.now();
      if (row.revokedAt) throw problems.unauthenticated('The personal access token has been revoked.');
      if (Date.parse(row.expiresAt) <= now) throw problems.unauthenticated('The personal access token has expired.');
      principal = {
        subject: row.userId,
        kind: 'user',
        method: 'pat',
        scopes: withImplicit(parseScopes(row.scopes), 'user'),
        tokenId: row.id,
        tokenHandle: row.handle,
        serviceHandles: null,
        key: `user:${row.userId}`,
      };
      if (!row.lastUsedAt || now - Date.parse(row.lastUsedAt) > TOUCH_INTERVAL_MS) {
        waitUntil(
          c,
          touchPat(getDb(c.env.DB), row.id, new Date(now).toISOString()).catch((err: unknown) =>
            console.warn(JSON.stringify({ level: 'warn', msg: 'pat_touch_failed', error: String(err) })),
          ),
        );
      }
      requireScopes(principal, rule);
      if (handle) {
        // A PAT restricted to another handle sees nothing else: same 404 as a handle it is not a member of.
        if (row.handle && row.handle !== handle) throw problems.notFound();
        role = row.role;
      }
    } else {
      principal = await principalFromJwt(c, token);
      if (rule.serviceOnly && principal.kind !== 'service') {
        throw problems.forbidden('Only service tokens of the Gharart control plane may call this operation.');
      }
      requireScopes(principal, rule);
      if (handle) {
        const db = getDb(c.env.DB);
        if (principal.serviceHandles) {
          const granted = principal.serviceHandles === '*' || principal.serviceHandles.includes(handle);
          role = granted && (await handleExists(db, handle)) ? 'service' : null;
        } else {
          role = await findRole(db, principal.subject, handle);
        }
      }
    }

    if (handle) {
      if (!role) throw problems.notFound();
      checkRole(role, rule);
      c.set('role', role);
    }
    c.set('principal', principal);
    await next();
  };
}

