/**
 * The notifications feed (docs/design.md#routes): keyset-paginated, filtered, each notification with its per-recipient
 * deliveries.
 */
import { createRoute } from '@hono/zod-openapi';
import { archiveHolding } from '../../archive/queries.ts';
import { decodeRecipients, type RecipientSummary } from '../../delivery/summary.ts';
import { createRouter, errorResponses, guard, jsonResponse, pageOf } from '../../http/openapi.ts';
import { boundaryId } from '../../lib/ids.ts';
import { fromJsonColumn } from '../../lib/json.ts';
import { decodeCursor } from '../../lib/pagination.ts';
import { problems } from '../../lib/problem.ts';
import { batchWithAccess, handleD1, handleDb, readWithAccess, resolveAccess } from '../../middleware/auth.ts';
import { HandlePathParams } from '../internal/internal.schemas.ts';
import { feedPlan, type NotificationListRow, type NotificationRow, notificationQuery } from './notifications.repo.ts';
import {
  FeedQuery,
  NOTIFICATION_ID,
  NotificationParams,
  NotificationSchema,
  NotificationSummarySchema,
} from './notifications.schemas.ts';

function deliveriesOf(recipients: string): RecipientSummary[] {
  return decodeRecipients(recipients).sort((a, b) => (a.deliveryId < b.deliveryId ? -1 : 1));
}

function summaryToApi(row: NotificationListRow) {
  const { recipients, openCount, succeededCount, deadCount, ...rest } = row;
  return {
    ...rest,
    deliveryCounts: { open: openCount, succeeded: succeededCount, dead: deadCount },
    deliveries: deliveriesOf(recipients),
  };
}

// The hot reads: token, membership and data in one D1 round trip (middleware/auth.ts `deferToData`).
const read = { handle: true, scopes: ['notifications:read' as const], deferToData: true };

const listRoute = createRoute(
  guard(read, {
    method: 'get',
    path: '/v2/handles/{handle}/notifications',
    operationId: 'listNotifications',
    tags: ['Notifications'],
    summary: 'The notifications feed',
    description:
      'Newest first. Each notification has its aggregate status and one entry per recipient. `since`/`until` ' +
      'bound the time the notification was accepted. With two or more of `status`, `type` and `severity`, ' +
      'with `status=delivering` or `status=delivered`, with `severity=info` or with a `type` prefix, a page may ' +
      'hold fewer than `limit` items (each request reads a bounded slice of an index); keep following ' +
      '`nextCursor` until it is null.',
    request: { params: HandlePathParams, query: FeedQuery },
    responses: {
      200: jsonResponse(pageOf(NotificationSummarySchema, 'NotificationPage'), 'One page.'),
      ...errorResponses(400),
    },
  }),
);

const getRoute = createRoute(
  guard(read, {
    method: 'get',
    path: '/v2/handles/{handle}/notifications/{id}',
    operationId: 'getNotification',
    tags: ['Notifications'],
    summary: 'One notification with its data and deliveries',
    description:
      "A notification past the handle's retention was archived and purged: 410 with `archiveId`, the archive " +
      '(`…/archives/{archiveId}`) whose id range holds it.',
    request: { params: NotificationParams },
    responses: { 200: jsonResponse(NotificationSchema, 'The notification.'), ...errorResponses(410) },
  }),
);

export const notificationsRoutes = createRouter()
  .openapi(listRoute, async (c) => {
    const { handle } = c.req.valid('param');
    const q = c.req.valid('query');
    let cursorId: string | null;
    try {
      cursorId = decodeCursor(q.cursor, NOTIFICATION_ID);
    } catch (err) {
      await resolveAccess(c); // a caller without access gets 401/403/404, not a verdict on its cursor
      throw err;
    }
    const untilId = q.until ? boundaryId('ntf', Date.parse(q.until)) : undefined;
    const filter = {
      status: q.status,
      type: q.type,
      severity: q.severity,
      minId: q.since ? boundaryId('ntf', Date.parse(q.since)) : undefined,
      beforeId: cursorId && untilId ? (cursorId < untilId ? cursorId : untilId) : (cursorId ?? untilId ?? undefined),
    };
    const plan = feedPlan(await handleD1(c), handle, filter, q.limit);
    const page = plan.page(await readWithAccess(c, plan.read));
    return c.json({ data: page.items.map(summaryToApi), nextCursor: page.nextCursor }, 200);
  })
  .openapi(getRoute, async (c) => {
    const { handle, id } = c.req.valid('param');
    const db = await handleDb(c);
    const [rows] = await batchWithAccess(c, db, [notificationQuery(db, handle, id)]);
    const row = (rows as NotificationRow[])[0];
    if (!row) {
      // Past the retention: name the archive that holds it (docs/design.md#retention-and-archives).
      const archive = await archiveHolding(db, handle, id);
      if (!archive) throw problems.notFound();
      throw problems.gone(
        `Notifications of this id range passed the handle's retention and were removed from the database; it is ` +
          `in archive ${archive.id} (GET /v2/handles/${handle}/archives/${archive.id}).`,
        { archiveId: archive.id, archivePeriod: archive.period },
      );
    }
    const { data, handle: _handle, alertCheckAt: _alertCheckAt, ...rest } = row;
    // fromJsonColumn: data stored before the depth bound comes back with its deepest parts elided, never a 500.
    return c.json({ ...summaryToApi(rest), data: fromJsonColumn<Record<string, unknown>>(data) ?? {} }, 200);
  });
