/**
 * `GET /v2/openapi.json` (OpenAPI 3.1, generated from the route definitions' zod schemas) and `GET /docs` (a
 * self-contained reference page rendered from that document: no scripts, fonts or styles from elsewhere).
 */
import { createRoute, z } from '@hono/zod-openapi';
import { createRouter } from '../../http/openapi.ts';
import { pageSecurityHeaders } from '../../http/security-headers.ts';
import { DOCS_CSS, renderDocsPage } from './docs.page.tsx';

export type DocumentSource = () => Record<string, unknown>;

export function docsRoutes(getDocument: DocumentSource) {
  const openapiJson = createRoute({
    method: 'get',
    path: '/v2/openapi.json',
    operationId: 'getOpenApiDocument',
    tags: ['Meta'],
    summary: 'This API as an OpenAPI 3.1 document',
    responses: {
      200: {
        description: 'The document.',
        content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
      },
    },
  });
  const docsPage = createRoute({
    method: 'get',
    path: '/docs',
    operationId: 'getApiReference',
    tags: ['Meta'],
    summary: 'API reference page',
    responses: { 200: { description: 'HTML.', content: { 'text/html': { schema: z.string() } } } },
  });
  const router = createRouter();
  // The reference page: its inline stylesheet by hash, nothing else (src/http/security-headers.ts).
  router.use('/docs', pageSecurityHeaders({ inlineStyles: [DOCS_CSS] }));
  return router
    .openapi(openapiJson, (c) => c.json(getDocument(), 200))
    .openapi(docsPage, (c) => c.html(renderDocsPage(getDocument()), 200));
}
