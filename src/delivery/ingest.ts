/**
 * Ingest (docs/design.md#outbox): an event becomes a notification and one delivery per recipient, written in ONE
 * `db.batch` (atomic: never a notification without its deliveries), then enqueued. Used by `POST …/events`, the
 * `notify-events` consumer and the service's own system events (alerts.ts), so all three behave the same.
 *
 * In three steps: `checkEvent` (what needs no read: system type, size), `ingestReads` (the duplicate check and the
 * match context, one D1 round trip) and `ingestWithReads` (plan, write, enqueue). `ingestEvent` runs all three; the
 * publish route runs the reads in its own batch together with its deferred access check, so publishing costs one
 * round trip for token, membership and every read, and the access check is settled before any row is used.
 */
import { and, eq, isNotNull, Placeholder, sql } from 'drizzle-orm';
import { type Db, getDb } from '../db/client.ts';
import { countEventsStatement, giveBackDailySlots, takeDailySlots, utcDay } from '../db/daily-counters.ts';
import { type Compiled, compiled, type ReadBatch, readBatch, runReadBatch } from '../db/prepared.ts';
import { notifications } from '../db/schema.ts';
import { placementOf, shardAt } from '../db/shards.ts';
import type { Config, RunContext } from '../env.ts';
import { eventTypeInfo, looksLikeCatalogTypo, nearestEventTypes, type Severity } from '../lib/event-catalog.ts';
import { derivedId, newId } from '../lib/ids.ts';
import { fromJsonColumn } from '../lib/json.ts';
import { type PeakWindows, peakWindowEnd, releaseAt } from '../lib/peak-windows.ts';
import { humanValidationMessage, withExampleFrom } from '../lib/validation-messages.ts';
import { CAMPAIGN_WINDOW_REASON, campaignWindowStatements, PEAK_WINDOW_REASON } from './deferral.ts';
import { enqueueDeliveries } from './enqueue.ts';
import { planRecipients } from './match.ts';
import { type MatchContext, matchContextCompiled, type SettingsRow, toMatchContext } from './match-context.ts';
import { PLATFORM_ALERT_REASON } from './platform-alerts.ts';
import {
  decodeRecipients,
  encodeRecipients,
  initialStatus,
  RECIPIENT_SUMMARY_LIMIT,
  type RecipientSummary,
} from './summary.ts';

export interface IngestRequest {
  handle: string;
  type: string;
  severity?: Severity | undefined;
  data: Record<string, unknown>;
  occurredAt?: string | undefined;
  sourceEventId?: string | undefined;
  /** Who published it: a service name, `user:<id>`, or `system`. */
  source: string;
  /** `off_peak`: wait while a peak campaign window is open (docs/design.md#peak-campaign-windows); default `now`. */
  delivery?: DeliveryMode | undefined;
}

/** When an event's deliveries go: at once, or after the peak campaign window open at publish time. */
export type DeliveryMode = 'now' | 'off_peak';

export interface IngestOptions {
  /** Allows the service's own event types (webhook.endpoint_disabled, email.subscription_stale). */
  system?: boolean;
}

/** An event that passed {@link checkEvent}, its severity settled: what the reads and the write take. */
export interface CheckedEvent {
  handle: string;
  type: string;
  severity: Severity;
  data: Record<string, unknown>;
  occurredAt: string | undefined;
  sourceEventId: string | undefined;
  delivery: DeliveryMode;
}

/**
 * The reads of one ingest, built once per isolate (src/db/prepared.ts), for a batch of their own (`runReadBatch`) or
 * beside the publish route's access check (`readWithAccess`).
 */
export type IngestReads = ReadBatch;

export interface IngestResult {
  notificationId: string;
  status: string;
  /** True when `sourceEventId` was seen before: the first notification is returned and nothing new is written. */
  duplicate: boolean;
  /** When the first of its deferred deliveries goes (docs/design.md#peak-campaign-windows); null when none waits. */
  deferredUntil: string | null;
  recipients: RecipientSummary[];
}

