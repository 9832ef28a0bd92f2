/**
 * `GET /v2/handles/{handle}/placement` (docs/design.md#shards): where the handle lives — its shard, that database's
 * size as D1 reports it (the number new handles are placed by), the handle's own rows there (bounded counts,
 * placement.repo.ts), its retention, and whether it is moving between shards. Operations detail, so owners and admins
 * only; a viewer gets the 403 naming the role, a non-member the 404 of every handle route.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { databaseSize } from '../../archive/storage.ts';
import type { Role } from '../../auth/scopes.ts';
import { placementFromRow, placementStatement, shardAt, shardBindings } from '../../db/shards.ts';
import { config } from '../../env.ts';
import { createRouter, guard, jsonResponse } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import { PLACEMENT_COUNT_BOUND, readHandleRows } from './placement.repo.ts';

/** Who may see where a handle lives and how big its database is. */
export const PLACEMENT_ROLES: readonly Role[] = ['owner', 'admin'];

const Count = z.object({
  count: z.number().int(),
  atLeast: z
    .boolean()
    .openapi({ description: `Counting stopped at ${PLACEMENT_COUNT_BOUND}: there are at least this many.` }),
});

export const HandlePlacement = z
  .object({
    handle: z.string(),
    generatedAt: z.string(),
    shard: z.object({
      index: z.number().int().openapi({ description: "The data shard holding the handle's rows.", example: 1 }),
      binding: z.string().openapi({ example: 'SHARD_1' }),
      of: z.number().int().openapi({ description: 'Data shards this deployment has.', example: 2 }),
    }),
    database: z
      .object({ sizeBytes: z.number().int(), limitBytes: z.number().int(), usedPercent: z.number() })
      .openapi({ description: "The shard database's size as D1 reports it (`meta.size_after`), against its limit." }),
    rows: z
      .object({ notifications: Count, deliveries: Count, attempts: Count })
      .openapi({ description: `The handle's own rows on the shard, each counted up to ${PLACEMENT_COUNT_BOUND}.` }),
    retentionDays: z.number().int(),
    movingSince: z.string().nullable().openapi({
      description: 'Set while the handle moves to another shard: its writes wait until the move is done.',
    }),
  })
  .openapi('HandlePlacement');

const placementRoute = createRoute(
  guard(
    { handle: true, scopes: ['notifications:read'], roles: PLACEMENT_ROLES },
    {
      method: 'get',
      path: '/v2/handles/{handle}/placement',
      operationId: 'getHandlePlacement',
      tags: ['Handles'],
      summary: "The handle's shard, its database size and rows",
      description:
        "Which data shard holds the handle, that database's size as D1 reports it, the handle's notifications, " +
        'deliveries and attempts there (bounded counts), its retention, and whether it is moving between shards.',
      request: { params: HandlePathParams },
      responses: { 200: jsonResponse(HandlePlacement, 'Where the handle lives and what it holds there.') },
    },
  ),
);

export const placementRoutes = createRouter().openapi(placementRoute, async (c) => {
  const { handle } = c.req.valid('param');
  // The directory itself, not the isolate's cache: a move that began a second ago shows.
  const row = await placementStatement(c.env, handle).first<Record<string, unknown>>();
  const placement = placementFromRow(c.env, handle, row ?? undefined);
  if (!placement) throw problems.notFound();
  const d1 = shardAt(c.env, placement.shard);
  // Without SHARD_n bindings the handle's rows are in the control plane's database (docs/design.md#shards).
  const binding = d1 === c.env.DB ? 'DB' : `SHARD_${placement.shard}`;
  const [rows, database] = await Promise.all([
    readHandleRows(d1, handle),
    databaseSize(d1, config(c.env).d1SizeLimitBytes),
  ]);
  return c.json(
    {
      handle,
      generatedAt: new Date().toISOString(),
      shard: { index: placement.shard, binding, of: shardBindings(c.env).length },
      database,
      rows: { notifications: rows.notifications, deliveries: rows.deliveries, attempts: rows.attempts },
      retentionDays: rows.retentionDays,
      movingSince: placement.movingSince,
    },
    200,
  );
});
