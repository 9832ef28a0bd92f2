/**
 * Webhook URL rules (docs/design.md#url-rules-ssrf): which URLs a subscription may point at, checked at registration
 * and again before every send. Pure.
 *
 * Everything is decided on the URL as the WHATWG parser sees it — the parser `fetch` uses — never on the raw string:
 * `http://0x7f.1/`, `http://2130706433/` and `http://0177.0.0.1/` are all the host 127.0.0.1 to `fetch`, so they must
 * be to us too. A public DNS name can still resolve to a private address: before each send delivery/dns-check.ts
 * resolves it over DNS over HTTPS and applies {@link isPrivateAddress} to every answer, and in production the
 * `global_fetch_strictly_public` compatibility flag refuses such fetches at connect time as well.
 */

export type UrlRule =
  | 'invalid_url'
  | 'url_too_long'
  | 'scheme_not_allowed'
  | 'userinfo_not_allowed'
  | 'port_not_allowed'
  | 'ip_literal_not_allowed'
  | 'hostname_not_public'
  | 'fragment_not_allowed';

export interface UrlCheckOptions {
  /** `ALLOW_INSECURE_WEBHOOK_TARGETS`: also allow `http:`, any port, and loopback (local dev and tests). */
  allowInsecure: boolean;
}

export type UrlCheck = { ok: true; url: URL } | { ok: false; rule: UrlRule; message: string };

export const MAX_WEBHOOK_URL_LENGTH = 2048;

/** Ports a production webhook may use besides the scheme's default. */
const ALLOWED_PORTS = new Set(['443', '8443']);

/**
 * Names that never resolve on the public internet, so a webhook pointing at one can only reach a private network:
 * `localhost` (RFC 6761), `local` (mDNS, RFC 6762), `home.arpa` (RFC 8375), `internal` (ICANN's private-use TLD,
 * and GCP's metadata.google.internal), `onion` (RFC 7686), plus the private TLDs RFC 6762 appendix G lists as in
 * common use and ICANN never delegated (`lan`, `home`, `corp`, `intranet`, `private`) and `localdomain` from
 * /etc/hosts. Not listed: `test`, `example`, `invalid` (RFC 6761): reserved but used in documentation and tests, and
 * public DNS answers nothing for them — and `global_fetch_strictly_public` covers a private resolver that does.
 */
const NON_PUBLIC_SUFFIXES = [
  'localhost',
  'local',
  'internal',
  'home.arpa',
  'localdomain',
  'lan',
  'home',
  'corp',
  'intranet',
  'private',
  'onion',
];

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what this rejects.
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f]/;