/** Why an event cannot be accepted; the HTTP layer maps `code` to a status, the queue consumer records it. */
export class IngestRejected extends Error {
  constructor(
    readonly code:
      | 'unknown_handle'
      | 'system_event_type'
      | 'data_too_large'
      | 'unknown_event_type'
      | 'invalid_event_data',
    message: string,
    /** Where in the event it is wrong (`type`, `data.total`), and the catalog types it most likely meant. */
    readonly details: { errors?: { path: string; message: string }[]; suggestions?: string[] } = {},
  ) {
    super(message);
    this.name = 'IngestRejected';
  }
}

interface DeliveryRow extends RecipientSummary {
  kind: 'event';
  handle: string;
  notificationId: string;
  createdAt: string;
  /** When a deferred delivery goes; null otherwise. */
  nextAttemptAt: string | null;
}

/** A delivery row as the notification's summary and the publish answer show it. */
function summaryEntry(r: DeliveryRow): RecipientSummary {
  const { kind: _k, handle: _h, notificationId: _n, createdAt: _c, nextAttemptAt: _a, ...entry } = r;
  return entry;
}

function deliveryFor(
  v: Pick<RecipientSummary, 'recipientType' | 'channel' | 'subscriptionId' | 'target'>,
  status: 'queued' | 'skipped' | 'deferred',
  reason: string | null,
  base: { handle: string; notificationId: string; now: string; nextId: () => string },
): DeliveryRow {
  return {
    deliveryId: base.nextId(),
    kind: 'event',
    handle: base.handle,
    notificationId: base.notificationId,
    channel: v.channel,
    recipientType: v.recipientType,
    subscriptionId: v.subscriptionId,
    target: v.target,
    status,
    statusReason: reason,
    attempts: 0,
    lastErrorClass: null,
    lastHttpStatus: null,
    updatedAt: base.now,
    createdAt: base.now,
    nextAttemptAt: null,
  };
}

/** The notification already stored for a sourceEventId, as a drizzle query (it rides in the context batch). */
function bySourceIdQuery(db: Db, handle: string, sourceEventId: string) {
  return db
    .select({ id: notifications.id, status: notifications.status, recipients: notifications.recipients })
    .from(notifications)
    .where(
      and(
        eq(notifications.handle, handle),
        eq(notifications.sourceEventId, sourceEventId),
        // The partial index's own condition, so the planner may use it.
        isNotNull(notifications.sourceEventId),
      ),
    );
}

function duplicateOf(row: { id: string; status: string; recipients: string }): IngestResult {
  return {
    notificationId: row.id,
    status: row.status,
    duplicate: true,
    deferredUntil: null,
    recipients: decodeRecipients(row.recipients),
  };
}

async function existingBySourceId(db: Db, handle: string, sourceEventId: string): Promise<IngestResult | null> {
  const [row] = await bySourceIdQuery(db, handle, sourceEventId);
  return row ? duplicateOf(row) : null;
}

/**
 * The checks that need no read, in the order a publisher hears them: a system type (unless `options.system`, for the
 * service's own events, which clients may not publish), a type that reads as a typo of a catalog type, `data` that
 * fails its catalog schema (docs/design.md#event-catalog), then the size of `data`. Throws {@link IngestRejected}.
 */
export function checkEvent(cfg: Config, req: Omit<IngestRequest, 'source'>, options: IngestOptions = {}): CheckedEvent {
  const info = eventTypeInfo(req.type);
  if (info?.system && !options.system) {
    throw new IngestRejected('system_event_type', `${req.type} is emitted by this service and cannot be published.`);
  }
  if (!info && !options.system && looksLikeCatalogTypo(req.type)) {
    const suggestions = nearestEventTypes(req.type, { publishable: true });
    const message = `${req.type} is not in the event catalog; did you mean ${suggestions[0]}? (GET /v2/event-types)`;
    throw new IngestRejected('unknown_event_type', message, { errors: [{ path: 'type', message }], suggestions });
  }
  if (info && !options.system) {
    const parsed = info.schema.safeParse(req.data);
    if (!parsed.success) {
      const errors = parsed.error.issues.map((i) => {
        const path = ['data', ...i.path.map(String)].join('.');
        return { path, message: withExampleFrom(info.sample, i.path, humanValidationMessage(i, path)) };
      });
      const where = errors.map((e) => e.path).join(', ');
      throw new IngestRejected('invalid_event_data', `data does not match the ${req.type} schema at ${where}.`, {
        errors,
      });
    }
  }
  const dataBytes = new TextEncoder().encode(JSON.stringify(req.data)).length;
  if (dataBytes > cfg.maxEventDataBytes) {
    throw new IngestRejected(
      'data_too_large',
      `Event data is ${dataBytes} bytes; at most ${cfg.maxEventDataBytes} are accepted.`,
    );
  }
  return {
    handle: req.handle,
    type: req.type,
    severity: req.severity ?? info?.defaultSeverity ?? 'info',
    data: req.data,
    occurredAt: req.occurredAt,
    sourceEventId: req.sourceEventId,
    delivery: req.delivery ?? 'now',
  };
}

