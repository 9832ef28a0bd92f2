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
 * The D1 database holding `handle`'s rows (docs/design.md#shards), read from the directory: tests that seed or read a
 * handle's rows directly go through it, as the service does.
 */
export async function shardOf(handle: string): Promise<D1Database> {
  const row = await env.DB.prepare('SELECT shard FROM handles WHERE handle = ?1')
    .bind(handle)
    .first<{ shard: number }>();
  if (!row) throw new Error(`no handle ${handle} in the directory`);
  return row.shard === 0 ? env.SHARD_0 : env.SHARD_1;
}

/** The shards in the order the cross-shard helpers ask them. */
const shards = () => [env.SHARD_0, env.SHARD_1];

/** `sql` with string literals and the insides of parentheses blanked, so a regex sees only its top level. */
function topLevel(sql: string): string {
  let depth = 0;
  let quote: string | null = null;
  let out = '';
  for (const ch of sql) {
    if (quote) {
      out += ch === quote ? ch : ' ';
      if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else if (ch === '(') out += depth++ === 0 ? ch : ' ';
    else if (ch === ')') out += --depth === 0 ? ch : ' ';
    else out += depth > 0 ? ' ' : ch;
  }
  return out;
}

const AGGREGATE = /\b(count|sum|total|min|max|avg|group_concat)\s*\(/i;

/** How each output column of an ungrouped aggregate combines over the shards: `sum`, `min`, `max` or `same`. */
type Combine = 'sum' | 'min' | 'max' | 'same';

/**
 * The output columns of `sql` with how each combines over the shards, when `sql` is an aggregate without GROUP BY (a
 * shard with no matching row still answers its one row: a count of 0, a NULL max); null for any other query, whose
 * rows each belong to one shard. An aggregate column that cannot be combined (avg, group_concat, an expression over an
 * aggregate) is refused here, before any shard is asked.
 */
function ungroupedAggregate(sql: string): Map<string, Combine> | null {
  const top = topLevel(sql);
  const select = /^\s*SELECT\s+(?:ALL\s+)?/i.exec(top);
  const from = /\sFROM\s/i.exec(top);
  if (!select || /\bGROUP\s+BY\b|\bOVER\b|\bUNION\b/i.test(top)) return null;
  const end = from?.index ?? sql.length;
  // The select list split at its top-level commas, each item read from the original text at the same offsets.
  const items: string[] = [];
  let start = select[0].length;
  for (let i = start; i <= end; i++) {
    if (i === end || top[i] === ',') {
      items.push(sql.slice(start, i).trim());
      start = i + 1;
    }
  }
  if (!items.some((item) => AGGREGATE.test(topLevel(item)))) return null;
  const columns = new Map<string, Combine>();
  for (const item of items) {
    const alias = /(?:\s+AS)?\s+["`]?([A-Za-z_]\w*)["`]?$/i.exec(item);
    const expr = alias ? item.slice(0, alias.index).trim() : item;
    const call = /^(count|sum|total|min|max)\s*\(/i.exec(expr);
    const whole = call && topLevel(expr).indexOf(')') === expr.length - 1;
    let how: Combine = 'same';
    if (whole)
      how = ({ count: 'sum', sum: 'sum', total: 'sum', min: 'min', max: 'max' } as const)[
        call[1]!.toLowerCase() as 'count'
      ];
    else if (AGGREGATE.test(topLevel(expr)))
      throw new Error(
        `anyShard cannot combine \`${expr}\` over the shards: ask the handle's own shard (shardOf(handle)), ` +
          'or select count, sum, total, min or max alone (first() and all() combine those)',
      );
    columns.set(alias?.[1] ?? expr, how);
  }
  return columns;
}

/** SQLite's order for the values min and max compare here (numbers, or text of the same kind). */
function before(a: unknown, b: unknown): boolean {
  return (a as number | string) < (b as number | string);
}

/** One row from each shard's answer to an ungrouped aggregate, combined column by column. */
function combineRows(columns: Map<string, Combine>, rows: readonly Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, how] of columns) {
    const values = rows.map((r) => r[name]).filter((v) => v !== null && v !== undefined);
    if (!values.length) out[name] = null;
    else if (how === 'sum') out[name] = values.reduce((n: number, v) => n + Number(v), 0);
    else if (how === 'min' || how === 'max')
      out[name] = values.reduce((m, v) => (before(v, m) === (how === 'min') ? v : m));
    else if (new Set(values).size > 1)
      throw new Error(
        `anyShard: the shards answer different \`${name}\`s; ask the handle's own shard (shardOf(handle))`,
      );
    else out[name] = values[0];
  }
  return out;
}

/**
 * Every shard as one read-and-update D1 for tests that hold an id but not its handle: `all` answers every shard's
 * rows and `first` the first shard's row, except for an aggregate without GROUP BY (`SELECT count(*) AS n …`), where
 * both answer the ONE row combined over the shards (counts and sums added, min and max taken; a `count(DISTINCT …)`
 * added too, its values' rows being on one shard) — each shard answers such
 * a query with a row of its own, 0 where it has nothing, which read alone is one shard's count. An aggregate it cannot
 * combine (avg, an expression over a count) is refused: ask the handle's own shard (`shardOf`). Grouped rows stay per
 * shard (a handle's rows, and so its groups, are on one). `run` runs on every shard (an UPDATE or DELETE by id changes
 * the one shard that has the row). An INSERT is refused: a row belongs on its handle's shard (`shardOf`).
 */
