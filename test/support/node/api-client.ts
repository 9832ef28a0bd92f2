/**
 * The JSON API as an end-to-end test in Node calls it: HS256 JWTs signed with the secret the test started the Worker
 * with, and requests answered as `{status, body}` (the body parsed, `{}` when empty).
 */
import { SignJWT } from 'jose';

// `any`: API answers are read field by field in the tests.
export type Json = Record<string, any>;

/** A JWT for `sub` with `scope`, valid for `lifetimeSeconds` from now (within the Worker's lifetime cap). */
export function testJwt(
  secret: string,
  sub: string,
  scope: string,
  extra: Record<string, unknown> = {},
  lifetimeSeconds = 600,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ scope, ...extra })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + lifetimeSeconds)
    .sign(new TextEncoder().encode(secret));
}

/** Anything that fetches like `fetch`: the global one, or a started Worker's `fetch`. */
type Fetcher = (url: string, init: RequestInit) => Promise<{ status: number; text(): Promise<string> }>;

/** `api(method, path, token, body?)` against `origin` through `fetcher`; `init` adds e.g. a timeout signal. */
export function apiClient(fetcher: Fetcher, origin: string | (() => string), init: () => RequestInit = () => ({})) {
  return async (
    method: string,
    path: string,
    token: string,
    body?: unknown,
  ): Promise<{ status: number; body: Json }> => {
    const res = await fetcher(`${typeof origin === 'string' ? origin : origin()}${path}`, {
      ...init(),
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Json) : {} };
  };
}
