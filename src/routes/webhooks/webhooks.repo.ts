/** Webhook subscriptions in D1. */
import { and, desc, eq, lt } from 'drizzle-orm';
import type { Db } from '../../db/client.ts';
import { type InsertOutcome, insertWithinLimit } from '../../db/insert-within-limit.ts';
import { webhookSubscriptions } from '../../db/schema.ts';
import { cancelOpenDeliveries } from '../../delivery/summary.ts';

export type WebhookRow = typeof webhookSubscriptions.$inferSelect;

export function listWebhooks(db: Db, handle: string, limit: number, before: string | null): Promise<WebhookRow[]> {
  return db
    .select()
    .from(webhookSubscriptions)
    .where(and(eq(webhookSubscriptions.handle, handle), before ? lt(webhookSubscriptions.id, before) : undefined))
    .orderBy(desc(webhookSubscriptions.id))
    .limit(limit)
    .all();
}

export function getWebhook(db: Db, handle: string, id: string): Promise<WebhookRow | undefined> {
  return db
    .select()
    .from(webhookSubscriptions)
    .where(and(eq(webhookSubscriptions.handle, handle), eq(webhookSubscriptions.id, id)))
    .get();
}

/**
 * Inserts unless the handle already has `limit` webhooks; `alongside` (the Idempotency-Key's recorded answer) in the
 * same batch.
 */
export function insertWebhook(
  d1: D1Database,
  row: WebhookRow,
  limit: number,
  alongside: D1PreparedStatement[] = [],
): Promise<InsertOutcome> {
  return insertWithinLimit(
    d1,
    webhookSubscriptions,
    row,
    { where: 'handle = ?1', params: [row.handle] },
    limit,
    alongside,
  );
}

/**
 * A new signing secret (the current one kept as previous until `previousExpiresAt`, or dropped when null), with
 * `alongside` in the same batch. False when there is no such webhook.
 */
export async function rotateWebhookSecret(
  d1: D1Database,
  current: WebhookRow,
  next: Pick<WebhookRow, 'secretEncrypted' | 'previousSecretEncrypted' | 'previousSecretExpiresAt' | 'updatedAt'>,
  alongside: D1PreparedStatement[] = [],
): Promise<boolean> {
  const [update] = await d1.batch([
    d1
      .prepare(
        `UPDATE webhook_subscriptions SET secret_encrypted = ?3, previous_secret_encrypted = ?4,
           previous_secret_expires_at = ?5, updated_at = ?6
         WHERE handle = ?1 AND id = ?2`,
      )
      .bind(
        current.handle,
        current.id,
        next.secretEncrypted,
        next.previousSecretEncrypted,
        next.previousSecretExpiresAt,
        next.updatedAt,
      ),
    ...alongside,
  ]);
  return (update!.meta.changes ?? 0) > 0;
}

export async function updateWebhook(
  db: Db,
  handle: string,
  id: string,
  changes: Partial<WebhookRow>,
): Promise<WebhookRow | undefined> {
  return db
    .update(webhookSubscriptions)
    .set(changes)
    .where(and(eq(webhookSubscriptions.handle, handle), eq(webhookSubscriptions.id, id)))
    .returning()
    .get();
}

/** Deletes the subscription and cancels its open deliveries, atomically. False when there was no such webhook. */
export async function deleteWebhook(d1: D1Database, handle: string, id: string, now: string): Promise<boolean> {
  const results = await d1.batch([
    ...cancelOpenDeliveries(d1, handle, id, 'subscription_deleted', now),
    d1.prepare('DELETE FROM webhook_subscriptions WHERE handle = ?1 AND id = ?2').bind(handle, id),
  ]);
  return (results.at(-1)?.meta.changes ?? 0) > 0;
}

/** Attempts of one subscription per hour over the last 24 h, oldest hour first: the list's sparkline. */
export interface HourlyActivity {
  succeeded: number[];
  failed: number[];
}

const HOURS = 24;
/** Deliveries made before this could still have attempts in the window: the longest retry schedule is ~28 h. */
const ACTIVITY_LOOKBACK_MS = 48 * 3600_000;

/**
 * One aggregate query for all `ids`: attempts bucketed by hours ago, read through the (subscription_id, id) index with
 * the time-ordered delivery id as the lower bound.
 */
export async function hourlyActivity(
  d1: D1Database,
  ids: readonly string[],
  now: number,
  firstDeliveryId: (ms: number) => string,
): Promise<Map<string, HourlyActivity>> {
  const out = new Map<string, HourlyActivity>(
    ids.map((id) => [id, { succeeded: Array(HOURS).fill(0), failed: Array(HOURS).fill(0) }]),
  );
  if (!ids.length) return out;
  const { results } = await d1
    .prepare(
      `SELECT d.subscription_id AS id,
              CAST((julianday(?2) - julianday(a.created_at)) * 24 AS INTEGER) AS age,
              SUM(a.outcome = 'succeeded') AS ok,
              SUM(a.outcome = 'failed') AS failed
         FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id
        WHERE d.subscription_id IN (SELECT value FROM json_each(?1)) AND d.id >= ?3 AND a.created_at >= ?4
        GROUP BY 1, 2`,
    )
    .bind(
      JSON.stringify(ids),
      new Date(now).toISOString(),
      firstDeliveryId(now - ACTIVITY_LOOKBACK_MS),
      new Date(now - HOURS * 3600_000).toISOString(),
    )
    .all<{ id: string; age: number; ok: number; failed: number }>();
  for (const r of results) {
    const slot = out.get(r.id);
    if (!slot || r.age < 0 || r.age >= HOURS) continue;
    slot.succeeded[HOURS - 1 - r.age] = r.ok;
    slot.failed[HOURS - 1 - r.age] = r.failed;
  }
  return out;
}
