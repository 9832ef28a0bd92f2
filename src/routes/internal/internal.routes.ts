/**
 * Control-plane provisioning (docs/design.md#identity-access-and-limits): `PUT /v2/internal/handles/{handle}`,
 * `PUT|DELETE /v2/internal/handles/{handle}/members/{userId}` and moving a handle between shards
 * (`POST|GET /v2/internal/handles/{handle}/move`, docs/design.md#moving-a-handle). Service JWTs with
 * `internal:provision` only.
 */
import { createRoute } from '@hono/zod-openapi';
import { findMove, moveHandleStep, moveProgress } from '../../archive/move.ts';
import { getDb } from '../../db/client.ts';
import { createRouter, errorResponses, type GuardRule, guard, jsonBody, jsonResponse } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';
import { handleExists, removeMember, setMemberRole, upsertHandle } from './internal.repo.ts';
import {
  HandleMoveSchema,
  HandlePathParams,
  HandleSchema,
  MemberPathParams,
  MemberSchema,
  MoveHandleBody,
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

const moveHandle = createRoute(
  guard(provision, {
    method: 'post',
    path: '/v2/internal/handles/{handle}/move',
    operationId: 'moveHandle',
    tags: ['Internal'],
    summary: 'Move a handle to another shard, one bounded step per call',
    description:
      'Starts moving the handle to `toShard`, or goes on with the move under way: each call does one bounded step ' +
      '(a few pages of the copy, or a phase change) and answers where the move stands. Call again after ' +
      '`retryAfterSeconds` until `done`. The handle is read-only (writes answer 503) from `readOnlyAt` to ' +
      '`flippedAt`. `npm run handle:move` drives it (docs/design.md#moving-a-handle).',
    request: { params: HandlePathParams, body: jsonBody(MoveHandleBody) },
    responses: {
      200: jsonResponse(HandleMoveSchema, 'Where the move stands after this step.'),
      ...errorResponses(400, 404, 409, 415, 422),
    },
  }),
);

const getMove = createRoute(
  guard(provision, {
    method: 'get',
    path: '/v2/internal/handles/{handle}/move',
    operationId: 'getHandleMove',
    tags: ['Internal'],
    summary: "The handle's current or last move between shards",
    request: { params: HandlePathParams },
    responses: { 200: jsonResponse(HandleMoveSchema, 'The move.'), ...errorResponses(404) },
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
  })
  .openapi(moveHandle, async (c) => {
    const { handle } = c.req.valid('param');
    const { toShard } = c.req.valid('json');
    const progress = await moveHandleStep(c.env, handle, toShard);
    if (progress.retryAfterSeconds) c.header('Retry-After', String(progress.retryAfterSeconds));
    return c.json(progress, 200);
  })
  .openapi(getMove, async (c) => {
    const { handle } = c.req.valid('param');
    const move = await findMove(c.env, handle);
    if (!move) throw problems.notFound('This handle has never been moved.');
    return c.json(moveProgress(move), 200);
  });
