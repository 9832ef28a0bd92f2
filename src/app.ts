/**
 * Builds the Hono app: middleware in order (request context → body guard → per-route auth), the resource routers,
 * the OpenAPI document, and the error and not-found handlers that make every failure a problem+json response.
 */

import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { TrieRouter } from 'hono/router/trie-router';
import { dashboardRoutes } from './dashboard/dashboard.routes.tsx';
import type { AppEnv } from './env.ts';
import { withCodeSamples } from './http/code-samples.ts';
import { createRouter, withD1Bookmarks } from './http/openapi.ts';
import { registerCatalogWebhooks } from './http/webhook-docs.ts';
import { isTransientStorageError, ProblemError, problemResponse, problems } from './lib/problem.ts';
import { bodyGuard } from './middleware/body-guard.ts';
import { d1Session } from './middleware/d1-session.ts';
import { requestContext } from './middleware/request-id.ts';
import { archivesRoutes } from './routes/archives/archives.routes.ts';
import { deliveriesRoutes } from './routes/deliveries/deliveries.routes.ts';
import { deliveryStatsRoutes } from './routes/deliveries/delivery-stats.routes.ts';
import { devRoutes } from './routes/dev/dev.routes.ts';
import { docsRoutes } from './routes/docs/docs.routes.ts';
import { emailPagesRoutes } from './routes/email-pages/email-pages.routes.ts';
import { emailSubscriptionsRoutes } from './routes/email-subscriptions/email-subscriptions.routes.ts';
import { eventsRoutes } from './routes/events/events.routes.ts';
import { handlesRoutes } from './routes/handles/handles.routes.ts';
import { healthRoutes } from './routes/health/health.routes.ts';
import { internalRoutes } from './routes/internal/internal.routes.ts';
import { metaRoutes } from './routes/meta/meta.routes.ts';
import { notificationsRoutes } from './routes/notifications/notifications.routes.ts';
import { placementRoutes } from './routes/placement/placement.routes.ts';
import { resendRoutes } from './routes/providers/resend.routes.ts';
import { snsRoutes } from './routes/providers/sns.routes.ts';
import { settingsRoutes } from './routes/settings/settings.routes.ts';
import { supportRoutes } from './routes/support/support.routes.ts';
import { tokensRoutes } from './routes/tokens/tokens.routes.ts';
import { usageRoutes } from './routes/usage/usage.routes.ts';
import { replayRoutes } from './routes/webhooks/replay.routes.ts';
import { webhookActionsRoutes } from './routes/webhooks/webhook-actions.routes.ts';
import { webhooksRoutes } from './routes/webhooks/webhooks.routes.ts';

const API_DESCRIPTION =
  'Delivers every order, fulfillment and campaign event of a Gharart handle to its webhooks and email subscribers, ' +
  'with no silent drops, and explains every failure with a request id.';

/** Maps what Hono itself throws (validator, body parsing) onto our problem types. */
function fromHttpException(err: HTTPException): ProblemError {
  const message = err.message ?? '';
  if (err.status === 400 && /malformed json/i.test(message)) return problems.malformedJson();
  if (err.status === 400 && /content-type/i.test(message)) return problems.unsupportedMediaType(undefined);
  if (err.status === 413) return problems.payloadTooLarge(0);
  if (err.status === 415) return problems.unsupportedMediaType(undefined);
  if (err.status === 404) return problems.notFound();
  if (err.status === 401) return problems.unauthenticated('Authentication failed.');
  return problems.validation([], message || 'The request could not be understood.');
}

/**
 * Makes every failure of `app` a problem+json response: thrown problems, Hono's own exceptions, unknown routes (404),
 * unsupported methods (405 with Allow) and unexpected errors (500, logged with the stack, never sent).
 * Call after all routes are mounted.
 */
export function installProblemHandling(app: OpenAPIHono<AppEnv>): void {
  // Which methods exist for a path, so an unsupported method gets 405 with Allow instead of 404.
  const methodsByPath = new TrieRouter<string>();
  for (const r of app.routes) if (r.method !== 'ALL') methodsByPath.add(r.method, r.path, r.method);
  const allowed = (path: string) =>
    ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((m) => methodsByPath.match(m, path)[0].length > 0);

  const render = (c: Context<AppEnv>, problem: ProblemError) =>
    problemResponse(problem, c.get('requestId') ?? 'unknown');

  app.notFound((c) => {
    const allow = allowed(c.req.path);
    if (allow.length) return render(c, problems.methodNotAllowed(c.req.method, allow));
    return render(c, problems.notFound(`No route matches ${c.req.method} ${c.req.path}.`));
  });

  app.onError((err, c) => {
    if (err instanceof ProblemError) return render(c, err);
    if (err instanceof HTTPException) return render(c, fromHttpException(err));
    const transient = isTransientStorageError(err);
    console.error(
      JSON.stringify({
        level: 'error',
        msg: transient ? 'storage_unavailable' : 'unhandled_error',
        requestId: c.get('requestId'),
        deploymentId: c.get('deploymentId'),
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
        stack: err instanceof Error ? err.stack : undefined,
      }),
    );
    if (transient) {
      return render(
        c,
        problems.unavailable(
          'The database did not answer or did not confirm the write, which may or may not have been applied. ' +
            'Retry the request: an event with a sourceEventId is never stored twice; before retrying another ' +
            'create, list the resource to see whether it exists.',
        ),
      );
    }
    return render(c, problems.internal());
  });
}

