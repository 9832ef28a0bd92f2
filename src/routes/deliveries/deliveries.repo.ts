/** Deliveries and their attempts, as the delivery log shows them. */
import { and, asc, desc, eq, inArray, lt, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.ts';
import { deliveries, deliveryAttempts } from '../../db/schema.ts';
import type { DeliveryRow } from '../../delivery/attempt.ts';

export type AttemptRow = typeof deliveryAttempts.$inferSelect;

export function deliveryToApi(d: DeliveryRow, attempts: AttemptRow[]) {
  return {
    id: d.id,
    kind: d.kind,
    notificationId: d.notificationId,
    channel: d.channel,
    recipientType: d.recipientType,
    subscriptionId: d.subscriptionId,
    target: d.target,
    status: d.status,
    statusReason: d.statusReason,
    attemptCount: d.attemptCount,
    lastErrorClass: d.lastErrorClass,
    lastHttpStatus: d.lastHttpStatus,
    nextAttemptAt: d.nextAttemptAt,
    replayId: d.replayId,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    attempts: attempts.map((a) => ({
      attemptNumber: a.attemptNumber,
      outcome: a.outcome,
      errorClass: a.errorClass,
      httpStatus: a.httpStatus,
      durationMs: a.durationMs,
      requestBytes: a.requestBytes,
      responseSnippet: a.responseSnippet,
      errorMessage: a.errorMessage,
      at: a.createdAt,
    })),
  };
}

/** One page of a subscription's deliveries (newest first) with every attempt, in two reads batched as one. */
export async function deliveryLog(
  db: Db,
  handle: string,
  subscriptionId: string,
  limit: number,
  before: string | null,
) {
  const page = db
    .select()
    .from(deliveries)
    .where(
      and(
        eq(deliveries.subscriptionId, subscriptionId),
        eq(deliveries.handle, handle),
        before ? lt(deliveries.id, before) : undefined,
      ),
    )
    .orderBy(desc(deliveries.id))
    .limit(limit);
  const [rows, attempts] = await db.batch([
    page,
    db
      .select()
      .from(deliveryAttempts)
      .where(
        sql`${deliveryAttempts.deliveryId} IN (SELECT id FROM deliveries WHERE subscription_id = ${subscriptionId}
          AND handle = ${handle} ${before ? sql`AND id < ${before}` : sql``} ORDER BY id DESC LIMIT ${limit})`,
      )
      .orderBy(asc(deliveryAttempts.deliveryId), asc(deliveryAttempts.attemptNumber)),
  ]);
  const byDelivery = new Map<string, AttemptRow[]>();
  for (const a of attempts) byDelivery.set(a.deliveryId, [...(byDelivery.get(a.deliveryId) ?? []), a]);
  return rows.map((d) => ({ row: d, attempts: byDelivery.get(d.id) ?? [] }));
}

export async function getDelivery(db: Db, handle: string, id: string): Promise<DeliveryRow | undefined> {
  return db
    .select()
    .from(deliveries)
    .where(and(eq(deliveries.id, id), eq(deliveries.handle, handle)))
    .get();
}

export async function attemptsOf(db: Db, ids: string[]): Promise<AttemptRow[]> {
  if (!ids.length) return [];
  return db
    .select()
    .from(deliveryAttempts)
    .where(inArray(deliveryAttempts.deliveryId, ids))
    .orderBy(asc(deliveryAttempts.deliveryId), asc(deliveryAttempts.attemptNumber));
}

/** Redrivable deliveries of a subscription since a time (bounded per call). */
export function redrivableSince(
  db: Db,
  handle: string,
  subscriptionId: string,
  sinceId: string,
  limit: number,
): Promise<DeliveryRow[]> {
  return db
    .select()
    .from(deliveries)
    .where(
      and(
        eq(deliveries.subscriptionId, subscriptionId),
        eq(deliveries.handle, handle),
        eq(deliveries.kind, 'event'),
        sql`${deliveries.id} >= ${sinceId}`,
        inArray(deliveries.status, ['dead', 'skipped']),
      ),
    )
    .orderBy(asc(deliveries.id))
    .limit(limit)
    .all();
}
