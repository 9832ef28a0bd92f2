/**
 * `POST/GET /v2/tokens`, `DELETE /v2/tokens/{id}`: personal access tokens (docs/design.md#identity-access-and-limits).
 */
import { createRoute } from '@hono/zod-openapi';
import { mintPat, patDisplayPrefix } from '../../auth/pat.ts';
import { getDb } from '../../db/client.ts';
import type { AccessToken } from '../../db/schema.ts';
import { config } from '../../env.ts';
import { createRouter, errorResponses, guard, jsonBody, jsonResponse, PageQuery, pageOf } from '../../http/openapi.ts';
import { sha256Hex } from '../../lib/crypto.ts';
import { newId } from '../../lib/ids.ts';
import { decodeCursor, toPage } from '../../lib/pagination.ts';
import { problems } from '../../lib/problem.ts';
import { findRole } from '../internal/internal.repo.ts';
import { insertPatWithinLimit, listPats, revokePat } from './tokens.repo.ts';
import { CreatedTokenSchema, CreateTokenBody, TOKEN_ID, TokenIdParam, TokenSchema } from './tokens.schemas.ts';

const DAY_MS = 86_400_000;

function toApi(row: AccessToken) {
  return {
    id: row.id,
    name: row.name,
    tokenPrefix: row.tokenPrefix,
    scopes: row.scopes.split(' ').filter(Boolean),
    handle: row.handle,
    expiresAt: row.expiresAt,
    lastUsedAt: row.lastUsedAt,
    revokedAt: row.revokedAt,
    createdAt: row.createdAt,
  };
}

const createToken = createRoute(
  guard(
    { jwtOnly: true },
    {
      method: 'post',
      path: '/v2/tokens',
      operationId: 'createToken',
      tags: ['Tokens'],
      summary: 'Create a personal access token',
      description:
        "Mints a PAT for the calling user. Its scopes must be a subset of the JWT's; a handle restricts it to " +
        'that handle (you must be a member). A user holds at most MAX_PATS_PER_USER (50) live tokens: revoke one ' +
        'to make room (422 otherwise).',
      request: { body: jsonBody(CreateTokenBody) },
      responses: {
        201: jsonResponse(CreatedTokenSchema, 'The token, shown once.'),
        ...errorResponses(400, 404, 415, 422),
      },
    },
  ),
);

const listTokens = createRoute(
  guard(
    {},
    {
      method: 'get',
      path: '/v2/tokens',
      operationId: 'listTokens',
      tags: ['Tokens'],
      summary: "List the caller's personal access tokens",
      request: { query: PageQuery },
      responses: {
        200: jsonResponse(pageOf(TokenSchema, 'TokenPage'), 'Newest first; never the tokens themselves.'),
        ...errorResponses(400),
      },
    },
  ),
);

const deleteToken = createRoute(
  guard(
    { jwtOnly: true },
    {
      method: 'delete',
      path: '/v2/tokens/{id}',
      operationId: 'revokeToken',
      tags: ['Tokens'],
      summary: 'Revoke a personal access token',
      request: { params: TokenIdParam },
      responses: { 204: { description: 'Revoked (revoking twice is fine).' }, ...errorResponses(404) },
    },
  ),
);

export const tokensRoutes = createRouter()
  .openapi(createToken, async (c) => {
    const principal = c.get('principal')!;
    if (principal.kind !== 'user') throw problems.forbidden('Service tokens cannot mint personal access tokens.');
    const body = c.req.valid('json');
    const notHeld = body.scopes.filter((s) => !principal.scopes.has(s));
    if (notHeld.length) {
      throw problems.forbidden(`A token cannot carry scopes its creator lacks: ${notHeld.join(', ')}.`);
    }
    const cfg = config(c.env);
    const maxDays = cfg.patMaxLifetimeDays;
    if (body.expiresInDays > maxDays) {
      throw problems.validation([{ path: 'body.expiresInDays', message: `At most ${maxDays} days.` }]);
    }
    const db = getDb(c.env.DB);
    // A token for a handle the creator cannot see would be an existence oracle: same 404 as elsewhere.
    if (body.handle && !(await findRole(db, principal.subject, body.handle))) throw problems.notFound();

    const token = mintPat();
    const now = Date.now();
    const row: AccessToken = {
      id: newId('tok', now),
      userId: principal.subject,
      name: body.name,
      tokenHash: await sha256Hex(token),
      tokenPrefix: patDisplayPrefix(token),
      scopes: body.scopes.join(' '),
      handle: body.handle ?? null,
      expiresAt: new Date(now + body.expiresInDays * DAY_MS).toISOString(),
      lastUsedAt: null,
      revokedAt: null,
      createdAt: new Date(now).toISOString(),
    };
    const outcome = await insertPatWithinLimit(c.env.DB, row, cfg.maxPatsPerUser, row.createdAt);
    if (outcome === 'limit_reached') {
      throw problems.unprocessable(
        `A user can hold at most ${cfg.maxPatsPerUser} live personal access tokens; revoke one first.`,
        { limit: cfg.maxPatsPerUser },
      );
    }
    // A clash of 178 random bits with a stored hash: never in practice; not a token to hand out.
    if (outcome !== 'inserted') throw new Error('PAT hash collision');
    return c.json({ ...toApi(row), token }, 201);
  })
  .openapi(listTokens, async (c) => {
    const { limit, cursor } = c.req.valid('query');
    const rows = await listPats(
      getDb(c.env.DB),
      c.get('principal')!.subject,
      limit + 1,
      decodeCursor(cursor, TOKEN_ID),
    );
    const page = toPage(rows, limit);
    return c.json({ data: page.items.map(toApi), nextCursor: page.nextCursor }, 200);
  })
  .openapi(deleteToken, async (c) => {
    const { id } = c.req.valid('param');
    const found = await revokePat(getDb(c.env.DB), c.get('principal')!.subject, id, new Date().toISOString());
    if (!found) throw problems.notFound();
    return c.body(null, 204);
  });
