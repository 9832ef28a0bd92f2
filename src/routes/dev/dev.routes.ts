/**
 * `GET /dev/mailbox` (docs/design.md#routes): every mail sent locally, newest first, with headers and bodies — only when
 * ENVIRONMENT=development; anywhere else it does not exist (404). `?format=json` for scripts and tests.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { html, raw } from 'hono/html';
import { config } from '../../env.ts';
import { createRouter, errorResponses } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';

const MailSchema = z
  .object({
    id: z.string(),
    provider: z.string(),
    from: z.string(),
    to: z.string(),
    subject: z.string(),
    headers: z.record(z.string(), z.string()),
    text: z.string(),
    html: z.string(),
    createdAt: z.string(),
  })
  .openapi('DevMail');

const mailboxRoute = createRoute({
  method: 'get',
  path: '/dev/mailbox',
  operationId: 'getDevMailbox',
  tags: ['Development'],
  summary: 'Local mailbox (development only)',
  request: {
    query: z.object({
      format: z
        .enum(['html', 'json'])
        .default('html')
        .openapi({ param: { name: 'format', in: 'query' } }),
      to: z
        .string()
        .max(254)
        .optional()
        .openapi({ param: { name: 'to', in: 'query' } }),
    }),
  },
  responses: {
    200: {
      description: 'The latest 100 mails.',
      content: {
        'application/json': { schema: z.object({ data: z.array(MailSchema) }) },
        'text/html': { schema: z.string() },
      },
    },
    ...errorResponses(400, 404),
  },
});

export const devRoutes = createRouter().openapi(mailboxRoute, async (c) => {
  if (!config(c.env).isDevelopment) throw problems.notFound(`No route matches GET ${c.req.path}.`);
  const { format, to } = c.req.valid('query');
  const { results } = await c.env.DB.prepare(
    `SELECT * FROM dev_mailbox WHERE (?1 IS NULL OR to_address = lower(?1)) ORDER BY id DESC LIMIT 100`,
  )
    .bind(to ?? null)
    .all<Record<string, string>>();
  const mails = results.map((r) => ({
    id: r.id!,
    provider: r.provider!,
    from: r.from_address!,
    to: r.to_address!,
    subject: r.subject!,
    headers: JSON.parse(r.headers!) as Record<string, string>,
    text: r.text_body!,
    html: r.html_body!,
    createdAt: r.created_at!,
  }));
  if (format === 'json') return c.json({ data: mails }, 200);
  // Links in the text bodies are made clickable (confirm, unsubscribe); everything is escaped by the html helper.
  const linkify = (text: string) =>
    text
      .split(/(https?:\/\/[^\s<>"]+)/g)
      .map((part, i) => (i % 2 ? html`<a href="${part}">${part}</a>` : html`${part}`));
  return c.html(
    html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Local mailbox</title><style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}
article{border-top:1px solid #ccc;padding:.5rem 0}pre{white-space:pre-wrap;background:#f5f5f5;padding:.5rem}</style></head><body>
<h1>Local mailbox</h1><p>${mails.length} mail(s), newest first. Only in development.</p>
${mails.map(
  (
    m,
  ) => html`<article id="${m.id}"><h2>${m.subject}</h2><p>To ${m.to} · from ${m.from} · ${m.createdAt} · via ${m.provider}</p>
<details><summary>Headers</summary><pre>${Object.entries(m.headers)
    .map(([k, v]) => `${k}: ${v}\n`)
    .join('')}</pre></details>
<pre>${linkify(m.text)}</pre></article>`,
)}${raw('')}</body></html>`,
    200,
  );
});
