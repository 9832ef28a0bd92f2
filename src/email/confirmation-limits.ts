/**
 * How often a confirmation mail may go out (docs/design.md#email), so neither `resend-confirmation` nor creating and
 * deleting subscriptions can fill a stranger's inbox: one mail a minute per subscription (counted from its last
 * confirmation mail, the first one included), and per address per UTC day across every handle at most ten first
 * mails (one per new subscription) and five resent ones.
 *
 * Each limit is claimed by ONE conditional statement (D1 runs each atomically), so concurrent resends cannot both see
 * room and both send. The cooldown is claimed first: a resend refused by the daily cap still waits out the minute.
 */

/** Seconds between two confirmation mails of one subscription. */
export const CONFIRMATION_COOLDOWN_SECONDS = 60;
/** Resent confirmation mails one address may receive per UTC day, across every handle. */
export const CONFIRMATION_RESENDS_PER_ADDRESS_PER_DAY = 5;
/** First confirmation mails (new subscriptions) one address may receive per UTC day, across every handle. */
export const FIRST_CONFIRMATIONS_PER_ADDRESS_PER_DAY = 10;

export type ResendClaim =
  | { ok: true }
  | { ok: false; reason: 'cooldown' | 'daily_cap'; retryAfterSeconds: number; detail: string };

const DAY_MS = 86_400_000;

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

  return countAddressMail(control, sub.emailNormalized, 'count', nowMs);
}

/**
 * Claims one of the address's first confirmation mails of the day (a new subscription's), or says until when none
 * may go out. The subscription is kept all the same; its mail can be resent once the day is over.
 */
export function claimFirstConfirmation(control: D1Database, emailNormalized: string, nowMs = Date.now()) {
  return countAddressMail(control, emailNormalized, 'first_mails', nowMs);
}

/** The daily cap of each counter of `confirmation_mail_counters`, and how a refusal names it. */
const DAILY_CAPS = {
  count: { cap: CONFIRMATION_RESENDS_PER_ADDRESS_PER_DAY, what: 'resent confirmation mails' },
  first_mails: { cap: FIRST_CONFIRMATIONS_PER_ADDRESS_PER_DAY, what: 'confirmation mails of new subscriptions' },
} as const;

/**
 * Counts a mail to the address in one of its two daily counters, unless that counter is at its cap. A new UTC day
 * starts both counters again (SQLite evaluates every SET term against the row as it was).
 */
async function countAddressMail(
  control: D1Database,
  emailNormalized: string,
  column: keyof typeof DAILY_CAPS,
  nowMs: number,
): Promise<ResendClaim> {
  const day = new Date(nowMs).toISOString().slice(0, 10);
  const other = column === 'count' ? 'first_mails' : 'count';
  // One row per address, across every handle and so every shard: on the control plane (docs/design.md#shards).
  const counted = await control
    .prepare(
      `INSERT INTO confirmation_mail_counters (email_normalized, day, ${column}, ${other}) VALUES (?1, ?2, 1, 0)
       ON CONFLICT (email_normalized) DO UPDATE SET
         ${column} = CASE WHEN day = excluded.day THEN ${column} + 1 ELSE 1 END,
         ${other} = CASE WHEN day = excluded.day THEN ${other} ELSE 0 END,
         day = excluded.day
       WHERE day <> excluded.day OR ${column} < ?3`,
    )
    .bind(emailNormalized, day, DAILY_CAPS[column].cap)
    .run();
  if (!counted.meta.changes) {
    const midnight = Date.parse(`${day}T00:00:00.000Z`) + DAY_MS;
    return {
      ok: false,
      reason: 'daily_cap',
      retryAfterSeconds: Math.max(Math.ceil((midnight - nowMs) / 1000), 1),
      detail:
        `This address has received the ${DAILY_CAPS[column].cap} ${DAILY_CAPS[column].what} ` +
        'allowed today (UTC); resend it tomorrow.',
    };
  }
  return { ok: true };
}
