/**
 * D1 bindings with every round trip counted per binding (docs/design.md#shards), as the bench's meter does: statement
 * calls (`first`, `all`, `run`, `raw`), `batch` and `exec`. Also the most round trips in flight at once, across the
 * bindings: 2 with one each on the control plane and a shard means they ran concurrently (one round trip of latency).
 */
import { env } from 'cloudflare:workers';

export type MeteredName = 'DB' | 'SHARD_0' | 'SHARD_1';

export interface D1Meter {
  /** The bindings to pass as vars (`callWithVars`) or to spread into an env. */
  vars: Record<MeteredName, D1Database>;
  /** Round trips per binding. */
  counts: Record<MeteredName, number>;
  /** The most round trips in flight at once. */
  peakInFlight: number;
}

/** The meter the wrapped bindings count into now. */
let current: D1Meter | null = null;
let wrapped: Record<MeteredName, D1Database> | null = null;

/**
 * Metered copies of DB, SHARD_0 and SHARD_1, counting from zero. The copies are the same objects on every call (only
 * the counts are new), so what the Worker caches per binding (the handle directory) stays warm between meters.
 */
export function meterD1(): D1Meter {
  wrapped ??= wrapAll();
  current = { vars: wrapped, counts: { DB: 0, SHARD_0: 0, SHARD_1: 0 }, peakInFlight: 0 };
  return current;
}

function wrapAll(): Record<MeteredName, D1Database> {
  const vars = {} as Record<MeteredName, D1Database>;
  let inFlight = 0;
  const track = <T>(name: MeteredName, work: () => Promise<T>): Promise<T> => {
    const meter = current!;
    meter.counts[name]++;
    inFlight++;
    meter.peakInFlight = Math.max(meter.peakInFlight, inFlight);
    return work().finally(() => {
      inFlight--;
    });
  };
  for (const name of ['DB', 'SHARD_0', 'SHARD_1'] as const) {
    const wrapStatement = (st: D1PreparedStatement): D1PreparedStatement =>
      new Proxy(st, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target) as unknown;
          if (typeof value !== 'function') return value;
          if (prop === 'bind') return (...args: unknown[]) => wrapStatement(target.bind(...args));
          if (['first', 'all', 'run', 'raw'].includes(String(prop))) {
            return (...args: unknown[]) =>
              track(name, () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args));
          }
          return (value as (...a: unknown[]) => unknown).bind(target);
        },
      });
    const unwrap = new WeakMap<object, D1PreparedStatement>();
    // The binding and every D1 session opened on it (API requests run in sessions: src/db/session.ts), counted alike.
    const metered = (real: D1Database | D1DatabaseSession): D1Database =>
      ({
        prepare(sql: string) {
          const st = real.prepare(sql);
          const wrapped = wrapStatement(st);
          unwrap.set(wrapped, st);
          return wrapped;
        },
        batch(statements: D1PreparedStatement[]) {
          return track(name, () => real.batch(statements.map((s) => unwrap.get(s) ?? s)));
        },
        exec(sql: string) {
          return track(name, () => (real as D1Database).exec(sql));
        },
        withSession(constraintOrBookmark?: string) {
          const session = (real as D1Database).withSession(constraintOrBookmark);
          return { ...metered(session), getBookmark: () => session.getBookmark() };
        },
      }) as unknown as D1Database;
    vars[name] = metered(env[name]);
  }
  return vars;
}

/** The shard binding names that are not `name`: a handle's requests must leave these at 0. */
export const otherShard = (name: 'SHARD_0' | 'SHARD_1'): 'SHARD_0' | 'SHARD_1' =>
  name === 'SHARD_0' ? 'SHARD_1' : 'SHARD_0';
