/**
 * Request bodies: at most MAX_BODY_BYTES (413, also for chunked bodies without Content-Length), JSON only (415), and
 * JSON that nests at most MAX_JSON_DEPTH levels with no `__proto__`, `constructor` or `prototype` key anywhere (400
 * naming the path; docs/design.md#api-conventions). Every JSON body of every route passes here, raw as parsed, before
 * any schema rebuilds it (and drops or mangles such keys). Runs before authentication so a bad body is refused
 * without any further work.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { type AppEnv, config } from '../env.ts';
import { findJsonHazard, jsonHazardMessage, jsonPathText } from '../lib/json.ts';
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
    const isJson = !formAllowed && !textAllowed;
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
    return limiter(c, async () => {
      if (isJson) await refuseHostileJson(c);
      await next();
    });
  };
}

/**
 * 400 when the JSON body nests too deep or holds a refused key. A body that does not parse is left to the route's
 * validator, which answers `malformed_json` where a body is expected and ignores it where none is.
 */
async function refuseHostileJson(c: Context<AppEnv>): Promise<void> {
  const text = await c.req.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return;
  }
  const hazard = findJsonHazard(parsed);
  if (!hazard) return;
  const path = jsonPathText('body', hazard.path);
  throw problems.validation(
    [{ path, message: jsonHazardMessage(hazard) }],
    hazard.kind === 'too_deep' ? `The body nests too deep at ${path}.` : `The body holds a refused key at ${path}.`,
  );
}
