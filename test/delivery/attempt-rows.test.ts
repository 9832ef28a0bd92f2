/**
 * A consumer batch writes its attempt rows in one statement whose rows travel as one JSON parameter
 * (src/delivery/store.ts `attemptsStatement`). D1 refuses a value over 2 MB, and a receiver decides what its answer's
 * snippet holds: 4 KB of control characters is 24 KB of JSON, so a batch of 100 such attempts must be split.
 */
import { describe, expect, it } from 'vitest';
import { ATTEMPTS_JSON_MAX_CHARS, type AttemptValues, attemptRuns } from '../../src/delivery/store.ts';

function row(i: number, snippet: string): AttemptValues {
  const now = '2026-12-06T00:00:00.000Z';
  return [`att_${i}`, `dlv_${i}`, 1, 'failed', 'http_5xx', 500, 12, 300, snippet, 'e'.repeat(500), now, 0];
}

describe('attempt rows in one statement', () => {
  it('a batch of ordinary attempts is one run', () => {
    const rows = Array.from({ length: 100 }, (_, i) => row(i, '{"ok":false}'));
    expect(attemptRuns(rows)).toEqual([rows]);
  });

  it('100 answers of 4 KB control characters are split into runs each within D1’s 2 MB a value, nothing lost', () => {
    const rows = Array.from({ length: 100 }, (_, i) => row(i, '\u0001'.repeat(4096)));
    expect(JSON.stringify(rows).length * 3).toBeGreaterThan(2_000_000);
    const runs = attemptRuns(rows);
    expect(runs.length).toBeGreaterThan(1);
    for (const run of runs) {
      expect(JSON.stringify(run).length).toBeLessThanOrEqual(ATTEMPTS_JSON_MAX_CHARS);
      // UTF-8 bytes, the unit of D1's limit.
      expect(new TextEncoder().encode(JSON.stringify(run)).byteLength).toBeLessThanOrEqual(2_000_000);
    }
    expect(runs.flat()).toEqual(rows);
  });
});
