/**
 * `/dashboard`: the lifecycle operations engineer's pages (docs/design.md#dashboard), server-rendered with hono/jsx.
 *
 * Every handler calls the real API in process with the session's token ({@link apiFor}) and renders its JSON or its
 * problem: scopes, roles, the 404 for non-members, validation and throttles are the API's, never re-implemented here.
 * Each page first asks `GET /v2/handles/{handle}` (so a handle you cannot see is the API's 404 before anything else)
 * and `GET /v2/handles` (the handle switcher).
 *
 * Forms: every POST carries the session's CSRF token (checked here, constant time) and must come from this origin
 * (hono/csrf); writes carry a per-form Idempotency-Key, so a double submit or a reload replays instead of repeating.
 */
import { type Context, Hono } from 'hono';
import { getCookie } from 'hono/cookie';
import { csrf } from 'hono/csrf';
import { raw } from 'hono/html';
import { HTTPException } from 'hono/http-exception';
import type { Child } from 'hono/jsx';
import { type AppEnv, config } from '../env.ts';
import { HANDLE_PATTERN } from '../lib/handles.ts';
import { type Api, type ApiFetch, apiFor, type Problem } from './api.ts';
import { DASHBOARD_CSS, DASHBOARD_JS } from './assets.ts';
import { type CopyId, handleBase, Layout, type PageFrame } from './layout.tsx';
import {
  EmailPage,
  ErrorPage,
  type EventType,
  FeedPage,
  HandlesPage,
  LoginPage,
  NotificationPage,
  OverviewPage,
  ReportResult,
  SettingsPage,
  WebhookPage,
  type WebhookRow,
  WebhooksPage,
} from './pages.tsx';
import {
  csrfMatches,
  endSession,
  LOGIN_CSRF_COOKIE,
  loginCsrf,
  randomToken,
  readSession,
  type Session,
  startSession,
} from './session.ts';

type C = Context<AppEnv>;
type Json = Record<string, any>;
type Form = Record<string, string>;

