/**
 * Request bodies: at most MAX_BODY_BYTES (413, also for chunked bodies without Content-Length) and JSON only (415).
 * Runs before authentication so an oversize or non-JSON body is refused without any further work.
 */
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { type AppEnv, config } from '../env.ts';
import { problems } from '../lib/problem.ts';

const JSON_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json\s*(?:;|$)/i;
const FORM_TYPE = /^(?:application\/x-www-form-urlencoded|multipart\/form-data)\s*(?:;|$)/i;
/**
 * Pages a browser or mail client posts a form to (RFC 8058 one-click unsubscribe, the dashboard); everything else is
 * JSON.
 */
const FORM_PATHS = ['/v2/email/', '/dashboard/'];
const TEXT_TYPE = /^text\/plain\s*(?:;|$)/i;
/** Amazon SNS posts its JSON messages as `text/plain; charset=UTF-8` (the route parses the text itself). */
const TEXT_PATHS = ['/v2/providers/sns/'];
const WITH_BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function bodyGuard(): MiddlewareHandler<AppEnv> {
  const limiters = new Map<number, MiddlewareHandler>();
  return async function bodyGuardMiddleware(c, next) {
    if (!WITH_BODY.has(c.req.method)) return next();
    const max = config(c.env).maxBodyBytes;
    const length = c.req.header('content-length');
    // A body may come without Content-Length (chunked, HTTP/2, or a Request built in-process): look at the stream too.
    const hasBody =
      (length !== undefined && length !== '0') ||
      c.req.header('transfer-encoding') !== undefined ||
      (length === undefined && c.req.raw.body !== null);
    if (!hasBody) return next();
    if (length !== undefined && Number(length) > max) throw problems.payloadTooLarge(max);
    const type = c.req.header('content-type');
    const formAllowed = FORM_PATHS.some((p) => c.req.path.startsWith(p)) && type !== undefined && FORM_TYPE.test(type);
    const textAllowed = TEXT_PATHS.some((p) => c.req.path.startsWith(p)) && type !== undefined && TEXT_TYPE.test(type);
    if (!formAllowed && !textAllowed && (!type || !JSON_TYPE.test(type))) throw problems.unsupportedMediaType(type);
    let limiter = limiters.get(max);
    if (!limiter) {
      limiter = bodyLimit({
        maxSize: max,
        onError: () => {
          throw problems.payloadTooLarge(max);
        },
      });
      limiters.set(max, limiter);
    }
    return limiter(c, next);
  };
}
