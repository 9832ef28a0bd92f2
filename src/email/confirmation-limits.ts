/**
 * How often a confirmation mail may go out (docs/design.md#email), so neither `resend-confirmation` nor creating and
 * deleting subscriptions can fill a stranger's inbox: one mail a minute per subscription (counted from its last
 * confirmation mail, the first one included), and per address per UTC day across every handle at most ten first
 * mails (one per new subscription) and five resent ones.
 *
 * Each limit is claimed by ONE conditional statement (D1 runs each atomically), so concurrent resends cannot both see
 * room and both send. The cooldown is claimed first: a resend refused by the daily cap still waits out the minute.
 */
import { countAddressMail, nextUtcMidnight } from '../db/daily-counters.ts';

/** Seconds between two confirmation mails of one subscription. */
export const CONFIRMATION_COOLDOWN_SECONDS = 60;
/** Resent confirmation mails one address may receive per UTC day, across every handle. */
export const CONFIRMATION_RESENDS_PER_ADDRESS_PER_DAY = 5;
/** First confirmation mails (new subscriptions) one address may receive per UTC day, across every handle. */
export const FIRST_CONFIRMATIONS_PER_ADDRESS_PER_DAY = 10;

export type ResendClaim =
  | { ok: true }
  | { ok: false; reason: 'cooldown' | 'daily_cap'; retryAfterSeconds: number; detail: string };

/**
 * Claims the right to resend the confirmation mail of a pending subscription now: records the send time and counts
 * the mail against its address, or says which limit refuses it and for how long.
 */
export async function claimConfirmationResend(
  d1: D1Database,
  control: D1Database,
  sub: { id: string; emailNormalized: string },
  nowMs = Date.now(),
): Promise<ResendClaim> {
  const now = new Date(nowMs).toISOString();
  const cutoff = new Date(nowMs - CONFIRMATION_COOLDOWN_SECONDS * 1000).toISOString();
  const cooldown = await d1
    .prepare(
      'UPDATE email_subscriptions SET confirm_sent_at = ?2 ' +
        'WHERE id = ?1 AND (confirm_sent_at IS NULL OR confirm_sent_at <= ?3)',
    )
    .bind(sub.id, now, cutoff)
    .run();
  if (!cooldown.meta.changes) {
    const row = await d1
      .prepare('SELECT confirm_sent_at AS sentAt FROM email_subscriptions WHERE id = ?1')
      .bind(sub.id)
      .first<{ sentAt: string | null }>();
    const sentAt = row?.sentAt ? Date.parse(row.sentAt) : nowMs;
    const wait = Math.ceil((sentAt + CONFIRMATION_COOLDOWN_SECONDS * 1000 - nowMs) / 1000);
    const retryAfterSeconds = Math.min(Math.max(wait, 1), CONFIRMATION_COOLDOWN_SECONDS);
    return {
      ok: false,
      reason: 'cooldown',
      retryAfterSeconds,
      detail:
        `A confirmation mail went to this address less than ${CONFIRMATION_COOLDOWN_SECONDS} s ago; ` +
        `resend it in ${retryAfterSeconds} s.`,
    };
  }

  return claimAddressMail(
    control,
    sub.emailNormalized,
    'count',
    [CONFIRMATION_RESENDS_PER_ADDRESS_PER_DAY, 'resent confirmation mails'],
    nowMs,
  );
}

/**
 * Claims one of the address's first confirmation mails of the day (a new subscription's), or says until when none
 * may go out. The subscription is kept all the same; its mail can be resent once the day is over.
 */
export function claimFirstConfirmation(control: D1Database, emailNormalized: string, nowMs = Date.now()) {
  const cap = [FIRST_CONFIRMATIONS_PER_ADDRESS_PER_DAY, 'confirmation mails of new subscriptions'] as const;
  return claimAddressMail(control, emailNormalized, 'first_mails', cap, nowMs);
}

/**
 * Counts the mail in the address's counter (src/db/daily-counters.ts), or refuses it until the next UTC midnight.
 * `what` names the counted mails in the refusal.
 */
async function claimAddressMail(
  control: D1Database,
  emailNormalized: string,
  counter: 'count' | 'first_mails',
  [cap, what]: readonly [number, string],
  nowMs: number,
): Promise<ResendClaim> {
  const now = new Date(nowMs);
  if (await countAddressMail(control, emailNormalized, counter, cap, now)) return { ok: true };
  return {
    ok: false,
    reason: 'daily_cap',
    retryAfterSeconds: Math.max(Math.ceil((nextUtcMidnight(now).getTime() - nowMs) / 1000), 1),
    detail: `This address has received the ${cap} ${what} allowed today (UTC); resend it tomorrow.`,
  };
}
