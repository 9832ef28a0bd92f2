/**
 * Delivery statistics for the charts (docs/design.md#delivery-charts): deliveries per hour over 24 h and per day over
 * 7 days by outcome, attempt latency p50/p95 and failed attempts by error class. Each series is one aggregate query
 * whose rows read are bounded by its window: the scans start at a time-ordered id (`boundaryId`) on an index, so rows
 * older than the window are never read, however many there are.
 */
import { notificationDeliveriesSql } from '../../db/schema.ts';
import { boundaryId } from '../../lib/ids.ts';

/** A chart's time axis: `count` buckets of `seconds`, the last one holding `now`, aligned to UTC hours or days. */
export interface StatsWindow {
  seconds: number;
  count: number;
}

export const HOURLY: StatsWindow = { seconds: 3600, count: 24 };
export const DAILY: StatsWindow = { seconds: 86_400, count: 7 };

/** Deliveries created in one bucket, by their status now. */
export interface OutcomeBucket {
  start: string;
  succeeded: number;
  /** Still open: pending, queued or retrying. */
  retrying: number;
  dead: number;
  /** Skipped or cancelled: never sent, on purpose. */
  skipped: number;
}

/** Attempts made in one bucket and their duration percentiles (nearest rank; null without attempts). */
export interface LatencyBucket {
  start: string;
  attempts: number;
  p50Ms: number | null;
  p95Ms: number | null;
}

/** Failed attempts of one error class in the last 24 h and the last 7 days. */
export interface ErrorClassCount {
  errorClass: string;
  last24h: number;
  last7d: number;
}

/** What a statistics read answers, with D1's `rows_read` summed over its statements. */
export interface Measured<T> {
  data: T;
  rowsRead: number;
}

/** Deliveries made this long before a window can still have attempts in it (the retry schedule lasts ~28 h). */
const ATTEMPT_LOOKBACK_MS = 48 * 3600_000;
/** A notification's deliveries are created when it fans out; a platform alert may follow it within minutes. */
const FANOUT_SLACK_MS = 3600_000;

/** Start (ms) of the first bucket of `w` at `now`. */
export function windowStart(w: StatsWindow, now: number): number {
  const size = w.seconds * 1000;
  return Math.floor(now / size) * size - (w.count - 1) * size;
}

/**
 * SQL: the bucket index of an ISO time column, given ?start (seconds) and ?size (seconds) parameters. D1 binds a JS
 * number as a REAL, so the quotient is cut to an integer explicitly (and negative ages stay negative).
 */
const bucketOf = (column: string, start: string, size: string) =>
  `CAST(floor((CAST(strftime('%s', ${column}) AS INTEGER) - ${start}) / ${size}) AS INTEGER)`;

const OUTCOME_SUMS = `SUM(s = 'succeeded') AS succeeded, SUM(s IN ('pending', 'queued', 'retrying')) AS retrying,
       SUM(s = 'dead') AS dead, SUM(s IN ('skipped', 'cancelled')) AS skipped`;

type OutcomeRow = { b: number; succeeded: number; retrying: number; dead: number; skipped: number };

function outcomeBuckets(w: StatsWindow, start: number, rows: OutcomeRow[]): OutcomeBucket[] {
  const out = Array.from({ length: w.count }, (_, i) => ({
    start: new Date(start + i * w.seconds * 1000).toISOString(),
    succeeded: 0,
    retrying: 0,
    dead: 0,
    skipped: 0,
  }));
  for (const r of rows) {
    const slot = out[r.b];
    if (!slot) continue;
    slot.succeeded = r.succeeded;
    slot.retrying = r.retrying;
    slot.dead = r.dead;
    slot.skipped = r.skipped;
  }
  return out;
}

/**
 * Deliveries per bucket of `w` by outcome, from the deliveries `d` each of `sources` selects (`FROM … WHERE …`, UNION
 * ALL): ?1–?3 are the window's start (s), bucket size (s) and bucket count; `params(start)` are ?4 onwards.
 */
function outcomesStatement(
  d1: D1Database,
  w: StatsWindow,
  now: number,
  sources: readonly string[],
  params: (start: number) => unknown[],
) {
  const start = windowStart(w, now);
  const rows = sources.map((from) => `SELECT d.status AS s, ${bucketOf('d.created_at', '?1', '?2')} AS b ${from}`);
  return {
    start,
    statement: d1
      .prepare(`SELECT b, ${OUTCOME_SUMS} FROM (${rows.join(' UNION ALL ')}) WHERE b >= 0 AND b < ?3 GROUP BY b`)
      .bind(start / 1000, w.seconds, w.count, ...params(start)),
  };
}

/**
 * A handle's deliveries per bucket by outcome: those of its notifications (read through `notifications_handle_idx`
 * from the window's first id, then each one's deliveries by notificationDeliveriesSql) and its test sends
 * (`deliveries_test_sends_idx`).
 */
export function handleOutcomesStatement(d1: D1Database, handle: string, w: StatsWindow, now: number) {
  return outcomesStatement(
    d1,
    w,
    now,
    [
      `FROM notifications n CROSS JOIN deliveries d ON ${notificationDeliveriesSql('d', 'n.id')}
        WHERE n.handle = ?4 AND n.id >= ?5 AND d.id >= ?6`,
      'FROM deliveries d WHERE d.handle = ?4 AND d.notification_id IS NULL AND d.id >= ?6',
    ],
    (start) => [handle, boundaryId('ntf', start - FANOUT_SLACK_MS), boundaryId('dlv', start)],
  );
}

/** One webhook's deliveries per bucket by outcome, through `deliveries_subscription_idx` from the window's first id. */
export function webhookOutcomesStatement(d1: D1Database, webhookId: string, w: StatsWindow, now: number) {
  return outcomesStatement(d1, w, now, ['FROM deliveries d WHERE d.subscription_id = ?4 AND d.id >= ?5'], (start) => [
    webhookId,
    boundaryId('dlv', start),
  ]);
}