/** Only builds SQL (src/db/prepared.ts): never run. */
const SQL_ONLY = {} as D1Database;
const slot = (name: string) => sql.placeholder(name) as unknown as string;

const bySourceIdCompiled = (): Compiled<unknown> =>
  compiled('ingest.bySourceId', { id: 1, status: 1, recipients: 1 }, () =>
    bySourceIdQuery(getDb(SQL_ONLY), slot('handle'), slot('sourceEventId')),
  );

/**
 * Every read of an ingest on the handle's shard: the duplicate check (a duplicate wastes three small reads), then the
 * match context.
 */
export function ingestReads(shard: D1Database, event: Pick<CheckedEvent, 'handle' | 'sourceEventId'>): IngestReads {
  const context = matchContextCompiled(event.handle);
  return readBatch(
    shard,
    event.sourceEventId
      ? [[bySourceIdCompiled(), { handle: event.handle, sourceEventId: event.sourceEventId }], ...context]
      : context,
  );
}

/** One event planned against its handle's match context: its rows, the statements that store it, what it defers. */
interface PlannedEvent {
  event: CheckedEvent;
  notificationId: string;
  status: ReturnType<typeof initialStatus>;
  rows: DeliveryRow[];
  /** The notification, its deliveries, and the settings' campaign window when the event opens or closes one. */
  statements: D1PreparedStatement[];
  /** The earliest time one of its deferred deliveries goes; null when none waits. */
  deferredUntil: string | null;
}

/**
 * Where an event's deliveries go now or wait (docs/design.md#peak-campaign-windows): an `off_peak` event that is not
 * critical, published while a peak window is open, is deferred until the window ends (bounded by MAX_DEFERRAL_MS).
 */
function deferralOf(event: CheckedEvent, settings: SettingsRow, at: Date): { end: Date; reason: string } | null {
  if (event.delivery !== 'off_peak' || event.severity === 'critical') return null;
  const end = peakWindowEnd(fromJsonColumn<PeakWindows>(settings.peakWindows), settings.campaignWindowUntil, at);
  if (!end) return null;
  const campaign = settings.campaignWindowUntil !== null && Date.parse(settings.campaignWindowUntil) > at.getTime();
  return { end, reason: campaign ? CAMPAIGN_WINDOW_REASON : PEAK_WINDOW_REASON };
}

