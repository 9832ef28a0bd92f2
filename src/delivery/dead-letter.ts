/**
 * The `notify-deliveries-dlq` consumer (docs/design.md#retry-schedule): a message lands here when its retries are
 * exhausted; its delivery becomes `dead` with the last error class it had, and its notification's aggregate status
 * follows.
 */
import { getDb } from '../db/client.ts';
import type { DeliveryRow } from './attempt.ts';
import { DeliveryMessage } from './messages.ts';
import { type Rejection, recordRejections } from './rejections.ts';
import { deliveriesByIds, moveDelivery } from './store.ts';
import { OPEN_STATUSES } from './summary.ts';

/** `dead` (`retries_exhausted`) for each of these deliveries still open; shared with the sweeper's lost hand-offs. */
export function deadLetterStatements(d1: D1Database, rows: readonly DeliveryRow[], now: string): D1PreparedStatement[] {
  return rows
    .filter((d) => OPEN_STATUSES.includes(d.status))
    .flatMap((d) => moveDelivery(d1, d, 'dead', { statusReason: 'retries_exhausted', attempted: false, now }));
}

export async function consumeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const rejections: Rejection[] = [];
  const ids: string[] = [];
  for (const message of batch.messages) {
    const parsed = DeliveryMessage.safeParse(message.body);
    if (parsed.success) ids.push(parsed.data.deliveryId);
    else rejections.push({ queue: batch.queue, message, handle: null, reason: 'invalid dead-letter message' });
  }
  const rows = ids.length ? await deliveriesByIds(getDb(env.DB), [...new Set(ids)]) : [];
  const now = new Date().toISOString();
  const statements = [...deadLetterStatements(env.DB, rows, now), ...recordRejections(env.DB, rejections)];
  try {
    if (statements.length) await env.DB.batch(statements);
    batch.ackAll();
  } catch (err) {
    console.error(JSON.stringify({ level: 'error', msg: 'dead_letters_not_written', error: String(err) }));
    batch.retryAll({ delaySeconds: 30 });
  }
}
