/**
 * The doctor's storage section (docs/design.md#storage-budget): the handle's retention, what the purge job did, its
 * archives, and the database's size against D1's limit, with what to do about it.
 */
import { z } from '@hono/zod-openapi';

export const StorageReportSchema = z
  .object({
    retentionDays: z.number().int(),
    database: z.object({
      sizeBytes: z.number().int().openapi({ description: "The whole database's size, from D1's own metadata." }),
      limitBytes: z.number().int(),
      usedPercent: z.number(),
    }),
    oldestNotificationAt: z.string().nullable(),
    purge: z.object({
      lastRunAt: z.string().nullable(),
      lastPurgeAt: z.string().nullable(),
      waitingOn: z.string().nullable().openapi({
        description: 'An expired notification with open deliveries: it and every later one wait until they end.',
      }),
      lastError: z.string().nullable(),
      purged: z.object({ notifications: z.number().int(), deliveries: z.number().int(), attempts: z.number().int() }),
    }),
    archives: z.object({
      count: z.number().int(),
      bytes: z.number().int(),
      latestId: z.string().nullable(),
      latestPeriod: z.string().nullable(),
    }),
    action: z.string().nullable(),
  })
  .openapi('StorageReport');
