/**
 * Replay of past events to one webhook (docs/design.md#replay, #routes): `POST …/webhooks/{id}/replay` starts a replay
 * of a time range (optionally some event types) or continues one (`cursor`), one bounded step per call; `GET
 * …/webhooks/{id}/replays/{replayId}` shows its progress. The work is delivery/replay.ts's.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { WRITER_ROLES } from '../../auth/scopes.ts';
import { getDb } from '../../db/client.ts';
import {
  newReplay,
  REPLAY_STEP,
  type ReplayRow,
  replayFromRow,
  replayProgress,
  replayStep,
} from '../../delivery/replay.ts';
import { runContext } from '../../env.ts';
import { createRouter, errorResponses, guard, jsonBody, jsonResponse } from '../../http/openapi.ts';
import { EventTypesSchema, requireKnownEventTypes } from '../../http/schemas.ts';
import { idPattern } from '../../lib/ids.ts';
import { problems } from '../../lib/problem.ts';
import { handleD1 } from '../../middleware/auth.ts';
import { getWebhook } from './webhooks.repo.ts';
import { WebhookParams } from './webhooks.schemas.ts';

const REPLAY_ID = idPattern('rpl');

const ReplayBody = z
  .strictObject({
    from: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Start of the range (inclusive).' }),
    to: z.iso.datetime({ offset: true }).optional().openapi({ description: 'End of the range (exclusive); ≤ now.' }),
    eventTypes: EventTypesSchema.nullable().optional().openapi({ description: 'Only these types (or `prefix.*`).' }),
    cursor: z.string().regex(REPLAY_ID).optional().openapi({
      description: 'Continue the replay with this id (the `nextCursor` of the previous call) instead of starting one.',
    }),
  })
  .openapi('ReplayRequest', {
    example: { from: '2026-11-29T00:00:00Z', to: '2026-12-06T00:00:00Z', eventTypes: ['order.*'] },
  });

const ReplaySchema = z
  .object({
    id: z.string().openapi({ example: 'rpl_01JD3Q7X9T0000000000000000' }),
    webhookId: z.string(),
    from: z.string(),
    to: z.string(),
    eventTypes: z.array(z.string()).nullable(),
    status: z.enum(['running', 'complete']).openapi({ description: '`complete`: every notification was looked at.' }),
    matched: z.number().int().openapi({ description: 'Notifications of the range that match so far.' }),
    created: z.number().int().openapi({
      description: 'Deliveries made for them: fewer when a notification was already replayed to this webhook.',
    }),
    nextCursor: z.string().nullable().openapi({ description: 'Send it as `cursor` to go on; null once complete.' }),
    deliveries: z
      .record(z.string(), z.number().int())
      .openapi({ description: "The replay's deliveries by status.", example: { queued: 120, succeeded: 80 } }),
    done: z.boolean().openapi({ description: 'Complete, and none of its deliveries is still open.' }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Replay');

const ReplayParams = WebhookParams.extend({
  replayId: z
    .string()
    .regex(REPLAY_ID)
    .openapi({ param: { name: 'replayId', in: 'path' } }),
});

const replayRoute = createRoute(
  guard(
    { handle: true, scopes: ['webhooks:write'], roles: WRITER_ROLES },
    {
      method: 'post',
      path: '/v2/handles/{handle}/webhooks/{id}/replay',
      operationId: 'replayWebhook',
      tags: ['Webhooks'],
      summary: 'Replay past events to this webhook',
      description:
        `Delivers every notification received in [from, to) — from the archives too — that the webhook (and ` +
        '`eventTypes`) would take, as new deliveries marked with the replay id, paced by its rateLimit. One step ' +
        `of at most ${REPLAY_STEP} notifications per call: send \`cursor\` to continue. A notification reaches a ` +
        'webhook by replay at most once, so a retried call sends nothing twice.',
      request: { params: WebhookParams, body: jsonBody(ReplayBody) },
      responses: {
        200: jsonResponse(ReplaySchema, 'The step was made; the replay as it stands.'),
        ...errorResponses(400, 413, 415),
      },
    },
  ),
);

const progressRoute = createRoute(
  guard(
    { handle: true, scopes: ['webhooks:read'] },
    {
      method: 'get',
      path: '/v2/handles/{handle}/webhooks/{id}/replays/{replayId}',
      operationId: 'getWebhookReplay',
      tags: ['Webhooks'],
      summary: "A replay's progress",
      request: { params: ReplayParams },
      responses: { 200: jsonResponse(ReplaySchema, 'The replay and its deliveries by status.') },
    },
  ),
);

async function replayToApi(d1: D1Database, r: ReplayRow) {
  const deliveries = await replayProgress(d1, r.id);
  const open = (deliveries.pending ?? 0) + (deliveries.queued ?? 0) + (deliveries.retrying ?? 0);
  return {
    id: r.id,
    webhookId: r.subscriptionId,
    from: r.fromAt,
    to: r.toAt,
    eventTypes: r.eventTypes ? (JSON.parse(r.eventTypes) as string[]) : null,
    status: r.status,
    matched: r.matched,
    created: r.created,
    nextCursor: r.status === 'complete' ? null : r.id,
    deliveries,
    done: r.status === 'complete' && open === 0,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

async function findReplay(d1: D1Database, handle: string, webhookId: string, id: string) {
  const row = await d1
    .prepare('SELECT * FROM replays WHERE id = ?1 AND handle = ?2 AND subscription_id = ?3')
    .bind(id, handle, webhookId)
    .first<Record<string, unknown>>();
  return row ? replayFromRow(row) : null;
}

export const replayRoutes = createRouter()
  .openapi(replayRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const body = c.req.valid('json');
    // Every row of the replay is on the handle's shard (docs/design.md#shards).
    const d1 = await handleD1(c);
    const webhook = await getWebhook(getDb(d1), handle, id);
    if (!webhook) throw problems.notFound();
    if (!webhook.enabled) {
      throw problems.unprocessable(
        'The webhook is disabled: a replay would only be skipped. Enable it first (PATCH …/webhooks/{id} ' +
          '{"enabled": true}), then replay.',
        { field: 'id' },
      );
    }
    let replay: ReplayRow;
    let isNew = false;
    if (body.cursor) {
      if (body.from || body.to || body.eventTypes) {
        throw problems.unprocessable('Send cursor alone to continue a replay, or from and to to start one.', {
          field: 'cursor',
        });
      }
      const found = await findReplay(d1, handle, id, body.cursor);
      if (!found) throw problems.unprocessable(`No replay ${body.cursor} of this webhook.`, { field: 'cursor' });
      if (found.status === 'complete') return c.json(await replayToApi(d1, found), 200);
      replay = found;
    } else {
      if (!body.from || !body.to) {
        throw problems.unprocessable('Send from and to (ISO 8601) to start a replay, or cursor to continue one.', {
          field: body.from ? 'to' : 'from',
          example: { from: '2026-11-29T00:00:00Z', to: '2026-12-06T00:00:00Z' },
        });
      }
      const from = Date.parse(body.from);
      const to = Math.min(Date.parse(body.to), Date.now());
      if (!(from < to)) {
        throw problems.unprocessable('from must be before to (and before now).', { field: 'from' });
      }
      requireKnownEventTypes(body.eventTypes);
      replay = newReplay(handle, id, {
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        eventTypes: body.eventTypes ?? null,
      });
      isNew = true;
    }
    const result = await replayStep(runContext(c.env), replay, webhook, isNew);
    return c.json(await replayToApi(d1, result.replay), 200);
  })
  .openapi(progressRoute, async (c) => {
    const { handle, id, replayId } = c.req.valid('param');
    const d1 = await handleD1(c);
    const replay = await findReplay(d1, handle, id, replayId);
    if (!replay) throw problems.notFound();
    return c.json(await replayToApi(d1, replay), 200);
  });
