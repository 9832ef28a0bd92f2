/**
 * A fake of Resend's send API for the tests: a real HTTP server on 127.0.0.1 (house rule — no mocks), started once per
 * run by `global-setup.ts`, whose port reaches worker tests as `inject('resendFakePort')`. It speaks Resend's wire
 * format (https://resend.com/docs/api-reference/emails/send-email, …/errors):
 *
 *   POST /emails   Authorization: Bearer re_test_…     → 200 {"id":"<uuid>"}
 *     no / non-Bearer Authorization                     → 401 missing_api_key
 *     a key that does not start with `re_test_`         → 403 invalid_api_key
 *     body not JSON / not an object                     → 422 validation_error
 *     from, to, subject, or html|text missing           → 422 missing_required_field
 *     from not `email` or `Name <email>`                → 422 invalid_from_address
 *     a `to` address that is malformed or contains `invalid` → 422 validation_error "Invalid `to` field…"
 *     a tag name/value with other than [A-Za-z0-9_-]    → 422 validation_error
 *     Idempotency-Key over 256 characters               → 400 invalid_idempotency_key
 *     Idempotency-Key seen with a different body        → 409 invalid_idempotent_request
 *     Idempotency-Key seen with the same body           → 200 with the first id (nothing sent again; `replayed`)
 *   Recipient scenarios (by substring of a `to` address):
 *     `throttle-once` → 429 rate_limit_exceeded on the first request per idempotency key, then as usual
 *     `throttle`      → 429 rate_limit_exceeded (with retry-after and ratelimit-* headers)
 *     `boom`          → 500 application_error
 *     `slow`          → answers after 3 s
 *     `hangup`        → closes the connection without answering (a network error for the client)
 *
 * Every request is recorded with what was answered. Control: `GET /_sent` (all records; `?to=<address>` keeps the
 * requests to that address), `DELETE /_sent` (forget all), `GET /_health`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { headerMap, readBody, serveOnLoopback } from './http.ts';

/** Keys the fake accepts start with this. */
export const RESEND_FAKE_KEY_PREFIX = 're_test_';
export const RESEND_FAKE_SLOW_MS = 3_000;

/** One request to `POST /emails`, as the fake saw it and answered it. */
export interface ResendSent {
  seq: number;
  method: string;
  path: string;
  /** Lower-cased names. */
  headers: Record<string, string>;
  /** The raw body. */
  body: string;
  /** The parsed body (null when it was not JSON). */
  json: unknown;
  /** The `to` addresses of the body (empty when absent). */
  to: string[];
  receivedAt: number;
  /** Whether Resend would have sent a mail (2xx, not an idempotent replay). */
  sent: boolean;
  replayed: boolean;
  response: { status: number; body: unknown; headers: Record<string, string> };
}

export interface ResendFake {
  port: number;
  close(): Promise<void>;
}

type Answer = { status: number; body: unknown; headers?: Record<string, string> };

const error = (statusCode: number, name: string, message: string, headers?: Record<string, string>): Answer => ({
  status: statusCode,
  body: { statusCode, name, message },
  ...(headers ? { headers } : {}),
});

