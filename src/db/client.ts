import { type DrizzleD1Database, drizzle } from 'drizzle-orm/d1';

/**
 * The drizzle client: query builder only. It is made without the schema because nothing here uses drizzle's
 * relational queries (`db.query.…`), and building their metadata cost about 70 µs per client; every request makes one
 * per D1 session it uses (src/db/session.ts).
 */
export type Db = DrizzleD1Database;

const cache = new WeakMap<D1Database, Db>();

/** The drizzle client over a D1 binding (or session), one per binding per isolate. */
export function getDb(d1: D1Database): Db {
  let db = cache.get(d1);
  if (!db) {
    db = drizzle(d1);
    cache.set(d1, db);
  }
  return db;
}
