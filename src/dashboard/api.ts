/**
 * How the dashboard reaches the API: the real app, in process, with the session's bearer token. Every rule (scopes,
 * roles, 404 for non-members, URL rules, throttles, idempotency, quotas) is the API's; the dashboard only renders what
 * it answers. Each call carries the page's request id, so one id finds the page and every call it made in the logs.
 */
import type { Context } from 'hono';
import type { AppEnv } from '../env.ts';
import { foreignProblemBody, type ProblemBody } from '../lib/problem.ts';

/** The app's own `fetch` (src/app.ts passes it in; the dashboard never builds a second app). */
export type ApiFetch = (request: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response>;

/** An RFC 9457 problem as the API sends it (or as lib/problem.ts builds one for a page). */
export type Problem = ProblemBody;

export type ApiResult<T> =
  | { ok: true; status: number; data: T; headers: Headers }
  | { ok: false; status: number; problem: Problem; headers: Headers };

export interface ApiCallOptions {
  body?: unknown;
  headers?: Record<string, string>;
  query?: Record<string, string | number | undefined | null>;
}

/** A client bound to one dashboard request: its token, request id and execution context. */
export interface Api {
  /**
   * Calls the API. `T` is the type of its answer, from the schema the route answers with (see answers.ts); the
   * answer is not validated again here: the route built it to that schema.
   */
  call<T = unknown>(method: string, path: string, opts?: ApiCallOptions): Promise<ApiResult<T>>;
  /** Calls the API and hands back its answer untouched (a download passed through to the browser). */
  raw(method: string, path: string): Promise<Response>;
}

const FALLBACK_CTX: ExecutionContext = {
  waitUntil: () => {},
  passThroughOnException: () => {},
  props: {},
} as unknown as ExecutionContext;

function executionCtxOf(c: Context<AppEnv>): ExecutionContext {
  try {
    return c.executionCtx as ExecutionContext;
  } catch {
    return FALLBACK_CTX;
  }
}

/** Builds the client for this request; `token` null calls without credentials (only public routes answer). */
export function apiFor(c: Context<AppEnv>, fetchApp: ApiFetch, token: string | null): Api {
  const origin = new URL(c.req.url).origin;
  const send = (url: URL, init: RequestInit) => fetchApp(new Request(url, init), c.env, executionCtxOf(c));
  const auth = (headers: Headers) => {
    headers.set('x-request-id', c.get('requestId'));
    if (token) headers.set('authorization', `Bearer ${token}`);
    return headers;
  };
  return {
    raw(method: string, path: string): Promise<Response> {
      return Promise.resolve(send(new URL(path, origin), { method, headers: auth(new Headers()) }));
    },
    async call<T>(method: string, path: string, opts: ApiCallOptions = {}): Promise<ApiResult<T>> {
      const url = new URL(path, origin);
      for (const [k, v] of Object.entries(opts.query ?? {}))
        if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
      const headers = auth(new Headers(opts.headers));
      headers.set('accept', 'application/json');
      let body: string | undefined;
      if (opts.body !== undefined) {
        body = JSON.stringify(opts.body);
        headers.set('content-type', 'application/json');
      }
      const res = await send(url, { method, headers, ...(body === undefined ? {} : { body }) });
      const text = await res.text();
      let parsed: unknown = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = null;
      }
      if (res.ok) return { ok: true, status: res.status, data: parsed as T, headers: res.headers };
      const problem: Problem =
        parsed && typeof parsed === 'object' && 'status' in parsed
          ? (parsed as Problem)
          : foreignProblemBody(res.status, res.statusText, text);
      return { ok: false, status: res.status, problem, headers: res.headers };
    },
  };
}
