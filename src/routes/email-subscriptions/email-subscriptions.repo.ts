/** Email subscriptions in D1, including the owner default email (the row of kind `owner_default`). */
import { and, desc, eq, lt, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.ts';
import { type InsertOutcome, insertWithinLimit } from '../../db/insert-within-limit.ts';
import { emailSubscriptions } from '../../db/schema.ts';
import { cancelOpenDeliveries } from '../../delivery/summary.ts';

export type EmailSubscriptionRow = typeof emailSubscriptions.$inferSelect;

export function listStandard(
  db: Db,
  handle: string,
  limit: number,
  before: string | null,
): Promise<EmailSubscriptionRow[]> {
  return db
    .select()
    .from(emailSubscriptions)
    .where(
      and(
        eq(emailSubscriptions.handle, handle),
        eq(emailSubscriptions.kind, 'standard'),
        before ? lt(emailSubscriptions.id, before) : undefined,
      ),
    )
    .orderBy(desc(emailSubscriptions.id))
    .limit(limit)
    .all();
}

export function getOwnerDefault(db: Db, handle: string): Promise<EmailSubscriptionRow | undefined> {
  return db
    .select()
    .from(emailSubscriptions)
    .where(and(eq(emailSubscriptions.handle, handle), eq(emailSubscriptions.kind, 'owner_default')))
    .get();
}

export function getStandard(db: Db, handle: string, id: string): Promise<EmailSubscriptionRow | undefined> {
  return db
    .select()
    .from(emailSubscriptions)
    .where(
      and(
        eq(emailSubscriptions.handle, handle),
        eq(emailSubscriptions.id, id),
        eq(emailSubscriptions.kind, 'standard'),
      ),
    )
    .get();
}

/** The handle's standard subscription for an address (lower-cased), if any: the one a duplicate create names. */
export function findStandardByEmail(
  db: Db,
  handle: string,
  emailNormalized: string,
): Promise<EmailSubscriptionRow | undefined> {
  return db
    .select()
    .from(emailSubscriptions)
    .where(
      and(
        eq(emailSubscriptions.handle, handle),
        eq(emailSubscriptions.kind, 'standard'),
        eq(emailSubscriptions.emailNormalized, emailNormalized),
      ),
    )
    .get();
}

/**
 * Inserts unless the handle already has this address (`conflict`) or `limit` subscriptions (`limit_reached`);
 * `alongside` (the Idempotency-Key's recorded answer) in the same batch.
 */
export function insertStandard(
  d1: D1Database,
  row: EmailSubscriptionRow,
  limit: number,
  alongside: D1PreparedStatement[] = [],
): Promise<InsertOutcome> {
  return insertWithinLimit(
    d1,
    emailSubscriptions,
    row,
    { where: "handle = ?1 AND kind = 'standard'", params: [row.handle] },
    limit,
    alongside,
  );
}

/** Sets the owner default address (creating the row, or replacing the address and clearing its state). */
export async function upsertOwnerDefault(db: Db, row: EmailSubscriptionRow): Promise<EmailSubscriptionRow> {
  const [saved] = await db
    .insert(emailSubscriptions)
    .values(row)
    .onConflictDoUpdate({
      target: emailSubscriptions.handle,
      targetWhere: sql`kind = 'owner_default'`,
      set: {
        email: row.email,
        emailNormalized: row.emailNormalized,
        status: row.status,
        statusReason: null,
        confirmedAt: row.confirmedAt,
        provider: row.provider,
        providerRef: null,
        providerCheckedAt: null,
        updatedAt: row.updatedAt,
      },
    })
    .returning();
  return saved!;
}

/** Deletes a subscription row and cancels its open deliveries, atomically. */
export async function deleteEmailSubscription(
  d1: D1Database,
  handle: string,
  id: string,
  now: string,
): Promise<boolean> {
  const results = await d1.batch([
    ...cancelOpenDeliveries(d1, handle, id, 'subscription_deleted', now),
    d1.prepare('DELETE FROM email_subscriptions WHERE handle = ?1 AND id = ?2').bind(handle, id),
  ]);
  return (results.at(-1)?.meta.changes ?? 0) > 0;
}
