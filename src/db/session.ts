/**
 * D1 read replicas through the Sessions API (docs/design.md#read-replicas-and-bookmarks), in one place: an API
 * request's queries on each data shard run in one D1 session of that shard, so they are sequentially consistent even
 * when replicas serve them, and each session's bookmark — the point in that database's history it has seen — goes back
 * to the client, named by its shard, which sends it on its next request to read its own writes.
 *
 * The control plane (`DB`) is never put in a session: its reads (token, membership, the handle directory) go to its
 * primary, so a revocation or a move holds on the very next request.
 */
import { shardBindingName } from './shards.ts';

/** The request header a client sends its bookmarks in, and the response header that carries the new ones. */
export const BOOKMARK_HEADER = 'x-d1-bookmark';

/**
 * D1's bookmark format (also the one time travel uses): four dash-separated groups of hex digits, e.g.
 * `00000085-0000024c-00004c6d-8e61117bf38d7adb71b934ebbf891683`. Anything else never reaches D1.
 */
const BOOKMARK = '[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}';
const BOOKMARK_PATTERN = new RegExp(`^${BOOKMARK}$`);

/** One entry of the header: the shard's binding name, `=`, its bookmark. */
const ENTRY = `(SHARD_(?:0|[1-9][0-9]{0,3}))=(${BOOKMARK})`;
const ENTRY_PATTERN = new RegExp(`^${ENTRY}$`);

/** The whole header as a pattern (what `parseBookmarks` accepts, blank aside), for the OpenAPI document. */
export const BOOKMARK_HEADER_PATTERN = `^\\s*${ENTRY}(\\s*,\\s*${ENTRY})*\\s*$`;

/** Whether a value has D1's bookmark form. */
export function isBookmark(value: string): boolean {
  return BOOKMARK_PATTERN.test(value);
}

/**
 * The bookmarks a client sent, by shard binding name: `SHARD_0=<bookmark>, SHARD_1=<bookmark>` (entries in any
 * order, comma-separated). An absent or blank header is no bookmark; null when the header is malformed (an entry not
 * of that form, or one shard named twice), which the caller answers with a 400.
 */
export function parseBookmarks(header: string | undefined | null): Map<string, string> | null {
  const sent = new Map<string, string>();
  if (!header?.trim()) return sent;
  for (const part of header.split(',')) {
    const match = ENTRY_PATTERN.exec(part.trim());
    if (!match || sent.has(match[1]!)) return null;
    sent.set(match[1]!, match[2]!);
  }
  return sent;
}

/** A database whose queries run in one D1 session, and the session's latest bookmark. */
export interface DbSession {
  db: D1Database;
  /** The bookmark after the queries run so far (the one it was opened from before its first query, or null). */
  bookmark(): string | null;
}

/**
 * Opens a session on `db`. A write's starts `first-primary`, whatever bookmark was sent: its checks read what it is
 * about to change, and the primary is past every bookmark of its own database. A read's starts from the client's
 * `bookmark` when it sent one (every query sees at least that point), else `first-unconstrained` (the nearest replica
 * may answer). `bookmark` must have passed `isBookmark`.
 */
export function openSession(db: D1Database, opts: { bookmark: string | null; write: boolean }): DbSession {
  const session = db.withSession(opts.write ? 'first-primary' : (opts.bookmark ?? 'first-unconstrained'));
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

/** One request's sessions: the environment whose shard bindings are sessions, and the bookmarks to send back. */
export interface RequestSessions<E> {
  env: E;
  /** The response header's value (null when there is no bookmark to give): see {@link openShardSessions}. */
  header(): string | null;
}

/**
 * Puts every data shard of `env` (`SHARD_0 … SHARD_{N-1}`) in a session of its own, opened from the bookmark the
 * client sent for that shard, and answers an environment with those sessions in place of the shard bindings. The
 * header then lists, per shard in order, the session's bookmark: where the request read or wrote it, the new point;
 * where it did not, the client's own bookmark unchanged. A client keeps the latest header and reads its writes on every
 * shard it wrote to, whichever handle it calls next. A sent name this Worker does not bind is dropped.
 */
export function openShardSessions<E extends object>(
  env: E,
  sent: ReadonlyMap<string, string>,
  write: boolean,
): RequestSessions<E> {
  const bindings = env as Record<string, D1Database | undefined>;
  const sessions: [string, DbSession][] = [];
  for (let i = 0; bindings[shardBindingName(i)]; i++) {
    const name = shardBindingName(i);
    sessions.push([name, openSession(bindings[name]!, { bookmark: sent.get(name) ?? null, write })]);
  }
  return {
    env: { ...env, ...Object.fromEntries(sessions.map(([name, s]) => [name, s.db])) },
    header() {
      const entries = sessions.flatMap(([name, s]) => {
        const bookmark = s.bookmark() ?? sent.get(name);
        return bookmark ? [`${name}=${bookmark}`] : [];
      });
      return entries.length ? entries.join(', ') : null;
    },
  };
}
