/**
 * Sign-in, sign-out, the list of your handles and the handle switcher. The token is checked by the API itself
 * (`GET /v2/handles`), with the same rules and words as for any client; the sign-in form has its own double-submit
 * CSRF token since there is no session yet to hold one.
 */
import { Hono } from 'hono';
import { getCookie } from 'hono/cookie';
import type { FC } from 'hono/jsx';
import { type AppEnv, config } from '../../env.ts';
import { HANDLE_PATTERN } from '../../lib/handles.ts';
import type { MyHandle, MyHandleList } from '../answers.ts';
import { type ApiFetch, apiFor, type Problem } from '../api.ts';
import { formOf } from '../forms.ts';
import { baseFrame, render, renderProblem, toLogin } from '../handler.tsx';
import { handleBase, Notice, ProblemBox } from '../layout.tsx';
import {
  csrfMatches,
  endSession,
  LOGIN_CSRF_COOKIE,
  loginCsrf,
  readSession,
  revokeSession,
  startSession,
} from '../session.ts';

/** `/dashboard`, `/dashboard/login`, `/dashboard/logout` and `/dashboard/switch`. */
export function signInRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();

  r.get('/', async (c) => {
    const session = await readSession(c);
    if (!session) return c.redirect('/dashboard/login', 303);
    const api = apiFor(c, fetchApp, session.token);
    const mine = await api.call<MyHandleList>('GET', '/v2/handles');
    if (!mine.ok && mine.status === 401) return toLogin(c, 'expired');
    if (!mine.ok) return renderProblem(c, baseFrame(c, 'Error', { csrf: session.csrf }), mine.problem, true);
    const handles = mine.data.data;
    if (handles.length === 1) return c.redirect(handleBase(handles[0]!.handle), 303);
    return render(c, baseFrame(c, 'Your handles', { csrf: session.csrf, handles }), <HandlesPage handles={handles} />);
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
    const mine = await apiFor(c, fetchApp, token || null).call<MyHandleList>('GET', '/v2/handles');
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
    // Ends the session server-side: a copy of the cookie is refused from now on (session.ts).
    if (session) await revokeSession(c, session);
    else endSession(c);
    return c.redirect('/dashboard/login?m=out', 303);
  });

  r.get('/switch', (c) => {
    const handle = c.req.query('handle') ?? '';
    return c.redirect(HANDLE_PATTERN.test(handle) ? handleBase(handle) : '/dashboard', 303);
  });

  return r;
}

const LoginPage: FC<{ csrf: string; problem?: Problem | null; message?: string | null; devHint: boolean }> = (p) => (
  <>
    <p>
      Sign in with a personal access token (<code>grt_…</code>) or a JWT. The dashboard uses it for every API call, with
      exactly its scopes and roles.
    </p>
    {p.message ? <Notice>{p.message}</Notice> : null}
    {p.problem ? <ProblemBox problem={p.problem} context="Sign-in refused" /> : null}
    <form method="post" action="/dashboard/login" class="stack" aria-label="Sign in">
      <input type="hidden" name="_csrf" value={p.csrf} />
      <div class="field">
        <label for="token">Token</label>
        <input id="token" name="token" type="password" autocomplete="off" required spellcheck={false} />
        <span class="hint">Kept only in an encrypted, HttpOnly session cookie for this dashboard (12 h at most).</span>
      </div>
      <div>
        <button type="submit">Sign in</button>
      </div>
    </form>
    {p.devHint ? (
      <p class="hint">
        Local development: <code>npm run dev</code> prints a demo PAT.
      </p>
    ) : null}
  </>
);

const HandlesPage: FC<{ handles: MyHandle[] }> = ({ handles }) =>
  handles.length ? (
    <ul>
      {handles.map((h) => (
        <li>
          <a href={handleBase(h.handle)}>{h.displayName}</a> <code>{h.handle}</code> — {h.role}
        </li>
      ))}
    </ul>
  ) : (
    <Notice tone="warn">
      This token has no handle. Ask the handle's owner to add you, or sign in with another token.
    </Notice>
  );
