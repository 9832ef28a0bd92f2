/**
 * Prefixed, time-ordered ids: `<prefix>_` + 10 chars of milliseconds + 16 chars of randomness, Crockford base32
 * (the ULID layout). Sorting ids sorts by creation time, so a keyset on (handle, id) pages in creation order, and a
 * time bound (`since`/`until`) becomes an id bound on the same index.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const TIME_LEN = 10;
const RANDOM_LEN = 16;
/** Characters of a parent's body a derived id repeats: its time and the first 12 of its randomness. */
const SHARED_LEN = TIME_LEN + 12;
/** Characters a derived id adds after the parent's: its ordinal among the parent's children, base32. */
const ORDINAL_LEN = RANDOM_LEN - (SHARED_LEN - TIME_LEN);

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

/**
 * Increments the random part so ids minted in the same millisecond by this isolate still sort in order. It counts in
 * the last character a derived id repeats (not the last one), so two such ids never share the part their children's
 * ids are made of ({@link derivedId}).
 */
function increment(digits: number[]): number[] {
  const next = digits.slice();
  for (let i = SHARED_LEN - TIME_LEN - 1; i >= 0; i--) {
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
 * A child's id made from its parent's (docs/design.md#delivery-ids): `<prefix>_` + the first 22 characters of the
 * parent id's body (its time and 12 characters of randomness) + the child's ordinal in 4. A parent's children are
 * then one range of ids, and a table keyed by them finds them without an index of their parent.
 * Ids keep their length, pattern and time order. `ordinal` counts from 0 and stays below 32⁴ (1,048,576).
 */
export function derivedId(prefix: IdPrefix, parentId: string, ordinal: number): string {
  if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= 32 ** ORDINAL_LEN) {
    throw new RangeError(`ordinal ${ordinal} is outside 0..${32 ** ORDINAL_LEN - 1}`);
  }
  const body = parentId.slice(parentId.indexOf('_') + 1, parentId.indexOf('_') + 1 + SHARED_LEN);
  let tail = '';
  for (let i = 0, n = ordinal; i < ORDINAL_LEN; i++, n = Math.floor(n / 32)) tail = ALPHABET[n % 32] + tail;
  return `${prefix}_${body}${tail}`;
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