/** Plans a checked event: its recipients, delivery rows (deferred or pending) and the statements that store it. */
function planEvent(
  { cfg }: RunContext,
  shard: D1Database,
  event: CheckedEvent,
  source: string,
  match: MatchContext,
  at: Date,
): PlannedEvent {
  const { severity } = event;
  const plan = planRecipients(
    { type: event.type, severity, source, data: event.data },
    match.settings,
    match.webhooks,
    match.emails,
  );

  const now = at.toISOString();
  const notificationId = newId('ntf');
  // The deliveries' ids are made from the notification's: one range of keys, no index entry for it
  // (docs/design.md#delivery-ids).
  let ordinal = 0;
  const nextId = () => derivedId('dlv', notificationId, ordinal++);
  const base = { handle: event.handle, notificationId, now, nextId };
  const deferral = deferralOf(event, match.settingsRow, at);
  const rows: DeliveryRow[] = [];
  for (const v of plan.recipients) {
    if (v.outcome === 'deliver') {
      rows.push(
        deferral
          ? {
              ...deliveryFor(v, 'deferred', deferral.reason, base),
              nextAttemptAt: releaseAt(deferral.end, at, Math.random(), cfg.releaseSpreadMs),
            }
          : deliveryFor(v, 'queued', null, base),
      );
    } else if (v.outcome === 'skip_disabled') rows.push(deliveryFor(v, 'skipped', v.rule, base));
  }
  if (plan.undeliverable && cfg.platformAlertEmail) {
    // Nobody of the handle's can receive this critical event: the platform's alert address gets it instead.
    rows.push(
      deliveryFor(
        { recipientType: 'platform_alert', channel: 'email', subscriptionId: null, target: cfg.platformAlertEmail },
        'queued',
        PLATFORM_ALERT_REASON,
        base,
      ),
    );
  }
  const open = rows.filter((r) => r.status === 'queued' || r.status === 'deferred').length;
  const status = initialStatus({ open, succeeded: 0, dead: 0 }, plan.undeliverable);
  const summary = encodeRecipients(rows.slice(0, RECIPIENT_SUMMARY_LIMIT).map(summaryEntry));
  const deferredUntil = rows.reduce<string | null>(
    (min, r) => (r.nextAttemptAt && (min === null || r.nextAttemptAt < min) ? r.nextAttemptAt : min),
    null,
  );
  // Every statement on the handle's shard (docs/design.md#shards).
  const statements = [
    shard
      .prepare(
        `INSERT INTO notifications (id, handle, type, severity, data, source, source_event_id, occurred_at, status,
         recipient_count, recipients, open_count, succeeded_count, dead_count, created_at, updated_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, 0, ?13, ?13)`,
      )
      .bind(
        notificationId,
        event.handle,
        event.type,
        severity,
        JSON.stringify(event.data),
        source,
        event.sourceEventId ?? null,
        event.occurredAt ?? now,
        status,
        rows.length,
        summary,
        open,
        now,
      ),
    // Every delivery in one statement: the rows travel as one JSON parameter (D1 allows 100 bound values a query).
    shard
      .prepare(
        `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
         status, status_reason, attempt_count, retry_base, next_attempt_at, created_at, updated_at,
         id_from_notification)
       SELECT value ->> '$.deliveryId', value ->> '$.handle', value ->> '$.notificationId', 'event',
         value ->> '$.channel', value ->> '$.recipientType', value ->> '$.subscriptionId', value ->> '$.target',
         value ->> '$.status', value ->> '$.statusReason', 0, 0, value ->> '$.nextAttemptAt', value ->> '$.createdAt',
         value ->> '$.createdAt', 1
       FROM json_each(?1)`,
      )
      .bind(JSON.stringify(rows)),
    ...campaignWindowStatements(shard, event, match.settingsRow, at, cfg.releaseSpreadMs),
  ];
  return { event, notificationId, status, rows, statements, deferredUntil };
}

/** The answer for a stored event; `unsent` names the deliveries whose send failed and that wait as `pending`. */
function storedResult(p: PlannedEvent, unsent: ReadonlySet<string>): IngestResult {
  return {
    notificationId: p.notificationId,
    status: p.status,
    duplicate: false,
    deferredUntil: p.deferredUntil,
    recipients: p.rows.map((r) => {
      const entry = summaryEntry(r);
      return unsent.has(r.deliveryId) ? { ...entry, status: 'pending' as const } : entry;
    }),
  };
}

/**
 * Sends the deliveries of stored events, written `queued` (docs/design.md#outbox: the mark costs no write of its
 * own); the ones whose send failed are put back to `pending`. Returns those. Never throws (the events are stored).
 */
async function enqueueStored(env: Env, shard: D1Database, planned: readonly PlannedEvent[]): Promise<Set<string>> {
  const queued = planned.flatMap((p) =>
    p.rows.filter((r) => r.status === 'queued').map((r) => ({ deliveryId: r.deliveryId, handle: r.handle })),
  );
  if (!queued.length) return new Set();
  const sent = await enqueueDeliveries(env, shard, queued, { written: 'queued' });
  return new Set(sent.marked ? sent.failed : []);
}

/**
 * After a write that failed, the messages of its rows anyway: the write may have committed with only its answer lost,
 * and its rows, written `queued`, would otherwise wait for the overdue sweep. A message whose row was never written is
 * acknowledged by the consumer with nothing done.
 */
