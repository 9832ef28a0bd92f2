/**
 * Bounce and complaint feedback (docs/design.md#email): a permanent bounce means the address cannot receive mail —
 * every subscription with that address is suppressed; a complaint means that recipient does not want these mails — the
 * subscription it came from (or, if unknown, every one with the address) is suppressed. The reason is kept and shown
 * in the API, the health report and the email test diagnosis; matching then skips the subscription. A suppressed
 * owner default email is returned as such, so its caller raises the owner alert (delivery/alerts.ts).
 */
export interface Feedback {
  kind: 'bounce' | 'complaint';
  email: string;
  /** Our subscription id when the provider echoes it back (Resend tags); narrows a complaint to one subscription. */
  subscriptionId?: string | null;
  /** Provider wording, e.g. "550 5.1.1 user unknown". */
  detail: string;
  provider: 'resend' | 'sns' | 'ses' | 'cloudflare';
}

/** A subscription a feedback event just suppressed. */
export interface SuppressedSubscription {
  id: string;
  handle: string;
  /** `owner_default` rows cost the handle its guaranteed recipient: the caller raises the owner alert. */
  kind: 'standard' | 'owner_default';
  emailNormalized: string;
  /** The reason stored with it (`Permanent bounce reported by ses: …`). */
  reason: string;
}

/**
 * Applies one feedback event; returns the subscriptions it changed (already suppressed ones are not changed again, so
 * a provider's redelivery of the same event returns none).
 */
export async function applyFeedback(
  d1: D1Database,
  f: Feedback,
  now = new Date().toISOString(),
): Promise<SuppressedSubscription[]> {
  const reason =
    `${f.kind === 'bounce' ? 'Permanent bounce' : 'Spam complaint'} reported by ${f.provider}: ${f.detail}`.slice(
      0,
      500,
    );
  const narrow = f.kind === 'complaint' && f.subscriptionId;
  const { results } = await d1
    .prepare(
      `UPDATE email_subscriptions SET status = 'suppressed', status_reason = ?2, updated_at = ?3
       WHERE email_normalized = ?1 AND status <> 'suppressed' AND (?4 IS NULL OR id = ?4)
       RETURNING id, handle, kind, email_normalized AS emailNormalized`,
    )
    .bind(f.email.trim().toLowerCase(), reason, now, narrow ? f.subscriptionId : null)
    .all<Omit<SuppressedSubscription, 'reason'>>();
  return results.map((row) => ({ ...row, reason }));
}
