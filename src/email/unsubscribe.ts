/**
 * One-click unsubscribe links (RFC 8058, docs/design.md#email): every mail to a subscription carries a URL with an
 * opaque token. The token is `<subscription id>.<HMAC-SHA256 tag>`, keyed from ENCRYPTION_KEY: nothing to store,
 * impossible to forge or to point at another subscription, and valid for as long as the subscription exists.
 */
import { fromBase64, timingSafeEqual, toBase64Url } from '../lib/crypto.ts';

const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(encryptionKey: string): Promise<CryptoKey> {
  let key = keys.get(encryptionKey);
  if (!key) {
    key = crypto.subtle.importKey('raw', fromBase64(encryptionKey), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    keys.set(encryptionKey, key);
  }
  return key;
}

async function tag(encryptionKey: string, purpose: string, subscriptionId: string): Promise<string> {
  const mac = await crypto.subtle.sign(
    'HMAC',
    await hmacKey(encryptionKey),
    new TextEncoder().encode(`${purpose}:${subscriptionId}`),
  );
  return toBase64Url(new Uint8Array(mac));
}

/** The opaque token for one subscription's unsubscribe link. */
export async function unsubscribeToken(encryptionKey: string, subscriptionId: string): Promise<string> {
  return `${subscriptionId}.${await tag(encryptionKey, 'unsubscribe', subscriptionId)}`;
}

/** The subscription id a token stands for, or null when it was not made by this service (or was altered). */
export async function verifyUnsubscribeToken(encryptionKey: string, token: string): Promise<string | null> {
  const dot = token.indexOf('.');
  if (dot < 1 || token.length > 200) return null;
  const id = token.slice(0, dot);
  return timingSafeEqual(token.slice(dot + 1), await tag(encryptionKey, 'unsubscribe', id)) ? id : null;
}

/** The https URL a mail's List-Unsubscribe header and footer link point at. */
export function unsubscribeUrl(publicBaseUrl: string, token: string): string {
  return `${publicBaseUrl}/v2/email/unsubscribe?token=${encodeURIComponent(token)}`;
}
