/**
 * Archives of expired notifications (docs/design.md#retention-and-archives): `GET …/archives` lists them (keyset
 * pages, newest first) and `GET …/archives/{id}` streams one object from R2 — gzip NDJSON, one notification with its
 * deliveries and attempts per line. Members with `notifications:read`.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { readArchive } from '../../archive/objects.ts';
import { type ArchiveRow, findArchive, listArchives } from '../../archive/queries.ts';
import { createRouter, errorResponses, guard, jsonResponse } from '../../http/openapi.ts';
import { decodeCursor, toPage } from '../../lib/pagination.ts';
import { problems } from '../../lib/problem.ts';
import { handleDb } from '../../middleware/auth.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import { ARCHIVE_ID, ArchiveListQuery, ArchivePage, ArchiveParams } from './archives.schemas.ts';

const read = { handle: true, scopes: ['notifications:read' as const] };

const listRoute = createRoute(
  guard(read, {
    method: 'get',
    path: '/v2/handles/{handle}/archives',
    operationId: 'listArchives',
    tags: ['Archives'],
    summary: 'Archives of expired notifications',
    description:
      'Newest first. Each archive is one gzip NDJSON object in R2 holding a contiguous range of notification ids ' +
      'of one UTC day, recorded with its size and SHA-256.',
    request: { params: HandlePathParams, query: ArchiveListQuery },
    responses: { 200: jsonResponse(ArchivePage, 'One page.'), ...errorResponses(400) },
  }),
);

const downloadRoute = createRoute(
  guard(read, {
    method: 'get',
    path: '/v2/handles/{handle}/archives/{id}',
    operationId: 'downloadArchive',
    tags: ['Archives'],
    summary: 'Download one archive (gzip NDJSON)',
    description:
      'The object as stored: `gunzip` it for one JSON object per line, `{"notification": …, "deliveries": ' +
      '[{…, "attempts": […]}]}`. `Repr-Digest` carries its SHA-256. An archive still `pending` is a 409.',
    request: { params: ArchiveParams },
    responses: {
      200: {
        description: 'The gzip object.',
        content: { 'application/gzip': { schema: z.string().openapi({ format: 'binary' }) } },
      },
      ...errorResponses(409),
    },
  }),
);

function toApi(a: ArchiveRow) {
  return {
    id: a.id,
    period: a.period,
    status: a.status,
    firstNotificationId: a.firstNotificationId,
    lastNotificationId: a.lastNotificationId,
    notifications: a.notificationCount,
    deliveries: a.deliveryCount,
    attempts: a.attemptCount,
    bytes: a.bytes,
    sha256: a.sha256,
    createdAt: a.createdAt,
    verifiedAt: a.verifiedAt,
    purgedAt: a.purgedAt,
  };
}

/** Hex SHA-256 as the RFC 9530 `Repr-Digest` value. */
const reprDigest = (hex: string) =>
  `sha-256=:${btoa(String.fromCharCode(...(hex.match(/../g) ?? []).map((b) => Number.parseInt(b, 16))))}:`;

export const archivesRoutes = createRouter()
  .openapi(listRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const q = c.req.valid('query');
    const before = decodeCursor(q.cursor, ARCHIVE_ID);
    const page = toPage(await listArchives(await handleDb(c), handle, before, q.limit), q.limit);
    return c.json({ data: page.items.map(toApi), nextCursor: page.nextCursor }, 200);
  })
  .openapi(downloadRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const row = await findArchive(await handleDb(c), handle, id);
    if (!row) throw problems.notFound();
    if (row.status === 'pending' || !row.sha256) {
      throw problems.conflict('This archive is still being written; the purge job finishes it within minutes.');
    }
    const object = await readArchive(c.env.ARCHIVE, row.objectKey);
    // A verified archive whose object is gone is a fault of the store, not of the request.
    if (!object) throw new Error(`archive ${row.id} has no object at ${row.objectKey}`);
    return c.body(object.body, 200, {
      'content-type': 'application/gzip',
      'content-length': String(object.size),
      'content-disposition': `attachment; filename="${handle}-${row.period}-${row.id}.ndjson.gz"`,
      'repr-digest': reprDigest(row.sha256),
    });
  });
