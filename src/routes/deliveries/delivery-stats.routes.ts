/**
 * `GET …/delivery-stats` and `GET …/webhooks/{id}/delivery-stats` (docs/design.md#delivery-charts): what the
 * dashboard's charts draw, each series one aggregate query whose rows read are bounded by its window.
 */
import { createRoute } from '@hono/zod-openapi';
import { getDb } from '../../db/client.ts';
import { createRouter, guard, jsonResponse } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';
import { handleD1 } from '../../middleware/auth.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import { getWebhook } from '../webhooks/webhooks.repo.ts';
import { WebhookParams } from '../webhooks/webhooks.schemas.ts';
import { handleDeliveryStats, webhookDeliveryStats } from './delivery-stats.repo.ts';
import { DeliveryStatsSchema, WebhookDeliveryStatsSchema } from './delivery-stats.schemas.ts';

const handleStatsRoute = createRoute(
  guard(
    { handle: true, anyOfScopes: ['webhooks:read', 'notifications:read'] },
    {
      method: 'get',
      path: '/v2/handles/{handle}/delivery-stats',
      operationId: 'getDeliveryStats',
      tags: ['Deliveries'],
      summary: "The handle's deliveries by outcome, per hour over 24 h and per day over 7 days",
      request: { params: HandlePathParams },
      responses: { 200: jsonResponse(DeliveryStatsSchema, 'The series, oldest bucket first.') },
    },
  ),
);

const webhookStatsRoute = createRoute(
  guard(
    { handle: true, scopes: ['webhooks:read'] },
    {
      method: 'get',
      path: '/v2/handles/{handle}/webhooks/{id}/delivery-stats',
      operationId: 'getWebhookDeliveryStats',
      tags: ['Webhooks'],
      summary: "One webhook's deliveries by outcome, attempt latency p50/p95 and error classes",
      request: { params: WebhookParams },
      responses: { 200: jsonResponse(WebhookDeliveryStatsSchema, 'The series, oldest bucket first.') },
    },
  ),
);

export const deliveryStatsRoutes = createRouter()
  .openapi(handleStatsRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const now = Date.now();
    const { data } = await handleDeliveryStats(await handleD1(c), handle, now);
    return c.json({ generatedAt: new Date(now).toISOString(), ...data }, 200);
  })
  .openapi(webhookStatsRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    // The webhook and its deliveries are on the handle's shard (docs/design.md#shards).
    const d1 = await handleD1(c);
    if (!(await getWebhook(getDb(d1), handle, id))) throw problems.notFound();
    const now = Date.now();
    const { data } = await webhookDeliveryStats(d1, id, now);
    return c.json({ generatedAt: new Date(now).toISOString(), ...data }, 200);
  });
