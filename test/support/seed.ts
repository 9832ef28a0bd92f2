/**
 * Direct D1 seeding for tests that need many rows or states the API cannot produce yet (notifications, deliveries,
 * hundreds of subscriptions). Everything here writes rows exactly as the service's own code would.
 */
import { env } from 'cloudflare:workers';
import { decodeRecipients, encodeRecipients, type RecipientSummary } from '../../src/delivery/summary.ts';
import { boundaryId, newId } from '../../src/lib/ids.ts';
import { NOTIFICATION_STATUSES } from '../../src/routes/notifications/notifications.schemas.ts';
import { ALL_USER_SCOPES, shardOf, signJwt, unique } from './helpers.ts';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A JWT with every user scope for `sub` (the usual caller in these tests). */
export const userJwt = (sub: string, scope = ALL_USER_SCOPES) => signJwt({ sub, scope });

/** Splits rows into chunks so that a multi-row INSERT stays under SQLite's 100 bound parameters per statement. */
function chunks<T>(rows: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

export interface SeedNotification {
  id: string;
  type: string;
  severity: 'info' | 'warning' | 'critical';
  status: 'delivering' | 'delivered' | 'partially_failed' | 'failed' | 'no_recipients' | 'undeliverable';
  createdAt: string;
  data?: Record<string, unknown>;
  recipients?: Record<string, RecipientSummary>;
  source?: string;
  sourceEventId?: string | null;
}

const NOTIFICATION_COLUMNS =
  'id, handle, type, severity, data, source, source_event_id, occurred_at, status, recipient_count, recipients, created_at, updated_at';

/** Inserts notifications with multi-row INSERTs in one `env.DB.batch` (fast for thousands of rows). */
export async function insertNotifications(handle: string, rows: SeedNotification[]): Promise<void> {
  const d1 = await shardOf(handle);
  const perStatement = 7; // 13 columns × 7 rows = 91 parameters (< 100)
  const statements = chunks(rows, perStatement).map((group) => {
    const placeholders = group.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ');
    const params = group.flatMap((n) => [
      n.id,
      handle,
      n.type,
      n.severity,
      JSON.stringify(n.data ?? { seq: n.id }),
      n.source ?? 'test-seed',
      n.sourceEventId ?? null,
      n.createdAt,
      n.status,
      Object.keys(n.recipients ?? {}).length,
      encodeRecipients(Object.values(n.recipients ?? {})),
      n.createdAt,
      n.createdAt,
    ]);
    return d1.prepare(`INSERT INTO notifications (${NOTIFICATION_COLUMNS}) VALUES ${placeholders}`).bind(...params);
  });
  for (const group of chunks(statements, 200)) await d1.batch(group);
}

export const SEED_TYPES = [
  'order.created',
  'order.paid',
  'order.fulfilled',
  'payment.failed',
  'campaign.started',
] as const;
export const SEED_SEVERITIES = ['info', 'warning', 'critical'] as const;
export const SEED_STATUSES = NOTIFICATION_STATUSES;

/**
 * `n` notifications one second apart from `baseMs`, with a deterministic mix of type (i mod 5), severity (i mod 3)
 * and status (i mod 6 … shifted so the three do not move in lock step). Ids come from the service's own `newId`.
 */
export function mixedNotifications(n: number, baseMs: number, stepMs = 1000): SeedNotification[] {
  const out: SeedNotification[] = [];
  for (let i = 0; i < n; i++) {
    const ms = baseMs + i * stepMs;
    out.push({
      id: newId('ntf', ms),
      type: SEED_TYPES[i % SEED_TYPES.length]!,
      severity: SEED_SEVERITIES[Math.floor(i / 2) % SEED_SEVERITIES.length]!,
      status: SEED_STATUSES[(i * 7 + Math.floor(i / 11)) % SEED_STATUSES.length]!,
      createdAt: new Date(ms).toISOString(),
      data: { i },
    });
  }
  return out;
}

/**
 * Inserts `count` notifications for `handle` with one `INSERT … SELECT` over a recursive CTE (100,000 rows in about a
 * second). Row n (1-based) is minted at `baseMs + n` ms: its id is `ntf_` + the Crockford time of that millisecond
 * (computed in SQL exactly like src/lib/ids.ts) + a per-call random tag + n zero-padded, so ids are valid, unique
 * and sort in creation order. Type, severity and status cycle through SEED_TYPES / SEED_SEVERITIES / SEED_STATUSES
 * with n mod 5, n mod 3 and (n div 3) mod 6 (so status and severity vary independently).
 */
export async function seedManyNotifications(handle: string, count: number, baseMs: number): Promise<{ tag: string }> {
  const d1 = await shardOf(handle);
  const tag = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => CROCKFORD[b % 32]).join('');
  const timeChars = Array.from({ length: 10 }, (_, k) => {
    const shift = 5 * (9 - k);
    return `substr('${CROCKFORD}', ((ms >> ${shift}) & 31) + 1, 1)`;
  }).join(' || ');
  const pick = (values: readonly string[], expr: string) =>
    `CASE ${expr} ${values.map((v, i) => `WHEN ${i} THEN '${v}'`).join(' ')} END`;
  const sql = `
    WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?2),
    rows AS (SELECT n, ?3 + n AS ms FROM seq)
    INSERT INTO notifications (${NOTIFICATION_COLUMNS})
    SELECT
      'ntf_' || ${timeChars} || ?4 || printf('%010d', n),
      ?1,
      ${pick(SEED_TYPES, 'n % 5')},
      ${pick(SEED_SEVERITIES, 'n % 3')},
      '{"n":' || n || '}',
      'test-seed',
      NULL,
      strftime('%Y-%m-%dT%H:%M:%fZ', ms / 1000.0, 'unixepoch'),
      ${pick(SEED_STATUSES, '(n / 3) % 6')},
      0,
      '{}',
      strftime('%Y-%m-%dT%H:%M:%fZ', ms / 1000.0, 'unixepoch'),
      strftime('%Y-%m-%dT%H:%M:%fZ', ms / 1000.0, 'unixepoch')
    FROM rows`;
  await d1.prepare(sql).bind(handle, count, baseMs, tag).run();
  return { tag };
}

