/**
 * The security headers of every HTML page the Worker serves (docs/design.md#dashboard): one home, so the dashboard,
 * `/docs` and the email pages (whose URLs carry a confirm or unsubscribe token) send the same rules.
 *
 * - A Content-Security-Policy that allows nothing but what the page needs: the dashboard's stylesheet and script
 *   (files of this origin), or a page's own inline `<style>`, allowed by its SHA-256 hash, never `unsafe-inline`;
 *   no frames (`frame-ancestors 'none'`), no `<base>`, forms only to this origin.
 * - `Referrer-Policy: no-referrer`, so a token in the URL never leaves in a Referer header.
 * - `X-Frame-Options`, `X-Content-Type-Options` and `Cache-Control: no-store` (a page with a token is not cached).
 */
import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env.ts';
import { toBase64 } from '../lib/crypto.ts';

/** What a page loads besides itself. */
export type PagePolicy =
  /** A stylesheet and a script served by this origin (the dashboard). */
  | { assets: 'self' }
  /** Inline `<style>` elements with exactly these contents, and no script at all. */
  | { inlineStyles: readonly string[] };

const BASE_HEADERS: Readonly<Record<string, string>> = {
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

const COMMON_DIRECTIVES = "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async function styleHash(css: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(css));
  return `'sha256-${toBase64(new Uint8Array(digest))}'`;
}

async function contentSecurityPolicy(policy: PagePolicy): Promise<string> {
  if ('assets' in policy) {
    return (
      "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; " +
      COMMON_DIRECTIVES
    );
  }
  const hashes = await Promise.all(policy.inlineStyles.map(styleHash));
  return `default-src 'none'; style-src ${hashes.join(' ')}; img-src data:; ${COMMON_DIRECTIVES}`;
}

/**
 * Middleware adding the page headers to every answer of the routes it is attached to (a header the handler set
 * itself is kept). Attach it to exact paths: on a router mounted at `/`, a `*` pattern would cover the whole app.
 */
export function pageSecurityHeaders(policy: PagePolicy): MiddlewareHandler<AppEnv> {
  // Hashed once per isolate, on first use (Web Crypto is asynchronous).
  let headers: Promise<Record<string, string>> | undefined;
  return async (c, next) => {
    headers ??= contentSecurityPolicy(policy).then((csp) => ({ 'Content-Security-Policy': csp, ...BASE_HEADERS }));
    const values = await headers;
    await next();
    for (const [k, v] of Object.entries(values)) if (!c.res.headers.has(k)) c.res.headers.set(k, v);
  };
}
