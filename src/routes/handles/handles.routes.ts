/**
 * `GET /v2/handles/{handle}`: the handle and the caller's access to it (role, scopes) — the first step of every
 * workflow, "confirm actor role access", in one call. Non-members get the same 404 as for a handle that does not exist.
 * `GET /v2/handles`: the handles the caller can act on (the dashboard's handle switcher).
 */
import { createRoute, z } from '@hono/zod-openapi';
import { getDb } from '../../db/client.ts';
import { createRouter, guard, jsonResponse, LIMIT_MAX } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';
import { existingHandles, getHandle, handlesOfUser } from '../internal/internal.repo.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';

export const HandleAccessSchema = z
  .object({
    handle: z.string(),
    displayName: z.string(),
    role: z.enum(['owner', 'admin', 'viewer', 'service']),
    scopes: z.array(z.string()).openapi({ description: "The calling token's scopes." }),
    tokenRestrictedToHandle: z.boolean(),
    retentionDays: z.number().int().openapi({
      description: 'Days notifications stay before they are archived to R2 and purged (…/archives).',
    }),
    createdAt: z.string(),
  })
  .openapi('HandleAccess');

const getHandleRoute = createRoute(
  guard(
    { handle: true },
    {
      method: 'get',
      path: '/v2/handles/{handle}',
      operationId: 'getHandle',
      tags: ['Handles'],
      summary: 'The handle and your access to it',
      request: { params: HandlePathParams },
      responses: { 200: jsonResponse(HandleAccessSchema, 'Your role and scopes on this handle.') },
    },
  ),
);

const MyHandleSchema = z
  .object({ handle: z.string(), displayName: z.string(), role: z.enum(['owner', 'admin', 'viewer', 'service']) })
  .openapi('MyHandle');

export const MyHandleListSchema = z.object({ data: z.array(MyHandleSchema) }).openapi('MyHandleList');

const listHandlesRoute = createRoute(
  guard(
    {},
    {
      method: 'get',
      path: '/v2/handles',
      operationId: 'listHandles',
      tags: ['Handles'],
      summary: 'The handles you can act on',
      description: `By name, at most ${LIMIT_MAX}. A PAT restricted to a handle lists only that handle.`,
      responses: {
        200: jsonResponse(MyHandleListSchema, 'Your handles and your role on each.'),
      },
    },
  ),
);

export const handlesRoutes = createRouter()
  .openapi(listHandlesRoute, async (c) => {
    const principal = c.get('principal')!;
    const db = getDb(c.env.DB);
    if (principal.serviceHandles) {
      const rows = await existingHandles(db, principal.serviceHandles, LIMIT_MAX);
      return c.json({ data: rows.map((r) => ({ ...r, role: 'service' as const })) }, 200);
    }
    const rows = await handlesOfUser(db, principal.subject, LIMIT_MAX);
    return c.json(
      { data: rows.filter((r) => principal.tokenHandle === null || r.handle === principal.tokenHandle) },
      200,
    );
  })
  .openapi(getHandleRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const row = await getHandle(getDb(c.env.DB), handle);
    if (!row) throw problems.notFound();
    const principal = c.get('principal')!;
    return c.json(
      {
        handle: row.handle,
        displayName: row.displayName,
        role: c.get('role')!,
        scopes: [...principal.scopes].sort(),
        tokenRestrictedToHandle: principal.tokenHandle !== null,
        retentionDays: row.retentionDays,
        createdAt: row.createdAt,
      },
      200,
    );
  });
