/**
 * Helpers for the delivery-pipeline tests (delivery*.test.ts, ingest.test.ts).
 *
 * The background consumer: inside the worker test project the REAL local queues deliver every message sent to a
 * delivery queue (`DELIVERIES_QUEUE_<n>`) to the worker's own `queue` handler. A test that drives `consumeDeliveries`
 * by hand must keep its deliveries away from that consumer, or the two race (double attempts, a status the hand-run
 * batch did not write).
 * The rule used here: deliveries meant for a hand-driven consumer are created by the REAL ingest code
 * (`ingestEvent`) with an env whose delivery queues only record what it is given (`captureQueue()`), so the rows
 * are exactly what production writes (`queued`, summaries on the notification) but no message ever reaches the real
 * queue. Tests that want the real queue (end-to-end) publish through the API and only assert end states.
 *
 * `fakeBatch` builds a MessageBatch whose ack/retry calls are recorded WITH their `delaySeconds` (the
 * `cloudflare:test` createMessageBatch/getQueueResult pair does not report delays).
 */
import { env } from 'cloudflare:workers';
import { expect } from 'vitest';
import { type ConsumerReport, consumeDeliveries } from '../../src/delivery/consumer.ts';
import { deliveryQueues } from '../../src/delivery/enqueue.ts';
import { type IngestRequest, type IngestResult, ingestEvent } from '../../src/delivery/ingest.ts';
import { runContext } from '../../src/env.ts';
import { newId } from '../../src/lib/ids.ts';
import { wrapD1 } from './d1-wrap.ts';
import {
  ALL_USER_SCOPES,
  allShards,
  anyShard,
  callJson,
  provisionHandle,
  provisionHandleOn,
  shardOf,
  signJwt,
  unique,
} from './helpers.ts';
import type { Hit } from './receivers.ts';

// ---------------------------------------------------------------------------------------------------------------
// Message batches with recorded outcomes

export interface MessageOutcome {
  id: string;
  acked: boolean;
  retried: boolean;
  /** The delaySeconds of the (last) retry call; undefined when retried without options or not retried. */
  delaySeconds: number | undefined;
  /** Every ack/retry call, in order: a message must be settled exactly once. */
  calls: string[];
}

export interface FakeBatch {
  batch: MessageBatch<unknown>;
  outcomes: MessageOutcome[];
  /** Outcome of the message with this id. */
  outcome(id: string): MessageOutcome;
  ackAll: boolean;
  retryAll: { delaySeconds: number | undefined } | null;
}

export interface FakeMessage {
  body: unknown;
  id?: string;
  attempts?: number;
}

/** A MessageBatch for `queue` whose ack()/retry() are recorded per message. */
export function fakeBatch(queue: string, messages: FakeMessage[]): FakeBatch {
  const outcomes: MessageOutcome[] = [];
  const result: FakeBatch = {
    batch: undefined as unknown as MessageBatch<unknown>,
    outcomes,
    outcome(id) {
      const o = outcomes.find((x) => x.id === id);
      if (!o) throw new Error(`no message ${id}`);
      return o;
    },
    ackAll: false,
    retryAll: null,
  };
  const msgs: Message<unknown>[] = messages.map((m, i) => {
    const o: MessageOutcome = {
      id: m.id ?? `msg-${i}-${unique('m')}`,
      acked: false,
      retried: false,
      delaySeconds: undefined,
      calls: [],
    };
    outcomes.push(o);
    return {
      id: o.id,
      timestamp: new Date(),
      body: m.body,
      attempts: m.attempts ?? 1,
      ack() {
        o.acked = true;
        o.calls.push('ack');
      },
      retry(options?: QueueRetryOptions) {
        o.retried = true;
        o.delaySeconds = options?.delaySeconds;
        o.calls.push(`retry(${options?.delaySeconds ?? ''})`);
      },
    };
  });
  result.batch = {
    queue,
    messages: msgs,
    metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } },
    ackAll() {
      result.ackAll = true;
    },
    retryAll(options?: QueueRetryOptions) {
      result.retryAll = { delaySeconds: options?.delaySeconds };
    },
  };
  return result;
}

