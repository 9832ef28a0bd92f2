/**
 * Amazon SNS message signatures, verified as AWS documents them
 * (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html):
 *
 * - the string to sign is `Key\nValue\n` for, in this order, `Message`, `MessageId`, `Subject` (only when present),
 *   `Timestamp`, `TopicArn`, `Type` of a Notification, and `Message`, `MessageId`, `SubscribeURL`, `Timestamp`,
 *   `Token`, `TopicArn`, `Type` of a SubscriptionConfirmation / UnsubscribeConfirmation;
 * - `SignatureVersion` "1" is SHA1withRSA, "2" SHA256withRSA (RSASSA-PKCS1-v1_5), the signature base64;
 * - the public key is in the X.509 certificate at `SigningCertURL`, which must be https, on an allowed host
 *   (SNS_CERT_HOSTS patterns, `*` = one DNS label) and end in `.pem`. It is fetched only after those checks, and
 *   cached per isolate by URL.
 *
 * The certificate is parsed only as far as its SubjectPublicKeyInfo (a small DER walker), which WebCrypto imports.
 */
import { fromBase64 } from '../lib/crypto.ts';
import { DNS_LABEL } from '../lib/handles.ts';

/** The fields of an SNS HTTP(S) message this module reads (SNS sends strings only). */
export interface SnsMessage {
  Type?: string;
  MessageId?: string;
  Token?: string;
  TopicArn?: string;
  Subject?: string;
  Message?: string;
  SubscribeURL?: string;
  UnsubscribeURL?: string;
  Timestamp?: string;
  SignatureVersion?: string;
  Signature?: string;
  SigningCertURL?: string;
}

const NOTIFICATION_KEYS = ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'] as const;
const CONFIRMATION_KEYS = ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'] as const;

/** The string SNS signed, or null when the message type is unknown or a required field is missing. */
export function canonicalString(msg: SnsMessage): string | null {
  let keys: readonly (keyof SnsMessage)[];
  if (msg.Type === 'Notification') keys = NOTIFICATION_KEYS;
  else if (msg.Type === 'SubscriptionConfirmation' || msg.Type === 'UnsubscribeConfirmation') keys = CONFIRMATION_KEYS;
  else return null;
  let out = '';
  for (const key of keys) {
    const value = msg[key];
    if (value === undefined || value === null) {
      if (key === 'Subject') continue; // Only Subject is optional.
      return null;
    }
    if (typeof value !== 'string') return null;
    out += `${key}\n${value}\n`;
  }
  return out;
}

/** `host` matches `pattern` label by label; `*` stands for exactly one DNS label. */
export function hostMatches(host: string, pattern: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '').split('.');
  const p = pattern.toLowerCase().replace(/\.$/, '').split('.');
  if (h.length !== p.length) return false;
  return p.every((label, i) => (label === '*' ? DNS_LABEL.test(h[i]!) : label === h[i]));
}

function isLoopbackLiteral(host: string): boolean {
  if (host === '[::1]') return true;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return m !== null && m[1] === '127' && m.slice(1).every((o) => Number(o) <= 255);
}

export interface SnsUrlPolicy {
  /** Host patterns (config().aws.certHosts). */
  hosts: string[];
  /** ALLOW_INSECURE_WEBHOOK_TARGETS: plain http is then accepted, for loopback hosts only (tests, local dev). */
  allowInsecure: boolean;
}

/**
 * Checks a URL SNS gave us (SigningCertURL, SubscribeURL) before anything is fetched: https on the default port (or
 * http to loopback when insecure targets are allowed), no userinfo, host on the allow-list. Returns why not, or null.
 */
export function urlProblem(raw: string | undefined, policy: SnsUrlPolicy, opts: { pem?: boolean } = {}): string | null {
  if (!raw) return 'missing';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL';
  }
  const loopbackHttp = url.protocol === 'http:' && policy.allowInsecure && isLoopbackLiteral(url.hostname);
  if (url.protocol !== 'https:' && !loopbackHttp) return 'not https';
  if (url.protocol === 'https:' && url.port !== '') return 'not on the default https port';
  if (url.username || url.password) return 'carries credentials';
  if (!policy.hosts.some((pattern) => hostMatches(url.hostname, pattern))) return `host ${url.hostname} is not allowed`;
  if (opts.pem && !url.pathname.endsWith('.pem')) return 'not a .pem file';
  return null;
}

// ---------------------------------------------------------------------------------------------------------------------
// X.509 → SubjectPublicKeyInfo
// ---------------------------------------------------------------------------------------------------------------------

interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the content. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
}

