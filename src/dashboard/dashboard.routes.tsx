/**
 * `/dashboard`: the lifecycle operations engineer's pages (docs/design.md#dashboard), server-rendered with hono/jsx.
 * This module assembles them: the security headers of every answer, the two assets, the Origin check of every form
 * post, one router per page (src/dashboard/pages/), and a page for anything else.
 *
 * Every handler calls the real API in process with the session's token (api.ts) and renders its JSON or its problem:
 * scopes, roles, the 404 for non-members, validation and throttles are the API's, never re-implemented here.
 *
 * Forms: every POST carries the session's CSRF token (checked in handler.tsx, constant time) and must come from this
 * origin (hono/csrf); writes carry a per-form Idempotency-Key, so a double submit or a reload replays instead of
 * repeating.
 */
import { Hono } from 'hono';
import { csrf } from 'hono/csrf';
import { HTTPException } from 'hono/http-exception';
import type { AppEnv } from '../env.ts';
import { pageSecurityHeaders } from '../http/security-headers.ts';
import { problemBody, problems } from '../lib/problem.ts';
import type { ApiFetch } from './api.ts';
import { DASHBOARD_CSS, DASHBOARD_JS } from './assets.ts';
import { baseFrame, renderProblem } from './handler.tsx';
import { PAGES } from './pages/index.ts';
import { readSession } from './session.ts';

/** The dashboard router; `fetchApp` is the app's own fetch (see src/app.ts). */
export function dashboardRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();

  // Nothing but this origin's own stylesheet and script; no frames, no plugins, forms only to this origin.
  r.use('*', pageSecurityHeaders({ assets: 'self' }));

  r.get('/assets/app.css', (c) =>
    c.body(DASHBOARD_CSS, 200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'public, max-age=300' }),
  );
  r.get('/assets/app.js', (c) =>
    c.body(DASHBOARD_JS, 200, {
      'content-type': 'text/javascript; charset=utf-8',
      'cache-control': 'public, max-age=300',
    }),
  );

  // A form may only be posted from a page of this origin (Origin header), on top of the per-session token.
  r.use('*', csrf({ origin: (origin, c) => origin === new URL(c.req.url).origin }));
  // hono/csrf refuses with an HTTPException 403: show it as a page; anything else goes to the app's problem handler.
  r.onError((err, c) => {
    if (err instanceof HTTPException && err.status === 403) {
      const refusal = problems.forbidden(
        'This form was not posted from a dashboard page of this site (Origin check failed).',
      );
      return renderProblem(c, baseFrame(c, 'Not allowed'), problemBody(refusal, c.get('requestId')), false);
    }
    throw err;
  });

  // Order matters only for the last one: anything no page answers.
  for (const pages of PAGES) r.route('/', pages(fetchApp));

  // Anything else under /dashboard: a page, not JSON.
  r.all('*', async (c) => {
    const session = await readSession(c);
    return renderProblem(
      c,
      baseFrame(c, 'Not found', session ? { csrf: session.csrf } : {}),
      problemBody(problems.notFound(`No dashboard page at ${c.req.path}.`), c.get('requestId')),
      session !== null,
    );
  });

  return r;
}
