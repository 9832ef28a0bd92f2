/**
 * `GET /dev/mailbox` (docs/design.md#routes): every mail sent locally, newest first, with headers and bodies — only
 * when ENVIRONMENT=development; anywhere else it does not exist (404). `?format=json` for scripts and tests; the HTML
 * view is dev.page.tsx.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { config } from '../../env.ts';
import { createRouter, errorResponses } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';
import { mailboxPage } from './dev.page.tsx';

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
  return c.html(mailboxPage(mails), 200);
});
