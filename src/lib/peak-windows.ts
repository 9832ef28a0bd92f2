/**
 * Peak campaign windows (docs/design.md#peak-campaign-windows): when a handle's live campaigns run, so that bulk work
 * published `off_peak` waits until they end. Pure: whether an instant is inside a window, when that window ends, and
 * when a deferred delivery goes. Weekly windows are wall-clock times in an IANA time zone; one-off windows are
 * instants; a `campaign.started` event may open one until `campaign.completed`.
 */

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export interface WeeklyWindow {
  days: Weekday[];
  /** `HH:MM` local time; an `end` at or before `start` runs past midnight into the next day. */
  start: string;
  end: string;
}

export interface OneOffWindow {
  start: string;
  end: string;
  label?: string | undefined;
}

export interface PeakWindows {
  timeZone: string;
  weekly: WeeklyWindow[];
  oneOff: OneOffWindow[];
  /** Whether `campaign.started` opens a window that `campaign.completed` closes. */
  campaignEvents: boolean;
}

/** No delivery waits longer than this after its event was stored, whatever the windows say. */
export const MAX_DEFERRAL_MS = 24 * 3_600_000;
/**
 * Deferred deliveries go over this long after their window ends, each at its own moment, never as one burst. The
 * default of the `RELEASE_SPREAD_SECONDS` var (src/env.ts), which the soak and dev shorten.
 */
export const RELEASE_SPREAD_MS = 10 * 60_000;

/** The release spread in words for the answers that name it: "10 minutes", "30 seconds". */
export function spreadWords(spreadMs: number): string {
  const seconds = Math.round(spreadMs / 1000);
  if (seconds % 60 === 0) return `${seconds / 60} minute${seconds === 60 ? '' : 's'}`;
  return `${seconds} second${seconds === 1 ? '' : 's'}`;
}

/** Whether `tz` is an IANA time zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
const WEEK = 7 * 1440;

/** The minute of the week (Sunday 00:00 = 0) that `at` is in the time zone, and the milliseconds into that minute. */
function localMinuteOfWeek(at: Date, timeZone: string): { minute: number; intoMs: number } {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  const day = WEEKDAYS.indexOf(get('weekday').toLowerCase().slice(0, 3) as Weekday);
  return { minute: day * 1440 + Number(get('hour')) * 60 + Number(get('minute')), intoMs: at.getTime() % 60_000 };
}

/** The end of the weekly window `at` is in, or null. A window's wall-clock length is used as is across a DST change. */
function weeklyEnd(w: PeakWindows, at: Date): number | null {
  if (!w.weekly.length) return null;
  const { minute, intoMs } = localMinuteOfWeek(at, w.timeZone);
  let best: number | null = null;
  for (const win of w.weekly) {
    const start = minutesOf(win.start);
    let length = minutesOf(win.end) - start;
    if (length <= 0) length += 1440;
    for (const day of win.days) {
      const from = WEEKDAYS.indexOf(day) * 1440 + start;
      // The window may have begun last week (Saturday night into Sunday).
      for (const offset of [0, -WEEK]) {
        const s = from + offset;
        if (minute >= s && minute < s + length) {
          const end = at.getTime() - intoMs + (s + length - minute) * 60_000;
          best = Math.max(best ?? 0, end);
        }
      }
    }
  }
  return best;
}

/** The end of a window open at `at` (one checked at a time), or null. */
function endAt(w: PeakWindows | null, campaignUntil: string | null, at: Date): number | null {
  const t = at.getTime();
  const ends: number[] = [];
  if (campaignUntil && Date.parse(campaignUntil) > t) ends.push(Date.parse(campaignUntil));
  if (w) {
    for (const o of w.oneOff) if (Date.parse(o.start) <= t && t < Date.parse(o.end)) ends.push(Date.parse(o.end));
    const weekly = weeklyEnd(w, at);
    if (weekly !== null) ends.push(weekly);
  }
  return ends.length ? Math.max(...ends) : null;
}

/**
 * When the peak window open at `at` ends, following windows that run on from it (a one-off window that starts before
 * a weekly one ends), but never past `at` + MAX_DEFERRAL_MS. Null when no window is open at `at`.
 */
export function peakWindowEnd(w: PeakWindows | null, campaignUntil: string | null, at: Date): Date | null {
  let end = endAt(w, campaignUntil, at);
  if (end === null) return null;
  const bound = at.getTime() + MAX_DEFERRAL_MS;
  for (let i = 0; i < 20 && end < bound; i++) {
    const next = endAt(w, campaignUntil, new Date(end));
    if (next === null || next <= end) break;
    end = next;
  }
  return new Date(Math.min(end, bound));
}

/**
 * When one deferred delivery goes: the window's end plus its own share of the spread (`share` in [0, 1); `spreadMs`,
 * RELEASE_SPREAD_MS unless configured), so a window's backlog leaves over minutes; never past `storedAt` +
 * MAX_DEFERRAL_MS.
 */
export function releaseAt(windowEnd: Date, storedAt: Date, share: number, spreadMs = RELEASE_SPREAD_MS): string {
  const at = Math.min(windowEnd.getTime() + Math.floor(share * spreadMs), storedAt.getTime() + MAX_DEFERRAL_MS);
  return new Date(at).toISOString();
}
