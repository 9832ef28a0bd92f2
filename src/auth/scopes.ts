/** Scopes and roles (docs/design.md#identity-access-and-limits), and the checks on them. Pure. */

/** Scopes a PAT or user JWT may carry. */
export const USER_SCOPES = [
  'notifications:read',
  'notifications:write',
  'webhooks:read',
  'webhooks:write',
  'events:publish',
  'support:write',
] as const;

/** Scopes only service JWTs from Gharart's control plane carry. */
export const SERVICE_SCOPES = ['internal:provision'] as const;

export type UserScope = (typeof USER_SCOPES)[number];
export type Scope = UserScope | (typeof SERVICE_SCOPES)[number];

export const ROLES = ['owner', 'admin', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

/** Roles that may write under a handle. */
export const WRITER_ROLES: readonly Role[] = ['owner', 'admin'];

const KNOWN = new Set<string>([...USER_SCOPES, ...SERVICE_SCOPES]);

/** Parses a space-separated `scope` claim, keeping only known scopes (unknown ones grant nothing). */
export function parseScopes(claim: unknown): Set<Scope> {
  if (typeof claim !== 'string') return new Set();
  return new Set(claim.split(/\s+/).filter((s): s is Scope => KNOWN.has(s)));
}

/**
 * Scopes every authenticated user holds whatever their token says (docs/design.md#routes: anyone may file a support
 * report).
 */
export const IMPLICIT_SCOPES: readonly Scope[] = ['support:write'];

/** The scopes of `required` that `held` lacks. */
export function missingScopes(held: ReadonlySet<Scope>, required: readonly Scope[]): Scope[] {
  return required.filter((s) => !held.has(s));
}
