/**
 * Runs every API request's D1 queries in one D1 session (src/db/session.ts,
 * docs/design.md#read-replicas-and-bookmarks): `c.env.DB` is replaced by the session's database for the rest of the
 * request, and the session's bookmark is sent back in `x-d1-bookmark`. A malformed bookmark is a 400 problem naming
 * the header, never ignored: a client that sent one expects to read its own writes, and silently reading a replica
 * instead could show it stale data.
 */
import type { MiddlewareHandler } from 'hono';
import { BOOKMARK_HEADER, isBookmark, openSession } from '../db/session.ts';
import type { AppEnv } from '../env.ts';
import { problems } from '../lib/problem.ts';

/** Requests that only read: their session may start on a replica. */
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function d1Session(): MiddlewareHandler<AppEnv> {
  return async function d1SessionMiddleware(c, next) {
    const sent = c.req.header(BOOKMARK_HEADER)?.trim() || null;
    if (sent !== null && !isBookmark(sent)) {
      throw problems.validation([
        {
          path: `header.${BOOKMARK_HEADER}`,
          message: 'Send back the x-d1-bookmark of an earlier response unchanged, or leave the header out.',
        },
      ]);
    }
    const session = openSession(c.env.DB, { bookmark: sent, write: !READS.has(c.req.method) });
    c.env = { ...c.env, DB: session.db };
    await next();
    const bookmark = session.bookmark();
    if (bookmark) c.res.headers.set(BOOKMARK_HEADER, bookmark);
  };
}
