/**
 * Retry schedule and outcome classification (docs/design.md#outcome-classes, #retry-schedule): Svix's schedule with
 * ±10 % jitter pinned through the injectable `random`, Retry-After clamping and parsing, and every outcome class row.
 */
import { env } from 'cloudflare:workers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AttemptObservation,
  type Classification,
  classify,
  type ErrorClass,
} from '../../src/delivery/classify.ts';
import {
  JITTER,
  MAX_ATTEMPTS,
  parseRetryAfter,
  RETRY_DELAYS_SECONDS,
  retryDelaySeconds,
} from '../../src/delivery/retry-policy.ts';
import { config } from '../../src/env.ts';

const PROPERTY = { seed: 42, numRuns: 500 } as const;

/** Seconds after failed attempt n (1-based), from docs/design.md#retry-schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. */
const SCHEDULE: ReadonlyArray<[attempt: number, seconds: number]> = [
  [1, 5],
  [2, 5 * 60],
  [3, 30 * 60],
  [4, 2 * 3600],
  [5, 5 * 3600],
  [6, 10 * 3600],
  [7, 10 * 3600],
];
const MIN_DELAY = 5;
const MAX_DELAY = 10 * 3600;
/** The largest value Math.random() can return. */
const MAX_RANDOM = 1 - 2 ** -53;

describe('retry schedule', () => {
  it('is Svix’s: 7 delays, 8 attempts, about 27.6 h in all', () => {
    expect([...RETRY_DELAYS_SECONDS]).toEqual(SCHEDULE.map(([, s]) => s));
    expect(MAX_ATTEMPTS).toBe(8);
    expect(JITTER).toBe(0.1);
    const total = SCHEDULE.reduce((sum, [, s]) => sum + s, 0);
    expect(total / 3600).toBeCloseTo(27.6, 1);
  });

  it('random() = 0.5 gives each step exactly', () => {
    for (const [attempt, seconds] of SCHEDULE) {
      expect(retryDelaySeconds(attempt, { random: () => 0.5 }), `attempt ${attempt}`).toBe(seconds);
    }
  });

  it('random() = 0 gives −10 %', () => {
    // 5 s − 10 % = 4.5 s, which whole seconds cannot express: 5 s is the only whole second within ±10 %.
    expect(retryDelaySeconds(1, { random: () => 0 })).toBe(5);
    for (const [attempt, seconds] of SCHEDULE.slice(1)) {
      expect(retryDelaySeconds(attempt, { random: () => 0 }), `attempt ${attempt}`).toBe(seconds * 0.9);
    }
  });

  it('random() = 1 gives +10 % (steps from 5 min up, where +10 % is a whole second)', () => {
    for (const [attempt, seconds] of SCHEDULE.slice(1)) {
      expect(retryDelaySeconds(attempt, { random: () => 1 }), `attempt ${attempt}`).toBe(Math.round(seconds * 1.1));
    }
  });

  it('the 5 s step stays within ±10 % for every value Math.random() can return, up to 1 − 2⁻⁵³', () => {
    // 5 × (0.9 + 0.2 × (1 − 2⁻⁵³)) rounds to 5.5 in floating point and Math.round makes it 6 s: +20 %.
    for (const r of [0, 0.25, 0.5, 0.75, 0.999999, MAX_RANDOM]) {
      const d = retryDelaySeconds(1, { random: () => r })!;
      expect(Math.abs(d - 5), `random() = ${r} gave ${d} s`).toBeLessThanOrEqual(0.5);
    }
  });

  it('the jitter is always within ±10 % of the step, a whole number of seconds (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const base = RETRY_DELAYS_SECONDS[attempt - 1]!;
          const d = retryDelaySeconds(attempt, { random: () => r })!;
          expect(Number.isInteger(d)).toBe(true);
          expect(Math.abs(d - base)).toBeLessThanOrEqual(base * JITTER + 1e-9);
        },
      ),
      PROPERTY,
    );
  });

  it('jitter is monotonic in random(): a larger draw never gives a shorter delay (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (attempt, a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          expect(retryDelaySeconds(attempt, { random: () => lo })!).toBeLessThanOrEqual(
            retryDelaySeconds(attempt, { random: () => hi })!,
          );
        },
      ),
      PROPERTY,
    );
  });

  it('uses Math.random by default and actually jitters', () => {
    const seen = new Set(Array.from({ length: 200 }, () => retryDelaySeconds(7)));
    expect(seen.size).toBeGreaterThan(10);
    for (const d of seen) {
      expect(d).toBeGreaterThanOrEqual(32_400);
      expect(d).toBeLessThanOrEqual(39_600);
    }
  });

  it('a replacement schedule (e.g. shortened for an end-to-end run) sets the delays and the number of attempts', () => {
    const schedule = [2, 40, 600];
    expect(retryDelaySeconds(1, { schedule, random: () => 0.5 })).toBe(2);
    expect(retryDelaySeconds(2, { schedule, random: () => 0.5 })).toBe(40);
    expect(retryDelaySeconds(3, { schedule, random: () => 0 })).toBe(540);
    expect(retryDelaySeconds(3, { schedule, random: () => 1 })).toBe(660);
    expect(retryDelaySeconds(4, { schedule, random: () => 0.5 })).toBeNull();
    // an empty one means the default
    expect(retryDelaySeconds(7, { schedule: [], random: () => 0.5 })).toBe(36_000);
    expect(retryDelaySeconds(8, { schedule: [], random: () => 0.5 })).toBeNull();
  });

  it('has no delay after the 8th attempt (the queue dead-letters the message)', () => {
    expect(retryDelaySeconds(7, { random: () => 0.5 })).toBe(36_000);
    for (const attempt of [8, 9, 100]) {
      expect(retryDelaySeconds(attempt, { random: () => 0.5 })).toBeNull();
      expect(retryDelaySeconds(attempt, { retryAfterSeconds: 60 })).toBeNull();
    }
  });
});

