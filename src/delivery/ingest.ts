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
import { and, eq } from 'drizzle-orm';
import type { BatchItem } from 'drizzle-orm/batch';
import { type Db, getDb } from '../db/client.ts';
import { countEventsStatement } from '../db/daily-counters.ts';
import { notifications } from '../db/schema.ts';
import type { Config, RunContext } from '../env.ts';
import { eventTypeInfo, looksLikeCatalogTypo, nearestEventTypes, type Severity } from '../lib/event-catalog.ts';
import { newId } from '../lib/ids.ts';
import { enqueueDeliveries } from './enqueue.ts';
import { planRecipients } from './match.ts';
import { matchContextQueries, toMatchContext } from './match-context.ts';
import { PLATFORM_ALERT_REASON } from './platform-alerts.ts';
import { initialStatus, RECIPIENT_SUMMARY_LIMIT, type RecipientSummary } from './summary.ts';

export interface IngestRequest {
  handle: string;
  type: string;
  severity?: Severity | undefined;
  data: Record<string, unknown>;
  occurredAt?: string | undefined;
  sourceEventId?: string | undefined;
  /** Who published it: a service name, `user:<id>`, or `system`. */
  source: string;
}

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
}

/** The reads of one ingest, for a `db.batch` of their own or of the publish route's (`batchWithAccess`). */
export type IngestReads = readonly [BatchItem<'sqlite'>, ...BatchItem<'sqlite'>[]];

export interface IngestResult {
  notificationId: string;
  status: string;
  /** True when `sourceEventId` was seen before: the first notification is returned and nothing new is written. */
  duplicate: boolean;
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
}

function deliveryFor(
  v: Pick<RecipientSummary, 'recipientType' | 'channel' | 'subscriptionId' | 'target'>,
  status: 'pending' | 'skipped',
  reason: string | null,
  base: { handle: string; notificationId: string; now: string },
): DeliveryRow {
  return {
    deliveryId: newId('dlv'),
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
  };
}

/** The notification already stored for a sourceEventId, as a drizzle query (it rides in the context batch). */
function bySourceIdQuery(db: Db, handle: string, sourceEventId: string) {
  return db
    .select({ id: notifications.id, status: notifications.status, recipients: notifications.recipients })
    .from(notifications)
    .where(and(eq(notifications.handle, handle), eq(notifications.sourceEventId, sourceEventId)));
}

function duplicateOf(row: { id: string; status: string; recipients: string }): IngestResult {
  return {
    notificationId: row.id,
    status: row.status,
    duplicate: true,
    recipients: Object.values(JSON.parse(row.recipients) as Record<string, RecipientSummary>),
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
      const errors = parsed.error.issues.map((i) => ({
        path: ['data', ...i.path.map(String)].join('.'),
        message: i.message,
      }));
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
  };
}

/** Every read of an ingest: the duplicate check (a duplicate wastes three small reads), then the match context. */
export function ingestReads(db: Db, event: Pick<CheckedEvent, 'handle' | 'sourceEventId'>): IngestReads {
  const context = matchContextQueries(db, event.handle);
  return event.sourceEventId ? [bySourceIdQuery(db, event.handle, event.sourceEventId), ...context] : context;
}

/**
 * Plans, writes and enqueues a checked event from the rows of its {@link ingestReads}: the first notification when
 * the sourceEventId was seen before, otherwise a new notification with its deliveries.
 */
