/** Test helpers: requests through the real Worker entry point, tokens signed like the real issuer's. */
import { createExecutionContext } from 'cloudflare:test';
import { env, exports } from 'cloudflare:workers';
import { SignJWT } from 'jose';
import { buildApp } from '../../src/app.ts';
import { eventTypeInfo } from '../../src/lib/event-catalog.ts';
import { assertMatchesDocument } from './openapi-check.ts';

export const ISSUER = 'https://auth.gharart.test';
export const AUDIENCE = 'gharart-notify';
export const ALL_USER_SCOPES =
  'notifications:read notifications:write webhooks:read webhooks:write events:publish support:write';

let counter = 0;
/** A name unique within this test run, so test files never collide in the shared database. */
export function unique(prefix: string): string {
  counter++;
  return `${prefix}-${Date.now().toString(36)}-${counter}-${Math.random().toString(36).slice(2, 6)}`;
}

export interface JwtOptions {
  sub?: string;
  scope?: string;
  handles?: string[] | '*';
  exp?: number | null;
  iss?: string;
  aud?: string;
  alg?: string;
  secret?: string;
  extra?: Record<string, unknown>;
}

/** Signs a JWT as the local issuer would (HS256 with the test secret, iss/aud set, 1 h expiry) unless overridden. */
export async function signJwt(opts: JwtOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { ...opts.extra };
  if (opts.scope !== undefined) claims.scope = opts.scope;
  if (opts.handles !== undefined) claims.handles = opts.handles;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: opts.alg ?? 'HS256' })
    .setSubject(opts.sub ?? 'user-test')
    .setIssuedAt(now)
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE);
  if (opts.exp !== null) jwt.setExpirationTime(opts.exp ?? now + 3600);
  return jwt.sign(new TextEncoder().encode(opts.secret ?? env.JWT_SECRET));
}

export interface CallOptions {
  token?: string;
  body?: unknown;
  rawBody?: BodyInit;
  headers?: Record<string, string>;
}

/** Sends a request through the Worker's default export, as a client over HTTP would. */
export async function call(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
  const headers = new Headers(opts.headers);
  if (opts.token) headers.set('authorization', `Bearer ${opts.token}`);
  let body: BodyInit | undefined = opts.rawBody;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  return exports.default.fetch(new Request(`https://notify.test${path}`, { method, headers, body }));
}

let app: ReturnType<typeof buildApp> | undefined;

/**
 * Like `call`, but through the app with some vars overridden — e.g. production's URL rules
 * (`ALLOW_INSECURE_WEBHOOK_TARGETS: 'false'`), which the test environment relaxes for loopback receivers.
 */
export async function callWithVars(
  vars: Partial<Env>,
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<Response> {
  app ??= buildApp();
  const headers = new Headers(opts.headers);
  if (opts.token) headers.set('authorization', `Bearer ${opts.token}`);
  if (opts.body !== undefined) headers.set('content-type', 'application/json');
  const req = new Request(`https://notify.test${path}`, {
    method,
    headers,
    body: opts.body !== undefined ? JSON.stringify(opts.body) : opts.rawBody,
  });
  return app.fetch(req, { ...env, ...vars }, createExecutionContext());
}

/** `call` and parse the JSON body; a 2xx body is checked against the OpenAPI document's response schema. */
export async function callJson<T = any>(method: string, path: string, opts: CallOptions = {}) {
  const res = await call(method, path, opts);
  const text = await res.text();
  const body = (text ? JSON.parse(text) : null) as T;
  if (res.status >= 200 && res.status < 300 && path !== '/v2/openapi.json') {
    await assertMatchesDocument(method, path, res.status, body);
  }
  return { res, status: res.status, body };
}

export const serviceJwt = () =>
  signJwt({ sub: 'svc:control-plane', scope: 'internal:provision', extra: { svc: 'control-plane' } });

/** Provisions a handle with an owner through the real internal API. */
export async function provisionHandle(ownerId: string, handle = unique('h')): Promise<string> {
  const token = await serviceJwt();
  const res = await call('PUT', `/v2/internal/handles/${handle}`, {
    token,
    body: { displayName: `Store ${handle}`, ownerUserId: ownerId },
  });
  if (res.status !== 201) throw new Error(`provision failed: ${res.status} ${await res.text()}`);
  return handle;
}

export async function addMember(handle: string, userId: string, role: 'owner' | 'admin' | 'viewer') {
  const res = await call('PUT', `/v2/internal/handles/${handle}/members/${userId}`, {
    token: await serviceJwt(),
    body: { role },
  });
  if (res.status >= 300) throw new Error(`member failed: ${res.status} ${await res.text()}`);
}

/** Creates a PAT through the real API with a user JWT. */
export async function createPat(
  userId: string,
  body: { name?: string; scopes?: string[]; handle?: string; expiresInDays?: number } = {},
): Promise<{ token: string; id: string }> {
  const jwt = await signJwt({ sub: userId, scope: ALL_USER_SCOPES });
  const { status, body: created } = await callJson('POST', '/v2/tokens', {
    token: jwt,
    body: { name: body.name ?? 'test', scopes: body.scopes ?? ALL_USER_SCOPES.split(' '), ...body },
  });
  if (status !== 201) throw new Error(`createPat failed: ${status} ${JSON.stringify(created)}`);
  return { token: created.token, id: created.id };
}

/** Asserts the RFC 9457 shape every error must have, returning the parsed problem. */
export async function expectProblem(res: Response, status: number): Promise<Record<string, any>> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${text}`);
  const ct = res.headers.get('content-type') ?? '';
  if (!ct.startsWith('application/problem+json')) throw new Error(`content-type was ${ct}`);
  const body = JSON.parse(text);
  for (const k of ['type', 'title', 'status', 'detail', 'instance', 'requestId']) {
    if (!(k in body)) throw new Error(`problem lacks ${k}: ${text}`);
  }
  if (body.status !== status) throw new Error(`problem.status ${body.status} != ${status}`);
  if (body.requestId !== res.headers.get('x-request-id')) throw new Error('problem.requestId != X-Request-Id');
  return body;
}

/**
 * Valid `data` for a catalog type: its catalog example with `extra` fields over it (a custom type gets `extra` alone).
 * Tests publish this rather than `{}`, which a catalog type's required fields refuse.
 */
export function catalogData(type: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...(eventTypeInfo(type)?.sample ?? {}), ...extra };
}
