/**
 * The notifications feed. Every query is a keyset scan of one index — (handle, id) or (handle, <filter>, id) — so a
 * page reads a bounded number of rows whatever the table size; deliveries come from the per-notification summary
 * column, not a join.
 */
import { and, desc, eq, gte, lt, type SQL, sql } from 'drizzle-orm';
import { type Db, getDb } from '../../db/client.ts';
import { allCompiled, compiled } from '../../db/prepared.ts';
import {
  NOTIFICATION_PATH_STATUSES,
  NOTIFICATION_SEVERITY_INDEXED,
  NOTIFICATION_STATUS_INDEXED,
  notifications,
} from '../../db/schema.ts';
import { matchesEventTypes } from '../../lib/filter-policy.ts';
import { encodeCursor, toPage } from '../../lib/pagination.ts';

export type NotificationRow = typeof notifications.$inferSelect;
/** A feed row: what the API shows of a notification (not its data, nor the internal `alertCheckAt` mark). */
export type NotificationListRow = Omit<NotificationRow, 'data' | 'handle' | 'alertCheckAt'>;

export interface FeedFilter {
  status?: NotificationRow['status'] | undefined;
  type?: string | undefined;
  severity?: NotificationRow['severity'] | undefined;
  /** Inclusive lower id bound (from `since`). */
  minId?: string | undefined;
  /** Exclusive upper id bound (from `until` and the cursor). */
  beforeId?: string | undefined;
}

const listColumns = {
  id: notifications.id,
  type: notifications.type,
  severity: notifications.severity,
  status: notifications.status,
  source: notifications.source,
  sourceEventId: notifications.sourceEventId,
  occurredAt: notifications.occurredAt,
  recipientCount: notifications.recipientCount,
  recipients: notifications.recipients,
  openCount: notifications.openCount,
  succeededCount: notifications.succeededCount,
  deadCount: notifications.deadCount,
  createdAt: notifications.createdAt,
  updatedAt: notifications.updatedAt,
};

/** A status `notifications_handle_status_idx` holds (it is partial): a filter on it is an exact keyset scan. */
export const statusIndexed = (s: FeedFilter['status']): boolean =>
  s !== undefined && !(NOTIFICATION_PATH_STATUSES as readonly string[]).includes(s);
/** A severity `notifications_handle_severity_idx` holds (it is partial: all but `info`). */
export const severityIndexed = (s: FeedFilter['severity']): boolean => s !== undefined && s !== 'info';

/**
 * Builds the feed query (exported so tests can EXPLAIN it). A `status` or `severity` in `filter` must be one its
 * partial index holds (`statusIndexed`, `severityIndexed`; `feedPlan` sees to it): the query repeats the index's own
 * WHERE term, without which SQLite would not use the index, so any other value would match nothing.
 */
export function feedQuery(db: Db, handle: string, filter: FeedFilter, limit: number) {
  const conditions: (SQL | undefined)[] = [
    eq(notifications.handle, handle),
    filter.status ? sql.raw(NOTIFICATION_STATUS_INDEXED) : undefined,
    filter.status ? eq(notifications.status, filter.status) : undefined,
    filter.type ? eq(notifications.type, filter.type) : undefined,
    filter.severity ? sql.raw(NOTIFICATION_SEVERITY_INDEXED) : undefined,
    filter.severity ? eq(notifications.severity, filter.severity) : undefined,
    filter.minId ? gte(notifications.id, filter.minId) : undefined,
    filter.beforeId ? lt(notifications.id, filter.beforeId) : undefined,
  ];
  return db
    .select(listColumns)
    .from(notifications)
    .where(and(...conditions))
    .orderBy(desc(notifications.id))
    .limit(limit);
}

const FILTER_KEYS = ['status', 'type', 'severity', 'minId', 'beforeId'] as const;
/** Only builds SQL (src/db/prepared.ts): never run. */
const SQL_ONLY = {} as D1Database;

/**
 * {@link feedQuery} run on the handle's shard `d1`, its SQL built once per isolate for each combination of filters
 * present (src/db/prepared.ts): the same statement, without drizzle rebuilding it on every read.
 */
export function readFeed(
  d1: D1Database,
  handle: string,
  filter: FeedFilter,
  limit: number,
): Promise<NotificationListRow[]> {
  const shape = FILTER_KEYS.map((k) => (filter[k] === undefined ? '-' : k[0])).join('');
  const query = compiled<NotificationListRow>(`feed.${shape}`, listColumns, () => {
    const slots = Object.fromEntries(
      FILTER_KEYS.map((k) => [k, filter[k] === undefined ? undefined : sql.placeholder(k)]),
    ) as unknown as FeedFilter;
    return feedQuery(getDb(SQL_ONLY), sql.placeholder('handle') as never, slots, sql.placeholder('limit') as never);
  });
  return allCompiled(d1, query, { ...filter, handle, limit });
}