describe('RETRY_DELAYS_SECONDS: a custom schedule is checked against the queue', () => {
  const configured = (value: string) =>
    config({ ...env, RETRY_DELAYS_SECONDS: value } as Env).retryDelaysSeconds as readonly number[];

  it('RETRY_DELAYS_SECONDS: a delay over 43,200 s (Queues’ 12 h limit) is refused with a configuration error naming it', () => {
    expect(() => configured('5,43201')).toThrow(/RETRY_DELAYS_SECONDS.*entry 2 .*43201.*43,?200/);
    expect(configured('5,43200')).toEqual([5, 43200]);
  });

  it('RETRY_DELAYS_SECONDS: more delays than the queue has retries (max_retries = 7) are refused, not silently unused', () => {
    expect(() => configured('1,1,1,1,1,1,1,1')).toThrow(/RETRY_DELAYS_SECONDS.*8 delays.*at most 7/);
    expect(configured('1,1,1,1,1,1,1')).toHaveLength(7);
    // Fewer delays are fewer attempts: n delays, n + 1 attempts.
    expect(configured('1,1')).toEqual([1, 1]);
    expect(retryDelaySeconds(3, { schedule: [1, 1] })).toBeNull();
  });

  it('RETRY_DELAYS_SECONDS: an entry that is not a whole number of seconds ≥ 1 is refused, not dropped', () => {
    for (const bad of ['5,abc,10', '5,,10', '0', '-5', '1.5', '5;10']) {
      expect(() => configured(bad), bad).toThrow(/RETRY_DELAYS_SECONDS/);
    }
    expect(configured('')).toEqual([]);
    expect(configured(' 5 , 300 ')).toEqual([5, 300]);
  });

  it('the jitter never takes a delay past Queues’ 12 h limit', () => {
    for (const r of [0, 0.5, MAX_RANDOM]) {
      expect(retryDelaySeconds(1, { schedule: [43200], random: () => r })).toBeLessThanOrEqual(43200);
    }
    expect(retryDelaySeconds(1, { schedule: [43200], random: () => 0 })).toBe(38880);
  });
});