async function sendUnconfirmed(env: Env, shard: D1Database, planned: readonly PlannedEvent[]): Promise<void> {
  await enqueueStored(env, shard, planned);
}

/**
 * Plans, writes and enqueues a checked event from the rows of its {@link ingestReads}: the first notification when
 * the sourceEventId was seen before, otherwise a new notification with its deliveries.
 */
export async function ingestWithReads(
  ctx: RunContext,
  shard: D1Database,
  event: CheckedEvent,
  source: string,
  reads: readonly unknown[][],
): Promise<IngestResult> {
  const { env } = ctx;
  let context = reads;
  if (event.sourceEventId) {
    const [seen] = reads[0] as Array<{ id: string; status: string; recipients: string }>;
    if (seen) return duplicateOf(seen);
    context = reads.slice(1);
  }
  const match = toMatchContext(context as unknown as Parameters<typeof toMatchContext>[0]);
  if (!match) throw new IngestRejected('unknown_handle', `No handle ${event.handle}.`);

  const at = new Date();
  const planned = planEvent(ctx, shard, event, source, match, at);
  try {
    await shard.batch([...planned.statements, countEventsStatement(shard, event.handle, at.toISOString())]);
  } catch (err) {
    // Two publishers raced with one sourceEventId: the unique index let exactly one batch in; answer with it.
    if (event.sourceEventId && /UNIQUE/i.test(String(err))) {
      const seen = await existingBySourceId(getDb(shard), event.handle, event.sourceEventId);
      if (seen) return seen;
    }
    await sendUnconfirmed(env, shard, [planned]);
    throw err;
  }
  // From here on the event is stored: nothing may throw (a retried publish or events message would store it again).
  return storedResult(planned, await enqueueStored(env, shard, [planned]));
}

/** Accepts one event for a handle: checks, reads (one round trip), plans, writes and enqueues it. */
export async function ingestEvent(
  ctx: RunContext,
  req: IngestRequest,
  options: IngestOptions = {},
): Promise<IngestResult> {
  const event = checkEvent(ctx.cfg, req, options);
  const shard = await writableShardOf(ctx.env, event.handle);
  if (!shard) throw unknownHandle(event.handle);
  const reads = await runReadBatch(shard, ingestReads(shard, event));
  return ingestWithReads(ctx, shard, event, req.source, reads);
}

/**
 * The handle's shard (docs/design.md#shards); null for a handle the directory does not know. A handle moving between
 * shards (docs/design.md#moving-a-handle) is not a rejection: this throws and the caller retries after the move.
 */
async function writableShardOf(env: Pick<Env, 'DB'>, handle: string): Promise<D1Database | null> {
  const placement = await placementOf(env, handle);
  if (!placement) return null;
  if (placement.movingSince) throw new Error(`handle ${handle} is moving between shards; retry shortly`);
  return shardAt(env, placement.shard);
}

/** At most this many events in one batch (`POST …/events/batch`, and one handle's share of a queue batch). */
export const MAX_BATCH_EVENTS = 100;

/** What became of one event of a batch, in the batch's order. */
export type BatchOutcome =
  | { kind: 'stored' | 'duplicate'; result: IngestResult }
  | { kind: 'rejected'; error: IngestRejected }
  /** Past the handle's daily write limit: nothing of it was written. */
  | { kind: 'over_daily_limit' }
  /** Its own write failed after the batch's shared write did (a race on a sourceEventId): nothing of it was written. */
  | { kind: 'failed'; error: unknown };

export interface BatchOptions extends IngestOptions {
  /** The handle's daily write limit: each stored event takes a slot, taken for the whole batch before any write. */
  dailyLimit?: number;
  /** The handle's shard, when the caller already knows it (the publish route); otherwise read from the directory. */
  shard?: D1Database;
  /** Runs the batch's reads: the publish route adds its deferred access check to the same round trip. */
  read?: (queries: IngestReads) => Promise<readonly unknown[][]>;
  /** Who published the events, once the reads settled who is asking (overrides each request's `source`). */
  sourceOf?: () => string;
}

