/**
 * A D1 binding that loses an answer on demand: the next write whose SQL matches a pattern is committed, and then the
 * caller gets the error D1 reports when the connection drops (`Network connection lost`), as if the answer never
 * arrived (or, with `before`, the connection drops before anything is written). Works for a `batch()` holding such a statement and for a single statement's `run/first/all/raw`, so a test
 * written against one shape of the code keeps injecting the fault when the code changes to the other.
 *
 *   const d1 = answerLostD1(env.DB);
 *   d1.loseAnswerOf(/INSERT INTO "webhook_subscriptions"/);
 *   await callWithVars({ DB: d1.db }, 'POST', …);   // → 503; the row exists
 */

import { wrapD1 } from './d1-wrap.ts';

const LOST = 'D1_ERROR: Network connection lost. (injected after commit: the answer was lost)';
const DROPPED = 'D1_ERROR: Network connection lost. (injected before commit)';

export interface AnswerLostD1 {
  db: D1Database;
  /**
   * Arms the fault for the next write (batch or single statement) whose SQL matches `pattern`: `after` the commit
   * (default) or `before` anything is written.
   */
  loseAnswerOf(pattern: RegExp, when?: 'before' | 'after'): void;
  /** How many answers were lost so far. */
  lost(): number;
}

export function answerLostD1(inner: D1Database): AnswerLostD1 {
  const sqlOf = new WeakMap<D1PreparedStatement, string>();
  let armed: { pattern: RegExp; when: 'before' | 'after' } | null = null;
  let lost = 0;
  /** True (and disarms) when `sql` is the armed write; throws at once for a `before` fault. */
  const take = (sql: string | undefined): boolean => {
    if (!armed || sql === undefined || !armed.pattern.test(sql)) return false;
    const { when } = armed;
    armed = null;
    lost++;
    if (when === 'before') throw new Error(DROPPED);
    return true;
  };
  const patch = (stmt: D1PreparedStatement, sql: string): D1PreparedStatement => {
    sqlOf.set(stmt, sql);
    const s = stmt as unknown as Record<string, (...a: unknown[]) => unknown>;
    const bind = s.bind!.bind(stmt);
    s.bind = (...args: unknown[]) => patch(bind(...args) as D1PreparedStatement, sql);
    for (const m of ['first', 'run', 'all', 'raw']) {
      const orig = s[m]!.bind(stmt);
      s[m] = async (...args: unknown[]) => {
        const hit = take(sql);
        const result = await orig(...args);
        if (hit) throw new Error(LOST);
        return result;
      };
    }
    return stmt;
  };
  // The binding and its D1 sessions alike (API requests run in sessions: src/db/session.ts).
  const db = wrapD1(inner, {
    prepare: (target, query) => patch(target.prepare(query), query),
    batch: async (target, statements) => {
      const hit = statements.some((st) => take(sqlOf.get(st)));
      const results = await target.batch(statements);
      if (hit) throw new Error(LOST);
      return results;
    },
  });
  return {
    db,
    loseAnswerOf(pattern, when = 'after') {
      armed = { pattern, when };
    },
    lost: () => lost,
  };
}
