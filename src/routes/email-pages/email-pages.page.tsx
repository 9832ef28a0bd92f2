/**
 * The pages a person sees after following a link in a mail (email-pages.routes.ts): a small self-contained page with
 * one message or one button. Everything shown is escaped by JSX.
 */

import type { Child } from 'hono/jsx';
import { HtmlDocument } from '../../http/html.tsx';

// A constant of ours, so it goes in as is (style content is raw text in HTML: escaping would change it).
export const EMAIL_PAGE_CSS =
  'body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}\n' +
  'button{font:inherit;padding:.5rem 1rem;border:1px solid #1a1a1a;background:#1a1a1a;color:#fff;border-radius:4px;' +
  'cursor:pointer}';

function Page(props: { title: string; children?: Child }) {
  return (
    <HtmlDocument>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title}</title>
        <style dangerouslySetInnerHTML={{ __html: EMAIL_PAGE_CSS }} />
      </head>
      <body>
        <h1>{props.title}</h1>
        {props.children}
      </body>
    </HtmlDocument>
  );
}

/** A page with a title and one sentence (an outcome, or why a link does not work). */
export function messagePage(title: string, message: string) {
  return (
    <Page title={title}>
      <p>{message}</p>
    </Page>
  );
}

/** The confirmation link's page: a button that POSTs the token back (a GET changes nothing). */
export function confirmFormPage(token: string) {
  return (
    <Page title="Confirm your subscription">
      <p>Confirm that you want Gharart notifications at this address.</p>
      <form method="post" action={`/v2/email/confirm?token=${encodeURIComponent(token)}`}>
        <button type="submit">Confirm</button>
      </form>
    </Page>
  );
}

/** The unsubscribe link's page: a button that sends what an RFC 8058 one-click client sends. */
export function unsubscribeFormPage(token: string, sub: { email: string; handle: string }) {
  return (
    <Page title="Unsubscribe">
      <p>
        Stop notifications for <strong>{sub.handle}</strong> to {sub.email}?
      </p>
      <form method="post" action={`/v2/email/unsubscribe?token=${encodeURIComponent(token)}`}>
        <input type="hidden" name="List-Unsubscribe" value="One-Click" />
        <button type="submit">Unsubscribe</button>
      </form>
    </Page>
  );
}
