/** Messages that could not be processed are recorded (`event_rejections`) before they are acknowledged. */
import { newId } from '../lib/ids.ts';
import { logLine } from '../lib/log.ts';

export interface Rejection {
  queue: string;
  message: Message<unknown>;
  handle: string | null;
  reason: string;
}

const MAX_BODY = 4096;

/** Why a schema refused a message, for its rejection's reason: `path: message; …` (`(message)`: the whole body). */
export function issuesText(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): string {
  return error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ');
}

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
    logLine('warn', 'queue_message_rejected', { queue: r.queue, messageId: r.message.id, reason: r.reason });
    return d1
      .prepare(
        'INSERT INTO event_rejections (id, queue, message_id, handle, reason, body, created_at) ' +
          'VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)',
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
    logLine('error', 'rejections_not_written', { error: String(err) });
    for (const r of rejections) r.message.retry({ delaySeconds: retrySeconds });
  }
}
