/**
 * Personal access tokens: `grt_` + 30 random base62 characters + a 6-character base62 CRC-32 checksum.
 *
 * The checksum lets the API reject a mistyped or truncated token before any database read, and lets secret scanners
 * recognise a real token. Only the SHA-256 of the whole token is stored. This module is pure (Web Crypto only) so the
 * dev seed script can mint the demo token with the same code.
 */
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const PAT_PREFIX = 'grt_';
const BODY_LEN = 30;
const CHECKSUM_LEN = 6;
const PAT_PATTERN = new RegExp(`^${PAT_PREFIX}[0-9A-Za-z]{${BODY_LEN + CHECKSUM_LEN}}$`);

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(text: string): number {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) crc = CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function checksum(body: string): string {
  let n = crc32(body);
  let out = '';
  for (let i = 0; i < CHECKSUM_LEN; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** Mints a PAT from random bytes (or from the given bytes, for a deterministic dev token). */
export function mintPat(seed: Uint8Array = crypto.getRandomValues(new Uint8Array(BODY_LEN))): string {
  if (seed.length < BODY_LEN) throw new Error(`PAT seed needs ${BODY_LEN} bytes`);
  let body = '';
  // 62 does not divide 256: the bias (< 2 %) costs a fraction of a bit on 178 bits of entropy.
  for (let i = 0; i < BODY_LEN; i++) body += BASE62[seed[i]! % 62];
  return `${PAT_PREFIX}${body}${checksum(body)}`;
}

/** True when the string looks like a PAT at all (prefix), whether or not it is well-formed. */
export function isPatLike(token: string): boolean {
  return token.startsWith(PAT_PREFIX);
}

/** True when the token has the PAT shape and its checksum matches: cheap, no I/O. */
export function hasValidChecksum(token: string): boolean {
  if (!PAT_PATTERN.test(token)) return false;
  const body = token.slice(PAT_PREFIX.length, PAT_PREFIX.length + BODY_LEN);
  return token.slice(PAT_PREFIX.length + BODY_LEN) === checksum(body);
}

/** What a list shows of a token: enough to recognise it, not enough to use it. */
export function patDisplayPrefix(token: string): string {
  return token.slice(0, PAT_PREFIX.length + 6);
}
