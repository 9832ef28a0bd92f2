/**
 * The service's own entry point (src/index.ts) with its D1 and queue producer bindings metered, for the bench's
 * "D1 cost" and "Fan-out" rows. Throughput is never measured on this build (bench/run.ts uses the bundle of
 * `wrangler deploy --dry-run` for that); this one only counts.
 *
 * - D1: every statement call, `batch` and `exec` is one D1 call; the `meta` of each statement's result (rows_read,
 *   rows_written — what D1 bills) is summed, and kept per statement with its SQL. Every D1 binding is metered (the
 *   control plane `DB` and each data shard `SHARD_<n>`, and the D1 sessions opened on them), with the totals also per
 *   binding. Round trips are of latency, counted per request (between two resets): calls in flight at the same time
 *   count as one — an authenticated read sends the access lookup and the shard query at once — so `d1RoundTrips` is
 *   the most calls of the request that ran one after another (no two in flight together), and `d1Calls` every call.
 * - Queues: `send` / `sendBatch` calls on every DELIVERIES_QUEUE_<n> and EVENTS_QUEUE, and messages sent.
 *
 * Bench-only routes: `POST /__bench/reset`, `GET /__bench/stats`, and `POST /__bench/consume` {deliveryIds} which runs
 * the notify-deliveries consumer on one batch of those messages (as the queue would) and answers its ConsumerReport.
 */

import { consumeDeliveries } from '../src/delivery/consumer.ts';
import { deliveryQueues } from '../src/delivery/enqueue.ts';
import worker from '../src/index.ts';
import { CallLog } from './lib/latency.ts';

/** wrangler.toml binds PACER to this class, so every build of the Worker exports it. */
export { EndpointPacer } from '../src/index.ts';

interface StatementCost {
  sql: string;
  rowsRead: number;
  rowsWritten: number;
}

/** One D1 binding's share of the totals. */
interface BindingStats {
  /** Round trips of latency on this binding alone (see `d1RoundTrips`). */
  d1RoundTrips: number;
  d1Calls: number;
  rowsRead: number;
  rowsWritten: number;
}

interface Stats {
  /** Per D1 binding (`DB`, `SHARD_0`, …): which database a request's round trips and rows went to. */
  byBinding: Record<string, BindingStats>;
  /**
   * Round trips of latency: the most of this request's calls that ran one after another, no two of them in flight at
   * once (calls sent together count as one). Never more than `d1Calls`.
   */
  d1RoundTrips: number;
  /** Every statement call, `batch` and `exec`. */
  d1Calls: number;
  /** The most calls in flight at once. */
  peakInFlight: number;
  /** Calls holding at least one INSERT/UPDATE/DELETE. */
  d1WriteRoundTrips: number;
  rowsRead: number;
  rowsWritten: number;
  statements: StatementCost[];
  sendCalls: number;
  sendBatchCalls: number;
  messagesSent: number;
}

const fresh = (): Stats => ({
  byBinding: {},
  d1RoundTrips: 0,
  d1Calls: 0,
  peakInFlight: 0,
  d1WriteRoundTrips: 0,
  rowsRead: 0,
  rowsWritten: 0,
  statements: [],
  sendCalls: 0,
  sendBatchCalls: 0,
  messagesSent: 0,
});
let stats = fresh();
const log = new CallLog();
const call = <T>(binding: string, work: () => Promise<T>) => log.call(binding, work);

/** The stats with the round trips of latency of the calls so far (bench/lib/latency.ts). */
function snapshot(): Stats {
  for (const [binding, mine] of Object.entries(stats.byBinding)) mine.d1RoundTrips = log.roundTrips(binding);
  return { ...stats, d1RoundTrips: log.roundTrips(), peakInFlight: log.peakInFlight };
}

type Meta = { rows_read?: number; rows_written?: number } | undefined;
const WRITE_SQL = /^\s*(with\b[\s\S]*?\b)?(insert|update|delete|replace)\b/i;

function recordCall(binding: string, sql: unknown, result: unknown) {
  const sqls = (Array.isArray(sql) ? sql : [sql]).map((s) => (typeof s === 'string' ? s : JSON.stringify(s)));
  const results = (Array.isArray(result) ? result : [result]) as Array<{ meta?: Meta } | undefined>;
  stats.byBinding[binding] ??= { d1RoundTrips: 0, d1Calls: 0, rowsRead: 0, rowsWritten: 0 };
  const mine = stats.byBinding[binding];
  mine.d1Calls++;
  stats.d1Calls++;
  if (sqls.some((s) => WRITE_SQL.test(s))) stats.d1WriteRoundTrips++;
  results.forEach((r, i) => {
    const read = r?.meta?.rows_read ?? 0;
    const written = r?.meta?.rows_written ?? 0;
    stats.rowsRead += read;
    stats.rowsWritten += written;
    mine.rowsRead += read;
    mine.rowsWritten += written;
    stats.statements.push({
      sql: (sqls[i] ?? sqls[0] ?? '').replace(/\s+/g, ' ').slice(0, 2000),
      rowsRead: read,
      rowsWritten: written,
    });
  });
}