/** A `notify-deliveries-0` batch: one message per delivery id (repeat an id to send it twice). */
export function deliveryBatch(
  ids: string[],
  attempts = 1,
  handles: ReadonlyMap<string, string> = new Map(),
): FakeBatch {
  return fakeBatch(
    'notify-deliveries-0',
    ids.map((deliveryId) => ({ body: { deliveryId, handle: handles.get(deliveryId) }, attempts })),
  );
}

/**
 * A delivery message as the enqueue path sends it: the id and the handle that names its shard (docs/design.md#shards).
 * A delivery no shard holds (a test's own database) gets a message without a handle.
 */
export async function deliveryMessage(deliveryId: string): Promise<{ deliveryId: string; handle?: string }> {
  const row = await anyShard.prepare('SELECT handle FROM deliveries WHERE id = ?').bind(deliveryId).first();
  return row ? { deliveryId, handle: row.handle as string } : { deliveryId };
}

/** Runs the deliveries consumer by hand on `ids` and returns its report and the recorded message outcomes. */
export async function runDeliveries(
  ids: string[],
  opts: { attempts?: number; env?: Env } = {},
): Promise<{ report: ConsumerReport; fb: FakeBatch }> {
  const handles = new Map<string, string>();
  for (const id of ids) {
    const m = await deliveryMessage(id);
    if (m.handle) handles.set(id, m.handle);
  }
  const fb = deliveryBatch(ids, opts.attempts ?? 1, handles);
  const report = await consumeDeliveries(fb.batch, opts.env ?? env);
  return { report, fb };
}

// ---------------------------------------------------------------------------------------------------------------
// Queue producers that record instead of (or as well as) sending

export interface CaptureQueue {
  queue: Queue<unknown>;
  /** Every sendBatch call, with its messages. */
  batches: MessageSendRequest<unknown>[][];
  /** Every send() call. */
  sends: unknown[];
}

/**
 * A queue producer that records. `forward` also sends to the real queue (the background consumer then delivers);
 * `fail` makes sendBatch throw (an outage of the Queues service).
 */
export function captureQueue(opts: { forward?: Queue<unknown>; fail?: boolean } = {}): CaptureQueue {
  const batches: MessageSendRequest<unknown>[][] = [];
  const sends: unknown[] = [];
  const queue = {
    async send(message: unknown, options?: QueueSendOptions) {
      sends.push(message);
      if (opts.fail) throw new Error('queue unavailable (test)');
      if (opts.forward) return opts.forward.send(message, options);
      return { metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } } as unknown as QueueSendResponse;
    },
    async sendBatch(messages: Iterable<MessageSendRequest<unknown>>, options?: QueueSendBatchOptions) {
      const list = [...messages];
      batches.push(list);
      if (opts.fail) throw new Error('queue unavailable (test)');
      if (opts.forward) return opts.forward.sendBatch(list, options);
      return { metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } } as unknown as QueueSendBatchResponse;
    },
    async metrics() {
      return { backlogCount: 0, backlogBytes: 0 };
    },
  } as unknown as Queue<unknown>;
  return { queue, batches, sends };
}

/** The delivery queue bindings `DELIVERIES_QUEUE_<n>`, as a partial env. */
export type DeliveryQueueBindings = Pick<Env, 'DELIVERIES_QUEUE_0'> & Partial<Env>;

/**
 * Every delivery queue binding of the test env (`DELIVERIES_QUEUE_<n>`, docs/design.md#several-delivery-queues)
 * replaced by what `make` returns for it: spread it into an env. Replacing only some would let messages reach the
 * real queues (and the background consumer) through the others.
 */
export function replaceDeliveryQueues(make: (n: number, real: Queue) => Queue<unknown>): DeliveryQueueBindings {
  return Object.fromEntries(
    deliveryQueues(env).map((real, n) => [`DELIVERIES_QUEUE_${n}`, make(n, real)]),
  ) as unknown as DeliveryQueueBindings;
}

