/**
 * The dashboard's session: the caller's bearer token (PAT or JWT) sealed with AES-256-GCM in an `HttpOnly; Secure;
 * SameSite=Strict` cookie scoped to `/dashboard`, with a per-session CSRF token and a session id. The token is checked
 * by the API on every call, so revoking it ends the session at the next page load.
 *
 * The session id is a row of `dashboard_sessions` (docs/design.md#dashboard): sign-out revokes it, so a copy of the
 * cookie taken before (another tab, a stolen jar) stops working at once. What it costs: a sign-in writes one row (and
 * deletes expired ones, by index), a sign-out updates one, and every dashboard request that carries a cookie reads
 * one row by primary key — one D1 round trip, no write.
 *
 * The sealing key is derived (HKDF-SHA256) from ENCRYPTION_KEY with its own label, so a session cookie can never be
 * decrypted as a stored webhook secret or the other way round.
 */
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { AppEnv } from '../env.ts';
import { fromBase64, fromBase64Url, randomBytes, timingSafeEqual, toBase64Url } from '../lib/crypto.ts';

export const SESSION_COOKIE = 'gn_session';
/** Double-submit token of the sign-in form (there is no session yet to hold one). */
export const LOGIN_CSRF_COOKIE = 'gn_login_csrf';
export const COOKIE_PATH = '/dashboard';
/** A session lasts at most this long, and never longer than a JWT's own `exp`. */
export const SESSION_TTL_SECONDS = 12 * 3600;

export interface Session {
  /** The `dashboard_sessions` row; revoked at sign-out. */
  sid: string;
  /** The bearer token every API call is made with. */
  token: string;
  /** Compared with the `_csrf` field of every form post. */
  csrf: string;
  /** Unix seconds. */
  exp: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const keyCache = new Map<string, Promise<CryptoKey>>();

function sessionKey(encryptionKey: string): Promise<CryptoKey> {
  let key = keyCache.get(encryptionKey);
  if (!key) {
    key = crypto.subtle.importKey('raw', fromBase64(encryptionKey), 'HKDF', false, ['deriveKey']).then((base) =>
      crypto.subtle.deriveKey(
        {
          name: 'HKDF',
          hash: 'SHA-256',
          salt: new Uint8Array(0),
          info: encoder.encode('gharart-notify dashboard session v1'),
        },
        base,
        { name: 'AES-GCM', length: 256 },
        false,
        ['encrypt', 'decrypt'],
      ),
    );
    keyCache.set(encryptionKey, key);
  }
  return key;
}

/** Seals a session as `<iv>.<ciphertext>` (base64url). */
export async function sealSession(session: Session, encryptionKey: string): Promise<string> {
  const iv = randomBytes(12);
  const sealed = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv },
    await sessionKey(encryptionKey),
    encoder.encode(JSON.stringify(session)),
  );
  return `${toBase64Url(iv)}.${toBase64Url(new Uint8Array(sealed))}`;
}

/** Opens a sealed session; null when tampered with, sealed with another key, malformed or expired. */
export async function openSession(
  value: string | undefined,
  encryptionKey: string,
  now = Date.now(),
): Promise<Session | null> {
  if (!value) return null;
  const [iv, data] = value.split('.');
  if (!iv || !data) return null;
  try {
    const plain = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: fromBase64Url(iv) },
      await sessionKey(encryptionKey),
      fromBase64Url(data),
    );
    const s = JSON.parse(decoder.decode(plain)) as Partial<Session>;
    if (typeof s.sid !== 'string' || typeof s.token !== 'string' || typeof s.csrf !== 'string') return null;
    if (typeof s.exp !== 'number' || s.exp * 1000 <= now) return null;
    return { sid: s.sid, token: s.token, csrf: s.csrf, exp: s.exp };
  } catch {
    return null;
  }
}

/** A random token for CSRF fields and idempotency keys. */
export function randomToken(): string {
  return toBase64Url(randomBytes(24));
}

/** `exp` of a JWT (without verifying it: the API verifies), or null for a PAT or an unreadable token. */
export function jwtExpiry(token: string): number | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const payload = JSON.parse(decoder.decode(fromBase64Url(parts[1]!))) as { exp?: unknown };
    return typeof payload.exp === 'number' ? payload.exp : null;
  } catch {
    return null;
  }
}

const cookieOptions = (maxAge: number) =>
  ({ path: COOKIE_PATH, httpOnly: true, secure: true, sameSite: 'Strict', maxAge }) as const;

/** Starts a session for `token`: its row recorded, a fresh CSRF token, the cookie set. */
export async function startSession(c: Context<AppEnv>, token: string): Promise<Session> {
  const nowMs = Date.now();
  const now = Math.floor(nowMs / 1000);
  const exp = Math.min(now + SESSION_TTL_SECONDS, jwtExpiry(token) ?? Number.POSITIVE_INFINITY);
  const session: Session = { sid: randomToken(), token, csrf: randomToken(), exp };
  const at = new Date(nowMs).toISOString();
  await c.env.DB.batch([
    // Rows of sessions that have ended on their own: at most 12 h of sign-ins are ever kept.
    c.env.DB.prepare('DELETE FROM dashboard_sessions WHERE expires_at <= ?1').bind(at),
    c.env.DB.prepare('INSERT INTO dashboard_sessions (id, expires_at, created_at) VALUES (?1, ?2, ?3)').bind(
      session.sid,
      new Date(exp * 1000).toISOString(),
      at,
    ),
  ]);
  setCookie(c, SESSION_COOKIE, await sealSession(session, c.env.ENCRYPTION_KEY), cookieOptions(Math.max(exp - now, 0)));
  return session;
}

/** The session of the request's cookie, or null when there is none, it is unreadable, expired or signed out. */
export async function readSession(c: Context<AppEnv>): Promise<Session | null> {
  const session = await openSession(getCookie(c, SESSION_COOKIE), c.env.ENCRYPTION_KEY);
  if (!session) return null;
  const live = await c.env.DB.prepare(
    'SELECT 1 AS live FROM dashboard_sessions WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2',
  )
    .bind(session.sid, new Date().toISOString())
    .first<{ live: number }>();
  return live ? session : null;
}

/** Clears the cookie (the way back to sign-in after the API refused the token). */
export function endSession(c: Context<AppEnv>): void {
  deleteCookie(c, SESSION_COOKIE, { path: COOKIE_PATH, secure: true, httpOnly: true, sameSite: 'Strict' });
}

/** Sign-out: the session's row revoked, so no copy of the cookie works again, and the cookie cleared. */
export async function revokeSession(c: Context<AppEnv>, session: Session): Promise<void> {
  await c.env.DB.prepare('UPDATE dashboard_sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL')
    .bind(session.sid, new Date().toISOString())
    .run();
  endSession(c);
}

/** Sets (or reuses) the sign-in form's double-submit token. */
export function loginCsrf(c: Context<AppEnv>): string {
  const existing = getCookie(c, LOGIN_CSRF_COOKIE);
  if (existing && /^[A-Za-z0-9_-]{32}$/.test(existing)) return existing;
  const value = randomToken();
  setCookie(c, LOGIN_CSRF_COOKIE, value, cookieOptions(3600));
  return value;
}

/** True when the form's token equals the expected one (constant time). */
export function csrfMatches(expected: string | undefined, given: unknown): boolean {
  return (
    typeof expected === 'string' && expected.length > 0 && typeof given === 'string' && timingSafeEqual(expected, given)
  );
}