const ADDRESS = /^[^\s@<>",]+@[^\s@<>",]+\.[^\s@<>",]+$/;
const FROM = /^(?:[^<>]*<([^<>]+)>|([^<>\s]+))$/;
const TAG = /^[A-Za-z0-9_-]{1,256}$/;

export async function startResendFake(): Promise<ResendFake> {
  const records: ResendSent[] = [];
  /** Idempotency-Key → the body it came with and the id answered. */
  const idempotent = new Map<string, { body: string; id: string }>();
  /** Idempotency keys (or addresses, without a key) already throttled once by `throttle-once`. */
  const throttledOnce = new Set<string>();
  const timers = new Set<NodeJS.Timeout>();
  let seq = 0;

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });
  }

  function validate(json: unknown, to: string[]): Answer | null {
    if (!json || typeof json !== 'object' || Array.isArray(json))
      return error(422, 'validation_error', 'The request body must be a JSON object.');
    const b = json as Record<string, unknown>;
    const missing = ['from', 'to', 'subject'].filter((k) => b[k] === undefined || b[k] === null || b[k] === '');
    if (missing.length || (b.html === undefined && b.text === undefined)) {
      return error(
        422,
        'missing_required_field',
        `The request body is missing one or more required fields: ${[...missing, ...(b.html === undefined && b.text === undefined ? ['html or text'] : [])].join(', ')}.`,
      );
    }
    const fromMatch = typeof b.from === 'string' ? FROM.exec(b.from.trim()) : null;
    const fromAddress = fromMatch ? (fromMatch[1] ?? fromMatch[2] ?? '').trim() : '';
    if (!ADDRESS.test(fromAddress)) {
      return error(
        422,
        'invalid_from_address',
        'Invalid `from` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.',
      );
    }
    if (
      !(typeof b.to === 'string' || (Array.isArray(b.to) && b.to.every((t) => typeof t === 'string'))) ||
      to.length === 0 ||
      to.length > 50
    ) {
      return error(
        422,
        'validation_error',
        'Invalid `to` field. It must be an address or a list of 1 to 50 addresses.',
      );
    }
    if (to.some((t) => !ADDRESS.test(t) || t.toLowerCase().includes('invalid'))) {
      return error(
        422,
        'validation_error',
        'Invalid `to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.',
      );
    }
    if (typeof b.subject !== 'string') return error(422, 'validation_error', 'The `subject` field must be a string.');
    for (const k of ['html', 'text'] as const) {
      if (b[k] !== undefined && typeof b[k] !== 'string')
        return error(422, 'validation_error', `The \`${k}\` field must be a string.`);
    }
    if (b.headers !== undefined) {
      if (!b.headers || typeof b.headers !== 'object' || Array.isArray(b.headers))
        return error(422, 'validation_error', 'The `headers` field must be an object.');
      for (const [name, value] of Object.entries(b.headers as Record<string, unknown>)) {
        if (typeof value !== 'string' || /[\r\n]/.test(value) || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
          return error(422, 'validation_error', `Invalid header ${JSON.stringify(name)}.`);
        }
      }
    }
    if (b.tags !== undefined) {
      if (!Array.isArray(b.tags)) return error(422, 'validation_error', 'The `tags` field must be an array.');
      for (const tag of b.tags as unknown[]) {
        const t = tag as { name?: unknown; value?: unknown } | null;
        if (
          !t ||
          typeof t.name !== 'string' ||
          typeof t.value !== 'string' ||
          !TAG.test(t.name) ||
          !TAG.test(t.value)
        ) {
          return error(
            422,
            'validation_error',
            'Tags should only contain ASCII letters, numbers, underscores, or dashes.',
          );
        }
      }
    }
    return null;
  }

  async function sendEmail(
    req: IncomingMessage,
    body: string,
    json: unknown,
    to: string[],
  ): Promise<Answer & { sent?: boolean; replayed?: boolean }> {
    const auth = req.headers.authorization ?? '';
    const bearer = /^Bearer\s+(\S+)$/i.exec(auth)?.[1];
    if (!bearer) {
      return error(
        401,
        'missing_api_key',
        'Missing API key in the authorization header. Include the following header in the request: Authorization: Bearer YOUR_API_KEY',
      );
    }
    if (!bearer.startsWith(RESEND_FAKE_KEY_PREFIX)) return error(403, 'invalid_api_key', 'API key is invalid');
    const idemKey = typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'] : undefined;
    if (idemKey !== undefined && (idemKey.length === 0 || idemKey.length > 256)) {
      return error(400, 'invalid_idempotency_key', 'The key must be between 1-256 chars.');
    }
    const invalid = validate(json, to);
    if (invalid) return invalid;

    if (idemKey !== undefined) {
      const seen = idempotent.get(idemKey);
      if (seen && seen.body !== body) {
        return error(
          409,
          'invalid_idempotent_request',
          'Same idempotency key used with a different request payload. Change your idempotency key or payload.',
        );
      }
      if (seen) return { status: 200, body: { id: seen.id }, replayed: true };
    }

    const lower = to.map((t) => t.toLowerCase());
    if (lower.some((t) => t.includes('throttle-once'))) {
      const k = idemKey ?? lower.join(',');
      if (!throttledOnce.has(k)) {
        throttledOnce.add(k);
        return rateLimited();
      }
    } else if (lower.some((t) => t.includes('throttle'))) {
      return rateLimited();
    }
    if (lower.some((t) => t.includes('boom'))) return error(500, 'application_error', 'An unexpected error occurred.');
    if (lower.some((t) => t.includes('slow'))) await sleep(RESEND_FAKE_SLOW_MS);

    const id = randomUUID();
    if (idemKey !== undefined) idempotent.set(idemKey, { body, id });
    return { status: 200, body: { id }, sent: true };
  }

  function rateLimited(): Answer {
    return error(
      429,
      'rate_limit_exceeded',
      'Too many requests. You can only make 2 requests per second. See rate limit response headers for more information. Or contact support to increase rate limit.',
      { 'retry-after': '1', 'ratelimit-limit': '2', 'ratelimit-remaining': '0', 'ratelimit-reset': '1' },
    );
  }

  function reply(res: ServerResponse, answer: Answer) {
    if (res.destroyed) return;
    const text = JSON.stringify(answer.body);
    res.writeHead(answer.status, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(text)),
      ...answer.headers,
    });
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const receivedAt = Date.now();
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const body = (await readBody(req)).toString('utf8');

    if (url.pathname === '/_health' && req.method === 'GET') return reply(res, { status: 200, body: { ok: true } });
    if (url.pathname === '/_sent') {
      if (req.method === 'GET') {
        const to = url.searchParams.get('to')?.toLowerCase();
        return reply(res, {
          status: 200,
          body: to ? records.filter((r) => r.to.some((t) => t.toLowerCase() === to)) : records,
        });
      }
      if (req.method === 'DELETE') {
        records.length = 0;
        idempotent.clear();
        throttledOnce.clear();
        return reply(res, { status: 200, body: { ok: true } });
      }
    }
    if (url.pathname === '/emails' && req.method === 'POST') {
      let json: unknown = null;
      try {
        json = JSON.parse(body);
      } catch {
        json = null;
      }
      const rawTo = json && typeof json === 'object' ? (json as { to?: unknown }).to : undefined;
      const to =
        typeof rawTo === 'string'
          ? [rawTo]
          : Array.isArray(rawTo)
            ? rawTo.filter((t): t is string => typeof t === 'string')
            : [];
      const record: ResendSent = {
        seq: ++seq,
        method: req.method,
        path: url.pathname,
        headers: headerMap(req.rawHeaders),
        body,
        json,
        to,
        receivedAt,
        sent: false,
        replayed: false,
        response: { status: 0, body: null, headers: {} },
      };
      records.push(record);
      if (to.some((t) => t.toLowerCase().includes('hangup'))) {
        record.response = { status: 0, body: null, headers: {} };
        res.socket?.destroy();
        return;
      }
      const answer = await sendEmail(req, body, json, to);
      record.sent = answer.sent === true;
      record.replayed = answer.replayed === true;
      record.response = { status: answer.status, body: answer.body, headers: answer.headers ?? {} };
      return reply(res, answer);
    }
    if (url.pathname === '/emails')
      return reply(res, error(405, 'method_not_allowed', 'Method is not allowed for the requested path.'));
    return reply(res, error(404, 'not_found', 'The requested endpoint does not exist.'));
  }

  const served = await serveOnLoopback(
    'resend fake',
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        if (!res.headersSent && !res.destroyed)
          reply(res, error(500, 'internal_server_error', `fake crashed: ${String(err)}`));
        else res.destroy();
      });
    },
    {
      beforeClose: () => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
      },
    },
  );
  return { port: served.port, close: served.close };
}
