/** Peak campaign windows as pure time arithmetic (docs/design.md#peak-campaign-windows). */
import { describe, expect, it } from 'vitest';
import { MAX_DEFERRAL_MS, type PeakWindows, peakWindowEnd, releaseAt } from '../../src/lib/peak-windows.ts';

const kolkata = (weekly: PeakWindows['weekly'], oneOff: PeakWindows['oneOff'] = []): PeakWindows => ({
  timeZone: 'Asia/Kolkata',
  weekly,
  oneOff,
  campaignEvents: false,
});

describe('peakWindowEnd', () => {
  it('a weekly window in an IANA time zone: Friday 18:00–22:00 in Kolkata (UTC+5:30)', () => {
    const w = kolkata([{ days: ['fri'], start: '18:00', end: '22:00' }]);
    // 2026-12-04 is a Friday: 13:00Z is 18:30 in Kolkata, inside; the window ends at 22:00 = 16:30Z.
    expect(peakWindowEnd(w, null, new Date('2026-12-04T13:00:00Z'))?.toISOString()).toBe('2026-12-04T16:30:00.000Z');
    expect(peakWindowEnd(w, null, new Date('2026-12-04T12:29:00Z'))).toBeNull(); // 17:59 local
    expect(peakWindowEnd(w, null, new Date('2026-12-04T16:30:00Z'))).toBeNull(); // 22:00 local: ended
    expect(peakWindowEnd(w, null, new Date('2026-12-05T13:00:00Z'))).toBeNull(); // a Saturday
  });

  it('a window past midnight, from Saturday into Sunday (across the week’s end)', () => {
    const w = kolkata([{ days: ['sat'], start: '22:00', end: '02:00' }]);
    // Sunday 2026-12-06 01:00 local = Saturday 19:30Z.
    expect(peakWindowEnd(w, null, new Date('2026-12-05T19:30:00Z'))?.toISOString()).toBe('2026-12-05T20:30:00.000Z');
  });

  it('one-off windows, a campaign window, and windows that run on from each other; never past 24 h', () => {
    const at = new Date('2026-12-04T10:00:00Z');
    const w = kolkata(
      [],
      [
        { start: '2026-12-04T09:00:00Z', end: '2026-12-04T11:00:00Z' },
        { start: '2026-12-04T10:30:00Z', end: '2026-12-04T12:00:00Z' },
      ],
    );
    expect(peakWindowEnd(w, null, at)?.toISOString()).toBe('2026-12-04T12:00:00.000Z');
    expect(peakWindowEnd(null, '2026-12-04T15:00:00.000Z', at)?.toISOString()).toBe('2026-12-04T15:00:00.000Z');
    expect(peakWindowEnd(null, '2026-12-04T09:00:00.000Z', at)).toBeNull();
    const long = kolkata([], [{ start: '2026-12-04T09:00:00Z', end: '2026-12-09T00:00:00Z' }]);
    expect(peakWindowEnd(long, null, at)?.getTime()).toBe(at.getTime() + MAX_DEFERRAL_MS);
  });

  it('releaseAt spreads over ten minutes after the end and keeps the bound', () => {
    const end = new Date('2026-12-04T12:00:00Z');
    const stored = new Date('2026-12-04T10:00:00Z');
    expect(releaseAt(end, stored, 0)).toBe('2026-12-04T12:00:00.000Z');
    expect(releaseAt(end, stored, 0.5)).toBe('2026-12-04T12:05:00.000Z');
    expect(releaseAt(new Date(stored.getTime() + MAX_DEFERRAL_MS), stored, 0.9)).toBe('2026-12-05T10:00:00.000Z');
  });
});