/** Checks a webhook URL; returns the parsed URL, or the first rule it breaks with a message a user can act on. */
export function checkWebhookUrl(raw: string, opts: UrlCheckOptions): UrlCheck {
  if (typeof raw !== 'string' || raw === '') return fail('invalid_url', 'A webhook URL is required.');
  // Length first, so a megabyte of junk is never handed to the parser.
  if (raw.length > MAX_WEBHOOK_URL_LENGTH) {
    return fail(
      'url_too_long',
      `Webhook URLs are at most ${MAX_WEBHOOK_URL_LENGTH} characters; this one has ${raw.length}.`,
    );
  }
  // The parser silently drops tabs and newlines and trims spaces; refusing them keeps what we store what was meant.
  if (CONTROL_OR_SPACE.test(raw)) {
    return fail('invalid_url', 'Webhook URLs cannot contain spaces or control characters; percent-encode them.');
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail(
      'invalid_url',
      'This is not a valid absolute URL; write it in full, e.g. https://example.com/webhooks.',
    );
  }
  // Percent-encoding and punycode can lengthen the URL that is actually sent.
  if (url.href.length > MAX_WEBHOOK_URL_LENGTH) {
    return fail(
      'url_too_long',
      `Webhook URLs are at most ${MAX_WEBHOOK_URL_LENGTH} characters once encoded; this one has ${url.href.length}.`,
    );
  }

  const insecure = opts.allowInsecure;
  if (url.protocol !== 'https:' && !(insecure && url.protocol === 'http:')) {
    return fail(
      'scheme_not_allowed',
      insecure
        ? `Webhook URLs must use https (or http, which this deployment allows for local testing); got ${url.protocol}.`
        : `Webhook URLs must use https; got ${url.protocol}.`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    return fail(
      'userinfo_not_allowed',
      `Webhook URLs cannot contain a username or password (the part before @; here the host is ${url.hostname}); ` +
        'send credentials in a custom header instead.',
    );
  }
  // `href` keeps an empty fragment (`…/#`) that `hash` reports as ''.
  if (url.href.includes('#')) {
    return fail('fragment_not_allowed', 'Webhook URLs cannot contain a fragment (#…): it is never sent to the server.');
  }

  const hostRule = checkHost(url, raw, insecure);
  if (hostRule) return hostRule;

  if (url.port !== '' && !insecure && !ALLOWED_PORTS.has(url.port)) {
    return fail('port_not_allowed', `Webhook URLs may only use port 443 or 8443; got ${url.port}.`);
  }
  return { ok: true, url };
}

function fail(rule: UrlRule, message: string): UrlCheck {
  return { ok: false, rule, message };
}

function checkHost(url: URL, raw: string, insecure: boolean): UrlCheck | null {
  const host = url.hostname;
  const ip = host.startsWith('[') || parseIPv4(host) !== null;
  if (ip) {
    if (insecure && isLoopbackLiteral(host)) return null;
    const written = hostAsWritten(raw);
    const which =
      written !== null && written.toLowerCase() !== host
        ? `the host ${written} is the address ${host}`
        : `the host is ${host}`;
    const extra = insecure
      ? ' Only loopback addresses are allowed, because this deployment allows insecure targets.'
      : '';
    return fail('ip_literal_not_allowed', `IP address literals are not allowed (${which}); use a DNS name.${extra}`);
  }

  // A trailing dot makes a name fully qualified without changing it: `localhost.` is localhost.
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name === '' || name.split('.').includes('')) {
    return fail('hostname_not_public', `The host ${host} is not a valid DNS name.`);
  }
  if (name === 'localhost' || name.endsWith('.localhost')) {
    if (insecure) return null;
    return fail('hostname_not_public', `The host ${host} is this machine (localhost); use a public DNS name.`);
  }
  const suffix = NON_PUBLIC_SUFFIXES.find((s) => name === s || name.endsWith(`.${s}`));
  if (suffix) {
    return fail(
      'hostname_not_public',
      `The host ${host} is in .${suffix}, which only resolves inside private networks; use a public DNS name.`,
    );
  }
  if (!name.includes('.')) {
    return fail(
      'hostname_not_public',
      `The host ${host} is a single-label name, which only resolves inside private networks; use a fully qualified ` +
        'public DNS name such as hooks.example.com.',
    );
  }
  return null;
}

/**
 * The host as the user typed it (e.g. `0x7f.1`), so a message can show both that and what the parser made of it.
 * Best effort: null when the authority cannot be picked out.
 */
