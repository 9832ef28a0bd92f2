/**
 * `GET /v2/handles/{handle}/usage` (docs/design.md#usage): every limit a bulk run meets, before it meets it — today's
 * writes against the daily limit with its reset, each throttle class with its policy and what remains, the
 * subscriptions against their caps, the events stored today, deferred deliveries, and storage against retention.
 * One D1 round trip (usage.repo.ts).
 */
import { createRoute, z } from '@hono/zod-openapi';
import { sizeOf } from '../../archive/storage.ts';
import { nextUtcMidnight, utcDay } from '../../db/daily-counters.ts';
import { config } from '../../env.ts';
import { createRouter, guard, jsonResponse } from '../../http/openapi.ts';
import { THROTTLES, type ThrottleClass, throttleKey, throttlePolicy, throttleState } from '../../lib/throttles.ts';
import { handleD1 } from '../../middleware/auth.ts';
import { dailyPolicy } from '../../middleware/quota.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import { DEFERRED_COUNT_BOUND, readUsage } from './usage.repo.ts';

const Budget = z.object({ used: z.number().int(), limit: z.number().int(), remaining: z.number().int() });

export const UsageReport = z
  .object({
    handle: z.string(),
    generatedAt: z.string(),
    dailyWrites: Budget.extend({
      day: z.string().openapi({ description: 'The UTC day counted, YYYY-MM-DD.' }),
      resetAt: z.string().openapi({ description: 'The next UTC midnight, when the count starts again.' }),
      policy: z.string().openapi({ example: '"daily";q=5000;w=86400' }),
      counts: z.string(),
    }),
    throttles: z.array(
      z.object({
        class: z.enum(Object.keys(THROTTLES) as [ThrottleClass, ...ThrottleClass[]]),
        policy: z
          .string()
          .openapi({ description: 'As in the RateLimit-Policy header.', example: '"writes";q=60;w=60' }),
        limit: z.number().int(),
        windowSeconds: z.number().int(),
        remaining: z.number().int().openapi({
          description: 'Left in this window for your token on this handle, as this instance counted it: at most this.',
        }),
        resetSeconds: z.number().int(),
      }),
    ),
    subscriptions: z.object({ webhooks: Budget, emailSubscriptions: Budget }),
    events: z.object({
      publishedToday: z.number().int().openapi({ description: 'Events stored today (UTC); duplicates not counted.' }),
      deferred: z
        .number()
        .int()
        .openapi({ description: `Deferred deliveries waiting (counted up to ${DEFERRED_COUNT_BOUND}).` }),
      deferredAtLeast: z.boolean(),
      nextReleaseAt: z.string().nullable(),
    }),
    storage: z.object({
      retentionDays: z.number().int(),
      oldestNotificationAt: z.string().nullable(),
      purgeDueAt: z.string().nullable().openapi({ description: 'When the oldest notification passes its retention.' }),
      database: z.object({ sizeBytes: z.number().int(), limitBytes: z.number().int(), usedPercent: z.number() }),
      archives: z.object({ count: z.number().int(), bytes: z.number().int() }),
    }),
  })
  .openapi('UsageReport');

const usageRoute = createRoute(
  guard(
    { handle: true, scopes: ['notifications:read'] },
    {
      method: 'get',
      path: '/v2/handles/{handle}/usage',
      operationId: 'getUsage',
      tags: ['Handles'],
      summary: 'Usage against every limit',
      description:
        'Read it before a bulk run: the daily write limit (with its reset), each throttle class, subscription caps, ' +
        'events stored today, deferred deliveries and storage against retention, in one request.',
      request: { params: HandlePathParams },
      responses: { 200: jsonResponse(UsageReport, 'What is used, what remains, and when it resets.') },
    },
  ),
);

const budget = (used: number, limit: number) => ({ used, limit, remaining: Math.max(0, limit - used) });

export const usageRoutes = createRouter().openapi(usageRoute, async (c) => {
  const { handle } = c.req.valid('param');
  const cfg = config(c.env);
  const now = new Date();
  // Counters, subscriptions and rows of the handle, and the size of the database holding them: its shard.
  const rows = await readUsage(await handleD1(c), handle, now);
  const principalKey = c.get('principal')?.key ?? 'anonymous';
  const oldest = rows.oldestNotificationAt;
  return c.json(
    {
      handle,
      generatedAt: now.toISOString(),
      dailyWrites: {
        ...budget(rows.writes, cfg.dailyWriteLimit),
        day: utcDay(now),
        resetAt: nextUtcMidnight(now).toISOString(),
        policy: dailyPolicy(cfg.dailyWriteLimit),
        counts: 'Writes under /v2/handles/{handle}/… and each stored item of POST …/events/batch.',
      },
      throttles: (Object.keys(THROTTLES) as ThrottleClass[]).map((kind) => ({
        class: kind,
        policy: throttlePolicy(kind),
        ...throttleState(kind, throttleKey(kind, principalKey, handle), now.getTime()),
      })),
      subscriptions: {
        webhooks: budget(rows.webhooks, cfg.maxWebhooksPerHandle),
        emailSubscriptions: budget(rows.emailSubscriptions, cfg.maxEmailSubscriptionsPerHandle),
      },
      events: {
        publishedToday: rows.events,
        deferred: rows.deferred.count,
        deferredAtLeast: rows.deferred.count >= DEFERRED_COUNT_BOUND,
        nextReleaseAt: rows.deferred.nextReleaseAt,
      },
      storage: {
        retentionDays: rows.retentionDays,
        oldestNotificationAt: oldest,
        purgeDueAt: oldest ? new Date(Date.parse(oldest) + rows.retentionDays * 86_400_000).toISOString() : null,
        database: sizeOf({ size_after: rows.sizeBytes }, cfg.d1SizeLimitBytes),
        archives: rows.archives,
      },
    },
    200,
  );
});
