/**
 * Control-plane provisioning (docs/design.md#identity-access-and-limits): `PUT /v2/internal/handles/{handle}` and
 * `PUT|DELETE /v2/internal/handles/{handle}/members/{userId}`. Service JWTs with `internal:provision` only.
 */
import { createRoute } from '@hono/zod-openapi';
import { getDb } from '../../db/client.ts';
import { createRouter, errorResponses, type GuardRule, guard, jsonBody, jsonResponse } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';
import {
  countOwners,
  deleteMembership,
  getMembership,
  handleExists,
  upsertHandle,
  upsertMembership,
} from './internal.repo.ts';
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
    const { row, created } = await upsertHandle(getDb(c.env.DB), {
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
    const existing = await getMembership(db, handle, userId);
    if (existing?.role === 'owner' && role !== 'owner' && (await countOwners(db, handle)) <= 1) {
      throw problems.conflict(LAST_OWNER);
    }
    const row = await upsertMembership(db, { handle, userId, role, now: new Date().toISOString() });
    return existing ? c.json(row, 200) : c.json(row, 201);
  })
  .openapi(deleteMember, async (c) => {
    const { handle, userId } = c.req.valid('param');
    const db = getDb(c.env.DB);
    const existing = await getMembership(db, handle, userId);
    if (!existing) throw problems.notFound('No such member.');
    if (existing.role === 'owner' && (await countOwners(db, handle)) <= 1) throw problems.conflict(LAST_OWNER);
    await deleteMembership(db, handle, userId);
    return c.body(null, 204);
  });
