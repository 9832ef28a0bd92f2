/**
 * Who is calling (docs/design.md#identity-access-and-limits): a {@link Principal} from a verified JWT or from a
 * personal access token's row. No Hono and no request here: the middleware (middleware/auth.ts) reads the bearer
 * token and the database, this module says who that is, or the 401 saying why nobody.
 */
import type { JWTPayload } from 'jose';
import { problems } from '../lib/problem.ts';
import { JwtRejected, type JwtSettings, verifyJwt } from './jwt.ts';
import type { PatRow } from './queries.ts';
import { IMPLICIT_SCOPES, parseScopes, type Role, type Scope } from './scopes.ts';

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

/** Refresh `last_used_at` at most this often per token, so reads do not turn into writes. */
const TOUCH_INTERVAL_MS = 60_000;

function withImplicit(scopes: Set<Scope>, kind: 'user' | 'service'): Set<Scope> {
  if (kind === 'user') for (const s of IMPLICIT_SCOPES) scopes.add(s);
  return scopes;
}

/** The principal of verified JWT claims: a `handles` claim or the provisioning scope makes it a service. */
export function principalFromClaims(payload: JWTPayload): Principal {
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

/** Verifies a JWT and returns its principal, or throws the 401 saying why the token is refused. */
export async function jwtPrincipal(token: string, settings: JwtSettings): Promise<Principal> {
  let payload: JWTPayload;
  try {
    payload = await verifyJwt(token, settings);
  } catch (err) {
    if (err instanceof JwtRejected) throw problems.unauthenticated(err.message);
    throw err;
  }
  return principalFromClaims(payload);
}

/** The principal of a PAT's row (`patQuery`), or the 401 when there is no such token or it is revoked or expired. */
export function patPrincipal(row: PatRow | undefined, now: number): Principal {
  if (!row) throw problems.unauthenticated('The personal access token is not recognised.');
  if (row.revokedAt) throw problems.unauthenticated('The personal access token has been revoked.');
  if (Date.parse(row.expiresAt) <= now) throw problems.unauthenticated('The personal access token has expired.');
  return {
    subject: row.userId,
    kind: 'user',
    method: 'pat',
    scopes: withImplicit(parseScopes(row.scopes), 'user'),
    tokenId: row.id,
    tokenHandle: row.handle,
    serviceHandles: null,
    key: `user:${row.userId}`,
  };
}

/** Whether a token's `last_used_at` is old enough to be written again (`touchPat`). */
export function patTouchDue(row: Pick<PatRow, 'lastUsedAt'>, now: number): boolean {
  return !row.lastUsedAt || now - Date.parse(row.lastUsedAt) > TOUCH_INTERVAL_MS;
}