/**
 * The notifications already stored for any of these sourceEventIds (one statement, the ids as one JSON value). The
 * index is named: once D1 has statistics, most rows' sourceEventId is NULL, the unique index looks unselective and
 * the planner scanned the handle's notifications instead (104,164 rows read for a batch of 100 in the bench).
 */
function bySourceIdsQuery(db: Db, handle: string, sourceEventIds: readonly string[] | Placeholder) {
  return db
    .select({
      // Plain column names: drizzle refuses table-bound fields over a FROM it did not build.
      id: sql<string>`id`,
      status: sql<(typeof notifications.$inferSelect)['status']>`status`,
      recipients: sql<string>`recipients`,
      sourceEventId: sql<string | null>`source_event_id`,
    })
    .from(sql`${notifications} INDEXED BY notifications_source_event_uq`)
    .where(
      and(
        eq(notifications.handle, handle),
        sql`${notifications.sourceEventId} IN (SELECT value FROM json_each(${
          sourceEventIds instanceof Placeholder ? sourceEventIds : JSON.stringify(sourceEventIds)
        }))`,
        // The partial index's own condition: without it the index named above could not be used (an error).
        isNotNull(notifications.sourceEventId),
      ),
    );
}

/** {@link bySourceIdsQuery} built once per isolate; `ids` is bound as the JSON array of sourceEventIds. */
const bySourceIdsCompiled = (): Compiled<unknown> =>
  compiled('ingest.bySourceIds', { id: 1, status: 1, recipients: 1, sourceEventId: 1 }, () =>
    bySourceIdsQuery(getDb(SQL_ONLY), slot('handle'), sql.placeholder('ids')),
  );

/**
 * Accepts up to MAX_BATCH_EVENTS events for one handle (docs/design.md#batch-publish): ONE read round trip (the
 * duplicate check of every sourceEventId and one match context), the daily limit taken for the whole batch up front
 * (the events past it are refused, nothing of them written), then every event written in ONE `db.batch` — each event
 * its own notification with its deliveries, so an event is never half-written — and one enqueue for all. A race on a
 * sourceEventId fails that shared batch as a whole; then each event is written in a batch of its own. An event whose
 * sourceEventId was seen before, or repeats an earlier one of the same batch, answers with that first notification.
 * Throws only when nothing was written (the reads or the shared write failed): retrying the batch is then safe.
 */
export async function ingestBatch(
  ctx: RunContext,
  handle: string,
  requests: readonly Omit<IngestRequest, 'handle'>[],
  options: BatchOptions = {},
): Promise<BatchOutcome[]> {
  const { env, cfg } = ctx;
  const outcomes: (BatchOutcome | undefined)[] = new Array(requests.length);
  const checked: { index: number; event: CheckedEvent; source: string }[] = [];
  for (const [index, req] of requests.entries()) {
    try {
      checked.push({ index, event: checkEvent(cfg, { ...req, handle }, options), source: req.source });
    } catch (err) {
      if (!(err instanceof IngestRejected)) throw err;
      outcomes[index] = { kind: 'rejected', error: err };
    }
  }
  if (checked.length) {
    const shard = options.shard ?? (await writableShardOf(env, handle));
    if (!shard) {
      for (const c of checked) outcomes[c.index] = { kind: 'rejected', error: unknownHandle(handle) };
      return outcomes.map((o) => o ?? { kind: 'failed', error: new Error('not processed') });
    }
    const sourceIds = checked.flatMap((c) => (c.event.sourceEventId ? [c.event.sourceEventId] : []));
    const queries: IngestReads = readBatch(shard, [
      [bySourceIdsCompiled(), { handle, ids: JSON.stringify(sourceIds) }],
      ...matchContextCompiled(handle),
    ]);
    const [seenRows, ...context] = await (options.read ? options.read(queries) : runReadBatch(shard, queries));
    const match = toMatchContext(context as unknown as Parameters<typeof toMatchContext>[0]);
    if (options.sourceOf) {
      const source = options.sourceOf();
      for (const c of checked) c.source = source;
    }
    const seen = new Map(
      (seenRows as Array<{ id: string; status: string; recipients: string; sourceEventId: string }>).map((r) => [
        r.sourceEventId,
        r,
      ]),
    );
    await writeBatch(ctx, shard, handle, checked, { seen, match, outcomes, dailyLimit: options.dailyLimit });
  }
  return outcomes.map((o) => o ?? { kind: 'failed', error: new Error('not processed') });
}