function hostAsWritten(raw: string): string | null {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:[/\\]*([^/\\?#]*)/.exec(raw);
  if (!m || m[1] === undefined) return null;
  let authority = m[1];
  const at = authority.lastIndexOf('@');
  if (at !== -1) authority = authority.slice(at + 1);
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end === -1 ? null : authority.slice(0, end + 1);
  }
  const colon = authority.lastIndexOf(':');
  const host = colon === -1 ? authority : authority.slice(0, colon);
  return host === '' || host.length > 100 ? null : host;
}

/** 127.0.0.0/8 or ::1, as the parser writes them: what local receivers listen on. */
function isLoopbackLiteral(host: string): boolean {
  if (host === '[::1]') return true;
  const v4 = parseIPv4(host);
  return v4 !== null && v4 >>> 24 === 127;
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------------------------

/** [network, prefix length] pairs of IPv4 space that is not globally reachable (IANA special-purpose registry). */
const PRIVATE_V4: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // CGNAT shared space (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, incl. cloud metadata 169.254.169.254
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // TEST-NET-1 (documentation)
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // TEST-NET-2
  ['203.0.113.0', 24], // TEST-NET-3
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, incl. broadcast 255.255.255.255
];

const PRIVATE_V4_RANGES = PRIVATE_V4.map(([net, bits]) => {
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { net: (parseIPv4(net)! & mask) >>> 0, mask };
});

/**
 * Whether an IP address (v4 dotted or v6, as URL.hostname gives it, brackets allowed) is private, loopback,
 * link-local, CGNAT, multicast, unspecified, reserved, documentation, benchmarking, IPv4-mapped/-translated/6to4/
 * Teredo/NAT64 forms of those, unique-local, site-local, etc. Anything that does not parse as an address counts as
 * private: this guards a send, so it fails closed.
 */
export function isPrivateAddress(ip: string): boolean {
  let s = ip.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const v4 = parseIPv4(s);
  if (v4 !== null) return isPrivateV4(v4);
  const v6 = parseIPv6(s);
  return v6 === null ? true : isPrivateV6(v6);
}

function isPrivateV4(addr: number): boolean {
  for (const { net, mask } of PRIVATE_V4_RANGES) {
    if ((addr & mask) >>> 0 === net) return true;
  }
  return false;
}

function isPrivateV6(w: Uint16Array): boolean {
  const v4At = (hi: number) => ((w[hi]! << 16) | w[hi + 1]!) >>> 0;
  const zero = (from: number, to: number) => w.subarray(from, to).every((x) => x === 0);

  // IPv4-mapped ::ffff:a.b.c.d and IPv4-translated ::ffff:0:a.b.c.d (RFC 2765): as private as the IPv4 address.
  if (zero(0, 5) && w[5] === 0xffff) return isPrivateV4(v4At(6));
  if (zero(0, 4) && w[4] === 0xffff && w[5] === 0) return isPrivateV4(v4At(6));
  // The rest of ::/96 — unspecified ::, loopback ::1, deprecated IPv4-compatible — is never a public destination.
  if (zero(0, 6)) return true;
  // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052) carries an IPv4 address; 64:ff9b:1::/48 is local-use.
  if (w[0] === 0x64 && w[1] === 0xff9b) return zero(2, 6) ? isPrivateV4(v4At(6)) : true;

  // Only 2000::/3 is global unicast; everything else (ULA fc00::/7, link-local fe80::/10, site-local fec0::/10,
  // multicast ff00::/8, discard 100::/64, SRv6 5f00::/16, unassigned) is not a public destination.
  if ((w[0]! & 0xe000) !== 0x2000) return true;
  // 6to4 2002::/16 embeds an IPv4 address in bits 16–47.
  if (w[0] === 0x2002) return isPrivateV4(v4At(1));
  // Teredo 2001::/32: the server's IPv4 in bits 32–63, the client's (bit-inverted) in bits 96–127.
  if (w[0] === 0x2001 && w[1] === 0) return isPrivateV4(v4At(2)) || isPrivateV4(~v4At(6) >>> 0);
  // The rest of 2001::/23 is IETF protocol assignments (ORCHID, benchmarking 2001:2::/48, …).
  if (w[0] === 0x2001 && w[1]! < 0x0200) return true;
  // Documentation: 2001:db8::/32 (RFC 3849) and 3fff::/20 (RFC 9637).
  if (w[0] === 0x2001 && w[1] === 0x0db8) return true;
  if (w[0] === 0x3fff && (w[1]! & 0xf000) === 0) return true;
  return false;
}

/** Strict dotted-quad (what URL.hostname and DNS answers produce) to a uint32; null otherwise. */
function parseIPv4(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let out = 0;
  for (const p of parts) {
    // No leading zeros: `010` is octal to some parsers and decimal to others, so it is not an address we trust.
    if (p.length === 0 || p.length > 3 || (p.length > 1 && p[0] === '0')) return null;
    let n = 0;
    for (let i = 0; i < p.length; i++) {
      const d = p.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return null;
      n = n * 10 + d;
    }
    if (n > 255) return null;
    out = out * 256 + n;
  }
  return out >>> 0;
}

/** An IPv6 address (with `::` and an optional dotted IPv4 tail) to eight 16-bit words; null if malformed or zoned. */
function parseIPv6(s: string): Uint16Array | null {
  if (s.length === 0 || s.length > 45 || s.includes('%')) return null;
  const words: number[] = [];
  let tail: string[] = [];
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  if (halves.length === 2) tail = halves[1] === '' ? [] : halves[1]!.split(':');

  const parseGroups = (groups: string[], allowV4Tail: boolean): number[] | null => {
    const out: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (v4 === null) return null;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) {
        out.push(parseInt(g, 16));
      } else {
        return null;
      }
    }
    return out;
  };

  const headWords = parseGroups(head, halves.length === 1);
  const tailWords = parseGroups(tail, true);
  if (headWords === null || tailWords === null) return null;
  if (halves.length === 1) {
    if (headWords.length !== 8) return null;
    words.push(...headWords);
  } else {
    const missing = 8 - headWords.length - tailWords.length;
    if (missing < 1) return null;
    words.push(...headWords, ...new Array<number>(missing).fill(0), ...tailWords);
  }
  return Uint16Array.from(words);
}