/**
 * A D1 binding that counts: every statement call and every `batch`/`exec` is one call, and each result's `meta`
 * (rows_read, rows_written — what D1 bills) is summed per statement. `first()` and `raw()` do not return `meta`, so
 * they run as `all()` — the same query, the same rows read — and are shaped the way the real methods shape them
 * (`raw()` rows in column order, as drizzle itself maps batch results).
 */
class MeteredStatement {
  readonly real: D1PreparedStatement;
  readonly sql: string;
  readonly binding: string;
  constructor(real: D1PreparedStatement, sql: string, binding: string) {
    this.real = real;
    this.sql = sql;
    this.binding = binding;
  }
  bind(...values: unknown[]) {
    return new MeteredStatement(this.real.bind(...values), this.sql, this.binding);
  }
  async all<T>() {
    const r = await call(this.binding, () => this.real.all<T>());
    recordCall(this.binding, this.sql, r);
    return r;
  }
  async run<T>() {
    const r = await call(this.binding, () => this.real.run<T>());
    recordCall(this.binding, this.sql, r);
    return r;
  }
  async first<T>(column?: string) {
    const row = (await this.all<Record<string, unknown>>()).results[0];
    if (row === undefined) return null;
    return (column === undefined ? row : row[column]) as T;
  }
  async raw<T extends unknown[]>(options?: { columnNames?: boolean }) {
    const rows = (await this.all<Record<string, unknown>>()).results;
    const values = rows.map((r) => Object.values(r) as T);
    return options?.columnNames ? [Object.keys(rows[0] ?? {}) as T, ...values] : values;
  }
}

/** `db` metered as `binding`; a D1 session opened on it (API requests run in sessions: src/db/session.ts) too. */
function meterD1(db: D1Database | D1DatabaseSession, binding: string): D1Database {
  return {
    prepare: (sql: string) => new MeteredStatement(db.prepare(sql), sql, binding),
    async batch(statements: MeteredStatement[]) {
      const results = await call(binding, () => db.batch(statements.map((s) => s.real)));
      recordCall(
        binding,
        statements.map((s) => s.sql),
        results,
      );
      return results;
    },
    async exec(sql: string) {
      const r = await call(binding, () => (db as D1Database).exec(sql));
      recordCall(binding, sql, undefined);
      return r;
    },
    withSession(constraintOrBookmark?: string) {
      const session = (db as D1Database).withSession(constraintOrBookmark);
      return { ...meterD1(session, binding), getBookmark: () => session.getBookmark() };
    },
    dump: () => (db as D1Database).dump(),
  } as unknown as D1Database;
}

function meterQueue(queue: Queue): Queue {
  return {
    send(body: unknown, options?: QueueSendOptions) {
      stats.sendCalls++;
      stats.messagesSent++;
      return queue.send(body, options);
    },
    sendBatch(messages: Iterable<MessageSendRequest>, options?: QueueSendBatchOptions) {
      const list = [...messages];
      stats.sendBatchCalls++;
      stats.messagesSent += list.length;
      return queue.sendBatch(list, options);
    },
  } as Queue;
}

const envs = new WeakMap<Env, Env>();
function metered(env: Env): Env {
  let m = envs.get(env);
  if (!m) {
    m = {
      ...env,
      ...Object.fromEntries(
        Object.entries(env as unknown as Record<string, unknown>)
          .filter(([name]) => name === 'DB' || /^SHARD_\d+$/.test(name))
          .map(([name, db]) => [name, meterD1(db as D1Database, name)]),
      ),
      ...Object.fromEntries(deliveryQueues(env).map((q, n) => [`DELIVERIES_QUEUE_${n}`, meterQueue(q)])),
      EVENTS_QUEUE: meterQueue(env.EVENTS_QUEUE),
    };
    envs.set(env, m);
  }
  return m;
}

/** A MessageBatch of delivery messages as the queue hands it to the consumer; ack/retry are recorded. */
function deliveryBatch(ids: string[]) {
  const outcome = { acked: 0, retried: 0 };
  const messages = ids.map((deliveryId, i) => ({
    id: `bench-${i}`,
    timestamp: new Date(),
    body: { deliveryId },
    attempts: 1,
    ack: () => void outcome.acked++,
    retry: () => void outcome.retried++,
  }));
  const batch = {
    queue: 'notify-deliveries-0',
    messages,
    ackAll: () => {
      outcome.acked += messages.length;
    },
    retryAll: () => {
      outcome.retried += messages.length;
    },
  } as unknown as MessageBatch<unknown>;
  return { batch, outcome };
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === '/__bench/reset') {
      stats = fresh();
      log.reset();
      return Response.json({ ok: true });
    }
    if (url.pathname === '/__bench/stats') return Response.json(snapshot());
    if (url.pathname === '/__bench/consume') {
      const { deliveryIds } = (await request.json()) as { deliveryIds: string[] };
      const { batch, outcome } = deliveryBatch(deliveryIds);
      const report = await consumeDeliveries(batch, metered(env));
      return Response.json({ report, outcome });
    }
    return worker.fetch(request, metered(env), ctx);
  },
  queue: (batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext) => worker.queue(batch, metered(env), ctx),
} satisfies ExportedHandler<Env>;