interface BatchState {
  seen: Map<string, { id: string; status: string; recipients: string }>;
  match: MatchContext | undefined;
  outcomes: (BatchOutcome | undefined)[];
  dailyLimit: number | undefined;
}

async function writeBatch(
  ctx: RunContext,
  shard: D1Database,
  handle: string,
  checked: readonly { index: number; event: CheckedEvent; source: string }[],
  { seen, match, outcomes, dailyLimit }: BatchState,
): Promise<void> {
  const { env } = ctx;
  if (!match) {
    for (const c of checked) outcomes[c.index] = { kind: 'rejected', error: unknownHandle(handle) };
    return;
  }
  const at = new Date();
  // Duplicates of earlier notifications, and of earlier events of this batch (index of the first one).
  const fresh: { index: number; event: CheckedEvent; source: string }[] = [];
  const firstOf = new Map<string, number>();
  const repeats: { index: number; of: number }[] = [];
  for (const c of checked) {
    const sid = c.event.sourceEventId;
    const old = sid ? seen.get(sid) : undefined;
    if (old) outcomes[c.index] = { kind: 'duplicate', result: duplicateOf(old) };
    else if (sid && firstOf.has(sid)) repeats.push({ index: c.index, of: firstOf.get(sid)! });
    else {
      if (sid) firstOf.set(sid, c.index);
      fresh.push(c);
    }
  }
  // The daily limit, for the whole batch before any write: the events past it are refused as a whole.
  let allowed = fresh;
  let slots = 0;
  const day = utcDay(at);
  if (dailyLimit !== undefined && fresh.length) {
    slots = (await takeDailySlots(shard, handle, fresh.length, dailyLimit, at)).granted;
    allowed = fresh.slice(0, slots);
    for (const c of fresh.slice(slots)) outcomes[c.index] = { kind: 'over_daily_limit' };
  }
  const planned = allowed.map((c) => ({ index: c.index, plan: planEvent(ctx, shard, c.event, c.source, match, at) }));
  const stored: typeof planned = [];
  if (planned.length) {
    try {
      await shard.batch([
        ...planned.flatMap((p) => p.plan.statements),
        countEventsStatement(shard, handle, at.toISOString(), planned.length),
      ]);
      stored.push(...planned);
    } catch (err) {
      if (!/UNIQUE/i.test(String(err))) {
        await sendUnconfirmed(
          env,
          shard,
          planned.map((p) => p.plan),
        );
        if (slots)
          await giveBackDailySlots(shard, handle, day, slots)
            .run()
            .catch(() => undefined);
        throw err;
      }
      // A concurrent publisher stored one of these sourceEventIds first: each event on its own.
      for (const p of planned) {
        try {
          await shard.batch([...p.plan.statements, countEventsStatement(shard, handle, at.toISOString())]);
          stored.push(p);
        } catch (one) {
          const sid = p.plan.event.sourceEventId;
          const first = sid && /UNIQUE/i.test(String(one)) ? await existingBySourceId(getDb(shard), handle, sid) : null;
          outcomes[p.index] = first ? { kind: 'duplicate', result: first } : { kind: 'failed', error: one };
        }
      }
      const unused = slots ? planned.length - stored.length : 0;
      if (unused)
        await giveBackDailySlots(shard, handle, day, unused)
          .run()
          .catch(() => undefined);
    }
  }
  // Stored: nothing below may throw (a retried batch would find them as duplicates only if they have sourceEventIds).
  const unsent = await enqueueStored(
    env,
    shard,
    stored.map((p) => p.plan),
  );
  for (const p of stored) outcomes[p.index] = { kind: 'stored', result: storedResult(p.plan, unsent) };
  for (const r of repeats) {
    const first = outcomes[r.of];
    outcomes[r.index] =
      first && (first.kind === 'stored' || first.kind === 'duplicate')
        ? { kind: 'duplicate', result: { ...first.result, duplicate: true } }
        : first;
  }
}

function unknownHandle(handle: string): IngestRejected {
  return new IngestRejected('unknown_handle', `No handle ${handle}.`);
}
