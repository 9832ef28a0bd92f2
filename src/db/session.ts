/**
 * D1 read replicas through the Sessions API (docs/design.md#read-replicas-and-bookmarks), in one place: a request's
 * queries run in one D1 session, so they are sequentially consistent even when they are served by replicas, and the
 * session's bookmark — the point in the database's history it has seen — goes back to the client, which sends it on
 * its next request to read its own writes.
 *
 * `openSession(db, { bookmark, write })` answers a D1Database whose `prepare` and `batch` run in the session, plus a
 * way to read the bookmark once the work is done. Bookmarks are per database: a caller spreading data over several
 * databases opens one session per database.
 */

/** The request header a client sends a bookmark in, and the response header that carries the new one. */
export const BOOKMARK_HEADER = 'x-d1-bookmark';

/**
 * D1's bookmark format (also the one time travel uses): four dash-separated groups of hex digits, e.g.
 * `00000085-0000024c-00004c6d-8e61117bf38d7adb71b934ebbf891683`. Anything else never reaches D1, which would fail the
 * whole query on it.
 */
const BOOKMARK_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;

/** Whether a client's bookmark has D1's form. */
export function isBookmark(value: string): boolean {
  return BOOKMARK_PATTERN.test(value);
}

/** A database whose queries run in one D1 session, and the session's latest bookmark. */
export interface DbSession {
  db: D1Database;
  /** The bookmark after the queries run so far; null before the first one. */
  bookmark(): string | null;
}

/**
 * Opens a session on `db`: from the client's `bookmark` when it sent one (every read sees at least that point), else
 * `first-primary` for a write (its checks read what it is about to change) or `first-unconstrained` for a read (the
 * nearest replica may answer). `bookmark` must have passed `isBookmark`.
 */
export function openSession(db: D1Database, opts: { bookmark: string | null; write: boolean }): DbSession {
  // A binding without the Sessions API (a wrapper around D1, an older runtime) is used as is: the primary, no bookmark.
  if (typeof db.withSession !== 'function') return { db, bookmark: () => null };
  const session = db.withSession(opts.bookmark ?? (opts.write ? 'first-primary' : 'first-unconstrained'));
  const wrapped = {
    prepare: (query: string) => session.prepare(query),
    batch: <T = unknown>(statements: D1PreparedStatement[]) => session.batch<T>(statements),
    // Not part of a session (migrations and tools only): the database itself.
    exec: (query: string) => db.exec(query),
    dump: () => db.dump(),
    withSession: (constraintOrBookmark?: string) => db.withSession(constraintOrBookmark),
  } as D1Database;
  return { db: wrapped, bookmark: () => session.getBookmark() };
}
