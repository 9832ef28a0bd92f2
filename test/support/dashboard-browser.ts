/**
 * A minimal browser for dashboard tests inside workerd: a cookie jar over the Worker's real entry point, form posts
 * with the page's CSRF token and this origin, and sign-in with a token.
 */
import { exports } from 'cloudflare:workers';

export const ORIGIN = 'https://notify.test';

/** A minimal cookie jar over the Worker's fetch: keeps Set-Cookie values, sends them back. */
export class Browser {
  readonly jar = new Map<string, string>();

  async fetch(
    method: string,
    path: string,
    form?: Record<string, string>,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const h = new Headers(headers);
    if (this.jar.size) h.set('cookie', [...this.jar].map(([k, v]) => `${k}=${v}`).join('; '));
    let body: string | undefined;
    if (form) {
      body = new URLSearchParams(form).toString();
      h.set('content-type', 'application/x-www-form-urlencoded');
      if (!h.has('origin')) h.set('origin', ORIGIN);
    }
    const res = await exports.default.fetch(
      new Request(`${ORIGIN}${path}`, { method, headers: h, body, redirect: 'manual' }),
    );
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i);
      const value = pair!.slice(i + 1);
      if (value === '' || /max-age=0/i.test(line)) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    return res;
  }

  async get(path: string) {
    const res = await this.fetch('GET', path);
    return { res, html: await res.text() };
  }

  /** Posts a form with the CSRF token found on `page`. */
  async post(path: string, page: string, form: Record<string, string> = {}) {
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)?.[1];
    if (!csrf) throw new Error('no CSRF field on the page');
    const res = await this.fetch('POST', path, { _csrf: csrf, ...form });
    return { res, html: await res.text() };
  }

  async signIn(token: string) {
    const login = await this.get('/dashboard/login');
    return this.post('/dashboard/login', login.html, { token });
  }
}

export const decode = (s: string) =>
  s
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
