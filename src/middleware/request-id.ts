/**
 * Gives every request an id (a valid incoming `X-Request-Id` is echoed, else one is minted), exposes it and the
 * Worker's deployment id on every response, and writes one structured JSON log line per request with both — so a
 * support handoff can quote them and operators can find the line.
 */
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env.ts';
import { newId } from '../lib/ids.ts';
import { ProblemError } from '../lib/problem.ts';

const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

export function requestContext(): MiddlewareHandler<AppEnv> {
  return async function requestContextMiddleware(c, next) {
    const started = Date.now();
    const incoming = c.req.header('x-request-id');
    const requestId = incoming && VALID_REQUEST_ID.test(incoming) ? incoming : newId('req', started);
    const deploymentId = c.env.CF_VERSION_METADATA?.id || 'local';
    c.set('requestId', requestId);
    c.set('deploymentId', deploymentId);

    await next();

    c.res.headers.set('X-Request-Id', requestId);
    c.res.headers.set('X-Deployment-Id', deploymentId);
    const principal = c.get('principal');
    // A planned 503 (a handle's move) is a warning: level error is kept for what someone should look at.
    const planned = c.error instanceof ProblemError && c.error.planned;
    const line = {
      level: c.res.status >= 500 ? (planned ? 'warn' : 'error') : 'info',
      msg: 'request',
      requestId,
      deploymentId,
      method: c.req.method,
      // The path only: query strings can carry one-time tokens (email confirm/unsubscribe links).
      path: c.req.path,
      route: c.req.routePath,
      status: c.res.status,
      durationMs: Date.now() - started,
      principal: principal?.key,
      authMethod: principal?.method,
      tokenId: principal?.tokenId ?? undefined,
    };
    console.log(JSON.stringify(line));
  };
}
