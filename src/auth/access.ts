/**
 * What a route requires and the checks of a principal against it (docs/design.md#identity-access-and-limits), with no
 * request in sight: middleware/auth.ts runs them in the order of answers 401 → 403 scope → 404 → 403 role.
 */
import { problems } from '../lib/problem.ts';
import type { HandleRole, Principal } from './principal.ts';
import { missingScopes, type Role, type Scope } from './scopes.ts';

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
  /**
   * Read-only handle routes: the access lookup goes to D1 in the route's own batch (`batchWithAccess`), so an
   * authenticated read is one round trip. The route must call `batchWithAccess` (or the middleware checks afterwards).
   */
  deferToData?: boolean;
}

/** An access lookup waiting to ride in the route's batch; see middleware/auth.ts `batchWithAccess`. */
export interface PendingAccess {
  /** Runs the lookup on its own (when the route answers without its batch). */
  run(): Promise<unknown[]>;
  /** Checks the lookup's rows exactly as the middleware would have (throws 401/403/404), then deferred throttles. */
  settle(rows: unknown[]): Promise<void>;
  readonly settled: boolean;
  /** Throttles registered while the principal was unknown (rate-limit.ts); run by `settle`. */
  readonly throttles: Array<() => Promise<void>>;
}

/** 403 unless the principal holds every scope of the rule and one of its `anyOfScopes`. */
export function requireScopes(principal: Principal, rule: AccessRule): void {
  const missing = missingScopes(principal.scopes, rule.scopes ?? []);
  if (missing.length) throw problems.missingScopes(missing);
  if (rule.anyOfScopes && !rule.anyOfScopes.some((s) => principal.scopes.has(s))) {
    throw problems.missingScopes(rule.anyOfScopes, true);
  }
}

/** 404 when a PAT restricted to another handle is used on this one: the same answer as for a non-member. */
export function requireTokenHandle(principal: Principal, handle: string | null): void {
  if (handle && principal.tokenHandle && principal.tokenHandle !== handle) throw problems.notFound();
}

/** 403 unless the caller's role on the handle is one the rule allows. */
export function requireRole(role: HandleRole, rule: AccessRule): void {
  if (!rule.roles) return;
  // A service token granted the handle acts like an admin: it can never do what only an owner may.
  const effective: Role = role === 'service' ? 'admin' : role;
  if (!rule.roles.includes(effective)) throw problems.missingRole([...rule.roles], role);
}
