/**
 * Shared pieces of the HTTP layer: the OpenAPIHono factory whose validation hook throws problems, the problem and
 * list schemas every route documents, and `guard()`, which attaches an authorization rule to a route so that the
 * middleware and the OpenAPI `security` entry come from one declaration.
 */
import { OpenAPIHono, type RouteConfig, z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import type { AccessRule } from '../auth/access.ts';
import { BOOKMARK_HEADER, BOOKMARK_HEADER_PATTERN } from '../db/session.ts';
import type { AppEnv } from '../env.ts';
import { HANDLE_PATTERN } from '../lib/handles.ts';
import { type FieldError, PROBLEM_TYPES, problems } from '../lib/problem.ts';
import { humanValidationMessage, type ValidationIssue } from '../lib/validation-messages.ts';
import { authorize, resolveAccess } from '../middleware/auth.ts';
import { idempotency } from '../middleware/idempotency.ts';
import { dailyWriteQuota } from '../middleware/quota.ts';
import { rateLimit, type ThrottleClass } from '../middleware/rate-limit.ts';

type ZodIssueLike = ValidationIssue;

const TARGET_PREFIX: Record<string, string> = { json: 'body', query: 'query', header: 'header', param: 'path' };

/**
 * Turns zod issues into `errors[]` with a dotted path rooted at the request part (`body.url`, `query.limit`), each
 * message naming the field, what was expected and an example (src/lib/validation-messages.ts).
 */
export function fieldErrors(issues: readonly ZodIssueLike[], target: string): FieldError[] {
  const root = TARGET_PREFIX[target] ?? target;
  return issues.flatMap((issue) => {
    const base = [root, ...issue.path.map(String)].join('.');
    // Unknown fields are reported one by one, each at its own path, so a client sees exactly what to remove.
    if (issue.code === 'unrecognized_keys' && issue.keys?.length) {
      return issue.keys.map((k) => ({ path: `${base}.${k}`, message: humanValidationMessage(issue, `${base}.${k}`) }));
    }
    return [{ path: base, message: humanValidationMessage(issue, base) }];
  });
}

/** A router for one resource: same validation behaviour everywhere. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: async (result, c) => {
      if (result.success) return;
      // 401/403/404 come before 400 even where the access check waits for the route's batch.
      await resolveAccess(c);
      // A malformed path id names no resource: answer as for any missing resource, never echo the value.
      if (result.target === 'param') throw problems.notFound();
      throw problems.validation(fieldErrors(result.error.issues as ZodIssueLike[], result.target));
    },
  });
}

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: '/docs#problem-validation' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string(),
    requestId: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .catchall(z.unknown())
  .openapi('Problem', { description: 'RFC 9457 problem details.' });

const problemContent = { 'application/problem+json': { schema: ProblemSchema } } as const;

const ERROR_DESCRIPTIONS: Record<number, string> = Object.fromEntries(
  Object.values(PROBLEM_TYPES).map((p) => [p.status, p.title]),
);

/**
 * OpenAPI entries for the error statuses a route can answer with (500 and 503 — storage unavailable — on every route).
 */
export function errorResponses(...statuses: number[]) {
  const out: Record<number, { description: string; content: typeof problemContent }> = {};
  for (const s of new Set([...statuses, 500, 503])) {
    out[s] = { description: ERROR_DESCRIPTIONS[s] ?? 'Error', content: problemContent };
  }
  return out;
}

/** JSON request body entry for createRoute. */
export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return {
    required: true,
    ...(description ? { description } : {}),
    content: { 'application/json': { schema } },
  } as const;
}

/** JSON response entry for createRoute. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } } as const;
}

export const LIMIT_DEFAULT = 50;
export const LIMIT_MAX = 200;

/** `?limit=&cursor=` of every list (docs/design.md#api-conventions). */
export const PageQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(LIMIT_MAX)
    .default(LIMIT_DEFAULT)
    .openapi({ param: { name: 'limit', in: 'query' }, example: 50 }),
  cursor: z
    .string()
    .max(200)
    .optional()
    .openapi({ param: { name: 'cursor', in: 'query' }, description: 'Opaque; from the previous page.' }),
});

/** `{ data: [...], nextCursor }` of every list. */
export function pageOf<T extends z.ZodType>(item: T, name: string) {
  return z.object({ data: z.array(item), nextCursor: z.string().nullable() }).openapi(name);
}

/** A handle in a path: lower-case slug, as provisioned. */
export const HandleParam = z
  .string()
  .regex(HANDLE_PATTERN)
  .openapi({ param: { name: 'handle', in: 'path' }, example: 'demo-store' });

/** A route's access rule plus the throttle class it counts against (default: reads for GET, writes otherwise). */
export type GuardRule = AccessRule & {
  throttle?: ThrottleClass;
  /** Count successful writes against the handle's daily limit (default true; control-plane calls opt out). */
  countsTowardsDailyLimit?: boolean;
  /** A POST that changes nothing (a dry run): no idempotency record, no daily write count. */
  sideEffectFree?: boolean;
};