describe('Retry-After', () => {
  it('replaces the schedule, without jitter, clamped to [5 s, 10 h]', () => {
    const cases: Array<[retryAfter: number, expected: number]> = [
      [0, MIN_DELAY],
      [1, MIN_DELAY],
      [5, 5],
      [60, 60],
      [59.2, 60], // whole seconds, never sooner than asked
      [7200, 7200],
      [36_000, MAX_DELAY],
      [36_001, MAX_DELAY],
      [86_400 * 30, MAX_DELAY],
    ];
    for (const attempt of [1, 4, 7]) {
      for (const [retryAfter, expected] of cases) {
        expect(
          retryDelaySeconds(attempt, { retryAfterSeconds: retryAfter, random: () => 0 }),
          `attempt ${attempt}, ${retryAfter}`,
        ).toBe(expected);
      }
    }
  });

  it('falls back to the schedule when absent or not a number', () => {
    for (const retryAfterSeconds of [null, undefined, Number.NaN]) {
      expect(retryDelaySeconds(2, { retryAfterSeconds, random: () => 0.5 })).toBe(300);
    }
  });

  it('parseRetryAfter reads delta-seconds', () => {
    expect(parseRetryAfter('0')).toBe(0);
    expect(parseRetryAfter('120')).toBe(120);
    expect(parseRetryAfter('  30 ')).toBe(30);
    expect(parseRetryAfter('86400')).toBe(86_400);
  });

  it('parseRetryAfter reads HTTP dates as seconds from now, never negative', () => {
    const now = Date.UTC(2015, 9, 21, 7, 27, 0); // Wed, 21 Oct 2015 07:27:00 GMT
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', now)).toBe(60);
    expect(parseRetryAfter('Wed, 21 Oct 2015 09:27:00 GMT', now)).toBe(7200);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now - 500)).toBe(1); // rounds up
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:00:00 GMT', now)).toBe(0); // in the past
    // the obsolete forms RFC 9110 §5.6.7 still asks recipients to accept
    expect(parseRetryAfter('Wednesday, 21-Oct-15 07:28:00 GMT', now)).toBe(60);
    expect(parseRetryAfter('Wed Oct 21 07:28:00 2015', now)).toBe(60);
  });

  it('parseRetryAfter returns null for absent or unreadable values', () => {
    for (const v of [null, '', '   ', 'soon', 'later please', '10 minutes', '0x10', '1e3', '2.5s', 'Infinity', 'NaN']) {
      expect(parseRetryAfter(v), JSON.stringify(v)).toBeNull();
    }
  });

  it('parseRetryAfter returns null for values that are neither delta-seconds nor an HTTP date', () => {
    // RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds, delay-seconds = 1*DIGIT. V8's lenient Date.parse
    // reads each of these as a date in 2001 (e.g. '-5' → 1 May 2001), so they come back as 0 s ("retry now").
    const values = ['-5', '+5', '1.5', '5 6', 'abc 1', 'Sunday 7'];
    const parsed = Object.fromEntries(values.map((v) => [v, parseRetryAfter(v, Date.UTC(2026, 0, 1))]));
    expect(parsed).toEqual(Object.fromEntries(values.map((v) => [v, null])));
  });

  it('a parsed Retry-After feeds retryDelaySeconds end to end', () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    expect(retryDelaySeconds(3, { retryAfterSeconds: parseRetryAfter('120', now) })).toBe(120);
    expect(retryDelaySeconds(3, { retryAfterSeconds: parseRetryAfter('Thu, 01 Jan 2026 13:00:00 GMT', now) })).toBe(
      3600,
    );
    expect(retryDelaySeconds(3, { retryAfterSeconds: parseRetryAfter('0', now) })).toBe(MIN_DELAY);
    expect(retryDelaySeconds(3, { retryAfterSeconds: parseRetryAfter('999999', now) })).toBe(MAX_DELAY);
    expect(retryDelaySeconds(3, { retryAfterSeconds: parseRetryAfter('soon', now), random: () => 0.5 })).toBe(1800);
  });
});

