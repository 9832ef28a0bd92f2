/**
 * The per-UTC-day counters: per handle (`daily_write_counters`, docs/design.md#the-daily-write-limit), writes against
 * the daily limit and events stored, which the usage call reads back in one row; per address
 * (`confirmation_mail_counters`, docs/design.md#email), the confirmation mails it was sent.
 */

/** The UTC day of `d`, `YYYY-MM-DD`: the counters' key. */
export function utcDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** When the daily limit resets: the next UTC midnight. */
export function nextUtcMidnight(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1));
}

/**
 * Takes up to `wanted` write slots for the day, never past `limit`, atomically (one `db.batch`, which D1 runs as one
 * transaction): the count before and the count after tell how many were granted, so concurrent takers at the limit
 * cannot overshoot it. Returns the granted number (0 at the limit) and the count now.
 */
export async function takeDailySlots(
  d1: D1Database,
  handle: string,
  wanted: number,
  limit: number,
  now: Date,
): Promise<{ granted: number; count: number }> {
  if (wanted <= 0) return { granted: 0, count: 0 };
  const day = utcDay(now);
  const [before, after] = await d1.batch<{ count: number }>([
    d1.prepare('SELECT count FROM daily_write_counters WHERE handle = ?1 AND day = ?2').bind(handle, day),
    d1
      .prepare(
        `INSERT INTO daily_write_counters (handle, day, count) VALUES (?1, ?2, min(?3, ?4))
         ON CONFLICT (handle, day) DO UPDATE SET count = count + min(?3, ?4 - count) WHERE count < ?4
         RETURNING count`,
      )
      .bind(handle, day, wanted, limit),
  ]);
  const old = before!.results[0]?.count ?? 0;
  const row = after!.results[0];
  return row ? { granted: row.count - old, count: row.count } : { granted: 0, count: old };
}

/** Gives back `n` slots taken for writes that did not happen (only successful writes count). */
export function giveBackDailySlots(d1: D1Database, handle: string, day: string, n: number): D1PreparedStatement {
  return d1
    .prepare('UPDATE daily_write_counters SET count = max(count - ?3, 0) WHERE handle = ?1 AND day = ?2')
    .bind(handle, day, n);
}

/** Counts `n` events stored for the handle today; put it in the batch that stores them, so it counts exactly those. */
export function countEventsStatement(d1: D1Database, handle: string, now: string, n = 1): D1PreparedStatement {
  return d1
    .prepare(
      `INSERT INTO daily_write_counters (handle, day, count, events) VALUES (?1, ?2, 0, ?3)
       ON CONFLICT (handle, day) DO UPDATE SET events = events + ?3`,
    )
    .bind(handle, now.slice(0, 10), n);
}

/**
 * Counts one confirmation mail to an address in one of its two counters (`count`: resent; `first_mails`: new
 * subscriptions'), unless that counter is at `cap` today; false when it is. A new UTC day starts both counters again
 * (SQLite evaluates every SET term against the row as it was). Run it on the control plane: one row per address
 * across every handle and so every shard (docs/design.md#shards).
 */
export async function countAddressMail(
  control: D1Database,
  emailNormalized: string,
  counter: 'count' | 'first_mails',
  cap: number,
  now: Date,
): Promise<boolean> {
  const other = counter === 'count' ? 'first_mails' : 'count';
  const sameDay = (then: string, otherwise: string) =>
    `CASE WHEN day = excluded.day THEN ${then} ELSE ${otherwise} END`;
  const counted = await control
    .prepare(
      `INSERT INTO confirmation_mail_counters (email_normalized, day, ${counter}, ${other}) VALUES (?1, ?2, 1, 0) ` +
        `ON CONFLICT (email_normalized) DO UPDATE SET ${counter} = ${sameDay(`${counter} + 1`, '1')}, ` +
        `${other} = ${sameDay(other, '0')}, day = excluded.day WHERE day <> excluded.day OR ${counter} < ?3`,
    )
    .bind(emailNormalized, utcDay(now), cap)
    .run();
  return counted.meta.changes > 0;
}