/**
 * One webhook's attempts per bucket with their p50 and p95 duration (nearest rank, by window functions): attempts of
 * its deliveries made since the lookback before the window, through `deliveries_subscription_idx` and the attempts'
 * (delivery_id, attempt_number) index.
 */
export function webhookLatencyStatement(d1: D1Database, webhookId: string, w: StatsWindow, now: number) {
  const start = windowStart(w, now);
  return {
    start,
    statement: d1
      .prepare(
        `WITH t AS (
           SELECT ${bucketOf('a.created_at', '?3', '?4')} AS b, a.duration_ms AS ms
             FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id
            WHERE d.subscription_id = ?1 AND d.id >= ?2 AND a.created_at >= ?6
         ), r AS (
           SELECT b, ms, ROW_NUMBER() OVER (PARTITION BY b ORDER BY ms) AS rn, COUNT(*) OVER (PARTITION BY b) AS n
             FROM t WHERE b >= 0 AND b < ?5
         )
         SELECT b, MAX(n) AS n,
                MIN(CASE WHEN rn * 100 >= n * 50 THEN ms END) AS p50,
                MIN(CASE WHEN rn * 100 >= n * 95 THEN ms END) AS p95
           FROM r GROUP BY b`,
      )
      .bind(
        webhookId,
        boundaryId('dlv', start - ATTEMPT_LOOKBACK_MS),
        start / 1000,
        w.seconds,
        w.count,
        new Date(start).toISOString(),
      ),
  };
}

/** One webhook's failed attempts by error class over the last 24 h and the last 7 days (the daily window). */
export function webhookErrorClassesStatement(d1: D1Database, webhookId: string, now: number) {
  const start7 = windowStart(DAILY, now);
  const start24 = now - 24 * 3600_000;
  return d1
    .prepare(
      `SELECT COALESCE(a.error_class, 'unknown') AS errorClass, SUM(a.created_at >= ?4) AS last24h, COUNT(*) AS last7d
         FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id
        WHERE d.subscription_id = ?1 AND d.id >= ?2 AND a.created_at >= ?3 AND a.outcome = 'failed'
        GROUP BY 1 ORDER BY last7d DESC, errorClass LIMIT 20`,
    )
    .bind(
      webhookId,
      boundaryId('dlv', start7 - ATTEMPT_LOOKBACK_MS),
      new Date(start7).toISOString(),
      new Date(start24).toISOString(),
    );
}

const rowsRead = (results: D1Result[]) => results.reduce((n, r) => n + (r.meta.rows_read ?? 0), 0);

/** A handle's deliveries by outcome, hourly over 24 h and daily over 7 days: two queries in one batch. */
export async function handleDeliveryStats(
  d1: D1Database,
  handle: string,
  now: number,
): Promise<Measured<{ hourly: OutcomeBucket[]; daily: OutcomeBucket[] }>> {
  const h = handleOutcomesStatement(d1, handle, HOURLY, now);
  const d = handleOutcomesStatement(d1, handle, DAILY, now);
  const results = await d1.batch<OutcomeRow>([h.statement, d.statement]);
  return {
    data: {
      hourly: outcomeBuckets(HOURLY, h.start, results[0]!.results),
      daily: outcomeBuckets(DAILY, d.start, results[1]!.results),
    },
    rowsRead: rowsRead(results),
  };
}

type LatencyRow = { b: number; n: number; p50: number | null; p95: number | null };

function latencyBuckets(w: StatsWindow, start: number, rows: LatencyRow[]): LatencyBucket[] {
  const out: LatencyBucket[] = Array.from({ length: w.count }, (_, i) => ({
    start: new Date(start + i * w.seconds * 1000).toISOString(),
    attempts: 0,
    p50Ms: null,
    p95Ms: null,
  }));
  for (const r of rows) {
    const slot = out[r.b];
    if (!slot) continue;
    slot.attempts = r.n;
    slot.p50Ms = r.p50;
    slot.p95Ms = r.p95;
  }
  return out;
}

/** What one webhook's charts show. */
export interface WebhookStats {
  hourly: OutcomeBucket[];
  daily: OutcomeBucket[];
  latencyHourly: LatencyBucket[];
  latencyDaily: LatencyBucket[];
  errorClasses: ErrorClassCount[];
}

/** One webhook's charts: five aggregate queries in one batch (one round trip). */
export async function webhookDeliveryStats(
  d1: D1Database,
  webhookId: string,
  now: number,
): Promise<Measured<WebhookStats>> {
  const oh = webhookOutcomesStatement(d1, webhookId, HOURLY, now);
  const od = webhookOutcomesStatement(d1, webhookId, DAILY, now);
  const lh = webhookLatencyStatement(d1, webhookId, HOURLY, now);
  const ld = webhookLatencyStatement(d1, webhookId, DAILY, now);
  const results = await d1.batch([
    oh.statement,
    od.statement,
    lh.statement,
    ld.statement,
    webhookErrorClassesStatement(d1, webhookId, now),
  ]);
  return {
    data: {
      hourly: outcomeBuckets(HOURLY, oh.start, results[0]!.results as OutcomeRow[]),
      daily: outcomeBuckets(DAILY, od.start, results[1]!.results as OutcomeRow[]),
      latencyHourly: latencyBuckets(HOURLY, lh.start, results[2]!.results as LatencyRow[]),
      latencyDaily: latencyBuckets(DAILY, ld.start, results[3]!.results as LatencyRow[]),
      errorClasses: results[4]!.results as ErrorClassCount[],
    },
    rowsRead: rowsRead(results),
  };
}
