/**
 * Webhook receivers for the tests: one real HTTP server on 127.0.0.1 (house rule — receivers are real servers, never
 * mocks). Started once per run by `global-setup.ts`; workers under test reach it with plain `fetch`.
 *
 * Routes `/r/<scenario>/<key>[/...]`: the key isolates tests from each other (hits, modes and the per-`webhook-id`
 * memory of `flaky`/`ratelimit` are all per key). Every request under `/r/` is recorded, with what was answered.
 *
 *   ok                        200 {"ok":true}
 *   fail                      500 always
 *   flaky                     per distinct webhook-id: first request 500, later ones 200
 *   slow?ms=N                 waits N ms, then 200
 *   redirect                  302 Location: http://127.0.0.1:<port>/r/ok/<key>-redirected
 *   gone                      410
 *   ratelimit?after=N         per webhook-id: first request 429 with Retry-After: N, then 200
 *   huge                      200 with a 50 MB body, streamed; stops when the client goes away
 *   reject-type?type=T        422 {"error":"unsupported payload"} when the JSON body's `type` is T, else 200
 *   slow-large?bytes=N&ms=M   body larger than N bytes: waits M ms, then 200; else 200 at once
 *   mode                      answers per the key's mode (PUT /_mode/<key>); default 200
 *
 * Control API (JSON): GET /_hits/<key>, DELETE /_hits/<key>, PUT /_mode/<key>, DELETE /_mode/<key>, GET /_health.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Hit, HitResponse, ReceiverMode } from '../receivers.ts';
import { headerMap, readBody, serveOnLoopback } from './http.ts';

export type { Hit, HitResponse, ReceiverMode };

/** Size of the `huge` scenario's body. */
export const HUGE_BYTES = 50 * 1024 * 1024;
const HUGE_CHUNK = 64 * 1024;

export interface Receivers {
  port: number;
  /** Stops the server: pending timers cleared, open sockets destroyed. Idempotent. */
  close(): Promise<void>;
}

