/**
 * The one way tests wrap a D1 binding (to inject a fault, count round trips, watch what is touched): the same
 * overrides apply to the binding AND to every D1 session opened on it with `withSession`. API requests run their shard
 * queries in sessions (src/db/session.ts, docs/design.md#read-replicas-and-bookmarks), so a wrapper that handed
 * `withSession` to the real database would silently switch its fault or its count off for them.
 *
 *   const db = wrapD1(env.SHARD_0, { batch: (target, statements) => … target.batch(statements) … });
 */

/** Methods to replace; each gets the real database or session it wraps (`target`) first. */
export interface D1Overrides {
  prepare?(target: D1Database, query: string): D1PreparedStatement;
  batch?(target: D1Database, statements: D1PreparedStatement[]): Promise<D1Result[]>;
  exec?(target: D1Database, query: string): Promise<D1ExecResult>;
}

/**
 * `inner` with `overrides` in place of its methods; `withSession` answers a session wrapped with the same overrides
 * (sharing whatever state they close over). Everything else is the real binding's.
 */
export function wrapD1(inner: D1Database | D1DatabaseSession, overrides: D1Overrides): D1Database {
  return new Proxy(inner as D1Database, {
    get(target, prop) {
      if (prop === 'prepare' && overrides.prepare) return (query: string) => overrides.prepare!(target, query);
      if (prop === 'batch' && overrides.batch)
        return (statements: D1PreparedStatement[]) => overrides.batch!(target, statements);
      if (prop === 'exec' && overrides.exec) return (query: string) => overrides.exec!(target, query);
      if (prop === 'withSession')
        return (constraintOrBookmark?: string) => wrapD1(target.withSession(constraintOrBookmark), overrides);
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
