/**
 * Small crypto helpers over Web Crypto: SHA-256 for tokens at rest, AES-GCM for webhook secrets at rest,
 * random tokens, and constant-time comparison. No bindings, no framework: usable from routes, queues and scripts.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Lower-case hex SHA-256 of a UTF-8 string. */
export async function sha256Hex(input: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', encoder.encode(input));
  return toHex(new Uint8Array(digest));
}

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function fromBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Decodes base64url, with or without padding. */
export function fromBase64Url(value: string): Uint8Array {
  const b64 = value.replace(/-/g, '+').replace(/_/g, '/');
  return fromBase64(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
}

/** base64url without padding, for tokens that travel in URLs. */
export function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** Compares two strings without an early exit, so timing does not reveal the common prefix. */
export function timingSafeEqual(a: string, b: string): boolean {
  const ab = encoder.encode(a);
  const bb = encoder.encode(b);
  let diff = ab.length ^ bb.length;
  const len = Math.max(ab.length, bb.length);
  for (let i = 0; i < len; i++) diff |= (ab[i] ?? 0) ^ (bb[i] ?? 0);
  return diff === 0;
}

const keyCache = new Map<string, Promise<CryptoKey>>();

/**
 * Imports the AES-256-GCM key from the `ENCRYPTION_KEY` secret (base64 of 32 bytes). Cached per isolate: importing
 * costs a few hundred microseconds and the key never changes within a deployment.
 */
export function importEncryptionKey(base64Key: string): Promise<CryptoKey> {
  let key = keyCache.get(base64Key);
  if (!key) {
    const raw = fromBase64(base64Key);
    if (raw.length !== 32) throw new Error('ENCRYPTION_KEY must be the base64 encoding of exactly 32 bytes');
    key = crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
    keyCache.set(base64Key, key);
  }
  return key;
}

/** Encrypts a secret as `v1.<iv b64>.<ciphertext b64>`; the version prefix leaves room for key rotation. */
export async function encryptSecret(plaintext: string, key: CryptoKey): Promise<string> {
  const iv = randomBytes(12);
  const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, encoder.encode(plaintext));
  return `v1.${toBase64(iv)}.${toBase64(new Uint8Array(ct))}`;
}

/** Inverse of {@link encryptSecret}; throws if the value was tampered with or made with another key. */
export async function decryptSecret(sealed: string, key: CryptoKey): Promise<string> {
  const [version, ivB64, ctB64] = sealed.split('.');
  if (version !== 'v1' || !ivB64 || !ctB64) throw new Error('unknown secret encoding');
  const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64(ivB64) }, key, fromBase64(ctB64));
  return decoder.decode(pt);
}
