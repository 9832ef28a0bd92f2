/**
 * Every table of the service, the indexes behind its queries, and the SQL a query must repeat to use one of them
 * (`DELIVERY_DUE_AT`, `notificationDeliveriesSql`); nothing else.
 *
 * Conventions:
 * - ids are prefixed, time-ordered (`src/lib/ids.ts`), so `ORDER BY id` is creation order and every list is a keyset
 *   scan of an index on (handle, id) — never OFFSET, never a full scan.
 * - timestamps are ISO 8601 UTC strings (`2026-11-26T23:59:59.123Z`), which sort lexically.
 * - JSON columns hold small documents (filters, headers, scopes) that are read whole and never queried inside.
 * - `deliveries` and `delivery_attempts`, written for every recipient, are `WITHOUT ROWID`: stored in the order of
 *   their primary key, with no separate index for it (one row written fewer per insert;
 *   docs/performance.md#rows-and-bytes-of-one-event). drizzle-kit cannot say so: migration 0013_without_rowid.sql
 *   rebuilt them by hand, and a generated migration that rebuilds one of them (a `__new_` table) must get
 *   `WITHOUT ROWID` added to its CREATE TABLE before it lands. Not `notifications`: rows larger than about a quarter
 *   of a page (a summary of many recipients, a large `data`) would each take an overflow page.
 */
import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

const createdAt = () => text('created_at').notNull();
const updatedAt = () => text('updated_at').notNull();

/** A store or campaign owner. Provisioned by the control plane (`PUT /v2/internal/handles/{handle}`). */
export const handles = sqliteTable(
  'handles',
  {
    handle: text('handle').primaryKey(),
    displayName: text('display_name').notNull(),
    /** Days a notification stays in D1, then archived to R2 and purged (docs/design.md#retention-and-archives) */
    retentionDays: integer('retention_days').notNull().default(30),
    /** When the purge job last looked at this handle ('' = never): it visits the longest-unvisited handles first. */
    purgeCheckedAt: text('purge_checked_at').notNull().default(''),
    /**
     * The handle directory (docs/design.md#shards): the data shard (`SHARD_<n>`) holding the handle's rows. Read from
     * the control plane's row; a shard's own copy of the row (kept for its foreign keys) says the same.
     */
    shard: integer('shard').notNull().default(0),
    /**
     * Set while the handle moves between shards (docs/design.md#moving-a-handle): its writes answer 503 until the
     * directory is flipped. Null otherwise.
     */
    movingSince: text('moving_since'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('handles_purge_checked_idx').on(t.purgeCheckedAt)],
);

/** Who may act on a handle, and as what. */
export const memberships = sqliteTable(
  'memberships',
  {
    handle: text('handle')
      .notNull()
      .references(() => handles.handle, { onDelete: 'cascade' }),
    userId: text('user_id').notNull(),
    role: text('role', { enum: ['owner', 'admin', 'viewer'] }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ columns: [t.handle, t.userId] }),
    // The handle switcher: "which handles can this user see".
    index('memberships_user_idx').on(t.userId, t.handle),
  ],
);

/** Personal access tokens. Only the SHA-256 of the token is stored; the token is shown once. */
export const accessTokens = sqliteTable(
  'access_tokens',
  {
    id: text('id').primaryKey(),
    userId: text('user_id').notNull(),
    name: text('name').notNull(),
    tokenHash: text('token_hash').notNull(),
    /** First characters of the token, so a user can tell tokens apart in a list. */
    tokenPrefix: text('token_prefix').notNull(),
    /** Space-separated scopes, a subset of the creator's at creation time. */
    scopes: text('scopes').notNull(),
    /** When set, the token only works on this handle. */
    handle: text('handle'),
    expiresAt: text('expires_at').notNull(),
    lastUsedAt: text('last_used_at'),
    revokedAt: text('revoked_at'),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('access_tokens_hash_uq').on(t.tokenHash), index('access_tokens_user_idx').on(t.userId, t.id)],
);

/**
 * Per-handle delivery settings (docs/design.md#events-settings-and-matching). One row per handle, created with the
 * handle.
 */