const IDEMPOTENCY_HEADER = z.object({
  'idempotency-key': z
    .string()
    .optional()
    .openapi({
      param: { name: 'idempotency-key', in: 'header' },
      description: 'Makes the write safe to retry: the same key and body within 24 h replays the first response.',
    }),
});

/**
 * Attaches an access rule to a route, with everything that follows from it: the middleware chain
 * (authorize → throttle → idempotency and the daily write quota for writes), the OpenAPI `security` requirement, the
 * `Idempotency-Key` header, and the error answers the chain can produce.
 */
export function guard<R extends RouteConfig & { operationId: string }>(rule: GuardRule, route: R) {
  const existing = route.middleware ? (Array.isArray(route.middleware) ? route.middleware : [route.middleware]) : [];
  const isWrite = route.method !== 'get' && !rule.sideEffectFree;
  const chain: MiddlewareHandler[] = [authorize(rule), rateLimit(rule.throttle ?? (isWrite ? 'writes' : 'reads'))];
  if (isWrite) chain.push(idempotency());
  if (isWrite && rule.handle && rule.countsTowardsDailyLimit !== false) chain.push(dailyWriteQuota());
  // Any request with a body can be malformed, too large or of the wrong type, whatever the route declares.
  const statuses = [
    401,
    403,
    429,
    ...(rule.handle ? [404] : []),
    ...(route.method !== 'get' ? [400, 413, 415] : []),
    ...(isWrite ? [409, 422] : []),
  ];
  const roleNote = rule.roles ? ` Role on the handle: ${rule.roles.join(' or ')}.` : '';
  const jwtNote = rule.jwtOnly ? ' Only a JWT is accepted (not a personal access token).' : '';
  const headers = route.request?.headers as z.ZodObject | undefined;
  const request = isWrite
    ? { ...route.request, headers: headers ? headers.extend(IDEMPOTENCY_HEADER.shape) : IDEMPOTENCY_HEADER }
    : route.request;
  return {
    ...route,
    ...(request ? { request } : {}),
    middleware: [...chain, ...existing] as MiddlewareHandler[],
    security: rule.anyOfScopes
      ? rule.anyOfScopes.map((s) => ({ bearerAuth: [...(rule.scopes ?? []), s] }))
      : [{ bearerAuth: [...(rule.scopes ?? [])] }],
    description: `${route.description ?? ''}${
      rule.scopes?.length ? `\n\nScopes: ${rule.scopes.join(', ')}.` : ''
    }${rule.anyOfScopes ? `\n\nScopes: one of ${rule.anyOfScopes.join(', ')}.` : ''}${roleNote}${jwtNote}`.trim(),
    responses: { ...errorResponses(...statuses), ...route.responses },
  } as R;
}

type Json = Record<string, unknown>;

const BOOKMARK_SCHEMA = {
  type: 'string',
  pattern: BOOKMARK_HEADER_PATTERN,
  example: 'SHARD_1=00000085-0000024c-00004c6d-8e61117bf38d7adb71b934ebbf891683',
};

/** The request parameter and the response header, as `components` of the document. */
const BOOKMARK_COMPONENTS = {
  parameters: {
    name: BOOKMARK_HEADER,
    in: 'header',
    required: false,
    description:
      'Read your own writes through D1 read replicas: send back the `x-d1-bookmark` of the latest response ' +
      'unchanged (`SHARD_<n>=<bookmark>`, comma-separated, each shard once). Malformed: 400 naming ' +
      '`header.x-d1-bookmark`. See docs/design.md#read-replicas-and-bookmarks.',
    schema: BOOKMARK_SCHEMA,
  },
  headers: {
    description:
      'Per data shard, the point in its history this request saw, its own writes included (`SHARD_<n>=<bookmark>`, ' +
      'in shard order, a shard it did not touch as sent). Absent when the request touched no shard and sent none.',
    schema: BOOKMARK_SCHEMA,
  },
} as const;

/**
 * The read-replica bookmark header (src/middleware/d1-session.ts, docs/design.md#read-replicas-and-bookmarks), declared
 * once in `components` (`parameters.D1Bookmark`, `headers.D1Bookmark`) and referenced by every operation under `/v2/`,
 * where the middleware runs: its request parameters and each of its responses. Answers `doc`.
 */
export function withD1Bookmarks(doc: Json): Json {
  doc.components ??= {};
  const components = doc.components as Record<string, Json | undefined>;
  for (const [kind, component] of Object.entries(BOOKMARK_COMPONENTS))
    components[kind] = { ...components[kind], D1Bookmark: component };
  for (const [path, item] of Object.entries((doc.paths ?? {}) as Record<string, Record<string, Json | undefined>>)) {
    if (!path.startsWith('/v2/')) continue;
    for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
      const op = item[method];
      if (!op) continue;
      op.parameters = [
        ...((op.parameters as Json[] | undefined) ?? []),
        { $ref: '#/components/parameters/D1Bookmark' },
      ];
      const responses = (op.responses ?? {}) as Record<string, Json>;
      for (const [status, response] of Object.entries(responses)) {
        const headers = {
          ...(response.headers as Json),
          [BOOKMARK_HEADER]: { $ref: '#/components/headers/D1Bookmark' },
        };
        responses[status] = { ...response, headers };
      }
    }
  }
  return doc;
}