/** The id `seedManyNotifications` gives row n (1-based), computed with the service's own time encoding. */
export function seededId(baseMs: number, tag: string, n: number): string {
  return `${boundaryId('ntf', baseMs + n).slice(0, 14)}${tag}${String(n).padStart(10, '0')}`;
}

/** Inserts `count` standard email subscriptions (active) directly, as the API would store them. */
export async function insertEmailSubscriptions(handle: string, count: number): Promise<string[]> {
  const d1 = await shardOf(handle);
  const now = Date.now();
  const ids: string[] = [];
  const rows = Array.from({ length: count }, (_, i) => {
    const id = newId('esub', now);
    ids.push(id);
    const email = `bulk-${i}-${unique('x')}@example.com`;
    return [id, handle, 'standard', email, email.toLowerCase(), 'active', 'cloudflare', new Date(now).toISOString()];
  });
  const statements = chunks(rows, 11).map(
    (
      group, // 9 columns × 11 rows = 99 parameters
    ) =>
      d1
        .prepare(
          `INSERT INTO email_subscriptions (id, handle, kind, email, email_normalized, status, provider, created_at, updated_at)
       VALUES ${group.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
        )
        .bind(...group.flatMap((r) => [...r, r[7]])),
  );
  await d1.batch(statements);
  return ids;
}

export interface SeedDelivery {
  id?: string;
  notificationId: string | null;
  channel: 'webhook' | 'email';
  subscriptionId: string | null;
  target: string;
  status: RecipientSummary['status'];
  /** Overrides the recipient type given to {@link insertDeliveries} for this delivery. */
  recipientType?: RecipientSummary['recipientType'];
  statusReason?: string | null;
  attempts?: number;
}

/** Inserts deliveries and returns them with their ids, plus the summary the notification would hold for them. */
export async function insertDeliveries(
  handle: string,
  deliveries: SeedDelivery[],
  recipientType: RecipientSummary['recipientType'] = 'email',
): Promise<{ ids: string[]; recipients: Record<string, RecipientSummary> }> {
  const d1 = await shardOf(handle);
  const now = new Date().toISOString();
  const ids: string[] = [];
  const recipients: Record<string, RecipientSummary> = {};
  const statements = deliveries.map((d) => {
    const id = d.id ?? newId('dlv');
    ids.push(id);
    recipients[id] = {
      deliveryId: id,
      channel: d.channel,
      recipientType: d.recipientType ?? recipientType,
      subscriptionId: d.subscriptionId,
      target: d.target,
      status: d.status,
      statusReason: d.statusReason ?? null,
      attempts: d.attempts ?? 0,
      lastErrorClass: null,
      lastHttpStatus: null,
      updatedAt: now,
    };
    return d1
      .prepare(
        `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target, status,
         status_reason, attempt_count, created_at, updated_at)
       VALUES (?, ?, ?, 'event', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .bind(
        id,
        handle,
        d.notificationId,
        d.channel,
        d.recipientType ?? recipientType,
        d.subscriptionId,
        d.target,
        d.status,
        d.statusReason ?? null,
        d.attempts ?? 0,
        now,
        now,
      );
  });
  await d1.batch(statements);
  return { ids, recipients };
}