/** Rows one request may read when several filters combine: bounded work per page, whatever the table size. */
export const COMBINED_FILTER_SCAN = 20;

type Page = { items: NotificationListRow[]; nextCursor: string | null };

/**
 * One feed page as a query plus how to turn its rows into the page, so the route can send the query in the same D1
 * batch as its access check. When one index holds exactly the matching rows (no filter, or one filter whose value
 * its index holds: any exact `type`, an attention status, a `warning`/`critical` severity), the page is `limit + 1`
 * rows of a keyset scan. Otherwise (several filters; `status=delivering|delivered`, `severity=info` or a `type`
 * prefix, which no index holds) the index of one filter it does hold, else `notifications_handle_idx`, narrows, and
 * the rest are checked on a bounded slice (limit × COMBINED_FILTER_SCAN rows); when the slice ends before the page is
 * full, the cursor resumes after the slice, so every match is still returned exactly once, possibly over shorter
 * pages.
 */
export function feedPlan(d1: D1Database, handle: string, given: FeedFilter, limit: number) {
  // `type` takes the eventTypes patterns (docs/design.md#eventtypes-patterns): `*` is no filter; a prefix (`order.*`)
  // is no index equality, so it is checked on the bounded slice like a second filter.
  const filter: FeedFilter = given.type === '*' ? { ...given, type: undefined } : given;
  const prefix = filter.type?.endsWith('.*') === true;
  const filters = [filter.status, filter.type, filter.severity].filter((f) => f !== undefined).length;
  // The one filter the query narrows by: the first whose index holds its value (the partial ones hold only some).
  const narrow: FeedFilter = { ...filter, status: undefined, type: undefined, severity: undefined };
  const primary: FeedFilter = statusIndexed(filter.status)
    ? { ...narrow, status: filter.status }
    : filter.type !== undefined && !prefix
      ? { ...narrow, type: filter.type }
      : severityIndexed(filter.severity)
        ? { ...narrow, severity: filter.severity }
        : narrow;
  if (filters === 0 || (filters === 1 && primary !== narrow)) {
    return {
      read: () => readFeed(d1, handle, primary, limit + 1),
      page: (rows: NotificationListRow[]): Page => toPage(rows, limit),
    };
  }
  const scan = limit * COMBINED_FILTER_SCAN;
  return {
    read: () => readFeed(d1, handle, primary, scan),
    page: (slice: NotificationListRow[]): Page => {
      const hits = slice.filter(
        (r) =>
          (!filter.type || matchesEventTypes([filter.type], r.type)) &&
          (!filter.severity || r.severity === filter.severity) &&
          (!filter.status || r.status === filter.status),
      );
      if (hits.length > limit) return { items: hits.slice(0, limit), nextCursor: encodeCursor(hits[limit - 1]!.id) };
      // The slice ran out: resume after its last row if it was full (more may match further down), else we are done.
      return { items: hits, nextCursor: slice.length === scan ? encodeCursor(slice[slice.length - 1]!.id) : null };
    },
  };
}

/** One feed page (see `feedPlan`). */
export async function feedPage(d1: D1Database, handle: string, filter: FeedFilter, limit: number): Promise<Page> {
  const plan = feedPlan(d1, handle, filter, limit);
  return plan.page(await plan.read());
}

/** The notification `id` of `handle` (zero or one row); a query, so it can ride in the route's batch. */
export function notificationQuery(db: Db, handle: string, id: string) {
  return db
    .select()
    .from(notifications)
    .where(and(eq(notifications.id, id), eq(notifications.handle, handle)));
}

export function getNotification(db: Db, handle: string, id: string): Promise<NotificationRow | undefined> {
  return notificationQuery(db, handle, id).get();
}

/**
 * How many of the handle's notifications from `fromId` on are `undeliverable`, as `{ n }` (the doctor's last day). It
 * repeats the partial status index's term, without which SQLite could not use that index and would read every
 * notification of the handle since `fromId` instead.
 */
export function undeliverableCount(d1: D1Database, handle: string, fromId: string): D1PreparedStatement {
  return d1
    .prepare(
      `SELECT count(*) AS n FROM notifications
       WHERE handle = ?1 AND ${NOTIFICATION_STATUS_INDEXED} AND status = 'undeliverable' AND id >= ?2`,
    )
    .bind(handle, fromId);
}
