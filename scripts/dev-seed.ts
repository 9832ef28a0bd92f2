/**
 * Demo data for local development: one handle, its owner, and credentials for that owner.
 *
 * No I/O: builds the credentials and the SQL, and leaves running it to scripts/dev.ts. The PAT is derived from
 * JWT_SECRET, so every run prints the same token until the secret changes. node:crypto rather than src/lib/crypto.ts,
 * whose CryptoKey types only exist in the Workers type environment.
 */
import { createHash, createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { mintPat, patDisplayPrefix } from '../src/auth/pat.ts';
import { USER_SCOPES as SCOPES } from '../src/auth/scopes.ts';

export const DEMO = {
  handle: 'demo-store',
  displayName: 'Demo Store',
  ownerId: 'user_demo_owner',
  serviceSubject: 'svc:control-plane',
  /** Fixed so re-seeding updates one row instead of piling up tokens; matches `idPattern('tok')`. */
  tokenId: 'tok_0000000000000000000DEM0PAT',
  tokenName: 'Demo token (npm run dev)',
} as const;

const USER_SCOPES = SCOPES.join(' ');
const SERVICE_SCOPES = 'internal:provision';
// Within the Worker's JWT_MAX_LIFETIME_SECONDS (24 h by default): a longer token would be refused.
const JWT_LIFETIME = '12h';
const PAT_LIFETIME_MS = 365 * 86_400_000;

export interface DemoCredentials {
  ownerJwt: string;
  serviceJwt: string;
  pat: string;
}

const encoder = new TextEncoder();

/** HMAC-SHA256(JWT_SECRET, label): 32 bytes, enough for the 30 a PAT needs, and stable for a given secret. */
function patSeed(jwtSecret: string): Uint8Array {
  return createHmac('sha256', jwtSecret).update('gharart-notify demo PAT').digest();
}

/**
 * HS256 JWT as the Worker verifies it locally: no iss/aud, because JWT_ISSUER and JWT_AUDIENCE are empty. `claims`
 * adds others, e.g. `handles` for a service token that publishes events.
 */
export function signJwt(
  jwtSecret: string,
  sub: string,
  scope: string,
  claims: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT({ ...claims, scope })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(JWT_LIFETIME)
    .sign(encoder.encode(jwtSecret));
}

export async function demoCredentials(jwtSecret: string): Promise<DemoCredentials> {
  return {
    ownerJwt: await signJwt(jwtSecret, DEMO.ownerId, USER_SCOPES),
    serviceJwt: await signJwt(jwtSecret, DEMO.serviceSubject, SERVICE_SCOPES),
    pat: mintPat(patSeed(jwtSecret)),
  };
}

/** A SQL string literal (or NULL). */
function lit(value: string | null): string {
  return value === null ? 'NULL' : `'${value.replaceAll("'", "''")}'`;
}

/** Lower-case hex SHA-256 of the whole token: what the Worker stores and looks up (as `sha256Hex` does). */
function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * Idempotent seed statements. Existing rows are left alone, except where leaving them would make the printed
 * credentials fail: the owner keeps the `owner` role, and the demo token is re-minted when JWT_SECRET changed (its
 * hash differs), or when it was revoked or has expired.
 */
/**
 * The demo handle's rows on its shard, SHARD_0 (docs/design.md#shards): the shard's copy of the handle row and its
 * settings. `seedSql` writes the control plane's.
 */
export function seedShardSql(now: Date = new Date()): string {
  const ts = lit(now.toISOString());
  const handle = lit(DEMO.handle);
  return `
INSERT INTO handles (handle, display_name, shard, created_at, updated_at)
  VALUES (${handle}, ${lit(DEMO.displayName)}, 0, ${ts}, ${ts})
  ON CONFLICT (handle) DO NOTHING;
INSERT INTO notification_settings (handle, updated_at)
  VALUES (${handle}, ${ts})
  ON CONFLICT (handle) DO NOTHING;
`.trim();
}

/** The D1 bindings of wrangler.toml: the control plane `DB` and the shards `SHARD_<n>`, in order. */
export function d1Bindings(toml: string): string[] {
  return [...toml.matchAll(/^binding\s*=\s*"((?:DB|SHARD_\d+))"/gm)].map((m) => m[1]!);
}

export function seedSql(pat: string, now: Date = new Date()): string {
  const ts = lit(now.toISOString());
  const handle = lit(DEMO.handle);
  const owner = lit(DEMO.ownerId);
  const token = [
    lit(DEMO.tokenId),
    owner,
    lit(DEMO.tokenName),
    lit(tokenHash(pat)),
    lit(patDisplayPrefix(pat)),
    lit(USER_SCOPES),
    lit(null),
    lit(new Date(now.getTime() + PAT_LIFETIME_MS).toISOString()),
    lit(null),
    lit(null),
    ts,
  ].join(', ');
  return `
INSERT INTO handles (handle, display_name, shard, created_at, updated_at)
  VALUES (${handle}, ${lit(DEMO.displayName)}, 0, ${ts}, ${ts})
  ON CONFLICT (handle) DO NOTHING;
INSERT INTO memberships (handle, user_id, role, created_at, updated_at)
  VALUES (${handle}, ${owner}, 'owner', ${ts}, ${ts})
  ON CONFLICT (handle, user_id) DO UPDATE SET role = 'owner', updated_at = excluded.updated_at
  WHERE memberships.role <> 'owner';
INSERT INTO access_tokens
  (id, user_id, name, token_hash, token_prefix, scopes, handle, expires_at, last_used_at, revoked_at, created_at)
  VALUES (${token})
  ON CONFLICT (id) DO UPDATE SET
    user_id = excluded.user_id, name = excluded.name, token_hash = excluded.token_hash,
    token_prefix = excluded.token_prefix, scopes = excluded.scopes, handle = excluded.handle,
    expires_at = excluded.expires_at, last_used_at = NULL, revoked_at = NULL, created_at = excluded.created_at
  WHERE access_tokens.token_hash <> excluded.token_hash
    OR access_tokens.revoked_at IS NOT NULL
    OR access_tokens.expires_at <= ${ts};
`.trim();
}
