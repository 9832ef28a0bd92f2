/**
 * How a dashboard handler runs (docs/design.md#dashboard): the page frame, rendering a page or the API's problem as a
 * page, the way back to sign-in, the CSRF check of every form post, the outcome a redirect announces, and the context
 * every handle page loads before its own calls.
 *
 * Each handle page first asks `GET /v2/handles/{handle}` (so a handle you cannot see is the API's 404 before anything
 * else) and `GET /v2/handles` (the handle switcher).
 */
import type { Context } from 'hono';
import type { Child } from 'hono/jsx';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { AppEnv } from '../env.ts';
import { HANDLE_PATTERN } from '../lib/handles.ts';
import { problemBody, problems } from '../lib/problem.ts';
import type { EventType, EventTypeList, HandleAccess, MyHandleList } from './answers.ts';
import { type Api, type ApiFetch, apiFor, type Problem } from './api.ts';
import { type Form, formOf } from './forms.ts';
import { ErrorPage, Layout, type PageFrame } from './layout.tsx';
import { csrfMatches, endSession, randomToken, readSession, type Session } from './session.ts';

export type C = Context<AppEnv>;

/** Outcomes a redirect may announce: fixed texts, so a crafted link cannot put words on the page. */
const FLASH = {
  webhook_deleted: 'Webhook deleted; its pending deliveries are cancelled.',
  webhook_saved: 'Webhook saved.',
  webhook_enabled: 'Webhook enabled.',
  webhook_disabled: 'Webhook disabled; its new deliveries are skipped.',
  retry_queued: 'Delivery queued again.',
  email_added: 'Subscribed. The address got a confirmation link and receives nothing else until it confirms.',
  email_deleted: 'Email subscription deleted.',
  owner_email_saved: 'Owner default email saved.',
  owner_email_unset: 'Owner default email unset.',
};

/** An outcome a redirect may announce (`?ok=`). */
export type Flash = keyof typeof FLASH;

/** See Other to `path`, whose page then shows the text of `flash`. */
export const redirectWith = (c: C, path: string, flash: Flash) => c.redirect(`${path}?ok=${flash}`, 303);

/** The frame of a page: its title, the ids for support and the path the report form names. */
export const baseFrame = (c: C, title: string, extra: Partial<PageFrame> = {}): PageFrame => ({
  title,
  requestId: c.get('requestId'),
  deploymentId: c.get('deploymentId'),
  path: c.req.path,
  ...extra,
});

/** Renders `body` in the page layout. */
export const render = (c: C, frame: PageFrame, body: Child, status = 200) =>
  c.html(<Layout frame={frame}>{body}</Layout>, status as ContentfulStatusCode);

/** A problem as the whole page, with its status. */
export const renderProblem = (c: C, frame: PageFrame, problem: Problem, signedIn: boolean) =>
  render(c, { ...frame, title: problem.title }, <ErrorPage problem={problem} signedIn={signedIn} />, problem.status);

/** Ends the session and sends the caller to sign in, coming back to this page (a GET) afterwards. */
export const toLogin = (c: C, message?: string) => {
  endSession(c);
  const next = c.req.method === 'GET' ? c.req.path + (new URL(c.req.url).search || '') : '/dashboard';
  const q = new URLSearchParams({ next });
  if (message) q.set('m', message);
  return c.redirect(`/dashboard/login?${q}`, 303);
};

/** Session + CSRF for a POST; a Response when the caller must sign in again or the token is wrong. */
export async function postGuard(c: C): Promise<{ session: Session; form: Form } | Response> {
  const session = await readSession(c);
  if (!session) return toLogin(c, 'expired');
  const form = await formOf(c);
  if (!csrfMatches(session.csrf, form._csrf)) {
    const refusal = problems.forbidden(
      'The form is stale or did not come from this dashboard (CSRF check failed). Reload the page and try again.',
    );
    return renderProblem(c, baseFrame(c, 'Form expired'), problemBody(refusal, c.get('requestId')), true);
  }
  return { session, form };
}

/** Everything a handle page needs before its own calls: the session, the API client, the access check, the switcher. */
export interface HandleContext {
  session: Session;
  api: Api;
  handle: string;
  access: HandleAccess;
  frame: PageFrame;
  /** The posted form (empty for a GET). */
  form: Form;
  /** A fresh idempotency key for each form on the page. */
  idem: () => string;
}

/** Loads the handle page context; a Response when the API refused (its status and words) or the session ended. */
async function handleContext(
  c: C,
  fetchApp: ApiFetch,
  tab: PageFrame['tab'],
  title: string,
): Promise<HandleContext | Response> {
  const handle = c.req.param('handle') ?? '';
  let session: Session | null;
  let form: Form = {};
  if (c.req.method === 'POST') {
    const g = await postGuard(c);
    if (g instanceof Response) return g;
    session = g.session;
    form = g.form;
  } else {
    session = await readSession(c);
    if (!session) return toLogin(c);
  }
  const api = apiFor(c, fetchApp, session.token);
  const frame = baseFrame(c, title, { csrf: session.csrf, tab });
  if (!HANDLE_PATTERN.test(handle)) {
    // The API answers a malformed handle with its 404; ask it, so the words are the same.
    const res = await api.call('GET', `/v2/handles/${encodeURIComponent(handle)}`);
    const problem = res.ok ? problemBody(problems.notFound('Not found.'), c.get('requestId')) : res.problem;
    return renderProblem(c, frame, problem, true);
  }
  const [access, mine] = await Promise.all([
    api.call<HandleAccess>('GET', `/v2/handles/${handle}`),
    api.call<MyHandleList>('GET', '/v2/handles'),
  ]);
  if (!access.ok && access.status === 401) return toLogin(c, 'expired');
  frame.handles = mine.ok ? mine.data.data : [];
  if (!access.ok) return renderProblem(c, frame, access.problem, true);
  frame.handle = handle;
  frame.role = access.data.role;
  const flash = c.req.query('ok');
  // Own keys only: `?ok=constructor` must not find Object.prototype's members.
  const flashText = flash && Object.hasOwn(FLASH, flash) ? FLASH[flash as Flash] : undefined;
  if (flashText) frame.flash = flashText;
  return { session, api, handle, access: access.data, frame, form, idem: randomToken };
}

/**
 * Handlers of one handle page (its tab and title): each runs with the context loaded, or the API's refusal (or the
 * way back to sign-in) answered before it runs.
 */
export const handlePage =
  (fetchApp: ApiFetch, tab: PageFrame['tab'], title: string) =>
  (fn: (c: C, h: HandleContext) => Response | Promise<Response>) =>
  async (c: C) => {
    const h = await handleContext(c, fetchApp, tab, title);
    return h instanceof Response ? h : fn(c, h);
  };

/** The event catalog (empty when the API refuses it: the forms then offer no types). */
export async function eventTypes(api: Api): Promise<EventType[]> {
  const res = await api.call<EventTypeList>('GET', '/v2/event-types');
  return res.ok ? res.data.data : [];
}