describe('classify: every outcome class of docs/design.md#outcome-classes', () => {
  const response = (status: number, retryAfterSeconds: number | null = null): AttemptObservation => ({
    kind: 'response',
    status,
    retryAfterSeconds,
  });
  const failed = (
    errorClass: ErrorClass,
    retryable: boolean,
    retryAfterSeconds: number | null = null,
    disableSubscription = false,
  ): Classification => ({
    outcome: 'failed',
    errorClass,
    retryable,
    retryAfterSeconds,
    disableSubscription,
  });

  it('2xx → succeeded', () => {
    for (const s of [200, 201, 202, 204, 206, 299])
      expect(classify(response(s)), String(s)).toEqual({ outcome: 'succeeded' });
  });

  it('an email provider that took the message → succeeded', () => {
    expect(classify({ kind: 'accepted' })).toEqual({ outcome: 'succeeded' });
  });

  it('410 → not retryable, and the subscription is disabled at once', () => {
    expect(classify(response(410))).toEqual(failed('http_4xx', false, null, true));
    expect(classify(response(410, 60))).toEqual(failed('http_4xx', false, null, true));
  });

  it('429 and 503 with Retry-After → retryable after that delay', () => {
    expect(classify(response(429, 30))).toEqual(failed('http_4xx', true, 30));
    expect(classify(response(503, 7200))).toEqual(failed('http_5xx', true, 7200));
  });

  it('429 and 503 without Retry-After → retryable on the schedule', () => {
    expect(classify(response(429))).toEqual(failed('http_4xx', true));
    expect(classify(response(503))).toEqual(failed('http_5xx', true));
  });

  it('Retry-After is honoured only on 429 and 503', () => {
    for (const s of [301, 400, 404, 500, 502, 504]) {
      const c = classify(response(s, 120));
      expect(c.outcome === 'failed' && c.retryAfterSeconds, String(s)).toBeNull();
    }
  });

  it('3xx → http_3xx, retried (redirects are not followed)', () => {
    for (const s of [300, 301, 302, 303, 304, 307, 308])
      expect(classify(response(s)), String(s)).toEqual(failed('http_3xx', true));
  });

  it('other 4xx → http_4xx, retried', () => {
    for (const s of [400, 401, 403, 404, 405, 408, 409, 415, 422, 451, 499]) {
      expect(classify(response(s)), String(s)).toEqual(failed('http_4xx', true));
    }
  });

  it('5xx → http_5xx, retried', () => {
    for (const s of [500, 501, 502, 504, 507, 599])
      expect(classify(response(s)), String(s)).toEqual(failed('http_5xx', true));
  });

  it('413 → payload_too_large; a payload refused before sending too, and that one is final', () => {
    const c = classify(response(413));
    expect(c).toMatchObject({
      outcome: 'failed',
      errorClass: 'payload_too_large',
      retryAfterSeconds: null,
      disableSubscription: false,
    });
    expect(classify({ kind: 'too_large' })).toEqual(failed('payload_too_large', false));
  });

  it('timeout, network and TLS errors → their class, retried', () => {
    expect(classify({ kind: 'timeout' })).toEqual(failed('timeout', true));
    expect(classify({ kind: 'network', message: 'ECONNREFUSED' })).toEqual(failed('network', true));
    expect(classify({ kind: 'tls', message: 'certificate has expired' })).toEqual(failed('tls', true));
  });

  it('blocked destination → blocked_destination, not retried, subscription left alone', () => {
    expect(classify({ kind: 'blocked', message: 'ip_literal_not_allowed' })).toEqual(
      failed('blocked_destination', false),
    );
  });

  it('email provider errors → provider_permanent (final) or provider_transient (retried)', () => {
    expect(classify({ kind: 'provider', permanent: true, message: 'address suppressed' })).toEqual(
      failed('provider_permanent', false),
    );
    expect(classify({ kind: 'provider', permanent: false, message: 'throttled' })).toEqual(
      failed('provider_transient', true),
    );
  });

  it('over every HTTP status: succeeded iff 2xx, disabled iff 410, Retry-After kept iff 429/503 (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 200, max: 599 }), fc.option(fc.integer({ min: 0, max: 100_000 })), (status, ra) => {
        const c = classify(response(status, ra));
        if (status < 300) {
          expect(c).toEqual({ outcome: 'succeeded' });
          return;
        }
        if (c.outcome !== 'failed') throw new Error(`${status} succeeded`);
        expect(c.disableSubscription).toBe(status === 410);
        expect(c.retryAfterSeconds).toBe(status === 429 || status === 503 ? ra : null);
        expect(c.errorClass).toBe(
          status === 413 ? 'payload_too_large' : status < 400 ? 'http_3xx' : status < 500 ? 'http_4xx' : 'http_5xx',
        );
        if (status !== 410 && status !== 413) expect(c.retryable).toBe(true);
      }),
      PROPERTY,
    );
  });
});
