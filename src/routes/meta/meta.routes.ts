/** `GET /v2/health` (liveness with a D1 ping) and `GET /v2/event-types` (the catalog). */
import { createRoute, z } from '@hono/zod-openapi';
import { sizeOf } from '../../archive/storage.ts';
import { config } from '../../env.ts';
import { createRouter, errorResponses, guard, jsonResponse } from '../../http/openapi.ts';
import { exampleWebhookBody } from '../../http/webhook-docs.ts';
import { EVENT_CATALOG } from '../../lib/event-catalog.ts';
import { problems } from '../../lib/problem.ts';

const HealthSchema = z
  .object({
    status: z.literal('ok'),
    deploymentId: z.string(),
    time: z.string(),
    d1: z.object({
      ok: z.boolean(),
      latencyMs: z.number(),
      // The storage budget (docs/design.md#storage-budget), from D1's own metadata.
      sizeBytes: z.number().int().openapi({ description: "The database's size, as D1 reports it." }),
      limitBytes: z.number().int().openapi({ description: 'D1_SIZE_LIMIT_BYTES (10 GB).' }),
      usedPercent: z.number().openapi({ description: 'Past 80 the platform alert goes out.' }),
    }),
  })
  .openapi('Liveness');

const EventTypeSchema = z
  .object({
    type: z.string(),
    description: z.string(),
    defaultSeverity: z.enum(['info', 'warning', 'critical']),
    system: z.boolean().openapi({ description: 'Emitted by this service; cannot be published by clients.' }),
    sample: z.record(z.string(), z.unknown()).openapi({ description: 'An example of `data`.' }),
    dataSchema: z
      .record(z.string(), z.unknown())
      .openapi({ description: '`data` as JSON Schema (draft 2020-12): the named fields are typed, others pass.' }),
    example: z
      .record(z.string(), z.unknown())
      .openapi({ description: 'A whole webhook body of this type, as a receiver gets it.' }),
  })
  .openapi('EventType');

/** The catalog as served, built once: JSON Schema conversion is pure. */
const CATALOG_VIEW = EVENT_CATALOG.map((e) => ({
  type: e.type,
  description: e.description,
  defaultSeverity: e.defaultSeverity,
  system: e.system,
  sample: e.sample,
  dataSchema: z.toJSONSchema(e.schema, { io: 'input' }) as Record<string, unknown>,
  example: exampleWebhookBody(e),
}));

export const EventTypeListSchema = z.object({ data: z.array(EventTypeSchema) }).openapi('EventTypeList');

const health = createRoute({
  method: 'get',
  path: '/v2/health',
  operationId: 'getLiveness',
  tags: ['Meta'],
  summary: 'Liveness: the Worker answers and D1 responds',
  responses: { 200: jsonResponse(HealthSchema, 'Healthy.'), ...errorResponses(503) },
});

const eventTypes = createRoute(
  guard(
    {},
    {
      method: 'get',
      path: '/v2/event-types',
      operationId: 'listEventTypes',
      tags: ['Meta'],
      summary: 'The event catalog',
      description:
        'Every event type: its description, default severity, the JSON Schema of its `data`, a sample `data` (used ' +
        'by test sends) and a whole webhook body as an example. The same bodies are the `webhooks` of this document.',
      responses: {
        200: jsonResponse(EventTypeListSchema, 'The catalog.'),
      },
    },
  ),
);

export const metaRoutes = createRouter()
  .openapi(health, async (c) => {
    const started = Date.now();
    let meta: D1Meta;
    try {
      ({ meta } = await c.env.DB.prepare('SELECT 1').run());
    } catch {
      throw problems.unavailable('The database is not answering.');
    }
    return c.json(
      {
        status: 'ok' as const,
        deploymentId: c.get('deploymentId'),
        time: new Date().toISOString(),
        d1: { ok: true, latencyMs: Date.now() - started, ...sizeOf(meta, config(c.env).d1SizeLimitBytes) },
      },
      200,
    );
  })
  .openapi(eventTypes, (c) => c.json({ data: CATALOG_VIEW }, 200));
