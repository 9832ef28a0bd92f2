/**
 * Public email pages (docs/design.md#routes). GETs only show a page with a button and never change anything (mail
 * scanners and link previews follow links); POSTs act:
 * - `/v2/email/confirm?token=`: double opt-in confirmation (single use, 72 h);
 * - `/v2/email/unsubscribe?token=`: unsubscribe — also the RFC 8058 one-click request a mail client sends with
 *   `List-Unsubscribe=One-Click`.
 * A person (Accept: text/html) gets a page even for a bad link; an API client gets the usual problem+json.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { findOnShards, requireWritable } from '../../db/shards.ts';
import { confirmByToken } from '../../email/confirmation.ts';
import { type UnsubscribeTarget, unsubscribeTokenId, verifyUnsubscribeToken } from '../../email/unsubscribe.ts';
import type { AppEnv } from '../../env.ts';
import { createRouter, errorResponses } from '../../http/openapi.ts';
import { pageSecurityHeaders } from '../../http/security-headers.ts';
import { ProblemError, problems } from '../../lib/problem.ts';
import { confirmFormPage, EMAIL_PAGE_CSS, messagePage, unsubscribeFormPage } from './email-pages.page.tsx';

const TokenQuery = z.object({
  token: z
    .string()
    .min(1)
    .max(200)
    .openapi({ param: { name: 'token', in: 'query' }, description: "From the mail's link." }),
});

/** A person's browser gets a readable page with the problem's status; an API client gets the problem itself. */
function refuse(c: Context<AppEnv>, problem: ProblemError) {
  if (!/text\/html/.test(c.req.header('accept') ?? '')) throw problem;
  // The request log reads the problem from here as for a thrown one: a planned 503 (a move) is a warning.
  c.error = problem;
  for (const [name, value] of Object.entries(problem.headers)) c.header(name, value);
  return c.html(messagePage(problem.title, problem.detail), problem.status as 400 | 404 | 410 | 503);
}

/** Runs a link's write, or refuses it as above: 503 while the handle moves between shards (requireWritable). */
async function orRefuse<T>(c: Context<AppEnv>, write: () => Promise<T>): Promise<T | Response> {
  try {
    return await write();
  } catch (err) {
    if (err instanceof ProblemError) return refuse(c, err);
    throw err;
  }
}

async function subscriptionOf(
  env: Env,
  token: string,
): Promise<{ id: string; email: string; handle: string; status: string; d1: D1Database }> {
  const id = unsubscribeTokenId(token);
  // The link names the subscription, not its handle: its shard is the one that has it (docs/design.md#shards).
  const hit = id
    ? await findOnShards(env, (d1) =>
        d1
          .prepare(
            'SELECT id, kind, email, email_normalized AS emailNormalized, handle, status ' +
              'FROM email_subscriptions WHERE id = ?1',
          )
          .bind(id)
          .first<UnsubscribeTarget & { email: string; handle: string; status: string }>(),
      )
    : null;
  const row = hit?.found ?? null;
  // A forged token, a deleted subscription and a link mailed to an address the subscription no longer has all look
  // the same: the link does nothing any more, and says nothing about the subscription's current address.
  if (!(await verifyUnsubscribeToken(env.ENCRYPTION_KEY, token, row)) || !row) {
    throw problems.notFound('This unsubscribe link is not valid (or the subscription no longer exists).');
  }
  return { ...row, d1: hit!.d1 };
}

const showRoute = createRoute({
  method: 'get',
  path: '/v2/email/unsubscribe',
  operationId: 'getUnsubscribePage',
  tags: ['Email Pages'],
  summary: 'Unsubscribe page (changes nothing by itself)',
  request: { query: TokenQuery },
  responses: {
    200: { description: 'A page with an Unsubscribe button.', content: { 'text/html': { schema: z.string() } } },
    ...errorResponses(400, 404),
  },
});

