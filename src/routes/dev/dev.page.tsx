/**
 * The HTML view of `GET /dev/mailbox` (dev.routes.ts): every mail sent locally, newest first, with its headers and
 * text body. Everything is escaped by JSX; links in the text bodies (confirm, unsubscribe) are made clickable.
 */
import { HtmlDocument } from '../../http/html.tsx';

// A constant of ours, so it goes in as is (style content is raw text in HTML: escaping would change it).
const CSS =
  'body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}\n' +
  'article{border-top:1px solid #ccc;padding:.5rem 0}pre{white-space:pre-wrap;background:#f5f5f5;padding:.5rem}';

interface ShownMail {
  id: string;
  provider: string;
  from: string;
  to: string;
  subject: string;
  headers: Record<string, string>;
  text: string;
  createdAt: string;
}

/** The text with every http(s) URL in it as a link to itself. */
function Linkified(props: { text: string }) {
  return (
    <>{props.text.split(/(https?:\/\/[^\s<>"]+)/g).map((part, i) => (i % 2 ? <a href={part}>{part}</a> : part))}</>
  );
}

export function mailboxPage(mails: ShownMail[]) {
  return (
    <HtmlDocument>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>Local mailbox</title>
        <style dangerouslySetInnerHTML={{ __html: CSS }} />
      </head>
      <body>
        <h1>Local mailbox</h1>
        <p>{mails.length} mail(s), newest first. Only in development.</p>
        {mails.map((m) => (
          <article id={m.id}>
            <h2>{m.subject}</h2>
            <p>
              To {m.to} · from {m.from} · {m.createdAt} · via {m.provider}
            </p>
            <details>
              <summary>Headers</summary>
              <pre>
                {Object.entries(m.headers)
                  .map(([k, v]) => `${k}: ${v}\n`)
                  .join('')}
              </pre>
            </details>
            <pre>
              <Linkified text={m.text} />
            </pre>
          </article>
        ))}
      </body>
    </HtmlDocument>
  );
}
