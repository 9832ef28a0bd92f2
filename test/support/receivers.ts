/**
 * Worker-side access to the test webhook receivers (test/support/node/receivers.ts): real HTTP servers on 127.0.0.1,
 * started once per run by the globalSetup, whose port reaches tests through Vitest's `inject('receiverPort')`.
 *
 *   const url = receiverUrl('flaky', key);           // register a webhook with it, deliver, then:
 *   const [first, second] = await waitForHits(key, 2);
 *
 * Use a fresh key per test (e.g. `unique('k')` from helpers.ts): hits, modes and the per-webhook-id memory of the
 * `flaky` and `ratelimit` scenarios are all per key.
 */
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Port of the webhook receivers on 127.0.0.1 (test/support/node/global-setup.ts). */
    receiverPort: number;
  }
}

export type Scenario =
  | 'ok'
  | 'fail'
  | 'flaky'
  | 'slow'
  | 'redirect'
  | 'gone'
  | 'ratelimit'
  | 'huge'
  | 'reject-type'
  | 'slow-large'
  | 'mode';

/** What the `mode` scenario answers for a key (default `{ status: 200 }`). */
export interface ReceiverMode {
  status: number;
  delayMs?: number;
  /** Sent as `Retry-After: <n>`. */
  retryAfter?: number;
  /** Response body (default `{"ok":<status<400>,"status":<status>}`). */
  body?: string;
}

/** What the receiver answered; `aborted` when the client went away first. */
export interface HitResponse {
  status: number;
  headers: Record<string, string>;
  /** null for streamed (`huge`) or abandoned answers. */
  body: string | null;
  bytesSent: number;
  answeredAt: number;
  aborted: boolean;
}

/** One request as the receiver saw it. */
export interface Hit {
  /** Order of arrival across the whole server. */
  seq: number;
  method: string;
  path: string;
  query: Record<string, string>;
  /** Every request header, lower-cased names. */
  headers: Record<string, string>;
  /** The body as UTF-8 text. */
  body: string;
  /** The body's length in bytes. */
  bytes: number;
  /** ms since epoch. */
  receivedAt: number;
  /** null while the receiver is still answering (e.g. `slow`). */
  response: HitResponse | null;
}

export function receiverPort(): number {
  const port = inject('receiverPort');
  if (!Number.isInteger(port) || port <= 0) {
    throw new Error(
      'receiverPort was not provided: is test/support/node/global-setup.ts registered in vitest.config.ts?',
    );
  }
  return port;
}

export function receiverBase(): string {
  return `http://127.0.0.1:${receiverPort()}`;
}

/** `http://127.0.0.1:<port>/r/<scenario>/<key>[?query]`. */
export function receiverUrl(
  scenario: Scenario | (string & {}),
  key: string,
  query?: Record<string, string | number>,
): string {
  const url = new URL(`/r/${encodeURIComponent(scenario)}/${encodeURIComponent(key)}`, receiverBase());
  for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, String(v));
  return url.href;
}

async function control(method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${receiverBase()}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`receivers: ${method} ${path} → ${res.status} ${text}`);
  return JSON.parse(text);
}

/** The requests recorded for `key`, in order of arrival. */
export async function hits(key: string): Promise<Hit[]> {
  return (await control('GET', `/_hits/${encodeURIComponent(key)}`)) as Hit[];
}

export async function clearHits(key: string): Promise<void> {
  await control('DELETE', `/_hits/${encodeURIComponent(key)}`);
}

/** Sets what the `mode` scenario answers for `key`. */
export async function setMode(key: string, mode: ReceiverMode): Promise<void> {
  await control('PUT', `/_mode/${encodeURIComponent(key)}`, mode);
}

/**
 * Polls until at least `n` requests for `key` were recorded AND answered (response set), then returns them all.
 * Throws with what did arrive when `timeoutMs` passes.
 */
export async function waitForHits(key: string, n: number, timeoutMs = 10_000): Promise<Hit[]> {
  const deadline = Date.now() + timeoutMs;
  let last: Hit[] = [];
  for (;;) {
    last = await hits(key);
    if (last.length >= n && last.slice(0, n).every((h) => h.response !== null)) return last;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  const summary = last.map((h) => `${h.method} ${h.path} → ${h.response?.status ?? 'pending'}`).join('; ');
  throw new Error(`waitForHits(${key}, ${n}): ${last.length} after ${timeoutMs} ms [${summary}]`);
}
