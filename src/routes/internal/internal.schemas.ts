import { z } from '@hono/zod-openapi';
import { ROLES } from '../../auth/scopes.ts';
import { HandleParam } from '../../http/openapi.ts';

export const UserIdSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9._:@|+-]+$/, 'User ids are 1–255 characters of letters, digits and . _ : @ | + -');

export const HandlePathParams = z.object({ handle: HandleParam });

export const MemberPathParams = z.object({
  handle: HandleParam,
  userId: UserIdSchema.openapi({ param: { name: 'userId', in: 'path' }, example: 'user_42' }),
});

/** Days notifications stay in D1 before they are archived and purged (docs/design.md#retention-and-archives). */
export const RetentionDays = z.number().int().min(1).max(400);

export const PutHandleBody = z
  .strictObject({
    displayName: z.string().trim().min(1).max(200).openapi({ example: 'Demo Store' }),
    ownerUserId: UserIdSchema.optional().openapi({ description: 'Makes this user an owner of the handle.' }),
    retentionDays: RetentionDays.optional().openapi({
      description:
        'Days a notification, its deliveries and attempts stay in the database before they are archived to R2 ' +
        'and deleted (1–400; 30 for a new handle; unchanged when omitted).',
      example: 90,
    }),
  })
  .openapi('PutHandleRequest');

export const HandleSchema = z
  .object({
    handle: z.string(),
    displayName: z.string(),
    retentionDays: RetentionDays,
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Handle');

export const PutMemberBody = z.strictObject({ role: z.enum(ROLES) }).openapi('PutMemberRequest');

export const MemberSchema = z
  .object({
    handle: z.string(),
    userId: z.string(),
    role: z.enum(ROLES),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Membership');

export const MoveHandleBody = z
  .strictObject({
    toShard: z.number().int().min(0).max(999).openapi({ description: 'Index of the target shard (`SHARD_<n>`).' }),
  })
  .openapi('MoveHandleRequest');

const MOVE_PHASES = [
  'copying',
  'sealing',
  'syncing',
  'verifying',
  'draining',
  'deleting',
  'done',
  'aborting',
  'failed',
] as const;

export const HandleMoveSchema = z
  .object({
    handle: z.string(),
    fromShard: z.number().int(),
    toShard: z.number().int(),
    phase: z.enum(MOVE_PHASES).openapi({ description: 'Where the move stands (docs/design.md#moving-a-handle).' }),
    table: z.string().nullable().openapi({ description: 'The table the copy or the delete is at.' }),
    rowsCopied: z.number().int().openapi({ description: 'Rows written to or removed from the target by the copy.' }),
    rowsRemoved: z.number().int().openapi({ description: 'Rows deleted after the flip (or of a failed copy).' }),
    counts: z
      .record(z.string(), z.object({ source: z.number().int(), target: z.number().int() }))
      .nullable()
      .openapi({ description: 'Per-table row counts on both shards, once verified.' }),
    retryAfterSeconds: z.number().int().openapi({ description: 'Call again after this many seconds.' }),
    error: z.string().nullable(),
    startedAt: z.string(),
    readOnlyAt: z.string().nullable(),
    flippedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    done: z.boolean().openapi({ description: 'True once `phase` is `done` or `failed`.' }),
  })
  .openapi('HandleMove');