export const anyShard = {
  prepare(sql: string) {
    if (/^\s*INSERT/i.test(sql)) throw new Error('anyShard cannot insert: use shardOf(handle)');
    const aggregate = ungroupedAggregate(sql);
    const statement = (params: unknown[]) => {
      const onEvery = () => shards().map((d1) => d1.prepare(sql).bind(...params));
      const combine = (rows: readonly (Record<string, unknown> | null | undefined)[]) =>
        combineRows(
          aggregate!,
          rows.map((row) => row ?? {}),
        );
      return {
        bind: (...next: unknown[]) => statement(next),
        async first<T = any>(column?: string): Promise<T | null> {
          if (aggregate) {
            const row = combine(await Promise.all(onEvery().map((st) => st.first<Record<string, unknown>>())));
            return (column === undefined ? row : row[column]) as T;
          }
          for (const st of onEvery()) {
            const row = column === undefined ? await st.first<T>() : await st.first<T>(column);
            if (row !== null && row !== undefined) return row;
          }
          return null;
        },
        async all<T = Record<string, any>>(): Promise<D1Result<T>> {
          const parts = await Promise.all(onEvery().map((st) => st.all<T>()));
          const rows = parts.map((p) => p.results);
          const results = aggregate ? [combine(rows.map((r) => r[0] as Record<string, unknown>)) as T] : rows.flat();
          return { ...parts[0]!, results };
        },
        async run() {
          const parts = await Promise.all(onEvery().map((st) => st.run()));
          const changes = parts.reduce((n, p) => n + (p.meta.changes ?? 0), 0);
          return { ...parts[0]!, meta: { ...parts[0]!.meta, changes } };
        },
      };
    };
    return statement([]);
  },
};

/**
 * `anyShard` with the parameters beside the SQL, for a test that reads rows by an id whose handle it does not hold at
 * hand: `first` answers the first shard's row, `all` every shard's rows, an aggregate combined over the shards as
 * `anyShard` does. Never for inserts (a row belongs on its handle's shard: `shardOf`).
 */
export const allShards = {
  first<T = Record<string, any>>(sql: string, ...params: unknown[]): Promise<T | null> {
    return anyShard
      .prepare(sql)
      .bind(...params)
      .first<T>();
  },
  async all<T = Record<string, any>>(sql: string, ...params: unknown[]): Promise<T[]> {
    return (
      await anyShard
        .prepare(sql)
        .bind(...params)
        .all<T>()
    ).results;
  },
};

/** The shard holding a delivery, found by its id. */
export async function shardOfDelivery(id: string): Promise<D1Database> {
  const row = await anyShard.prepare('SELECT handle FROM deliveries WHERE id = ?').bind(id).first<{ handle: string }>();
  if (!row) throw new Error(`no delivery ${id}`);
  return shardOf(row.handle);
}

/** The binding name of the shard holding `handle` (to override it with a faulty or counting copy in a test's env). */
export async function shardName(handle: string): Promise<'SHARD_0' | 'SHARD_1'> {
  return (await shardOf(handle)) === env.SHARD_0 ? 'SHARD_0' : 'SHARD_1';
}

/**
 * A handle placed on a chosen shard, for tests that need one on each: new handles go to the least-loaded shard
 * (docs/design.md#shards), and the test databases are shared, so which one that is depends on every other test. The
 * rows are those `PUT /v2/internal/handles/{handle}` writes (the shard's copy and settings, then the directory entry
 * and the owner), with the shard chosen here instead of by size.
 */
export async function provisionHandleOn(shard: 'SHARD_0' | 'SHARD_1', ownerId: string, handle = unique('h')) {
  const now = new Date().toISOString();
  const index = shard === 'SHARD_0' ? 0 : 1;
  const row = `INSERT INTO handles (handle, display_name, shard, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)`;
  await env[shard].batch([
    env[shard].prepare(row).bind(handle, `Store ${handle}`, index, now),
    env[shard].prepare('INSERT INTO notification_settings (handle, updated_at) VALUES (?1, ?2)').bind(handle, now),
  ]);
  await env.DB.batch([
    env.DB.prepare(row).bind(handle, `Store ${handle}`, index, now),
    env.DB.prepare(
      `INSERT INTO memberships (handle, user_id, role, created_at, updated_at) VALUES (?1, ?2, 'owner', ?3, ?3)`,
    ).bind(handle, ownerId, now),
  ]);
  return handle;
}

/**
 * Valid `data` for a catalog type: its catalog example with `extra` fields over it (a custom type gets `extra` alone).
 * Tests publish this rather than `{}`, which a catalog type's required fields refuse.
 */
export function catalogData(type: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...(eventTypeInfo(type)?.sample ?? {}), ...extra };
}
