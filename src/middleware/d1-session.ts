/**
 * Runs every API request's queries on each data shard in one D1 session of that shard (src/db/session.ts,
 * docs/design.md#read-replicas-and-bookmarks): the shard bindings of `c.env` are replaced by their sessions for the
 * rest of the request, and the sessions' bookmarks go back in `x-d1-bookmark`, one per shard. A malformed header is
 * a 400 problem naming it, never ignored: a client that sent one expects to read its own writes, and silently reading
 * a replica instead could show it stale data.
 */
import type { MiddlewareHandler } from 'hono';
import { BOOKMARK_HEADER, openShardSessions, parseBookmarks } from '../db/session.ts';
import { type AppEnv, shareConfig } from '../env.ts';
import { problems } from '../lib/problem.ts';

/** Requests that only read: their sessions may start on a replica. */
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The D1 sessions of one API request, and its bookmarks back to the client. */
export function d1Session(): MiddlewareHandler<AppEnv> {
  return async function d1SessionMiddleware(c, next) {
    const sent = parseBookmarks(c.req.header(BOOKMARK_HEADER));
    if (!sent) {
      throw problems.validation([
        {
          path: `header.${BOOKMARK_HEADER}`,
          message: 'Send back the x-d1-bookmark of the latest response unchanged, or leave the header out.',
        },
      ]);
    }
    const sessions = openShardSessions(c.env, sent, !READS.has(c.req.method));
    // A new object per request, with the same vars: it reuses the config parsed once for the Worker's env.
    shareConfig(sessions.env, c.env);
    c.env = sessions.env;
    await next();
    const header = sessions.header();
    if (header) c.res.headers.set(BOOKMARK_HEADER, header);
  };
}