const unsubscribeRoute = createRoute({
  method: 'post',
  path: '/v2/email/unsubscribe',
  operationId: 'unsubscribeEmail',
  tags: ['Email Pages'],
  summary: 'Unsubscribe (RFC 8058 one-click)',
  description: 'No authentication: the token is the proof. Unsubscribing twice is fine.',
  request: { query: TokenQuery },
  responses: {
    200: { description: 'Unsubscribed.', content: { 'text/html': { schema: z.string() } } },
    ...errorResponses(400, 404, 413, 415),
  },
});

const showConfirmRoute = createRoute({
  method: 'get',
  path: '/v2/email/confirm',
  operationId: 'getConfirmationPage',
  tags: ['Email Pages'],
  summary: 'Confirmation page (changes nothing by itself)',
  request: { query: TokenQuery },
  responses: {
    200: { description: 'A page with a Confirm button.', content: { 'text/html': { schema: z.string() } } },
    ...errorResponses(400),
  },
});

const confirmRoute = createRoute({
  method: 'post',
  path: '/v2/email/confirm',
  operationId: 'confirmEmailSubscription',
  tags: ['Email Pages'],
  summary: 'Confirm an email subscription (double opt-in)',
  description: 'No authentication: the single-use token from the confirmation mail is the proof.',
  request: { query: TokenQuery },
  responses: {
    200: { description: 'Confirmed.', content: { 'text/html': { schema: z.string() } } },
    ...errorResponses(400, 404, 410, 413, 415),
  },
});

const router = createRouter();
// The links carry a token: a CSP, no framing and no Referer (src/http/security-headers.ts), whatever the answer.
const pageHeaders = pageSecurityHeaders({ inlineStyles: [EMAIL_PAGE_CSS] });
router.use('/v2/email/confirm', pageHeaders);
router.use('/v2/email/unsubscribe', pageHeaders);

export const emailPagesRoutes = router
  .openapi(showConfirmRoute, (c) => {
    const { token } = c.req.valid('query');
    return c.html(confirmFormPage(token), 200);
  })
  .openapi(confirmRoute, async (c) => {
    const { token } = c.req.valid('query');
    const result = await orRefuse(c, () => confirmByToken(c.env, token));
    if (result instanceof Response) return result as never;
    if (!result.ok) {
      return refuse(
        c,
        result.reason === 'expired'
          ? new ProblemError('gone', 'This confirmation link has expired; ask for a new one to be sent.')
          : problems.notFound('This confirmation link is not valid or was already used.'),
      ) as never;
    }
    return c.html(
      messagePage('Subscription confirmed', `${result.email} will now receive notifications for ${result.handle}.`),
      200,
    );
  })
  .openapi(showRoute, async (c) => {
    const { token } = c.req.valid('query');
    const sub = await subscriptionOf(c.env, token);
    if (sub.status === 'unsubscribed') {
      return c.html(
        messagePage('Already unsubscribed', `${sub.email} no longer receives notifications for ${sub.handle}.`),
        200,
      );
    }
    return c.html(unsubscribeFormPage(token, sub), 200);
  })
  .openapi(unsubscribeRoute, async (c) => {
    const { token } = c.req.valid('query');
    const sub = await subscriptionOf(c.env, token);
    // In the last pass of a move the rows are being copied: a write here would stay behind on the source (503).
    const refused = await orRefuse(c, () => requireWritable(c.env, sub.handle));
    if (refused instanceof Response) return refused as never;
    await sub.d1
      .prepare(
        'UPDATE email_subscriptions ' +
          "SET status = 'unsubscribed', status_reason = 'Unsubscribed with the link in a notification mail.', " +
          'updated_at = ?2 ' +
          "WHERE id = ?1 AND status <> 'unsubscribed'",
      )
      .bind(sub.id, new Date().toISOString())
      .run();
    return c.html(
      messagePage('Unsubscribed', `${sub.email} will no longer receive notifications for ${sub.handle}.`),
      200,
    );
  });
