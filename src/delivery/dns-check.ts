/**
 * Send-time resolution check (docs/design.md#url-rules-ssrf): before a webhook request leaves, its host name is
 * resolved over DNS over HTTPS (the JSON API Cloudflare's and Google's resolvers speak, `application/dns-json`) and the
 * send is refused when any A/AAAA answer is a non-public address ({@link isPrivateAddress}). This catches a public name
 * that was pointed at 10.0.0.1 or 169.254.169.254 after registration, which the URL rules cannot see.
 *
 * Why DoH: Workers have no resolver API, and fetch's own resolution is invisible to the Worker. The check and the
 * connection resolve separately, so a rebinding name can still answer differently to the two; in production the
 * `global_fetch_strictly_public` flag refuses a private destination at connect time, so this check is what turns
 * that case into a clear `blocked_destination` instead of an opaque network error, not the only defence.
 *
 * A lookup that cannot be completed (resolver down, SERVFAIL, NXDOMAIN, no address) is not a verdict about the
 * destination: it is reported as a lookup failure and the attempt is retried like any network error.
 */
import { isPrivateAddress } from '../lib/url-rules.ts';

export type DnsVerdict =
  | { ok: true; addresses: string[] }
  | { ok: false; reason: 'private_address'; address: string; message: string }
  | { ok: false; reason: 'lookup_failed'; message: string };

export interface DnsCheckOptions {
  /** The resolver's JSON endpoint, e.g. `https://cloudflare-dns.com/dns-query`. */
  dohUrl: string;
  timeoutMs?: number;
  /** Injected for tests of this module alone; the Worker uses the global fetch. */
  fetcher?: typeof fetch;
}

/** DNS RR types we read: A, AAAA (CNAMEs in the chain are followed by the resolver and skipped here). */
const A = 1;
const AAAA = 28;
const NXDOMAIN = 3;
/** Cache answers per isolate for at most this long, whatever their TTL: a changed record is seen within a minute. */
const MAX_CACHE_SECONDS = 60;
const MAX_CACHE_ENTRIES = 1000;

interface DohAnswer {
  Status?: number;
  Answer?: Array<{ name?: string; type?: number; TTL?: number; data?: string }>;
}

const cache = new Map<string, { verdict: DnsVerdict; expiresAt: number }>();

/**
 * Whether the host needs a lookup at all: IP literals were already judged by the URL rules, and `localhost` names
 * only exist when ALLOW_INSECURE_WEBHOOK_TARGETS lets them through (they never reach a public resolver).
 */
export function needsLookup(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, '');
  if (h.startsWith('[') || /^[0-9.]+$/.test(h)) return false;
  return !(h === 'localhost' || h.endsWith('.localhost'));
}

async function query(host: string, type: number, opts: DnsCheckOptions): Promise<DohAnswer> {
  const url = new URL(opts.dohUrl);
  url.searchParams.set('name', host);
  url.searchParams.set('type', String(type));
  const res = await (opts.fetcher ?? fetch)(url.toString(), {
    headers: { accept: 'application/dns-json' },
    signal: AbortSignal.timeout(opts.timeoutMs ?? 3000),
  });
  if (!res.ok) throw new Error(`resolver answered HTTP ${res.status}`);
  return (await res.json()) as DohAnswer;
}

/** Resolves `hostname` (A and AAAA) and says whether every address is public. Never throws. */
export async function checkResolvedAddresses(hostname: string, opts: DnsCheckOptions): Promise<DnsVerdict> {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  const key = `${opts.dohUrl} ${host}`;
  const hit = cache.get(key);
  if (hit && hit.expiresAt > Date.now()) return hit.verdict;

  // allSettled, not all: both lookups are always awaited, so a second failure is never left unobserved.
  const settled = await Promise.allSettled([query(host, A, opts), query(host, AAAA, opts)]);
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) {
    const err: unknown = failed.reason;
    return {
      ok: false,
      reason: 'lookup_failed',
      message: `DNS lookup of ${host} failed: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
  const answers = settled.map((r) => (r as PromiseFulfilledResult<DohAnswer>).value);
  if (answers.every((a) => a.Status === NXDOMAIN)) {
    return { ok: false, reason: 'lookup_failed', message: `${host} does not exist in DNS (NXDOMAIN).` };
  }
  const records = answers
    .flatMap((a) => (a.Status === 0 ? (a.Answer ?? []) : []))
    .filter((r) => r.type === A || r.type === AAAA);
  if (records.length === 0) {
    const statuses = answers.map((a) => a.Status ?? 'none').join('/');
    return {
      ok: false,
      reason: 'lookup_failed',
      message: `${host} has no A or AAAA record (resolver status ${statuses}).`,
    };
  }
  const addresses = records.map((r) => String(r.data ?? ''));
  const privateOne = addresses.find((a) => isPrivateAddress(a));
  const verdict: DnsVerdict = privateOne
    ? {
        ok: false,
        reason: 'private_address',
        address: privateOne,
        message: `${host} resolves to ${privateOne}, which is not a public address; the request was not sent.`,
      }
    : { ok: true, addresses };

  const ttl = Math.min(MAX_CACHE_SECONDS, ...records.map((r) => (typeof r.TTL === 'number' && r.TTL >= 0 ? r.TTL : 0)));
  if (ttl > 0) {
    if (cache.size >= MAX_CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
    cache.set(key, { verdict, expiresAt: Date.now() + ttl * 1000 });
  }
  return verdict;
}