/** Every delivery queue replaced by one producer (e.g. a `captureQueue()`): nothing reaches a real queue. */
export const allDeliveryQueues = (queue: Queue<unknown>) => replaceDeliveryQueues(() => queue);

/**
 * One recording producer per delivery queue (with `forward`, each also sends to its real queue, and the background
 * consumer delivers): `batches` are all of them, `perQueue[n]` those of queue n.
 */
export function recordingDeliveryQueues(
  opts: { forward?: boolean } = {},
): { bindings: DeliveryQueueBindings; perQueue: CaptureQueue[] } & Pick<CaptureQueue, 'batches'> {
  const perQueue: CaptureQueue[] = [];
  const bindings = replaceDeliveryQueues((n, real) => {
    perQueue[n] = captureQueue(opts.forward ? { forward: real } : {});
    return perQueue[n].queue;
  });
  return {
    bindings,
    perQueue,
    get batches() {
      return perQueue.flatMap((c) => c.batches);
    },
  };
}

/** The delivery ids a recording producer was given, in order. */
export const sentDeliveryIds = (capture: Pick<CaptureQueue, 'batches'>) =>
  capture.batches.flat().map((m) => (m.body as { deliveryId: string }).deliveryId);

/** The test env with its delivery producers replaced by one recording producer (nothing reaches a real queue). */
export function quietEnv(extra: Partial<Env> = {}): { env: Env; capture: CaptureQueue } {
  const capture = captureQueue();
  return { env: { ...env, ...allDeliveryQueues(capture.queue), ...extra } as Env, capture };
}

/** Ingests an event through the real ingest code, keeping its deliveries away from the background consumer. */
export async function ingestQuiet(
  handle: string,
  event: Partial<Omit<IngestRequest, 'handle'>> & { type?: string },
  extra: Partial<Env> = {},
): Promise<IngestResult & { deliveryIds: string[]; capture: CaptureQueue }> {
  const { env: quiet, capture } = quietEnv(extra);
  const result = await ingestEvent(runContext(quiet), {
    handle,
    type: event.type ?? 'order.paid',
    data: event.data ?? { orderId: unique('ord') },
    source: event.source ?? 'test',
    ...(event.severity ? { severity: event.severity } : {}),
    ...(event.sourceEventId ? { sourceEventId: event.sourceEventId } : {}),
    ...(event.occurredAt ? { occurredAt: event.occurredAt } : {}),
  });
  return { ...result, deliveryIds: result.recipients.map((r) => r.deliveryId), capture };
}

// ---------------------------------------------------------------------------------------------------------------
// Handles, webhooks, rows

export interface TestHandle {
  owner: string;
  handle: string;
  token: string;
}

export async function setupHandle(shard?: 'SHARD_0' | 'SHARD_1'): Promise<TestHandle> {
  const owner = unique('owner');
  // On a chosen shard when asked (helpers.ts `provisionHandleOn`), else where the service places it.
  const handle = shard ? await provisionHandleOn(shard, owner) : await provisionHandle(owner);
  const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
  return { owner, handle, token };
}

export interface CreatedWebhook {
  id: string;
  secret: string;
  url: string;
}

