/**
 * One-click unsubscribe links (RFC 8058, docs/design.md#email): every mail to a subscription carries a URL with an
 * opaque token, `<subscription id>.<HMAC-SHA256 tag>` keyed from ENCRYPTION_KEY. The tag covers the subscription id
 * AND the address the mail went to: nothing to store, impossible to forge or to point at another subscription, and
 * valid while that subscription still has that address. The owner default email keeps its row when the owner changes
 * the address, so a link from a mail to the old address must not act on (nor show) the new one.
 */
import { fromBase64, timingSafeEqual, toBase64Url } from '../lib/crypto.ts';

/** The longest token accepted: an id, a dot and a base64url SHA-256 tag fit with room to spare. */
const MAX_TOKEN_LENGTH = 200;

const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(encryptionKey: string): Promise<CryptoKey> {
  let key = keys.get(encryptionKey);
  if (!key) {
    key = crypto.subtle.importKey('raw', fromBase64(encryptionKey), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    keys.set(encryptionKey, key);
  }
  return key;
}

async function tag(encryptionKey: string, message: string): Promise<string> {
  const mac = await crypto.subtle.sign('HMAC', await hmacKey(encryptionKey), new TextEncoder().encode(message));
  return toBase64Url(new Uint8Array(mac));
}

/** What a token's tag covers: the subscription and the address (compared lower-cased, as stored normalized). */
const boundMessage = (subscriptionId: string, email: string) =>
  `unsubscribe-address:${subscriptionId}:${email.trim().toLowerCase()}`;

/** The opaque token for the unsubscribe link of a mail to `email` through subscription `subscriptionId`. */
export async function unsubscribeToken(encryptionKey: string, subscriptionId: string, email: string): Promise<string> {
  return `${subscriptionId}.${await tag(encryptionKey, boundMessage(subscriptionId, email))}`;
}

/** The subscription id a token names, not yet verified: the row to load before {@link verifyUnsubscribeToken}. */
export function unsubscribeTokenId(token: string): string | null {
  const dot = token.indexOf('.');
  return dot < 1 || token.length > MAX_TOKEN_LENGTH ? null : token.slice(0, dot);
}

/** The subscription row a token is checked against. */
export interface UnsubscribeTarget {
  id: string;
  kind: 'standard' | 'owner_default';
  emailNormalized: string;
}

/**
 * Whether `token` was made by this service for this subscription with its current address. `row` null (no such
 * subscription) is checked all the same, so an unknown id and a stale address take the same time and answer.
 *
 * Links mailed before tokens named the address (the tag over the id alone) keep working for a standard subscription,
 * whose address never changes; for the owner default email they cannot say which address they went to, so they are
 * refused.
 */
export async function verifyUnsubscribeToken(
  encryptionKey: string,
  token: string,
  row: UnsubscribeTarget | null,
): Promise<boolean> {
  const id = unsubscribeTokenId(token);
  if (!id) return false;
  const given = token.slice(id.length + 1);
  const bound = timingSafeEqual(given, await tag(encryptionKey, boundMessage(id, row?.emailNormalized ?? '')));
  if (!row || row.id !== id) return false;
  if (bound) return true;
  return row.kind === 'standard' && timingSafeEqual(given, await tag(encryptionKey, `unsubscribe:${id}`));
}

/** The https URL a mail's List-Unsubscribe header and footer link point at. */
export function unsubscribeUrl(publicBaseUrl: string, token: string): string {
  return `${publicBaseUrl}/v2/email/unsubscribe?token=${encodeURIComponent(token)}`;
}