export const notificationSettings = sqliteTable('notification_settings', {
  handle: text('handle')
    .primaryKey()
    .references(() => handles.handle, { onDelete: 'cascade' }),
  emailEnabled: integer('email_enabled', { mode: 'boolean' }).notNull().default(true),
  webhookEnabled: integer('webhook_enabled', { mode: 'boolean' }).notNull().default(true),
  /** A filter policy (JSON) applied to every recipient; null = everything passes. */
  eventFilter: text('event_filter'),
  ownerFallback: text('owner_fallback', { enum: ['critical', 'all', 'none'] })
    .notNull()
    .default('critical'),
  /**
   * Peak campaign windows (JSON, docs/design.md#peak-campaign-windows): weekly ones in an IANA time zone and one-off
   * ones; `off_peak` events published inside one wait as `deferred` deliveries until it ends. Null = none.
   */
  peakWindows: text('peak_windows'),
  /** Set by a `campaign.started` event (when `peakWindows.campaignEvents`): a window open until then, or until a
   * `campaign.completed` clears it. Bounded like every deferral. */
  campaignWindowUntil: text('campaign_window_until'),
  /** Optimistic concurrency: the ETag is derived from it; PUT with a stale If-Match → 412. */
  version: integer('version').notNull().default(1),
  updatedAt: updatedAt(),
});