function readTlv(der: Uint8Array, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new Error('DER: truncated');
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('DER: multi-byte tags are not used in certificates');
  let len = der[offset + 1]!;
  let pos = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER: unsupported length');
    if (pos + n > limit) throw new Error('DER: truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[pos + i]!;
    pos += n;
  }
  if (pos + len > limit) throw new Error('DER: content runs past its container');
  return { tag, start: offset, contentStart: pos, end: pos + len };
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const VERSION_TAG = 0xa0; // [0] EXPLICIT

/** The DER SubjectPublicKeyInfo of an X.509 certificate (DER). Throws on anything that is not a certificate. */
export function subjectPublicKeyInfo(der: Uint8Array): Uint8Array {
  const cert = readTlv(der, 0, der.length);
  if (cert.tag !== SEQUENCE) throw new Error('DER: Certificate is not a SEQUENCE');
  const tbs = readTlv(der, cert.contentStart, cert.end);
  if (tbs.tag !== SEQUENCE) throw new Error('DER: tbsCertificate is not a SEQUENCE');
  let pos = tbs.contentStart;
  const next = (expectTag: number, what: string) => {
    const t = readTlv(der, pos, tbs.end);
    if (t.tag !== expectTag) throw new Error(`DER: ${what} has tag 0x${t.tag.toString(16)}`);
    pos = t.end;
    return t;
  };
  if (readTlv(der, pos, tbs.end).tag === VERSION_TAG) next(VERSION_TAG, 'version');
  next(INTEGER, 'serialNumber');
  next(SEQUENCE, 'signature');
  next(SEQUENCE, 'issuer');
  next(SEQUENCE, 'validity');
  next(SEQUENCE, 'subject');
  const spki = next(SEQUENCE, 'subjectPublicKeyInfo');
  return der.slice(spki.start, spki.end);
}

// ---------------------------------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------------------------------

const HASH_BY_VERSION: Record<string, 'SHA-1' | 'SHA-256'> = { '1': 'SHA-1', '2': 'SHA-256' };
const MAX_CERT_BYTES = 64 * 1024;
const CERT_FETCH_TIMEOUT_MS = 5000;
const MAX_CACHED_CERTS = 32;

/** Per isolate: SigningCertURL → its SubjectPublicKeyInfo. A failed fetch is not cached. */
const spkiCache = new Map<string, Promise<Uint8Array>>();

/** The certificate could not be obtained (network, HTTP status): SNS should retry later, not a signature failure. */
class CertFetchError extends Error {
  override name = 'CertFetchError';
}

async function loadSpki(url: string, fetcher: typeof fetch): Promise<Uint8Array> {
  const cached = spkiCache.get(url);
  if (cached) return cached;
  const pending = (async () => {
    let res: Response;
    try {
      res = await fetcher(url, { signal: AbortSignal.timeout(CERT_FETCH_TIMEOUT_MS), redirect: 'manual' });
    } catch (err) {
      throw new CertFetchError(
        `fetching the signing certificate failed (${err instanceof Error ? err.name : 'error'})`,
      );
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new CertFetchError(`the signing certificate URL answered ${res.status}`);
    }
    const text = await res.text();
    if (text.length > MAX_CERT_BYTES) throw new Error('the signing certificate is too large');
    // The first CERTIFICATE block of the PEM file, as DER.
    const pem = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(text);
    if (!pem) throw new Error('PEM: no CERTIFICATE block');
    return subjectPublicKeyInfo(fromBase64(pem[1]!.replace(/\s+/g, '')));
  })();
  if (spkiCache.size >= MAX_CACHED_CERTS) spkiCache.delete(spkiCache.keys().next().value!);
  spkiCache.set(url, pending);
  pending.catch(() => spkiCache.delete(url));
  return pending;
}

export type SnsVerification = { ok: true } | { ok: false; reason: string; retryable?: boolean };

/**
 * Verifies `msg`'s signature. The cert URL is checked against `policy` before it is fetched. Does not look at the
 * Timestamp or TopicArn (the caller's policy).
 */
export async function verifySnsMessage(
  msg: SnsMessage,
  policy: SnsUrlPolicy,
  fetcher: typeof fetch = fetch,
): Promise<SnsVerification> {
  const hash = HASH_BY_VERSION[msg.SignatureVersion ?? ''];
  if (!hash)
    return {
      ok: false,
      reason: `SignatureVersion ${JSON.stringify(msg.SignatureVersion ?? null)} is not supported (1 or 2)`,
    };
  if (!msg.Signature) return { ok: false, reason: 'the message has no Signature' };
  const canonical = canonicalString(msg);
  if (canonical === null) return { ok: false, reason: 'the message lacks fields its signature covers' };
  const certProblem = urlProblem(msg.SigningCertURL, policy, { pem: true });
  if (certProblem) return { ok: false, reason: `SigningCertURL refused: ${certProblem}` };

  let signature: Uint8Array;
  try {
    signature = fromBase64(msg.Signature);
  } catch {
    return { ok: false, reason: 'the Signature is not base64' };
  }
  let spki: Uint8Array;
  try {
    spki = await loadSpki(msg.SigningCertURL!, fetcher);
  } catch (err) {
    if (err instanceof CertFetchError) return { ok: false, reason: err.message, retryable: true };
    return {
      ok: false,
      reason: `the signing certificate is not usable (${err instanceof Error ? err.message : 'error'})`,
    };
  }
  try {
    const key = await crypto.subtle.importKey('spki', spki, { name: 'RSASSA-PKCS1-v1_5', hash }, false, ['verify']);
    const valid = await crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, signature, new TextEncoder().encode(canonical));
    return valid ? { ok: true } : { ok: false, reason: 'the signature does not match the message' };
  } catch (err) {
    return {
      ok: false,
      reason: `the signing certificate's key is not an RSA key (${err instanceof Error ? err.name : 'error'})`,
    };
  }
}