const HANDLE = HANDLE_PATTERN;
const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Outcomes a redirect may announce: fixed texts, so a crafted link cannot put words on the page. */
const FLASH: Record<string, string> = {
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

const SECURITY_HEADERS: Record<string, string> = {
  // Nothing but this origin's own stylesheet and script; no frames, no plugins, forms only to this origin.
  'Content-Security-Policy':
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

/** `YYYY-MM-DDTHH:MM:SS` (a datetime-local value, read as UTC) → ISO 8601; anything else unchanged. */
export function fromLocalInput(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?$/.exec(value.trim());
  return m ? `${m[1]}${m[2] ?? ':00'}Z` : value.trim();
}

/** ISO 8601 → a datetime-local value in UTC. */
export function toLocalInput(iso: string): string {
  return new Date(iso).toISOString().slice(0, 19);
}

const localProblem = (c: C, detail: string, path: string): Problem => ({
  type: '/docs#problem-validation',
  title: 'Your request is not valid',
  status: 400,
  detail,
  requestId: c.get('requestId'),
  errors: [{ path, message: detail }],
});

/** The parsed value of a JSON textarea (empty → null), or a problem naming the field. */
function jsonField(c: C, form: Form, name: string, apiPath: string): { value: unknown } | { problem: Problem } {
  const raw = (form[name] ?? '').trim();
  if (!raw) return { value: null };
  try {
    return { value: JSON.parse(raw) };
  } catch {
    return { problem: localProblem(c, `${name} is not valid JSON.`, apiPath) };
  }
}

/** "a, b c" → ["a","b","c"]; empty → null. */
function typesField(value: string | undefined): string[] | null {
  const parts = (value ?? '').split(/[\s,]+/).filter(Boolean);
  return parts.length ? parts : null;
}

/** "Name: value" lines → a header record, or a problem naming the line. */
function headersField(c: C, value: string | undefined): { value: Record<string, string> } | { problem: Problem } {
  const out: Record<string, string> = {};
  for (const line of (value ?? '').split(/\r?\n/)) {
    if (!line.trim()) continue;
    const i = line.indexOf(':');
    if (i <= 0)
      return { problem: localProblem(c, `Header line "${line.slice(0, 60)}" is not "Name: value".`, 'body.headers') };
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return { value: out };
}

async function formOf(c: C): Promise<Form> {
  const body = await c.req.parseBody();
  const out: Form = {};
  for (const [k, v] of Object.entries(body)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** Everything a handle page needs before its own calls: the session, the API client, the access check, the switcher. */
interface HandleContext {
  session: Session;
  api: Api;
  handle: string;
  access: Json;
  frame: PageFrame;
  form: Form;
  idem: () => string;
}

/** Writes carry the form's idempotency key (a replay within 24 h answers with the stored response). */
function idemHeaders(form: Form, suffix = ''): Record<string, string> {
  const key = form._idem;
  return key && /^[A-Za-z0-9_-]{16,64}$/.test(key) ? { 'idempotency-key': `dash-${key}${suffix}` } : {};
}

/** The dashboard router; `fetchApp` is the app's own fetch (see src/app.ts). */
export function dashboardRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();

  r.use('*', async (c, next) => {
    await next();
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) if (!c.res.headers.has(k)) c.res.headers.set(k, v);
  });

  r.get('/assets/app.css', (c) =>
    c.body(DASHBOARD_CSS, 200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'public, max-age=300' }),
  );
  r.get('/assets/app.js', (c) =>
    c.body(DASHBOARD_JS, 200, {
      'content-type': 'text/javascript; charset=utf-8',
      'cache-control': 'public, max-age=300',
    }),
  );

  // A form may only be posted from a page of this origin (Origin header), on top of the per-session token below.
  r.use('*', csrf({ origin: (origin, c) => origin === new URL(c.req.url).origin }));
  // hono/csrf refuses with an HTTPException 403: show it as a page; anything else goes to the app's problem handler.
  r.onError((err, c) => {
    if (err instanceof HTTPException && err.status === 403) {
      return renderProblem(
        c,
        baseFrame(c, 'Not allowed'),
        {
          type: '/docs#problem-forbidden',
          title: 'Not allowed',
          status: 403,
          detail: 'This form was not posted from a dashboard page of this site (Origin check failed).',
          requestId: c.get('requestId'),
        },
        false,
      );
    }
    throw err;
  });

  const baseFrame = (c: C, title: string, extra: Partial<PageFrame> = {}): PageFrame => ({
    title,
    requestId: c.get('requestId'),
    deploymentId: c.get('deploymentId'),
    path: c.req.path,
    ...extra,
  });

  // The doctype keeps browsers in standards mode (JSX cannot express it).
  const render = (c: C, frame: PageFrame, body: Child, status = 200) =>
    c.html(
      <>
        {raw('<!doctype html>')}
        <Layout frame={frame}>{body}</Layout>
      </>,
      status as 200,
    );

  const renderProblem = (c: C, frame: PageFrame, problem: Problem, signedIn: boolean) =>
    render(c, { ...frame, title: problem.title }, <ErrorPage problem={problem} signedIn={signedIn} />, problem.status);

  const toLogin = (c: C, message?: string) => {
    endSession(c);
    const next = c.req.method === 'GET' ? c.req.path + (new URL(c.req.url).search || '') : '/dashboard';
    const q = new URLSearchParams({ next });
    if (message) q.set('m', message);
    return c.redirect(`/dashboard/login?${q}`, 303);
  };

  /** Session + CSRF for a POST; null when the caller must sign in again or the token is wrong. */
  async function postGuard(c: C): Promise<{ session: Session; form: Form } | Response> {
    const session = await readSession(c);
    if (!session) return toLogin(c, 'expired');
    const form = await formOf(c);
    if (!csrfMatches(session.csrf, form._csrf)) {
      return renderProblem(
        c,
        baseFrame(c, 'Form expired'),
        {
          type: '/docs#problem-forbidden',
          title: 'Not allowed',
          status: 403,
          detail:
            'The form is stale or did not come from this dashboard (CSRF check failed). Reload the page and try again.',
          requestId: c.get('requestId'),
        },
        true,
      );
    }
    return { session, form };
  }

  /** Loads the handle page context; a Response when the API refused (its status and words) or the session ended. */
  async function handleContext(c: C, tab: PageFrame['tab'], title: string): Promise<HandleContext | Response> {
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
    if (!HANDLE.test(handle)) {
      // The API answers a malformed handle with its 404; ask it, so the words are the same.
      const res = await api.call('GET', `/v2/handles/${encodeURIComponent(handle)}`);
      return renderProblem(
        c,
        frame,
        res.ok ? { type: 'about:blank', title: 'Not found', status: 404, detail: 'Not found.' } : res.problem,
        true,
      );
    }
    const [access, mine] = await Promise.all([
      api.call('GET', `/v2/handles/${handle}`),
      api.call('GET', '/v2/handles'),
    ]);
    if (!access.ok && access.status === 401) return toLogin(c, 'expired');
    frame.handles = mine.ok ? mine.data.data : [];
    if (!access.ok) return renderProblem(c, frame, access.problem, true);
    frame.handle = handle;
    frame.role = access.data.role;
    const flash = c.req.query('ok');
    if (flash && FLASH[flash]) frame.flash = FLASH[flash];
    return { session, api, handle, access: access.data, frame, form, idem: randomToken };
  }

  /** A handler for a handle page: the context loaded (or the API's refusal answered) before `fn` runs. */
  const onHandle =
    (tab: PageFrame['tab'], title: string, fn: (c: C, h: HandleContext) => Response | Promise<Response>) =>
    async (c: C) => {
      const h = await handleContext(c, tab, title);
      return h instanceof Response ? h : fn(c, h);
    };

  const eventTypes = async (api: Api): Promise<EventType[]> => {
    const res = await api.call('GET', '/v2/event-types');
    return res.ok ? res.data.data : [];
  };

  // ───────────── sign-in, sign-out, switcher ─────────────

  r.get('/', async (c) => {
    const session = await readSession(c);
    if (!session) return c.redirect('/dashboard/login', 303);
    const api = apiFor(c, fetchApp, session.token);
    const mine = await api.call('GET', '/v2/handles');
    if (!mine.ok && mine.status === 401) return toLogin(c, 'expired');
    if (!mine.ok) return renderProblem(c, baseFrame(c, 'Error', { csrf: session.csrf }), mine.problem, true);
    const handles = mine.data.data as Json[];
    if (handles.length === 1) return c.redirect(handleBase(handles[0]!.handle), 303);
    return render(
      c,
      baseFrame(c, 'Your handles', { csrf: session.csrf, handles: handles as PageFrame['handles'] }),
      <HandlesPage handles={handles as any} />,
    );
  });

  r.get('/login', async (c) => {
    const m = c.req.query('m');
    const message =
      m === 'expired'
        ? 'Your session ended (expired, signed out or the token was revoked). Sign in again.'
        : m === 'out'
          ? 'Signed out.'
          : null;
    return render(
      c,
      baseFrame(c, 'Sign in'),
      <LoginPage csrf={loginCsrf(c)} message={message} devHint={config(c.env).isDevelopment} />,
    );
  });

  r.post('/login', async (c) => {
    const form = await formOf(c);
    if (!csrfMatches(getCookie(c, LOGIN_CSRF_COOKIE), form._csrf)) {
      return render(
        c,
        baseFrame(c, 'Sign in'),
        <LoginPage csrf={loginCsrf(c)} message="The sign-in form expired. Try again." devHint={false} />,
        403,
      );
    }
    const token = (form.token ?? '').trim();
    // The token is checked by the API itself, with the same rules and messages as any client's call.
    const mine = await apiFor(c, fetchApp, token || null).call('GET', '/v2/handles');
    if (!mine.ok) {
      return render(
        c,
        baseFrame(c, 'Sign in'),
        <LoginPage csrf={loginCsrf(c)} problem={mine.problem} devHint={config(c.env).isDevelopment} />,
        mine.status,
      );
    }
    await startSession(c, token);
    const next = c.req.query('next');
    const target =
      next?.startsWith('/dashboard') && !next.startsWith('//') && !next.includes('\\') ? next : '/dashboard';
    return c.redirect(target, 303);
  });

  r.post('/logout', async (c) => {
    const session = await readSession(c);
    const form = await formOf(c);
    if (session && !csrfMatches(session.csrf, form._csrf)) return c.redirect('/dashboard', 303);
    endSession(c);
    return c.redirect('/dashboard/login?m=out', 303);
  });

  r.get('/switch', (c) => {
    const handle = c.req.query('handle') ?? '';
    return c.redirect(HANDLE.test(handle) ? handleBase(handle) : '/dashboard', 303);
  });

  // ───────────── report a problem ─────────────

  r.post('/report', async (c) => {
    const g = await postGuard(c);
    if (g instanceof Response) return g;
    const { session, form } = g;
    const api = apiFor(c, fetchApp, session.token);
    const handle = HANDLE.test(form.handle ?? '') ? form.handle : undefined;
    const page = (form.page ?? '').slice(0, 500);
    const res = await api.call('POST', '/v2/support/report', {
      body: {
        summary: (form.summary ?? '').slice(0, 200),
        details: `${form.details ?? ''}\n\n— Filed from the dashboard page ${page}\n${(form.ids ?? '').slice(0, 2000)}`,
        ...(handle ? { handle } : {}),
        ...(form.requestId && /^[A-Za-z0-9._:-]{8,128}$/.test(form.requestId) ? { requestId: form.requestId } : {}),
        reproArtifact: { page, ids: (form.ids ?? '').slice(0, 2000) },
      },
    });
    const mine = await api.call('GET', '/v2/handles');
    const frame = baseFrame(c, 'Report a problem', {
      csrf: session.csrf,
      handles: mine.ok ? mine.data.data : [],
      ...(res.ok ? { ids: [{ label: 'Report id', value: res.data.reportId }] } : {}),
    });
    return render(
      c,
      frame,
      <>
        {<ReportResult result={res.ok ? res.data : null} problem={res.ok ? null : res.problem} />}
        <p>
          <a href={page.startsWith('/dashboard') ? page : '/dashboard'}>Back</a>
        </p>
      </>,
      res.ok ? 201 : res.status,
    );
  });

  // ───────────── overview ─────────────

  r.get(
    '/h/:handle',
    onHandle('overview', 'Overview', async (c, h) => {
      const health = await h.api.call('GET', `/v2/handles/${h.handle}/health`);
      h.frame.title = `${h.access.displayName}: overview`;
      return render(
        c,
        h.frame,
        <OverviewPage
          handle={h.handle}
          access={h.access}
          health={health.ok ? health.data : null}
          problem={health.ok ? null : health.problem}
          csrf={h.session.csrf}
          idem={h.idem}
        />,
      );
    }),
  );

  // ───────────── webhooks ─────────────

  async function webhooksList(
    c: C,
    h: HandleContext,
    extra: { form?: Json; problem?: Problem | null; status?: number } = {},
  ) {
    const list = await h.api.call('GET', `/v2/handles/${h.handle}/webhooks`, {
      query: { cursor: c.req.method === 'GET' ? c.req.query('cursor') : undefined, limit: 50, include: 'activity' },
    });
    if (!list.ok) return renderProblem(c, h.frame, list.problem, true);
    // The 24 h sparkline: the API's hourly attempt counts, oldest hour first.
    const rows: WebhookRow[] = (list.data.data as Json[]).map((webhook) => ({
      webhook,
      buckets: ((webhook.activity24h?.succeeded as number[] | undefined) ?? []).map((ok, i) => ({
        ok,
        failed: webhook.activity24h.failed[i] as number,
      })),
    }));
    return render(
      c,
      h.frame,
      <WebhooksPage
        handle={h.handle}
        rows={rows}
        nextCursor={list.data.nextCursor}
        csrf={h.session.csrf}
        idem={h.idem()}
        form={extra.form}
        problem={extra.problem}
      />,
      extra.status ?? 200,
    );
  }

  r.get(
    '/h/:handle/webhooks',
    onHandle('webhooks', 'Webhooks', async (c, h) => {
      return webhooksList(c, h);
    }),
  );

  /** The webhook fields of a create or edit form as an API body, or a problem naming the bad field. */
  function webhookBody(c: C, form: Form, editing: boolean): { body: Json } | { problem: Problem } {
    const filter = jsonField(c, form, 'filterPolicy', 'body.filterPolicy');
    if ('problem' in filter) return filter;
    const body: Json = {
      url: (form.url ?? '').trim(),
      eventTypes: typesField(form.eventTypes),
      filterPolicy: filter.value,
    };
    const description = (form.description ?? '').trim();
    if (editing) body.description = description || null;
    else if (description) body.description = description;
    // Masked credential headers come back masked: only send headers when the user changed them.
    if (!editing || (form.headers ?? '').trim() !== (form.headersOriginal ?? '').trim()) {
      const headers = headersField(c, form.headers);
      if ('problem' in headers) return headers;
      body.headers = headers.value;
    }
    if (!editing) body.enabled = form.enabled === 'true';
    return { body };
  }

  r.post(
    '/h/:handle/webhooks',
    onHandle('webhooks', 'Webhooks', async (c, h) => {
      const built = webhookBody(c, h.form, false);
      if ('problem' in built) return webhooksList(c, h, { form: h.form, problem: built.problem, status: 400 });
      const res = await h.api.call('POST', `/v2/handles/${h.handle}/webhooks`, {
        body: built.body,
        headers: idemHeaders(h.form),
      });
      if (!res.ok) return webhooksList(c, h, { form: h.form, problem: res.problem, status: res.status });
      return webhookPage(c, h, res.data.id, { secret: res.data.secret, status: 201, flash: 'Webhook created.' });
    }),
  );

  async function webhookPage(
    c: C,
    h: HandleContext,
    id: string,
    extra: {
      secret?: string;
      testResult?: Json;
      recoverResult?: Json;
      problem?: Problem;
      problemContext?: string;
      form?: Json;
      status?: number;
      flash?: string;
    } = {},
  ) {
    const [w, log, types] = await Promise.all([
      h.api.call('GET', `/v2/handles/${h.handle}/webhooks/${id}`),
      h.api.call('GET', `/v2/handles/${h.handle}/webhooks/${id}/deliveries`, {
        query: { cursor: c.req.method === 'GET' ? c.req.query('cursor') : undefined, limit: 25 },
      }),
      eventTypes(h.api),
    ]);
    if (!w.ok) return renderProblem(c, h.frame, w.problem, true);
    h.frame.title = `Webhook ${w.data.url}`;
    h.frame.ids = [
      { label: 'Webhook id', value: id },
      ...(extra.testResult ? [{ label: 'Test delivery id', value: extra.testResult.deliveryId as string }] : []),
    ];
    if (extra.flash) h.frame.flash = extra.flash;
    const headersText = Object.entries((w.data.headers ?? {}) as Record<string, string>)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n');
    return render(
      c,
      h.frame,
      <WebhookPage
        handle={h.handle}
        webhook={w.data}
        deliveries={log.ok ? log.data.data : []}
        nextCursor={log.ok ? log.data.nextCursor : null}
        types={types}
        csrf={h.session.csrf}
        idem={h.idem}
        secret={extra.secret ?? null}
        testResult={extra.testResult ?? null}
        recoverResult={extra.recoverResult ?? null}
        problem={extra.problem ?? (log.ok ? null : log.problem)}
        problemContext={extra.problemContext ?? (log.ok ? undefined : 'Delivery log')}
        form={extra.form}
        recoverSince={toLocalInput(new Date(Date.now() - 24 * 3600_000).toISOString())}
        headersOriginal={headersText}
      />,
      extra.status ?? 200,
    );
  }

  /** The `:id` of the path when it looks like an id (the API answers anything else with its 404). */
  const pathId = (c: C) => {
    const id = c.req.param('id') ?? '';
    return SAFE_ID.test(id) ? id : 'invalid';
  };

  r.get(
    '/h/:handle/webhooks/:id',
    onHandle('webhooks', 'Webhook', async (c, h) => {
      return webhookPage(c, h, pathId(c));
    }),
  );

  r.post(
    '/h/:handle/webhooks/:id',
    onHandle('webhooks', 'Webhook', async (c, h) => {
      const id = pathId(c);
      const built = webhookBody(c, h.form, true);
      if ('problem' in built)
        return webhookPage(c, h, id, {
          problem: built.problem,
          problemContext: 'Not saved',
          form: h.form,
          status: 400,
        });
      const res = await h.api.call('PATCH', `/v2/handles/${h.handle}/webhooks/${id}`, {
        body: built.body,
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return webhookPage(c, h, id, {
          problem: res.problem,
          problemContext: 'Not saved',
          form: h.form,
          status: res.status,
        });
      return c.redirect(`${handleBase(h.handle)}/webhooks/${id}?ok=webhook_saved`, 303);
    }),
  );

  for (const [action, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    r.post(
      `/h/:handle/webhooks/:id/${action}`,
      onHandle('webhooks', 'Webhook', async (c, h) => {
        const id = pathId(c);
        const res = await h.api.call('PATCH', `/v2/handles/${h.handle}/webhooks/${id}`, {
          body: { enabled },
          headers: idemHeaders(h.form),
        });
        if (!res.ok)
          return webhookPage(c, h, id, { problem: res.problem, problemContext: `Not ${action}d`, status: res.status });
        return c.redirect(`${handleBase(h.handle)}/webhooks/${id}?ok=webhook_${action}d`, 303);
      }),
    );
  }

  r.post(
    '/h/:handle/webhooks/:id/delete',
    onHandle('webhooks', 'Webhook', async (c, h) => {
      const id = pathId(c);
      const res = await h.api.call('DELETE', `/v2/handles/${h.handle}/webhooks/${id}`, {
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return webhookPage(c, h, id, { problem: res.problem, problemContext: 'Not deleted', status: res.status });
      return c.redirect(`${handleBase(h.handle)}/webhooks?ok=webhook_deleted`, 303);
    }),
  );

  r.post(
    '/h/:handle/webhooks/:id/rotate',
    onHandle('webhooks', 'Webhook', async (c, h) => {
      const id = pathId(c);
      const grace = Number.parseInt(h.form.graceHours ?? '', 10);
      const res = await h.api.call('POST', `/v2/handles/${h.handle}/webhooks/${id}/rotate-secret`, {
        body: Number.isFinite(grace) ? { graceHours: grace } : {},
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return webhookPage(c, h, id, {
          problem: res.problem,
          problemContext: 'Secret not rotated',
          status: res.status,
        });
      return webhookPage(c, h, id, { secret: res.data.secret, flash: 'Secret rotated.' });
    }),
  );

  r.post(
    '/h/:handle/webhooks/:id/test',
    onHandle('webhooks', 'Webhook', async (c, h) => {
      const id = pathId(c);
      const eventType = (h.form.eventType ?? '').trim();
      const res = await h.api.call('POST', `/v2/handles/${h.handle}/webhooks/${id}/test`, {
        body: eventType ? { eventType } : {},
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return webhookPage(c, h, id, { problem: res.problem, problemContext: 'Test not sent', status: res.status });
      return webhookPage(c, h, id, { testResult: res.data });
    }),
  );

  r.post(
    '/h/:handle/webhooks/:id/recover',
    onHandle('webhooks', 'Webhook', async (c, h) => {
      const id = pathId(c);
      const res = await h.api.call('POST', `/v2/handles/${h.handle}/webhooks/${id}/recover`, {
        body: { since: fromLocalInput(h.form.since) ?? '' },
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return webhookPage(c, h, id, { problem: res.problem, problemContext: 'Nothing recovered', status: res.status });
      return webhookPage(c, h, id, { recoverResult: res.data });
    }),
  );

  r.post(
    '/h/:handle/deliveries/:id/retry',
    onHandle(undefined, 'Retry', async (c, h) => {
      const id = pathId(c);
      const back = h.form.back ?? '';
      const target = back.startsWith(`${handleBase(h.handle)}`) && !back.includes('//') ? back : handleBase(h.handle);
      const res = await h.api.call('POST', `/v2/handles/${h.handle}/deliveries/${id}/retry`, {
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return render(
          c,
          h.frame,
          <>
            <ErrorPage problem={res.problem} signedIn />
            <p>
              <a href={target}>Back</a>
            </p>
          </>,
          res.status,
        );
      return c.redirect(`${target}?ok=retry_queued`, 303);
    }),
  );

  // ───────────── email ─────────────

  async function emailPage(
    c: C,
    h: HandleContext,
    extra: {
      problem?: Problem;
      problemContext?: string;
      testResult?: Json;
      form?: Json;
      status?: number;
      flash?: string;
    } = {},
  ) {
    const list = await h.api.call('GET', `/v2/handles/${h.handle}/notifications/email-subscriptions`, {
      query: { cursor: c.req.method === 'GET' ? c.req.query('cursor') : undefined },
    });
    if (!list.ok) return renderProblem(c, h.frame, list.problem, true);
    if (extra.flash) h.frame.flash = extra.flash;
    if (extra.testResult?.deliveryId) h.frame.ids = [{ label: 'Test delivery id', value: extra.testResult.deliveryId }];
    return render(
      c,
      h.frame,
      <EmailPage
        handle={h.handle}
        subs={list.data.data}
        nextCursor={list.data.nextCursor}
        csrf={h.session.csrf}
        idem={h.idem}
        problem={extra.problem ?? null}
        problemContext={extra.problemContext}
        testResult={extra.testResult ?? null}
        form={extra.form}
        devMailbox={config(c.env).isDevelopment}
      />,
      extra.status ?? 200,
    );
  }

  r.get(
    '/h/:handle/email',
    onHandle('email', 'Email subscriptions', async (c, h) => {
      return emailPage(c, h);
    }),
  );

  r.post(
    '/h/:handle/email',
    onHandle('email', 'Email subscriptions', async (c, h) => {
      const filter = jsonField(c, h.form, 'filterPolicy', 'body.filterPolicy');
      if ('problem' in filter)
        return emailPage(c, h, {
          problem: filter.problem,
          problemContext: 'Not subscribed',
          form: h.form,
          status: 400,
        });
      const res = await h.api.call('POST', `/v2/handles/${h.handle}/notifications/email-subscriptions`, {
        body: { email: h.form.email ?? '', eventTypes: typesField(h.form.eventTypes), filterPolicy: filter.value },
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return emailPage(c, h, {
          problem: res.problem,
          problemContext: 'Not subscribed',
          form: h.form,
          status: res.status,
        });
      return c.redirect(`${handleBase(h.handle)}/email?ok=email_added`, 303);
    }),
  );

  r.post(
    '/h/:handle/email/owner-default',
    onHandle('email', 'Email subscriptions', async (c, h) => {
      const unset = h.form.action === 'unset';
      const res = await h.api.call('PUT', `/v2/handles/${h.handle}/notifications/owner-default-email`, {
        body: { email: unset ? null : (h.form.email ?? '') },
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return emailPage(c, h, {
          problem: res.problem,
          problemContext: 'Owner default email not changed',
          status: res.status,
        });
      return c.redirect(`${handleBase(h.handle)}/email?ok=${unset ? 'owner_email_unset' : 'owner_email_saved'}`, 303);
    }),
  );

  r.post(
    '/h/:handle/email/:id/delete',
    onHandle('email', 'Email subscriptions', async (c, h) => {
      const res = await h.api.call('DELETE', `/v2/handles/${h.handle}/notifications/email-subscriptions/${pathId(c)}`, {
        headers: idemHeaders(h.form),
      });
      if (!res.ok) return emailPage(c, h, { problem: res.problem, problemContext: 'Not deleted', status: res.status });
      return c.redirect(`${handleBase(h.handle)}/email?ok=email_deleted`, 303);
    }),
  );

  r.post(
    '/h/:handle/email/:id/test',
    onHandle('email', 'Email subscriptions', async (c, h) => {
      const res = await h.api.call(
        'POST',
        `/v2/handles/${h.handle}/notifications/email-subscriptions/${pathId(c)}/test`,
        { body: {}, headers: idemHeaders(h.form) },
      );
      if (!res.ok)
        return emailPage(c, h, { problem: res.problem, problemContext: 'Test not sent', status: res.status });
      return emailPage(c, h, { testResult: res.data });
    }),
  );

  r.post(
    '/h/:handle/email/:id/resend',
    onHandle('email', 'Email subscriptions', async (c, h) => {
      const res = await h.api.call(
        'POST',
        `/v2/handles/${h.handle}/notifications/email-subscriptions/${pathId(c)}/resend-confirmation`,
        { headers: idemHeaders(h.form) },
      );
      if (!res.ok)
        return emailPage(c, h, { problem: res.problem, problemContext: 'Confirmation not sent', status: res.status });
      return emailPage(c, h, {
        flash: `Confirmation mail sent again to ${res.data.email}.${res.data.statusReason ? ` ${res.data.statusReason}` : ''}`,
      });
    }),
  );

  // ───────────── settings ─────────────

  async function settingsPage(
    c: C,
    h: HandleContext,
    extra: {
      problem?: Problem;
      problemContext?: string;
      saved?: boolean;
      evaluation?: Json;
      evalForm?: Json;
      form?: Json;
      status?: number;
    } = {},
  ) {
    const [settings, types, recent] = await Promise.all([
      h.api.call('GET', `/v2/handles/${h.handle}/notification-settings`),
      eventTypes(h.api),
      h.api.call('GET', `/v2/handles/${h.handle}/notifications`, { query: { limit: 20 } }),
    ]);
    if (!settings.ok) return renderProblem(c, h.frame, settings.problem, true);
    return render(
      c,
      h.frame,
      <SettingsPage
        handle={h.handle}
        settings={settings.data}
        etag={settings.headers.get('etag') ?? ''}
        types={types}
        recent={recent.ok ? recent.data.data : []}
        csrf={h.session.csrf}
        idem={h.idem}
        problem={extra.problem ?? null}
        problemContext={extra.problemContext}
        saved={extra.saved}
        evaluation={extra.evaluation ?? null}
        evalForm={extra.evalForm}
        form={extra.form}
      />,
      extra.status ?? 200,
    );
  }

  r.get(
    '/h/:handle/settings',
    onHandle('settings', 'Notification settings', async (c, h) => {
      return settingsPage(c, h, { saved: c.req.query('ok') === 'saved' });
    }),
  );

  /** The settings form as the API's PUT body, or a problem; `form` keeps what the user typed for re-display. */
  function settingsBody(c: C, form: Form): { body: Json; display: Json } | { problem: Problem; display: Json } {
    const display = {
      channels: { webhook: { enabled: form.webhook === 'true' }, email: { enabled: form.email === 'true' } },
      ownerFallback: form.ownerFallback ?? 'critical',
      eventFilter: form.eventFilter ?? '',
    };
    const filter = jsonField(c, form, 'eventFilter', 'body.eventFilter');
    if ('problem' in filter) return { problem: filter.problem, display };
    return {
      body: { channels: display.channels, ownerFallback: display.ownerFallback, eventFilter: filter.value },
      display,
    };
  }

  r.post(
    '/h/:handle/settings',
    onHandle('settings', 'Notification settings', async (c, h) => {
      const action = h.form.action ?? 'save';
      const built = settingsBody(c, h.form);
      const evalForm = {
        source: h.form.source,
        eventType: h.form.eventType,
        notificationId: h.form.notificationId,
        event: h.form.event,
      };
      if (action === 'save') {
        if ('problem' in built)
          return settingsPage(c, h, {
            problem: built.problem,
            problemContext: 'Not saved',
            form: built.display,
            evalForm,
            status: 400,
          });
        const res = await h.api.call('PUT', `/v2/handles/${h.handle}/notification-settings`, {
          body: built.body,
          headers: { ...idemHeaders(h.form), ...(h.form.etag ? { 'if-match': h.form.etag } : {}) },
        });
        if (!res.ok)
          return settingsPage(c, h, {
            problem: res.problem,
            problemContext: 'Not saved',
            form: built.display,
            evalForm,
            status: res.status,
          });
        return c.redirect(`${handleBase(h.handle)}/settings?ok=saved`, 303);
      }
      // Evaluate: a dry run of the saved settings, or of the ones in the form (not saved).
      const useForm = action === 'evaluate-form';
      if (useForm && 'problem' in built)
        return settingsPage(c, h, {
          problem: built.problem,
          problemContext: 'Not evaluated',
          form: built.display,
          evalForm,
          status: 400,
        });
      const body: Json = {};
      if (useForm && 'body' in built) body.settings = built.body;
      if (h.form.source === 'custom') {
        const ev = jsonField(c, h.form, 'event', 'body.event');
        if ('problem' in ev)
          return settingsPage(c, h, {
            problem: ev.problem,
            problemContext: 'Not evaluated',
            form: built.display,
            evalForm,
            status: 400,
          });
        body.event = ev.value ?? {};
      } else if (h.form.source === 'recent' && h.form.notificationId) {
        const n = await h.api.call(
          'GET',
          `/v2/handles/${h.handle}/notifications/${encodeURIComponent(h.form.notificationId)}`,
        );
        if (!n.ok)
          return settingsPage(c, h, {
            problem: n.problem,
            problemContext: 'Not evaluated',
            form: built.display,
            evalForm,
            status: n.status,
          });
        body.event = {
          type: n.data.type,
          severity: n.data.severity,
          source: String(n.data.source).slice(0, 100),
          data: n.data.data,
        };
      } else {
        body.eventType = h.form.eventType || 'order.created';
      }
      const res = await h.api.call('POST', `/v2/handles/${h.handle}/notification-settings/evaluate`, { body });
      if (!res.ok)
        return settingsPage(c, h, {
          problem: res.problem,
          problemContext: 'Not evaluated',
          form: built.display,
          evalForm,
          status: res.status,
        });
      return settingsPage(c, h, { evaluation: res.data, evalForm, form: useForm ? built.display : undefined });
    }),
  );

  // ───────────── notifications ─────────────

  async function feedPage(
    c: C,
    h: HandleContext,
    extra: { problem?: Problem; problemContext?: string; status?: number } = {},
  ) {
    const q = c.req.method === 'GET' ? c.req.query() : {};
    const filters: Record<string, string> = {};
    for (const k of ['status', 'type', 'severity', 'since', 'until']) if (q[k]) filters[k] = q[k]!;
    const [list, types] = await Promise.all([
      h.api.call('GET', `/v2/handles/${h.handle}/notifications`, {
        query: {
          ...filters,
          since: fromLocalInput(filters.since),
          until: fromLocalInput(filters.until),
          cursor: q.cursor,
          limit: 25,
        },
      }),
      eventTypes(h.api),
    ]);
    const problem = extra.problem ?? (list.ok ? null : list.problem);
    return render(
      c,
      h.frame,
      <FeedPage
        handle={h.handle}
        items={list.ok ? list.data.data : []}
        nextCursor={list.ok ? list.data.nextCursor : null}
        filters={filters}
        types={types}
        csrf={h.session.csrf}
        idem={h.idem()}
        problem={problem}
        problemContext={extra.problemContext ?? (list.ok ? undefined : 'Filter refused')}
      />,
      extra.status ?? (list.ok ? 200 : list.status),
    );
  }

  r.get(
    '/h/:handle/notifications',
    onHandle('notifications', 'Notifications', async (c, h) => {
      return feedPage(c, h);
    }),
  );

  r.post(
    '/h/:handle/events',
    onHandle('notifications', 'Notifications', async (c, h) => {
      const data = jsonField(c, h.form, 'data', 'body.data');
      if ('problem' in data)
        return feedPage(c, h, { problem: data.problem, problemContext: 'Not published', status: 400 });
      let payload = data.value;
      if (payload === null) {
        const types = await eventTypes(h.api);
        payload = (types.find((t) => t.type === h.form.type) as Json | undefined)?.sample ?? {};
      }
      const res = await h.api.call('POST', `/v2/handles/${h.handle}/events`, {
        body: { type: h.form.type ?? '', data: payload },
        headers: idemHeaders(h.form),
      });
      if (!res.ok) return feedPage(c, h, { problem: res.problem, problemContext: 'Not published', status: res.status });
      return c.redirect(`${handleBase(h.handle)}/notifications/${res.data.notificationId}`, 303);
    }),
  );

  r.get(
    '/h/:handle/notifications/:id',
    onHandle('notifications', 'Notification', async (c, h) => {
      const id = pathId(c);
      const n = await h.api.call('GET', `/v2/handles/${h.handle}/notifications/${id}`);
      if (!n.ok) return renderProblem(c, h.frame, n.problem, true);
      h.frame.title = `Notification ${n.data.type}`;
      h.frame.ids = [
        { label: 'Notification id', value: n.data.id },
        ...(n.data.deliveries as Json[]).map((d): CopyId => ({ label: `Delivery (${d.target})`, value: d.deliveryId })),
      ];
      return render(c, h.frame, <NotificationPage handle={h.handle} n={n.data} csrf={h.session.csrf} idem={h.idem} />);
    }),
  );

  // Anything else under /dashboard: a page, not JSON.
  r.all('*', async (c) => {
    const session = await readSession(c);
    return renderProblem(
      c,
      baseFrame(c, 'Not found', session ? { csrf: session.csrf } : {}),
      {
        type: '/docs#problem-not_found',
        title: 'Not found',
        status: 404,
        detail: `No dashboard page at ${c.req.path}.`,
        requestId: c.get('requestId'),
      },
      session !== null,
    );
  });

  return r;
}