/** Webhook endpoints. The signing secret is stored encrypted (AES-GCM), never in clear. */
export const webhookSubscriptions = sqliteTable(
  'webhook_subscriptions',
  {
    id: text('id').primaryKey(),
    handle: text('handle')
      .notNull()
      .references(() => handles.handle, { onDelete: 'cascade' }),
    url: text('url').notNull(),
    description: text('description'),
    /** JSON array of exact types or `prefix.*`; null = all types. */
    eventTypes: text('event_types'),
    filterPolicy: text('filter_policy'),
    /** JSON object of custom request headers (never reserved ones). */
    headers: text('headers'),
    enabled: integer('enabled', { mode: 'boolean' }).notNull().default(true),
    disabledReason: text('disabled_reason'),
    disabledAt: text('disabled_at'),
    /**
     * The service disabled it and its `webhook.endpoint_disabled` alert is not raised yet: set by the statement that
     * disables, cleared once the alert is stored, so a failed publish is finished by the minute job
     * (docs/design.md#auto-disable).
     */
    disabledAlertPending: integer('disabled_alert_pending', { mode: 'boolean' }).notNull().default(false),
    secretEncrypted: text('secret_encrypted').notNull(),
    /** The secret replaced by the last rotation; it keeps signing until `previousSecretExpiresAt`. */
    previousSecretEncrypted: text('previous_secret_encrypted'),
    previousSecretExpiresAt: text('previous_secret_expires_at'),
    consecutiveFailures: integer('consecutive_failures').notNull().default(0),
    /** First failure of the current streak: auto-disable counts "5 days without success" from here. */
    failingSince: text('failing_since'),
    lastSuccessAt: text('last_success_at'),
    lastFailureAt: text('last_failure_at'),
    lastFailureClass: text('last_failure_class'),
    /**
     * Its retry policy (docs/design.md#retry-policies): `default`, `short` (for test endpoints) or `custom`, whose
     * delays are `retry_delays` (a JSON array of seconds); null delays for the named ones.
     */
    retryPolicy: text('retry_policy', { enum: ['default', 'short', 'custom'] })
      .notNull()
      .default('default'),
    retryDelays: text('retry_delays'),
    /** Deliveries per second at most, paced by its EndpointPacer (docs/design.md#pacing); null = unpaced. */
    rateLimit: integer('rate_limit'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index('webhook_subscriptions_handle_idx').on(t.handle, t.id),
    index('webhook_subscriptions_alert_pending_idx').on(t.id).where(sql`disabled_alert_pending = 1`),
  ],
);

/**
 * Email recipients. The owner default email is the row of kind `owner_default` (at most one per handle), so every
 * delivery points at a subscription row whatever the recipient.
 */
export const emailSubscriptions = sqliteTable(
  'email_subscriptions',
  {
    id: text('id').primaryKey(),
    handle: text('handle')
      .notNull()
      .references(() => handles.handle, { onDelete: 'cascade' }),
    kind: text('kind', { enum: ['standard', 'owner_default'] })
      .notNull()
      .default('standard'),
    /** As given (trimmed); `emailNormalized` is the lower-cased form used for uniqueness and sending. */
    email: text('email').notNull(),
    emailNormalized: text('email_normalized').notNull(),
    eventTypes: text('event_types'),
    filterPolicy: text('filter_policy'),
    status: text('status', {
      enum: ['pending_confirmation', 'active', 'unsubscribed', 'suppressed', 'stale'],
    }).notNull(),
    statusReason: text('status_reason'),
    confirmTokenHash: text('confirm_token_hash'),
    confirmExpiresAt: text('confirm_expires_at'),
    /** When the last confirmation mail went out: the resend cooldown counts from here (docs/design.md#email). */
    confirmSentAt: text('confirm_sent_at'),
    confirmedAt: text('confirmed_at'),
    /** `cloudflare`, `resend` or `sns`: the provider this subscription was created with. */
    provider: text('provider').notNull(),
    /** Provider-side reference, e.g. the SNS subscription ARN. */
    providerRef: text('provider_ref'),
    providerCheckedAt: text('provider_checked_at'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index('email_subscriptions_handle_idx').on(t.handle, t.id),
    uniqueIndex('email_subscriptions_address_uq').on(t.handle, t.kind, t.emailNormalized),
    uniqueIndex('email_subscriptions_owner_default_uq').on(t.handle).where(sql`kind = 'owner_default'`),
    uniqueIndex('email_subscriptions_confirm_token_uq').on(t.confirmTokenHash),
    // A bounce or complaint names an address, not a handle: every subscription of it, on every handle of the shard.
    index('email_subscriptions_email_idx').on(t.emailNormalized),
    // SNS reconciliation: the subscriptions checked longest ago first.
    index('email_subscriptions_provider_check_idx')
      .on(t.provider, t.providerCheckedAt)
      .where(sql`provider_ref IS NOT NULL`),
  ],
);

/**
 * Every SNS topic this deployment created (CreateTopic's answer, docs/design.md#email): a handle's topic, or the SES
 * feedback topic (`handle` null). `POST /v2/providers/sns/events` accepts messages only from these ARNs — anyone can
 * make SNS sign a message for a topic of their own. No foreign key: a handle's deletion does not forget its topic.
 */
export const snsTopics = sqliteTable('sns_topics', {
  arn: text('arn').primaryKey(),
  handle: text('handle'),
  createdAt: createdAt(),
});

/**
 * The statuses of the common path, `delivering` at insert and `delivered` at the end, which the partial
 * `notifications_handle_status_idx` leaves out: it holds only the outcomes that need attention, so an event delivered
 * to everyone writes no entry at either step (docs/performance.md#rows-and-bytes-of-one-event).
 */
export const NOTIFICATION_PATH_STATUSES = ['delivering', 'delivered'] as const;
/**
 * The two partial indexes' WHERE terms. SQLite uses a partial index only when the query's WHERE holds the index's
 * term itself (`status = 'failed'` alone does not imply it): a query filtering on one of these columns must repeat
 * the exact term beside its equality, as `feedQuery` (src/routes/notifications/notifications.repo.ts) does. Written
 * as exclusions (`NOT IN`, `<>`), which SQLite never uses to look up an index: an inclusion (`status IN (…)`) competes
 * with the equality for the index's column, and once D1 has statistics SQLite chose it, lost the id order and walked
 * the handle's index instead.
 */
export const NOTIFICATION_STATUS_INDEXED = "status NOT IN ('delivering', 'delivered')";
/** `notifications_handle_severity_idx` holds warning and critical: `info`, the bulk of events, writes no entry. */
export const NOTIFICATION_SEVERITY_INDEXED = "severity <> 'info'";

/** One row per accepted event for a handle: what the feed lists. */
export const notifications = sqliteTable(
  'notifications',
  {
    id: text('id').primaryKey(),
    handle: text('handle')
      .notNull()
      .references(() => handles.handle, { onDelete: 'cascade' }),
    type: text('type').notNull(),
    severity: text('severity', { enum: ['info', 'warning', 'critical'] }).notNull(),
    /** Event payload (JSON, ≤ 64 KB). */
    data: text('data').notNull(),
    /** Who published it: a service name, user id or `system`. */
    source: text('source').notNull(),
    sourceEventId: text('source_event_id'),
    occurredAt: text('occurred_at').notNull(),
    status: text('status', {
      enum: ['delivering', 'delivered', 'partially_failed', 'failed', 'no_recipients', 'undeliverable'],
    }).notNull(),
    recipientCount: integer('recipient_count').notNull().default(0),
    /**
     * Per-recipient delivery summary for the first recipients, stored compactly as `{ [deliveryId]: StoredRecipient }`:
     * `[recipientType, subscriptionId, target, status, statusReason, attempts, lastErrorClass, lastHttpStatus,
     * updatedAt]` by position (delivery/summary.ts `decodeRecipients` turns it into the API's RecipientSummary). A
     * projection of `deliveries` kept in the same `db.batch` as each delivery change, so a feed page reads one row per
     * notification instead of joining every delivery.
     */
    recipients: text('recipients').notNull().default('{}'),
    /** Deliveries not yet terminal / succeeded / dead: the aggregate `status` is derived from these in SQL. */
    openCount: integer('open_count').notNull().default(0),
    succeededCount: integer('succeeded_count').notNull().default(0),
    deadCount: integer('dead_count').notNull().default(0),
    /**
     * Set when a critical notification's delivery ended without reaching anyone (cancelled, skipped), so it may have
     * become `undeliverable` after ingest: the minute job then sends it to PLATFORM_ALERT_EMAIL, as ingest does, and
     * clears it (delivery/alerts.ts `alertUndeliverable`).
     */
    alertCheckAt: text('alert_check_at'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    // The feed, newest first, and its filters: a keyset scan of the index that holds the filter's value. Status and
    // severity are partial (only the values above): a filter on another value reads a bounded slice of
    // `notifications_handle_idx` instead (docs/design.md#routes).
    index('notifications_handle_idx').on(t.handle, t.id),
    index('notifications_handle_status_idx').on(t.handle, t.status, t.id).where(sql.raw(NOTIFICATION_STATUS_INDEXED)),
    index('notifications_handle_type_idx').on(t.handle, t.type, t.id),
    index('notifications_handle_severity_idx')
      .on(t.handle, t.severity, t.id)
      .where(sql.raw(NOTIFICATION_SEVERITY_INDEXED)),
    // The few notifications the undeliverable alert job has to look at, oldest first.
    index('notifications_alert_check_idx').on(t.alertCheckAt).where(sql`alert_check_at IS NOT NULL`),
    // `sourceEventId` is unique per handle: a repeat answers with the first notification. Partial: most events carry
    // none, and those cost no entry; a query that names it must say `source_event_id IS NOT NULL`.
    uniqueIndex('notifications_source_event_uq').on(t.handle, t.sourceEventId).where(sql`source_event_id IS NOT NULL`),
  ],
);

/** One recipient of one notification (or one test send). Messages on the queue carry only its id. */
/**
 * When a queued/retrying delivery's next attempt is due (docs/design.md#overdue-deliveries): the sweeper's own due time
 * after it re-enqueued the row and nothing happened since, otherwise the scheduled retry, otherwise the time it was
 * queued. SQL over the row's own columns, so the consumer and the enqueue need not write anything for it. Queries must
 * repeat this exact expression to use `deliveries_due_idx` (no commas: drizzle-kit splits index columns on them).
 */
export const DELIVERY_DUE_AT =
  'CASE WHEN requeued_updated_at = updated_at THEN requeue_due_at ' +
  'WHEN next_attempt_at IS NOT NULL THEN next_attempt_at ELSE updated_at END';

/**
 * SQL that is true when delivery row `d` (an alias) belongs to the notification whose id is the SQL expression `n`
 * (docs/design.md#delivery-ids). Ingest's deliveries take their ids from their notification's, so they are one range
 * of the primary key; the others of a notification (replays, later platform alerts, rows written before ids were
 * derived) are in `deliveries_notification_other_idx`. SQLite reads each half through its own index (a MULTI-INDEX
 * OR), in a join too; equivalent to `d.notification_id = n` for every row.
 */
export function notificationDeliveriesSql(d: string, n: string): string {
  const first = `'dlv_' || substr(${n}, 5, 22)`;
  return (
    `((${d}.id >= ${first} AND ${d}.id < ${first} || '~' AND ${d}.notification_id = ${n})` +
    ` OR (${d}.notification_id = ${n} AND ${d}.id_from_notification = 0))`
  );
}

/**
 * A FROM clause: the deliveries (alias `d`) of the notifications a subquery names (one column, `id`; alias `n`), each
 * read through {@link notificationDeliveriesSql}. `CROSS JOIN` keeps the notifications the outer loop.
 */
export function notificationDeliveriesFrom(ids: string): string {
  return `(${ids}) n CROSS JOIN deliveries d ON ${notificationDeliveriesSql('d', 'n.id')}`;
}

export const deliveries = sqliteTable(
  'deliveries',
  {
    id: text('id').primaryKey(),
    handle: text('handle').notNull(),
    /** Null for test sends that replay a sample event. */
    notificationId: text('notification_id'),
    kind: text('kind', { enum: ['event', 'test'] }).notNull(),
    channel: text('channel', { enum: ['webhook', 'email'] }).notNull(),
    recipientType: text('recipient_type', { enum: ['webhook', 'email', 'owner_default', 'platform_alert'] }).notNull(),
    /** A webhook_subscriptions.id or email_subscriptions.id (or null for the platform alert address). */
    subscriptionId: text('subscription_id'),
    /** The URL or address at the time the delivery was created. */
    target: text('target').notNull(),
    status: text('status', {
      enum: ['deferred', 'pending', 'queued', 'retrying', 'succeeded', 'dead', 'cancelled', 'skipped'],
    }).notNull(),
    statusReason: text('status_reason'),
    attemptCount: integer('attempt_count').notNull().default(0),
    lastErrorClass: text('last_error_class'),
    lastHttpStatus: integer('last_http_status'),
    nextAttemptAt: text('next_attempt_at'),
    lastAttemptAt: text('last_attempt_at'),
    /** attempt_count when the delivery was last redriven: the retry schedule restarts from there. */
    retryBase: integer('retry_base').notNull().default(0),
    /**
     * Written by the outbox sweeper only (docs/design.md#overdue-deliveries): the row's `updated_at` when the sweeper
     * last re-enqueued it. While `updated_at` still equals it (nothing happened since), `requeue_due_at` is the
     * delivery's due time; any later write of the row makes these two stale, so no other writer needs to know them.
     */
    requeuedUpdatedAt: text('requeued_updated_at'),
    /** When the sweeper's re-enqueued message counts as due: the re-enqueue time plus a growing backoff. */
    requeueDueAt: text('requeue_due_at'),
    /** The event a test send delivers (a catalog sample or a replayed notification); null for real deliveries. */
    payload: text('payload'),
    /**
     * An email delivery's message id as its provider returned it from the send (`send()`'s `messageId`, Resend's email
     * id), without angle brackets: the key the provider's later verdicts are matched by (docs/design.md#email-events).
     */
    providerMessageId: text('provider_message_id'),
    /** When the provider reported the mail delivered to the recipient's server (`message.delivered`). */
    deliveredAt: text('delivered_at'),
    /** The provider's last verdict on the sent mail (`delivered`, `deferred: …`, `bounced: …`), for the diagnosis. */
    providerVerdict: text('provider_verdict'),
    /** The replay (`replays.id`) that made this delivery; null for those ingest made (docs/design.md#replay). */
    replayId: text('replay_id'),
    /**
     * Whether the id was made from the notification's (ingest's deliveries; docs/design.md#delivery-ids): such a row is
     * found by its id range and left out of `deliveries_notification_other_idx`. Costs one header byte (0 and 1 are
     * stored in the type code).
     */
    idFromNotification: integer('id_from_notification', { mode: 'boolean' }).notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    // A replay delivers a notification to an endpoint at most once, however often it (or its call) is repeated.
    uniqueIndex('deliveries_replay_uq').on(t.subscriptionId, t.notificationId).where(sql`replay_id IS NOT NULL`),
    // A replay's progress: its deliveries by status.
    index('deliveries_replay_idx').on(t.replayId, t.status).where(sql`replay_id IS NOT NULL`),
    // A notification's deliveries whose ids are not in its range (notificationDeliveriesSql): ingest's cost no entry.
    index('deliveries_notification_other_idx').on(t.notificationId).where(sql`id_from_notification = 0`),
    // Email Sending events name the mail by its provider message id; only sent mails have one.
    index('deliveries_provider_message_idx').on(t.providerMessageId).where(sql`provider_message_id IS NOT NULL`),
    // Retention of test sends (no notification): a handle's oldest first, only those rows are indexed.
    index('deliveries_test_sends_idx').on(t.handle, t.id).where(sql`notification_id IS NULL`),
    // Retention of a replay's deliveries whose notification is archived and gone: a handle's oldest first.
    index('deliveries_replays_idx').on(t.handle, t.id).where(sql`replay_id IS NOT NULL`),
    // Delivery log of one subscription, newest first.
    index('deliveries_subscription_idx').on(t.subscriptionId, t.id),
    // Delivery doctor: recent dead deliveries of a handle; only dead rows are indexed.
    index('deliveries_dead_idx').on(t.handle, t.updatedAt).where(sql`status = 'dead'`),
    // Outbox sweeper: rows never sent (or whose send failed), oldest first. `queued`/`retrying` rows are in
    // `deliveries_due_idx` instead: a delivery written `queued` by ingest costs one entry, not two.
    index('deliveries_pending_idx').on(t.updatedAt).where(sql`status = 'pending'`),
    // Overdue sweep and the doctor's overdue count: queued/retrying rows by the time their next attempt was due.
    index('deliveries_due_idx')
      .on(sql.raw(`(${DELIVERY_DUE_AT})`), t.handle)
      .where(sql`status in ('queued', 'retrying')`),
    // Off-peak deliveries waiting for their window to end (`next_attempt_at` is when they go): the sweeper's release
    // in time order, and a handle's deferred deliveries for the doctor and the dashboard.
    index('deliveries_deferred_idx').on(t.nextAttemptAt).where(sql`status = 'deferred'`),
    index('deliveries_handle_deferred_idx').on(t.handle, t.nextAttemptAt).where(sql`status = 'deferred'`),
  ],
);

/**
 * Events that could not be accepted from the `notify-events` queue (or delivery messages that named nothing), kept
 * with the reason: a bad message is acknowledged only once it is recorded here, never silently dropped.
 */
export const eventRejections = sqliteTable(
  'event_rejections',
  {
    id: text('id').primaryKey(),
    queue: text('queue').notNull(),
    messageId: text('message_id').notNull(),
    handle: text('handle'),
    reason: text('reason').notNull(),
    /** The message body as received, cut to 4 KB. */
    body: text('body').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('event_rejections_handle_idx').on(t.handle, t.id)],
);

/** One row per attempt: the evidence a diagnosis is built from. */
export const deliveryAttempts = sqliteTable(
  'delivery_attempts',
  {
    /** Unique per write (a new id each time): a writer finds out whether ITS row was stored (with the key below). */
    id: text('id').notNull(),
    deliveryId: text('delivery_id').notNull(),
    attemptNumber: integer('attempt_number').notNull(),
    outcome: text('outcome', { enum: ['succeeded', 'failed'] }).notNull(),
    errorClass: text('error_class'),
    httpStatus: integer('http_status'),
    durationMs: integer('duration_ms').notNull(),
    requestBytes: integer('request_bytes'),
    responseSnippet: text('response_snippet'),
    errorMessage: text('error_message'),
    createdAt: createdAt(),
  },
  // Keyed by attempt number: one row per attempt, so two invocations racing on one message can never both record
  // attempt n; a delivery's attempts are a range of the key, with no index beside the table.
  (t) => [primaryKey({ columns: [t.deliveryId, t.attemptNumber] })],
);

/** Idempotency-Key records (IETF draft): scoped to principal and handle, kept 24 h. */
export const idempotencyKeys = sqliteTable(
  'idempotency_keys',
  {
    principal: text('principal').notNull(),
    /** '' for writes outside a handle. */
    handle: text('handle').notNull(),
    key: text('key').notNull(),
    /** SHA-256 of method, path and body: the same key with another request → 422. */
    requestHash: text('request_hash').notNull(),
    state: text('state', { enum: ['in_progress', 'completed'] }).notNull(),
    responseStatus: integer('response_status'),
    responseHeaders: text('response_headers'),
    responseBody: text('response_body'),
    createdAt: createdAt(),
    expiresAt: text('expires_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.principal, t.handle, t.key] }),
    index('idempotency_keys_expiry_idx').on(t.expiresAt),
  ],
);

/** Successful writes per handle per UTC day, for the daily write limit. */
export const dailyWriteCounters = sqliteTable(
  'daily_write_counters',
  {
    handle: text('handle').notNull(),
    /** UTC date, `YYYY-MM-DD`. */
    day: text('day').notNull(),
    count: integer('count').notNull().default(0),
    /** Events stored for the handle that day (every publish path; duplicates not counted): the usage call reads it. */
    events: integer('events').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.handle, t.day] })],
);

/**
 * Confirmation mails sent to an address on its last UTC day with one, across every handle (docs/design.md#email):
 * the per-address daily caps. One row per address; the day rolls over in place, resetting both counts.
 */
export const confirmationMailCounters = sqliteTable('confirmation_mail_counters', {
  emailNormalized: text('email_normalized').primaryKey(),
  /** UTC date, `YYYY-MM-DD`. */
  day: text('day').notNull(),
  /** Resent confirmation mails (`…/resend-confirmation`). */
  count: integer('count').notNull(),
  /** First confirmation mails: one per new subscription of the address. */
  firstMails: integer('first_mails').notNull().default(0),
});

/**
 * Dashboard sessions (docs/design.md#dashboard): the id sealed in the `gn_session` cookie. Sign-out revokes the row,
 * so a copy of the cookie stops working at once; rows past `expires_at` are deleted at the next sign-in.
 */
export const dashboardSessions = sqliteTable(
  'dashboard_sessions',
  {
    id: text('id').primaryKey(),
    expiresAt: text('expires_at').notNull(),
    revokedAt: text('revoked_at'),
    createdAt: createdAt(),
  },
  (t) => [index('dashboard_sessions_expiry_idx').on(t.expiresAt)],
);

/** `POST /v2/support/report`: what the user saw, with the ids support needs. */
export const supportReports = sqliteTable(
  'support_reports',
  {
    id: text('id').primaryKey(),
    /** The caller: user id (or service subject) and how they authenticated. */
    principalId: text('principal_id').notNull(),
    authMethod: text('auth_method', { enum: ['jwt', 'pat'] }).notNull(),
    handle: text('handle'),
    /** True when the caller is a member of `handle`; an unverified handle is kept as given, for support to check. */
    handleVerified: integer('handle_verified', { mode: 'boolean' }).notNull().default(false),
    summary: text('summary').notNull(),
    details: text('details').notNull(),
    sessionId: text('session_id'),
    /** The request id the user reports about (not this call's). */
    reportedRequestId: text('reported_request_id'),
    reproArtifact: text('repro_artifact'),
    /** This call's own request id and deployment id. */
    requestId: text('request_id').notNull(),
    deploymentId: text('deployment_id'),
    createdAt: createdAt(),
  },
  (t) => [index('support_reports_principal_idx').on(t.principalId, t.id)],
);

/**
 * Local development only (ENVIRONMENT=development): every mail the service sends, so `GET /dev/mailbox` can show
 * confirmation links and test mails without a real inbox. Never written in production.
 */
export const devMailbox = sqliteTable('dev_mailbox', {
  id: text('id').primaryKey(),
  provider: text('provider').notNull(),
  from: text('from_address').notNull(),
  to: text('to_address').notNull(),
  subject: text('subject').notNull(),
  headers: text('headers').notNull(),
  text: text('text_body').notNull(),
  html: text('html_body').notNull(),
  createdAt: createdAt(),
});

/**
 * Archives in R2 (docs/design.md#retention-and-archives): one gzip NDJSON object per handle and contiguous range of
 * notification ids (within one UTC day), each line a notification with its deliveries and their attempts. The row is
 * written before the object (`pending`), marked `verified` once the object was read back with the same SHA-256, and
 * `purged` in the same batch that deletes its rows: a purge never deletes a row that is in no verified archive.
 */
export const archives = sqliteTable(
  'archives',
  {
    id: text('id').primaryKey(),
    handle: text('handle')
      .notNull()
      .references(() => handles.handle, { onDelete: 'cascade' }),
    /** The UTC day (`YYYY-MM-DD`) of the notifications in it. */
    period: text('period').notNull(),
    /** The R2 key: a crash between archive and delete re-exports the same range to the same key. */
    objectKey: text('object_key').notNull(),
    firstNotificationId: text('first_notification_id').notNull(),
    lastNotificationId: text('last_notification_id').notNull(),
    notificationCount: integer('notification_count').notNull().default(0),
    deliveryCount: integer('delivery_count').notNull().default(0),
    attemptCount: integer('attempt_count').notNull().default(0),
    /** Size of the gzip object in bytes, and the hex SHA-256 of those bytes. */
    bytes: integer('bytes'),
    sha256: text('sha256'),
    status: text('status', { enum: ['pending', 'verified', 'purging', 'purged'] }).notNull(),
    createdAt: createdAt(),
    verifiedAt: text('verified_at'),
    purgedAt: text('purged_at'),
  },
  (t) => [
    index('archives_handle_idx').on(t.handle, t.id),
    uniqueIndex('archives_range_uq').on(t.handle, t.firstNotificationId),
    // A notification id older than the retention → the archive whose range holds it.
    index('archives_handle_last_idx').on(t.handle, t.lastNotificationId),
    // An archive written but not yet purged is finished first (same range, same key).
    index('archives_open_idx').on(t.handle).where(sql`status <> 'purged'`),
  ],
);

/** What the purge job last did for a handle, for the doctor (`…/health`, `storage.purge`). */
export const purgeState = sqliteTable('purge_state', {
  handle: text('handle')
    .primaryKey()
    .references(() => handles.handle, { onDelete: 'cascade' }),
  lastRunAt: text('last_run_at').notNull(),
  lastPurgeAt: text('last_purge_at'),
  /** The oldest expired notification still open: it and everything after it wait until its deliveries end. */
  waitingOn: text('waiting_on'),
  lastError: text('last_error'),
  purgedNotifications: integer('purged_notifications').notNull().default(0),
  purgedDeliveries: integer('purged_deliveries').notNull().default(0),
  purgedAttempts: integer('purged_attempts').notNull().default(0),
  /** Archives written and their bytes so far: the doctor reads these, never the whole list of archives. */
  archives: integer('archives').notNull().default(0),
  archivedBytes: integer('archived_bytes').notNull().default(0),
});

/**
 * A replay of past notifications to one webhook (docs/design.md#replay): its range and types, and how far it got.
 * Each call of `POST …/replay` with the same id continues from `cursor` for at most one page.
 */
export const replays = sqliteTable(
  'replays',
  {
    id: text('id').primaryKey(),
    handle: text('handle')
      .notNull()
      .references(() => handles.handle, { onDelete: 'cascade' }),
    subscriptionId: text('subscription_id').notNull(),
    /** The range of `occurred_at`, inclusive start and exclusive end (ISO 8601). */
    fromAt: text('from_at').notNull(),
    toAt: text('to_at').notNull(),
    /** JSON array of exact types or `prefix.*`; null = every type. */
    eventTypes: text('event_types'),
    /** Where the next call goes on: archives first (`a:<archive id>`), then D1 (`n:<notification id>`). */
    cursor: text('cursor'),
    /** Notifications that matched so far, and the deliveries made for them (a repeat makes none). */
    matched: integer('matched').notNull().default(0),
    created: integer('created').notNull().default(0),
    status: text('status', { enum: ['running', 'complete'] }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('replays_subscription_idx').on(t.subscriptionId, t.id)],
);

/**
 * A move of one handle between data shards (docs/design.md#moving-a-handle), on the control plane: where the copy
 * stands, so each call of `POST /v2/internal/handles/{handle}/move` does one bounded step and the next goes on. The
 * last move of a handle stays as its record (`done` or `failed`); a new move replaces it.
 */
export const handleMoves = sqliteTable('handle_moves', {
  handle: text('handle').primaryKey(),
  fromShard: integer('from_shard').notNull(),
  toShard: integer('to_shard').notNull(),
  phase: text('phase', {
    enum: ['copying', 'sealing', 'syncing', 'verifying', 'draining', 'deleting', 'done', 'aborting', 'failed'],
  }).notNull(),
  /** The table the copy (or the delete) is at: an index into the list in src/db/move.ts. */
  tableIndex: integer('table_index').notNull().default(0),
  /** JSON key of the last row done in that table; null = from its start. */
  cursor: text('cursor'),
  /** Rows written to the target and deleted from it by the copy so far, and deleted from the source. */
  rowsCopied: integer('rows_copied').notNull().default(0),
  rowsRemoved: integer('rows_removed').notNull().default(0),
  /** Per-table row counts on both shards when verified (JSON). */
  counts: text('counts'),
  /** A waiting phase (`sealing`, `draining`) goes on at this time. */
  waitUntil: text('wait_until'),
  error: text('error'),
  /** Bumped by every step: a step that lost a race with another writes nothing (optimistic concurrency). */
  version: integer('version').notNull().default(0),
  startedAt: text('started_at').notNull(),
  readOnlyAt: text('read_only_at'),
  flippedAt: text('flipped_at'),
  finishedAt: text('finished_at'),
  updatedAt: updatedAt(),
});

/** Platform alerts already sent, keyed by what they are about (e.g. `storage:2026-11-26`): at most one per key. */
export const platformAlerts = sqliteTable('platform_alerts', {
  key: text('key').primaryKey(),
  sentAt: text('sent_at').notNull(),
});

export type Handle = typeof handles.$inferSelect;
export type HandleMove = typeof handleMoves.$inferSelect;
export type Membership = typeof memberships.$inferSelect;
export type AccessToken = typeof accessTokens.$inferSelect;
export type Role = Membership['role'];