export async function ingestWithReads(
  ctx: RunContext,
  event: CheckedEvent,
  source: string,
  reads: readonly unknown[][],
): Promise<IngestResult> {
  const { env, cfg } = ctx;
  let context = reads;
  if (event.sourceEventId) {
    const [seen] = reads[0] as Array<{ id: string; status: string; recipients: string }>;
    if (seen) return duplicateOf(seen);
    context = reads.slice(1);
  }
  const match = toMatchContext(context as unknown as Parameters<typeof toMatchContext>[0]);
  if (!match) throw new IngestRejected('unknown_handle', `No handle ${event.handle}.`);

  const { severity } = event;
  const plan = planRecipients(
    { type: event.type, severity, source, data: event.data },
    match.settings,
    match.webhooks,
    match.emails,
  );

  const now = new Date().toISOString();
  const notificationId = newId('ntf');
  const base = { handle: event.handle, notificationId, now };
  const rows: DeliveryRow[] = [];
  for (const v of plan.recipients) {
    if (v.outcome === 'deliver') rows.push(deliveryFor(v, 'pending', null, base));
    else if (v.outcome === 'skip_disabled') rows.push(deliveryFor(v, 'skipped', v.rule, base));
  }
  if (plan.undeliverable && cfg.platformAlertEmail) {
    // Nobody of the handle's can receive this critical event: the platform's alert address gets it instead.
    rows.push(
      deliveryFor(
        { recipientType: 'platform_alert', channel: 'email', subscriptionId: null, target: cfg.platformAlertEmail },
        'pending',
        PLATFORM_ALERT_REASON,
        base,
      ),
    );
  }
  const open = rows.filter((r) => r.status === 'pending').length;
  const status = initialStatus({ open, succeeded: 0, dead: 0 }, plan.undeliverable);
  const summary = Object.fromEntries(
    rows.slice(0, RECIPIENT_SUMMARY_LIMIT).map((r) => {
      const { kind: _k, handle: _h, notificationId: _n, createdAt: _c, ...entry } = r;
      return [r.deliveryId, entry];
    }),
  );

  try {
    await env.DB.batch([
      env.DB.prepare(
        `INSERT INTO notifications (id, handle, type, severity, data, source, source_event_id, occurred_at, status,
           recipient_count, recipients, open_count, succeeded_count, dead_count, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, 0, ?13, ?13)`,
      ).bind(
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
        JSON.stringify(summary),
        open,
        now,
      ),
      // Every delivery in one statement: the rows travel as one JSON parameter (D1 allows 100 bound values a query).
      env.DB.prepare(
        `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
           status, status_reason, attempt_count, retry_base, created_at, updated_at)
         SELECT value ->> '$.deliveryId', value ->> '$.handle', value ->> '$.notificationId', 'event',
           value ->> '$.channel', value ->> '$.recipientType', value ->> '$.subscriptionId', value ->> '$.target',
           value ->> '$.status', value ->> '$.statusReason', 0, 0, value ->> '$.createdAt', value ->> '$.createdAt'
         FROM json_each(?1)`,
      ).bind(JSON.stringify(rows)),
      countEventsStatement(env.DB, event.handle, now),
    ]);
  } catch (err) {
    // Two publishers raced with one sourceEventId: the unique index let exactly one batch in; answer with it.
    if (event.sourceEventId && /UNIQUE/i.test(String(err))) {
      const seen = await existingBySourceId(getDb(env.DB), event.handle, event.sourceEventId);
      if (seen) return seen;
    }
    throw err;
  }

  const pending = rows.filter((r) => r.status === 'pending').map((r) => r.deliveryId);
  // From here on the event is stored: nothing may throw (a retried publish or events message would store it again).
  const sent = pending.length ? await enqueueDeliveries(env, pending) : { queued: [] as string[], marked: true };
  const queued = new Set(sent.marked ? sent.queued : []);
  return {
    notificationId,
    status,
    duplicate: false,
    recipients: rows.map(({ kind: _k, handle: _h, notificationId: _n, createdAt: _c, ...r }) =>
      queued.has(r.deliveryId) ? { ...r, status: 'queued' as const } : r,
    ),
  };
}

/** Accepts one event for a handle: checks, reads (one round trip), plans, writes and enqueues it. */
export async function ingestEvent(
  ctx: RunContext,
  req: IngestRequest,
  options: IngestOptions = {},
): Promise<IngestResult> {
  const event = checkEvent(ctx.cfg, req, options);
  const db = getDb(ctx.env.DB);
  const reads = (await db.batch(ingestReads(db, event))) as readonly unknown[][];
  return ingestWithReads(ctx, event, req.source, reads);
}
