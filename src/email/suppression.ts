/**
 * Bounce and complaint feedback (docs/design.md#email): a permanent bounce means the address cannot receive mail —
 * every subscription with that address is suppressed; a complaint means that recipient does not want these mails — the
 * subscription it came from (or, if unknown, every one with the address) is suppressed. The reason is kept and shown
 * in the API, the health report and the email test diagnosis; matching then skips the subscription.
 */
export interface Feedback {
  kind: 'bounce' | 'complaint';
  email: string;
  /** Our subscription id when the provider echoes it back (Resend tags); narrows a complaint to one subscription. */
  subscriptionId?: string | null;
  /** Provider wording, e.g. "550 5.1.1 user unknown". */
  detail: string;
  provider: 'resend' | 'sns' | 'ses';
}

/** Applies one feedback event; returns how many subscriptions changed. */
export async function applyFeedback(d1: D1Database, f: Feedback, now = new Date().toISOString()): Promise<number> {
  const reason =
    `${f.kind === 'bounce' ? 'Permanent bounce' : 'Spam complaint'} reported by ${f.provider}: ${f.detail}`.slice(
      0,
      500,
    );
  const narrow = f.kind === 'complaint' && f.subscriptionId;
  const result = await d1
    .prepare(
      `UPDATE email_subscriptions SET status = 'suppressed', status_reason = ?2, updated_at = ?3
       WHERE email_normalized = ?1 AND status <> 'suppressed' AND (?4 IS NULL OR id = ?4)`,
    )
    .bind(f.email.trim().toLowerCase(), reason, now, narrow ? f.subscriptionId : null)
    .run();
  return result.meta.changes ?? 0;
}
