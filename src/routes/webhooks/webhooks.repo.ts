/** Webhook subscriptions in D1. */
import { and, desc, eq, lt } from 'drizzle-orm';
import type { Db } from '../../db/client.ts';
import { webhookSubscriptions } from '../../db/schema.ts';
import { cancelOpenDeliveries } from '../../delivery/summary.ts';
import { insertWithinLimit, type InsertOutcome } from '../../db/insert-within-limit.ts';

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

/** Inserts unless the handle already has `limit` webhooks. */
export function insertWebhook(d1: D1Database, row: WebhookRow, limit: number): Promise<InsertOutcome> {
  return insertWithinLimit(d1, webhookSubscriptions, row, { where: 'handle = ?1', params: [row.handle] }, limit);
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
