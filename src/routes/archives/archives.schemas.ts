import { z } from '@hono/zod-openapi';
import { HandleParam, PageQuery, pageOf } from '../../http/openapi.ts';
import { idPattern } from '../../lib/ids.ts';

export const ARCHIVE_ID = idPattern('arc');

export const ArchiveParams = z.object({
  handle: HandleParam,
  id: z
    .string()
    .regex(ARCHIVE_ID)
    .openapi({ param: { name: 'id', in: 'path' }, example: 'arc_01JD3Q7X9T0000000000000000' }),
});

export const ArchiveListQuery = PageQuery;

export const ArchiveSchema = z
  .object({
    id: z.string(),
    period: z.string().openapi({ description: 'The UTC day of the notifications in it.', example: '2026-10-01' }),
    status: z.enum(['pending', 'verified', 'purging', 'purged']).openapi({
      description:
        '`purged`: the rows left the database and this object is their only copy; `pending`/`verified`: written, ' +
        'the purge not yet done (it is finished on the next run).',
    }),
    firstNotificationId: z.string(),
    lastNotificationId: z.string(),
    notifications: z.number().int(),
    deliveries: z.number().int(),
    attempts: z.number().int(),
    bytes: z.number().int().nullable().openapi({ description: 'Size of the gzip object.' }),
    sha256: z.string().nullable().openapi({ description: 'Hex SHA-256 of the gzip object.' }),
    createdAt: z.string(),
    verifiedAt: z.string().nullable(),
    purgedAt: z.string().nullable(),
  })
  .openapi('Archive');

export const ArchivePage = pageOf(ArchiveSchema, 'ArchivePage');