/** A notification row's stored `recipients` summary, decoded as the API shows it, by delivery id. */
export function summaryById(recipients: string): Record<string, RecipientSummary> {
  return Object.fromEntries(decodeRecipients(recipients).map((r) => [r.deliveryId, r]));
}

/** Today's UTC day as the daily write counter stores it. */
export function utcToday(): string {
  return new Date().toISOString().slice(0, 10);
}

/** The handle's daily write count for today (0 when no row). */
export async function dailyCount(handle: string): Promise<number> {
  const d1 = await shardOf(handle);
  const row = await d1
    .prepare('SELECT count FROM daily_write_counters WHERE handle = ? AND day = ?')
    .bind(handle, utcToday())
    .first<{ count: number }>();
  return row?.count ?? 0;
}

/** Sets the handle's daily write count for today. */
export async function setDailyCount(handle: string, count: number): Promise<void> {
  const d1 = await shardOf(handle);
  await d1
    .prepare(
      `INSERT INTO daily_write_counters (handle, day, count) VALUES (?1, ?2, ?3)
     ON CONFLICT (handle, day) DO UPDATE SET count = excluded.count`,
    )
    .bind(handle, utcToday(), count)
    .run();
}

/** Number of rows of `table` matching a simple `column = value` condition. */
export async function countRows(table: string, column: string, value: string): Promise<number> {
  // Every database: the control plane's tables and the shards' are disjoint (docs/design.md#shards).
  let n = 0;
  for (const d1 of [env.DB, env.SHARD_0, env.SHARD_1]) {
    const row = await d1
      .prepare(`SELECT count(*) AS n FROM ${table} WHERE ${column} = ?`)
      .bind(value)
      .first<{ n: number }>();
    n += row?.n ?? 0;
  }
  return n;
}

/**
 * The local rate limiter (miniflare) counts in windows aligned to the wall clock (`floor(now / period)`), so a burst
 * that straddles a window boundary is split across two windows. Call before a burst that must land in one window:
 * if fewer than `neededMs` remain in the current window, wait for the next one.
 */
export async function awaitFreshWindow(neededMs: number, periodSeconds = 60): Promise<void> {
  const period = periodSeconds * 1000;
  const remaining = period - (Date.now() % period);
  if (remaining < neededMs) await new Promise((resolve) => setTimeout(resolve, remaining + 50));
}