export async function startReceivers(): Promise<Receivers> {
  const hitsByKey = new Map<string, Hit[]>();
  const modes = new Map<string, ReceiverMode>();
  /** `${key}\n${scenario}\n${webhook-id}` seen by `flaky`/`ratelimit`. */
  const seenIds = new Set<string>();
  const timers = new Set<NodeJS.Timeout>();
  let seq = 0;
  let port = 0;
  let closed = false;

  /** setTimeout that is cleared on close and when the client goes away; resolves false when cancelled. */
  function sleep(ms: number, res: ServerResponse): Promise<boolean> {
    return new Promise((resolve) => {
      if (ms <= 0) return resolve(!res.destroyed);
      const onClose = () => {
        clearTimeout(t);
        timers.delete(t);
        resolve(false);
      };
      const t = setTimeout(() => {
        timers.delete(t);
        res.off('close', onClose);
        resolve(!res.destroyed);
      }, ms);
      timers.add(t);
      res.once('close', onClose);
    });
  }

  function answer(
    res: ServerResponse,
    hit: Hit | null,
    status: number,
    body: string,
    headers: Record<string, string> = {},
  ) {
    const all: Record<string, string> = { 'content-type': 'application/json', ...headers };
    if (hit)
      hit.response = {
        status,
        headers: all,
        body,
        bytesSent: Buffer.byteLength(body),
        answeredAt: Date.now(),
        aborted: false,
      };
    if (res.destroyed) {
      if (hit?.response) hit.response.aborted = true;
      return;
    }
    if (status === 204 || status === 304) {
      // No body may follow these statuses.
      delete all['content-type'];
      if (hit?.response) {
        hit.response.body = '';
        hit.response.bytesSent = 0;
      }
      res.writeHead(status, all);
      res.end();
      return;
    }
    res.writeHead(status, { ...all, 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  }

  const json = (res: ServerResponse, status: number, value: unknown) =>
    answer(res, null, status, JSON.stringify(value));

  async function streamHuge(res: ServerResponse, hit: Hit) {
    const headers = { 'content-type': 'application/octet-stream' };
    const response: HitResponse = {
      status: 200,
      headers,
      body: null,
      bytesSent: 0,
      answeredAt: Date.now(),
      aborted: false,
    };
    hit.response = response;
    res.writeHead(200, { ...headers, 'content-length': String(HUGE_BYTES) });
    const chunk = Buffer.alloc(HUGE_CHUNK, 0x61); // 'a'
    let gone = false;
    res.once('close', () => {
      gone = true;
    });
    while (response.bytesSent < HUGE_BYTES) {
      if (gone || res.destroyed || closed) {
        response.aborted = true;
        return;
      }
      const n = Math.min(HUGE_CHUNK, HUGE_BYTES - response.bytesSent);
      const ok = res.write(n === HUGE_CHUNK ? chunk : chunk.subarray(0, n));
      response.bytesSent += n;
      if (!ok) {
        // Back-pressure: wait until the client drains, or until it goes away.
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.once('drain', done);
          res.once('close', done);
        });
      }
    }
    res.end();
  }

  async function handleScenario(res: ServerResponse, url: URL, scenario: string, key: string, hit: Hit) {
    const q = url.searchParams;
    const webhookId = hit.headers['webhook-id'] ?? '';
    const firstForId = () => {
      const k = `${key}\n${scenario}\n${webhookId}`;
      if (seenIds.has(k)) return false;
      seenIds.add(k);
      return true;
    };
    const ok = () => answer(res, hit, 200, '{"ok":true}');
    switch (scenario) {
      case 'ok':
        return ok();
      case 'fail':
        return answer(res, hit, 500, '{"ok":false,"error":"always fails"}');
      case 'flaky':
        return firstForId() ? answer(res, hit, 500, '{"ok":false,"error":"flaky: first attempt"}') : ok();
      case 'slow': {
        if (!(await sleep(intParam(q, 'ms', 1000), res))) return abandoned(hit, 200);
        return ok();
      }
      case 'redirect':
        return answer(res, hit, 302, '{"redirect":true}', {
          location: `http://127.0.0.1:${port}/r/ok/${encodeURIComponent(key)}-redirected`,
        });
      case 'gone':
        return answer(res, hit, 410, '{"error":"gone"}');
      case 'ratelimit': {
        if (!firstForId()) return ok();
        return answer(res, hit, 429, '{"error":"rate limited"}', { 'retry-after': String(intParam(q, 'after', 60)) });
      }
      case 'huge':
        return streamHuge(res, hit);
      case 'reject-type': {
        let type: unknown;
        try {
          type = (JSON.parse(hit.body) as { type?: unknown } | null)?.type;
        } catch {
          type = undefined;
        }
        if (q.has('type') && type === q.get('type')) return answer(res, hit, 422, '{"error":"unsupported payload"}');
        return ok();
      }
      case 'slow-large': {
        if (hit.bytes > intParam(q, 'bytes', 0)) {
          if (!(await sleep(intParam(q, 'ms', 1000), res))) return abandoned(hit, 200);
        }
        return ok();
      }
      case 'mode': {
        const mode = modes.get(key) ?? { status: 200 };
        if (mode.delayMs && !(await sleep(mode.delayMs, res))) return abandoned(hit, mode.status);
        const headers: Record<string, string> = {};
        if (mode.retryAfter !== undefined) headers['retry-after'] = String(mode.retryAfter);
        return answer(
          res,
          hit,
          mode.status,
          mode.body ?? JSON.stringify({ ok: mode.status < 400, status: mode.status }),
          headers,
        );
      }
      default:
        return answer(res, hit, 404, JSON.stringify({ error: `unknown scenario ${scenario}` }));
    }
  }

  function abandoned(hit: Hit, status: number) {
    hit.response = { status, headers: {}, body: null, bytesSent: 0, answeredAt: Date.now(), aborted: true };
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const receivedAt = Date.now();
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    const body = await readBody(req);
    const segments = url.pathname.split('/').slice(1).map(safeDecode);

    if (segments[0] === '_health' && req.method === 'GET') return json(res, 200, { ok: true });
    if (segments[0] === '_hits' && segments[1]) {
      const key = segments[1];
      if (req.method === 'GET') return json(res, 200, hitsByKey.get(key) ?? []);
      if (req.method === 'DELETE') {
        hitsByKey.delete(key);
        return json(res, 200, { ok: true });
      }
    }
    if (segments[0] === '_mode' && segments[1]) {
      const key = segments[1];
      if (req.method === 'PUT') {
        const mode = parseMode(body.toString('utf8'));
        if (typeof mode === 'string') return json(res, 400, { error: mode });
        modes.set(key, mode);
        return json(res, 200, mode);
      }
      if (req.method === 'GET') return json(res, 200, modes.get(key) ?? { status: 200 });
      if (req.method === 'DELETE') {
        modes.delete(key);
        return json(res, 200, { ok: true });
      }
    }
    if (segments[0] === 'r' && segments[1] && segments[2]) {
      const scenario = segments[1];
      const key = segments[2];
      const hit: Hit = {
        seq: ++seq,
        method: req.method ?? 'GET',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: headerMap(req.rawHeaders),
        body: body.toString('utf8'),
        bytes: body.length,
        receivedAt,
        response: null,
      };
      let list = hitsByKey.get(key);
      if (!list) {
        list = [];
        hitsByKey.set(key, list);
      }
      list.push(hit);
      return handleScenario(res, url, scenario, key, hit);
    }
    return json(res, 404, { error: `no route for ${req.method} ${url.pathname}` });
  }

  const served = await serveOnLoopback(
    'receivers',
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        if (!res.headersSent && !res.destroyed) json(res, 500, { error: `receiver crashed: ${String(err)}` });
        else res.destroy();
      });
    },
    {
      beforeClose: () => {
        closed = true;
        for (const t of timers) clearTimeout(t);
        timers.clear();
      },
    },
  );
  port = served.port;
  return { port, close: served.close };
}

function intParam(q: URLSearchParams, name: string, fallback: number): number {
  const raw = q.get(name);
  if (raw === null || raw.trim() === '') return fallback;
  const n = Number(raw);
  return Number.isFinite(n) ? Math.max(0, Math.trunc(n)) : fallback;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** A valid mode, or an error message. */
function parseMode(text: string): ReceiverMode | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'mode must be JSON';
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'mode must be an object';
  const m = v as Record<string, unknown>;
  const isInt = (x: unknown, lo: number, hi: number) =>
    Number.isInteger(x) && (x as number) >= lo && (x as number) <= hi;
  if (!isInt(m.status, 200, 599)) return 'status must be an integer in 200..599';
  if (m.delayMs !== undefined && !isInt(m.delayMs, 0, 600_000)) return 'delayMs must be an integer in 0..600000';
  if (m.retryAfter !== undefined && !isInt(m.retryAfter, 0, 10_000_000))
    return 'retryAfter must be a non-negative integer';
  if (m.body !== undefined && typeof m.body !== 'string') return 'body must be a string';
  const mode: ReceiverMode = { status: m.status as number };
  if (m.delayMs !== undefined) mode.delayMs = m.delayMs as number;
  if (m.retryAfter !== undefined) mode.retryAfter = m.retryAfter as number;
  if (m.body !== undefined) mode.body = m.body as string;
  return mode;
}