export function buildApp() {
  const app = createRouter();
  app.use('*', requestContext());
  app.use('*', bodyGuard());
  // Every API query in one D1 session: replicas for reads, the bookmark back to the client (read your writes).
  app.use('/v2/*', d1Session());

  app.route('/', metaRoutes);
  app.route('/', tokensRoutes);
  app.route('/', internalRoutes);
  app.route('/', handlesRoutes);
  app.route('/', webhooksRoutes);
  // Before the feed: `notifications/email-subscriptions` must not be read as a notification id.
  app.route('/', emailSubscriptionsRoutes);
  app.route('/', settingsRoutes);
  app.route('/', notificationsRoutes);
  app.route('/', supportRoutes);
  app.route('/', eventsRoutes);
  app.route('/', webhookActionsRoutes);
  app.route('/', replayRoutes);
  app.route('/', deliveriesRoutes);
  app.route('/', deliveryStatsRoutes);
  app.route('/', healthRoutes);
  app.route('/', usageRoutes);
  app.route('/', placementRoutes);
  app.route('/', archivesRoutes);
  app.route('/', emailPagesRoutes);
  app.route('/', resendRoutes);
  app.route('/', snsRoutes);
  app.route('/', devRoutes);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'A JWT (HS256 locally, RS256/ES256 via JWKS in production) or a personal access token (`grt_…`).',
  });

  registerCatalogWebhooks(app.openAPIRegistry);

  let document: Record<string, unknown> | undefined;
  const getDocument = () =>
    (document ??= withCodeSamples(
      withD1Bookmarks(
        app.getOpenAPI31Document({
          openapi: '3.1.0',
          info: { title: 'gharart-notify', version: '2.0.0', description: API_DESCRIPTION },
          servers: [{ url: '/' }],
          // One tag per resource, each operation under exactly one (test/app/openapi.test.ts checks both).
          tags: [
            { name: 'Meta', description: 'Liveness, the event catalog and this API description.' },
            { name: 'Tokens', description: 'Personal access tokens (`grt_…`) of the calling user.' },
            { name: 'Internal', description: 'Control-plane provisioning: handles and memberships (service tokens).' },
            { name: 'Handles', description: 'The handles you can act on, and your role and scopes on each.' },
            {
              name: 'Webhooks',
              description: 'Subscriptions, test sends, secret rotation, the delivery log, recovery.',
            },
            { name: 'Deliveries', description: 'One delivery to one recipient: redrive a dead or skipped one.' },
            {
              name: 'Email Subscriptions',
              description: 'Email subscribers (double opt-in), the owner default email, test mails.',
            },
            {
              name: 'Notification Settings',
              description: "A handle's channels, event filter and owner fallback; the evaluate dry run.",
            },
            { name: 'Notifications', description: 'The feed: every accepted event with its per-recipient deliveries.' },
            { name: 'Events', description: 'Publishing events for a handle.' },
            { name: 'Delivery Health', description: "What loses or delays a handle's events, with what fixes it." },
            {
              name: 'Archives',
              description: 'Notifications past their retention, archived to R2 before they were purged.',
            },
            { name: 'Support', description: 'Reporting a problem to Gharart support.' },
            {
              name: 'Email Pages',
              description: 'The confirm and unsubscribe pages the links in mails open (no login).',
            },
            { name: 'Providers', description: 'Callbacks from email providers: bounces, complaints, confirmations.' },
            { name: 'Development', description: 'Local development only; absent anywhere else.' },
          ],
        }) as unknown as Record<string, unknown>,
      ),
    ));
  app.route('/', docsRoutes(getDocument));
  // HTML pages over this same app: each dashboard handler calls the API in process (no rule lives twice).
  app.route(
    '/dashboard',
    dashboardRoutes((request, env, ctx) => app.fetch(request, env, ctx)),
  );

  installProblemHandling(app);
  return Object.assign(app, { getDocument });
}
