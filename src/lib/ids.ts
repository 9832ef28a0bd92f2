/**
 * Prefixed, time-ordered ids: `<prefix>_` + 10 chars of milliseconds + 16 chars of randomness, Crockford base32
 * (the ULID layout). Sorting ids sorts by creation time, so a keyset on (handle, id) pages in creation order, and a
 * time bound (`since`/`until`) becomes an id bound on the same index.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const TIME_LEN = 10;
const RANDOM_LEN = 16;

export type IdPrefix = 'whk' | 'esub' | 'ntf' | 'dlv' | 'att' | 'tok' | 'rpt' | 'req' | 'rej' | 'mail' | 'arc' | 'rpl';

let lastTime = -1;
let lastRandom: number[] = [];

function encodeTime(ms: number): string {
  let out = '';
  for (let i = 0; i < TIME_LEN; i++) {
    out = ALPHABET[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

function randomDigits(): number[] {
  const bytes = crypto.getRandomValues(new Uint8Array(RANDOM_LEN));
  return Array.from(bytes, (b) => b % 32);
}

/** Increments the random part so ids minted in the same millisecond by this isolate still sort in order. */
function increment(digits: number[]): number[] {
  const next = digits.slice();
  for (let i = next.length - 1; i >= 0; i--) {
    if (next[i]! < 31) {
      next[i]!++;
      return next;
    }
    next[i] = 0;
  }
  return randomDigits();
}

/** A new id with the given prefix, e.g. `whk_01JD…`. */
export function newId(prefix: IdPrefix, now: number = Date.now()): string {
  if (now === lastTime) {
    lastRandom = increment(lastRandom);
  } else {
    lastTime = now;
    lastRandom = randomDigits();
  }
  return `${prefix}_${encodeTime(now)}${lastRandom.map((d) => ALPHABET[d]).join('')}`;
}

/**
 * The smallest id that could have been minted at `ms` (inclusive lower bound) — lets a time filter run on the id index.
 * `boundaryId('ntf', t)` ≤ every `ntf_` id minted at or after t, and > every id minted before t.
 */
export function boundaryId(prefix: IdPrefix, ms: number): string {
  return `${prefix}_${encodeTime(Math.max(0, Math.floor(ms)))}${'0'.repeat(RANDOM_LEN)}`;
}

/** Pattern of an id with this prefix, for validating path parameters before any database read. */
export function idPattern(prefix: IdPrefix): RegExp {
  return new RegExp(`^${prefix}_[0-9A-HJKMNP-TV-Z]{${TIME_LEN + RANDOM_LEN}}$`);
}
