/**
 * Control-plane provisioning (docs/design.md#identity-access-and-limits): `PUT /v2/internal/handles/{handle}` and
 * `PUT|DELETE /v2/internal/handles/{handle}/members/{userId}`. Service JWTs with `internal:provision` only.
 */
import { createRoute } from '@hono/zod-openapi';
import { getDb } from '../../db/client.ts';
import { createRouter, errorResponses, type GuardRule, guard, jsonBody, jsonResponse } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';
import { handleExists, removeMember, setMemberRole, upsertHandle } from './internal.repo.ts';
import {
  HandlePathParams,
  HandleSchema,
  MemberPathParams,
  MemberSchema,
  PutHandleBody,
  PutMemberBody,
} from './internal.schemas.ts';

const provision: GuardRule = { scopes: ['internal:provision'], serviceOnly: true, countsTowardsDailyLimit: false };

const putHandle = createRoute(
  guard(provision, {
    method: 'put',
    path: '/v2/internal/handles/{handle}',
    operationId: 'upsertHandle',
    tags: ['Internal'],
    summary: 'Create or rename a handle',
    description:
      'Creates the handle with default notification settings, or updates its display name and, when given, its ' +
      'retention (`retentionDays`).',
    request: { params: HandlePathParams, body: jsonBody(PutHandleBody) },
    responses: {
      200: jsonResponse(HandleSchema, 'Updated.'),
      201: jsonResponse(HandleSchema, 'Created.'),
      ...errorResponses(400, 404, 415),
    },
  }),
);

const putMember = createRoute(
  guard(provision, {
    method: 'put',
    path: '/v2/internal/handles/{handle}/members/{userId}',
    operationId: 'upsertHandleMember',
    tags: ['Internal'],
    summary: "Add a member or change a member's role",
    request: { params: MemberPathParams, body: jsonBody(PutMemberBody) },
    responses: {
      200: jsonResponse(MemberSchema, 'Updated.'),
      201: jsonResponse(MemberSchema, 'Added.'),
      ...errorResponses(400, 404, 409, 415),
    },
  }),
);

const deleteMember = createRoute(
  guard(provision, {
    method: 'delete',
    path: '/v2/internal/handles/{handle}/members/{userId}',
    operationId: 'deleteHandleMember',
    tags: ['Internal'],
    summary: 'Remove a member',
    request: { params: MemberPathParams },
    responses: { 204: { description: 'Removed.' }, ...errorResponses(404, 409) },
  }),
);

const LAST_OWNER = 'A handle must keep at least one owner; add another owner first.';

export const internalRoutes = createRouter()
  .openapi(putHandle, async (c) => {
    const { handle } = c.req.valid('param');
    const body = c.req.valid('json');
    const { row, created } = await upsertHandle(c.env, {
      handle,
      displayName: body.displayName,
      ownerUserId: body.ownerUserId ?? null,
      ...(body.retentionDays === undefined ? {} : { retentionDays: body.retentionDays }),
      now: new Date().toISOString(),
    });
    const answer = {
      handle: row.handle,
      displayName: row.displayName,
      retentionDays: row.retentionDays,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
    return created ? c.json(answer, 201) : c.json(answer, 200);
  })
  .openapi(putMember, async (c) => {
    const { handle, userId } = c.req.valid('param');
    const { role } = c.req.valid('json');
    const db = getDb(c.env.DB);
    if (!(await handleExists(db, handle))) throw problems.notFound('No such handle.');
    const outcome = await setMemberRole(db, { handle, userId, role, now: new Date().toISOString() });
    if (outcome === 'last_owner') throw problems.conflict(LAST_OWNER);
    return outcome.created ? c.json(outcome.row, 201) : c.json(outcome.row, 200);
  })
  .openapi(deleteMember, async (c) => {
    const { handle, userId } = c.req.valid('param');
    const outcome = await removeMember(getDb(c.env.DB), handle, userId);
    if (outcome === 'not_found') throw problems.notFound('No such member.');
    if (outcome === 'last_owner') throw problems.conflict(LAST_OWNER);
    return c.body(null, 204);
  });