/** Creates a webhook subscription through the API (201 expected) and returns its id and one-time secret. */
export async function createWebhook(
  h: TestHandle,
  body: {
    url: string;
    eventTypes?: string[];
    filterPolicy?: unknown;
    headers?: Record<string, string>;
    enabled?: boolean;
    description?: string;
  },
): Promise<CreatedWebhook> {
  const res = await callJson('POST', `/v2/handles/${h.handle}/webhooks`, { token: h.token, body });
  if (res.status !== 201) throw new Error(`create webhook: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.id, secret: res.body.secret, url: res.body.url };
}

/**
 * Inserts webhook subscriptions directly (fast for hundreds), each a copy of `template`'s row (so the encrypted
 * secret decrypts) with its own id and URL.
 */
export async function insertWebhookCopies(templateId: string, urls: string[]): Promise<string[]> {
  const t = await allShards.first<Record<string, unknown>>(
    'SELECT * FROM webhook_subscriptions WHERE id = ?',
    templateId,
  );
  if (!t) throw new Error(`no webhook ${templateId}`);
  const d1 = await shardOf(t.handle as string);
  const now = new Date().toISOString();
  const ids: string[] = [];
  const statements = urls.map((url) => {
    const id = newId('whk');
    ids.push(id);
    return d1
      .prepare(
        `INSERT INTO webhook_subscriptions (id, handle, url, description, event_types, filter_policy, headers, enabled,
         secret_encrypted, consecutive_failures, created_at, updated_at)
       VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, 1, ?7, 0, ?8, ?8)`,
      )
      .bind(id, t.handle, url, t.event_types, t.filter_policy, t.headers, t.secret_encrypted, now);
  });
  for (let i = 0; i < statements.length; i += 100) await d1.batch(statements.slice(i, i + 100));
  return ids;
}

export interface DeliveryDbRow {
  id: string;
  handle: string;
  notification_id: string | null;
  kind: string;
  channel: string;
  recipient_type: string;
  subscription_id: string | null;
  target: string;
  status: string;
  status_reason: string | null;
  attempt_count: number;
  last_error_class: string | null;
  last_http_status: number | null;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  retry_base: number;
  /** 1 when the id was made from the notification's (ingest's deliveries). */
  id_from_notification: number;
  created_at: string;
  updated_at: string;
}

export interface AttemptDbRow {
  id: string;
  delivery_id: string;
  attempt_number: number;
  outcome: 'succeeded' | 'failed';
  error_class: string | null;
  http_status: number | null;
  duration_ms: number;
  request_bytes: number | null;
  response_snippet: string | null;
  error_message: string | null;
  created_at: string;
}

export async function deliveryRow(id: string): Promise<DeliveryDbRow> {
  const row = await allShards.first<DeliveryDbRow>('SELECT * FROM deliveries WHERE id = ?', id);
  if (!row) throw new Error(`no delivery ${id}`);
  return row;
}

export async function deliveriesOf(notificationId: string): Promise<DeliveryDbRow[]> {
  return allShards.all<DeliveryDbRow>('SELECT * FROM deliveries WHERE notification_id = ? ORDER BY id', notificationId);
}

export async function attemptsOf(deliveryId: string): Promise<AttemptDbRow[]> {
  return allShards.all<AttemptDbRow>(
    'SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt_number, created_at',
    deliveryId,
  );
}

export async function notificationRow(id: string): Promise<Record<string, any>> {
  const row = await allShards.first('SELECT * FROM notifications WHERE id = ?', id);
  if (!row) throw new Error(`no notification ${id}`);
  return row;
}

export async function webhookDbRow(id: string): Promise<Record<string, any>> {
  const row = await allShards.first('SELECT * FROM webhook_subscriptions WHERE id = ?', id);
  if (!row) throw new Error(`no webhook ${id}`);
  return row;
}

/** Polls `read` until `done(value)` holds; throws with the last value after `timeoutMs`. */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await read();
    if (done(last)) return last;
    if (Date.now() > deadline)
      throw new Error(`${what} not reached within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The most requests a receiver was answering at the same moment (an answer ending at t frees its slot before t). */
export function maxInFlight(hs: Hit[]): number {
  const events: Array<[number, number]> = [];
  for (const h of hs) {
    events.push([h.receivedAt, +1]);
    events.push([h.response?.answeredAt ?? Number.MAX_SAFE_INTEGER, -1]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let current = 0;
  let peak = 0;
  for (const [, d] of events) {
    current += d;
    peak = Math.max(peak, current);
  }
  return peak;
}

/** Seconds between two ISO timestamps. */
export function secondsBetween(fromIso: string, toIso: string): number {
  return (Date.parse(toIso) - Date.parse(fromIso)) / 1000;
}

/**
 * A D1 binding that counts round trips: every `batch`, `exec`, and every `first/run/all/raw` of a prepared statement
 * (drizzle's queries go through the same `prepare`).
 */
export function countingD1(inner: D1Database): { db: D1Database; count: () => number; reset: () => void } {
  let n = 0;
  const patch = (stmt: D1PreparedStatement): D1PreparedStatement => {
    const s = stmt as unknown as Record<string, (...a: unknown[]) => unknown>;
    const bind = s.bind!.bind(stmt);
    s.bind = (...args: unknown[]) => patch(bind(...args) as D1PreparedStatement);
    for (const m of ['first', 'run', 'all', 'raw']) {
      const orig = s[m]!.bind(stmt);
      s[m] = (...args: unknown[]) => {
        n++;
        return orig(...args);
      };
    }
    return stmt;
  };
  // The binding and its D1 sessions alike (API requests run in sessions: src/db/session.ts).
  const db = wrapD1(inner, {
    prepare: (target, query) => patch(target.prepare(query)),
    batch: (target, statements) => {
      n++;
      return target.batch(statements);
    },
    exec: (target, query) => {
      n++;
      return target.exec(query);
    },
  });
  return {
    db,
    count: () => n,
    reset: () => {
      n = 0;
    },
  };
}

/** Asserts `value` lies in [lo, hi]. */
export function expectBetween(value: number, lo: number, hi: number, what = 'value'): void {
  expect(value, `${what} = ${value}, expected within [${lo}, ${hi}]`).toBeGreaterThanOrEqual(lo);
  expect(value, `${what} = ${value}, expected within [${lo}, ${hi}]`).toBeLessThanOrEqual(hi);
}

/** A mail as the `send_email` binding was given it: the structured message, its addresses as plain strings. */
export interface SentMail {
  from: string;
  to: string;
  replyTo: string | null;
  subject: string;
  text: string;
  html: string;
  headers: Record<string, string>;
  /** Every field the binding was given, to check nothing else (a `cc`, a `bcc`) rode along. */
  fields: string[];
}

/**
 * The real local `send_email` binding, recording each structured message it is handed before passing it on (so the
 * provider gets the binding's own message id back); with `fail`, it records and then throws that error instead.
 */
export function recordingEmail(fail?: string): { binding: Env['EMAIL']; sent: SentMail[] } {
  const sent: SentMail[] = [];
  const address = (a: string | EmailAddress | (string | EmailAddress)[] | undefined): string => {
    const one = Array.isArray(a) ? a[0] : a;
    return typeof one === 'string' ? one : (one?.email ?? '');
  };
  const binding = {
    async send(message: EmailMessageBuilder) {
      sent.push({
        from: address(message.from),
        to: address(message.to),
        replyTo: message.replyTo ? address(message.replyTo) : null,
        subject: message.subject,
        text: message.text ?? '',
        html: message.html ?? '',
        headers: message.headers ?? {},
        fields: Object.keys(message).sort(),
      });
      if (fail) throw new Error(fail);
      return await env.EMAIL.send(message);
    },
  } as unknown as Env['EMAIL'];
  return { binding, sent };
}

/**
 * A D1 binding whose `batch` throws (writing nothing, as D1 does when the connection is lost) whenever one of its
 * statements matches `failOn`; everything else goes through. `failures()` counts the refused batches.
 */
export function d1FailingBatchesMatching(
  inner: D1Database,
  failOn: RegExp,
): { db: D1Database; failures: () => number } {
  const queries = new WeakMap<object, string>();
  let failures = 0;
  const track = (stmt: D1PreparedStatement, query: string): D1PreparedStatement => {
    queries.set(stmt, query);
    const bind = stmt.bind.bind(stmt);
    stmt.bind = (...values: unknown[]) => track(bind(...values), query);
    return stmt;
  };
  const db = wrapD1(inner, {
    prepare: (target, query) => track(target.prepare(query), query),
    batch: (target, statements) => {
      if (statements.some((s) => failOn.test(queries.get(s) ?? ''))) {
        failures++;
        return Promise.reject(new Error('D1_ERROR: Network connection lost. (test)'));
      }
      return target.batch(statements);
    },
  });
  return { db, failures: () => failures };
}
