/** Messages that could not be processed are recorded (`event_rejections`) before they are acknowledged. */
import { newId } from '../lib/ids.ts';

export interface Rejection {
  queue: string;
  message: Message<unknown>;
  handle: string | null;
  reason: string;
}

const MAX_BODY = 4096;

export function recordRejections(d1: D1Database, rejections: readonly Rejection[]): D1PreparedStatement[] {
  const now = new Date().toISOString();
  return rejections.map((r) => {
    let body: string;
    try {
      body =
        typeof r.message.body === 'string'
          ? r.message.body
          : (JSON.stringify(r.message.body) ?? String(r.message.body));
    } catch {
      body = String(r.message.body);
    }
    console.warn(
      JSON.stringify({
        level: 'warn',
        msg: 'queue_message_rejected',
        queue: r.queue,
        messageId: r.message.id,
        reason: r.reason,
      }),
    );
    return d1
      .prepare(
        `INSERT INTO event_rejections (id, queue, message_id, handle, reason, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)`,
      )
      .bind(newId('rej'), r.queue, r.message.id, r.handle, r.reason.slice(0, 1000), body.slice(0, MAX_BODY), now);
  });
}

/** Records refused messages, then acks them; retries them (after `retrySeconds`) if the record cannot be written. */
export async function settleRejections(d1: D1Database, rejections: readonly Rejection[], retrySeconds: number) {
  if (!rejections.length) return;
  try {
    await d1.batch(recordRejections(d1, rejections));
    for (const r of rejections) r.message.ack();
  } catch (err) {
    console.error(JSON.stringify({ level: 'error', msg: 'rejections_not_written', error: String(err) }));
    for (const r of rejections) r.message.retry({ delaySeconds: retrySeconds });
  }
}
