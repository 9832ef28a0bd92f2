/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): `webhook-signature: v1,<base64 HMAC-SHA256>` over
 * `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the base64-decoded part of a `whsec_` secret. During a
 * secret rotation the header carries one signature per live secret, space-separated. Pure (Web Crypto only).
 */
import { fromBase64, randomBytes, timingSafeEqual, toBase64 } from '../lib/crypto.ts';

const SECRET_PREFIX = 'whsec_';
/** Secret length in bytes: Standard Webhooks allows 24–64; 32 matches HMAC-SHA256's block strength. */
const SECRET_BYTES = 32;
const encoder = new TextEncoder();

/** A new signing secret, e.g. `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw…`. */
export function newWebhookSecret(): string {
  return `${SECRET_PREFIX}${toBase64(randomBytes(SECRET_BYTES))}`;
}

const keyCache = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keyCache.get(secret);
  if (!key) {
    const raw = fromBase64(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret);
    key = crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    // Bounded: secrets are per subscription, and a consumer batch touches at most 100 of them.
    if (keyCache.size > 1000) keyCache.clear();
    keyCache.set(secret, key);
  }
  return key;
}

/** `v1,<signature>` for one secret. */
export async function signPayload(secret: string, msgId: string, timestamp: number, body: string): Promise<string> {
  const mac = await crypto.subtle.sign('HMAC', await hmacKey(secret), encoder.encode(`${msgId}.${timestamp}.${body}`));
  return `v1,${toBase64(new Uint8Array(mac))}`;
}

/** The `webhook-signature` header value: one signature per secret (current first), space-separated. */
export async function signatureHeader(
  secrets: readonly string[],
  msgId: string,
  timestamp: number,
  body: string,
): Promise<string> {
  const signatures = await Promise.all(secrets.map((s) => signPayload(s, msgId, timestamp, body)));
  return signatures.join(' ');
}

/**
 * Verifies a Standard Webhooks signature header (used for inbound provider webhooks such as Resend's): true when any
 * `v1` signature matches and the timestamp is within `toleranceSeconds` of now.
 */
export async function verifySignature(
  secret: string,
  headers: { id: string; timestamp: string; signature: string },
  body: string,
  nowSeconds: number = Math.floor(Date.now() / 1000),
  toleranceSeconds = 300,
): Promise<boolean> {
  const ts = Number(headers.timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowSeconds - ts) > toleranceSeconds) return false;
  const expected = await signPayload(secret, headers.id, ts, body);
  return headers.signature.split(' ').some((candidate) => timingSafeEqual(candidate, expected));
}
