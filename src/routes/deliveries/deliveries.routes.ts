/** `POST /v2/handles/{handle}/deliveries/{id}/retry`: redrive one dead or skipped delivery (docs/design.md#routes). */
import { createRoute } from '@hono/zod-openapi';
import { WRITER_ROLES } from '../../auth/scopes.ts';
import { REDRIVABLE, redrive } from '../../delivery/redrive.ts';
import { createRouter, errorResponses, guard, jsonResponse } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';
import { handleD1, handleDb } from '../../middleware/auth.ts';
import { attemptsOf, deliveryToApi, getDelivery } from './deliveries.repo.ts';
import { DeliveryParams, DeliverySchema } from './deliveries.schemas.ts';

const retryRoute = createRoute(
  guard(
    { handle: true, anyOfScopes: ['webhooks:write', 'notifications:write'], roles: WRITER_ROLES },
    {
      method: 'post',
      path: '/v2/handles/{handle}/deliveries/{id}/retry',
      operationId: 'retryDelivery',
      tags: ['Deliveries'],
      summary: 'Redeliver one dead or skipped delivery',
      description: 'The delivery goes back to pending with a fresh retry schedule; its attempts so far are kept.',
      request: { params: DeliveryParams },
      responses: { 202: jsonResponse(DeliverySchema, 'Queued again.'), ...errorResponses(409, 422) },
    },
  ),
);

export const deliveriesRoutes = createRouter().openapi(retryRoute, async (c) => {
  const { handle, id } = c.req.valid('param');
  const db = await handleDb(c);
  const delivery = await getDelivery(db, handle, id);
  if (!delivery) throw problems.notFound();
  if (delivery.kind === 'test') throw problems.unprocessable('A test send is not retried; send another test.');
  if (!(REDRIVABLE as readonly string[]).includes(delivery.status)) {
    throw problems.conflict(
      `Only ${REDRIVABLE.join(' or ')} deliveries can be retried; this one is ${delivery.status}.`,
    );
  }
  // Redriving into a subscription that would skip it again would answer "queued" and send nothing.
  if (delivery.subscriptionId) {
    const sub =
      delivery.channel === 'webhook'
        ? await (await handleD1(c))
            .prepare('SELECT enabled AS ok FROM webhook_subscriptions WHERE id = ?1')
            .bind(delivery.subscriptionId)
            .first<{ ok: number }>()
        : await (await handleD1(c))
            .prepare(`SELECT status = 'active' AS ok FROM email_subscriptions WHERE id = ?1`)
            .bind(delivery.subscriptionId)
            .first<{ ok: number }>();
    if (!sub) throw problems.conflict('Its subscription was deleted; there is nobody to deliver to.');
    if (!sub.ok) {
      throw problems.conflict(
        delivery.channel === 'webhook'
          ? 'The webhook is disabled; enable it first (PATCH {"enabled": true}), or the delivery would be ' +
              'skipped again.'
          : 'The email subscription is not active (pending, unsubscribed, suppressed or stale); the delivery ' +
              'would be skipped again.',
      );
    }
  }
  await redrive(c.env, await handleD1(c), [delivery]);
  const fresh = (await getDelivery(db, handle, id))!;
  return c.json(deliveryToApi(fresh, await attemptsOf(db, [id])), 202);
});
