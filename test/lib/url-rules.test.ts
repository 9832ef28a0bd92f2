/**
 * Webhook URL rules (docs/design.md#url-rules-ssrf). These run inside workerd, so `new URL` here is the parser `fetch` uses: the
 * tables check what the runtime would actually connect to, not what a regex thinks the string says.
 */
import { describe, expect, it } from 'vitest';
import { checkWebhookUrl, isPrivateAddress, MAX_WEBHOOK_URL_LENGTH, type UrlRule } from '../../src/lib/url-rules.ts';

const strict = { allowInsecure: false };
const insecure = { allowInsecure: true };

function rejects(raw: string, opts = strict): { rule: UrlRule; message: string } {
  const r = checkWebhookUrl(raw, opts);
  if (r.ok) throw new Error(`expected ${raw} to be rejected, got ${r.url.href}`);
  return r;
}

describe('checkWebhookUrl rejects hostile URLs', () => {
  const hostile: Array<[string, UrlRule]> = [
    // IP literals in every notation the parser normalises to dotted IPv4
    ['https://127.0.0.1/hook', 'ip_literal_not_allowed'],
    ['https://2130706433/', 'ip_literal_not_allowed'], // decimal
    ['https://0x7f000001/', 'ip_literal_not_allowed'], // hex
    ['https://0x7f.1/', 'ip_literal_not_allowed'], // hex, short form
    ['https://0177.0.0.1/', 'ip_literal_not_allowed'], // octal
    ['https://0x7f.0.0.01/', 'ip_literal_not_allowed'], // mixed hex and octal
    ['https://127.1/', 'ip_literal_not_allowed'], // two-part
    ['https://１２７．０．０．１/', 'ip_literal_not_allowed'], // full-width digits, mapped by IDNA
    ['https://10.0.0.1/', 'ip_literal_not_allowed'],
    ['https://169.254.169.254/latest/meta-data/', 'ip_literal_not_allowed'], // cloud metadata, link-local
    ['https://8.8.8.8/', 'ip_literal_not_allowed'], // even public literals: no IP literal in any notation
    ['https://0/', 'ip_literal_not_allowed'], // 0.0.0.0
    // IPv6
    ['https://[::1]/', 'ip_literal_not_allowed'],
    ['https://[::ffff:7f00:1]/', 'ip_literal_not_allowed'],
    ['https://[::ffff:127.0.0.1]/', 'ip_literal_not_allowed'],
    ['https://[fe80::1]/', 'ip_literal_not_allowed'],
    ['https://[2606:4700:4700::1111]/', 'ip_literal_not_allowed'],
    // names that only resolve privately
    ['https://metadata.google.internal/computeMetadata/v1/', 'hostname_not_public'],
    ['https://localhost/', 'hostname_not_public'],
    ['https://LOCALHOST./', 'hostname_not_public'],
    ['https://foo.localhost/', 'hostname_not_public'],
    ['https://printer.local/', 'hostname_not_public'],
    ['https://x.home.arpa/', 'hostname_not_public'],
    ['https://nas.lan/', 'hostname_not_public'],
    ['https://intranet/', 'hostname_not_public'], // single label
    ['https://metadata/', 'hostname_not_public'],
    ['https://intranet./', 'hostname_not_public'], // single label, fully qualified
    ['https://ｌｏｃａｌｈｏｓｔ/', 'hostname_not_public'], // full-width, mapped by IDNA
    // userinfo
    ['https://user:pass@example.com/', 'userinfo_not_allowed'],
    ['https://example.com@evil.com/', 'userinfo_not_allowed'],
    ['https://user@example.com/', 'userinfo_not_allowed'],
    // schemes
    ['ftp://example.com/', 'scheme_not_allowed'],
    ['file:///etc/passwd', 'scheme_not_allowed'],
    ['javascript:alert(1)', 'scheme_not_allowed'],
    ['gopher://example.com:70/', 'scheme_not_allowed'],
    ['data:text/plain,hi', 'scheme_not_allowed'],
    ['http://example.com/hook', 'scheme_not_allowed'], // without allowInsecure
    ['ws://example.com/', 'scheme_not_allowed'],
    // ports
    ['https://example.com:80/', 'port_not_allowed'],
    ['https://example.com:22/', 'port_not_allowed'],
    ['https://example.com:6379/', 'port_not_allowed'],
    ['https://example.com:8080/', 'port_not_allowed'],
    // fragment, length, garbage
    ['https://example.com/hook#frag', 'fragment_not_allowed'],
    ['https://example.com/hook#', 'fragment_not_allowed'],
    [`https://example.com/${'a'.repeat(MAX_WEBHOOK_URL_LENGTH)}`, 'url_too_long'],
    ['not a url', 'invalid_url'],
    ['example.com/hook', 'invalid_url'], // no scheme
    ['https://', 'invalid_url'],
    ['https://exa mple.com/', 'invalid_url'],
    ['https://example.com/\nhook', 'invalid_url'], // the parser would silently drop the newline
    [' https://example.com/', 'invalid_url'],
    ['https://999.1.1.1/', 'invalid_url'], // looks like IPv4, is not one
    ['', 'invalid_url'],
  ];

  it.each(hostile)('%s → %s', (raw, rule) => {
    expect(rejects(raw).rule).toBe(rule);
  });

  it('has a table of at least 30 hostile URLs', () => {
    expect(hostile.length).toBeGreaterThanOrEqual(30);
  });
});

describe('checkWebhookUrl messages', () => {
  it('names the original host and the address it parses to', () => {
    const { message } = rejects('https://0x7f.1/hook');
    expect(message).toContain('0x7f.1');
    expect(message).toContain('127.0.0.1');
    expect(message).toMatch(/IP address literals are not allowed/);
  });

  it('names the decimal form too', () => {
    expect(rejects('https://2130706433/').message).toContain('the host 2130706433 is the address 127.0.0.1');
  });

  it('says which scheme was given and which is required', () => {
    expect(rejects('ftp://example.com/').message).toBe('Webhook URLs must use https; got ftp:.');
    expect(rejects('ftp://example.com/', insecure).message).toMatch(/https \(or http/);
  });

  it('shows the real host of a userinfo trick', () => {
    expect(rejects('https://example.com@evil.com/').message).toContain('evil.com');
  });

  it('names the port and the allowed ones', () => {
    expect(rejects('https://example.com:8080/').message).toBe('Webhook URLs may only use port 443 or 8443; got 8080.');
  });

  it('names the private suffix', () => {
    expect(rejects('https://metadata.google.internal/').message).toContain('.internal');
  });

  it('reports the first failing rule in order: scheme before userinfo before fragment before host before port', () => {
    expect(rejects('ftp://u:p@127.0.0.1:22/#x').rule).toBe('scheme_not_allowed');
    expect(rejects('https://u:p@127.0.0.1:22/#x').rule).toBe('userinfo_not_allowed');
    expect(rejects('https://127.0.0.1:22/#x').rule).toBe('fragment_not_allowed');
    expect(rejects('https://127.0.0.1:22/').rule).toBe('ip_literal_not_allowed');
    expect(rejects('https://localhost:22/').rule).toBe('hostname_not_public');
  });
});

describe('checkWebhookUrl accepts public https URLs', () => {
  const good: Array<[string, string]> = [
    ['https://example.com/', 'https://example.com/'],
    ['https://hooks.example.com/webhooks/gharart', 'https://hooks.example.com/webhooks/gharart'],
    ['https://crm.example.com/in?source=gharart&v=2', 'https://crm.example.com/in?source=gharart&v=2'],
    ['https://example.com:8443/hook', 'https://example.com:8443/hook'],
    ['https://example.com:443/hook', 'https://example.com/hook'], // the default port, normalised away
    ['https://bücher.example/', 'https://xn--bcher-kva.example/'], // IDN
    ['https://example.com./hook', 'https://example.com./hook'], // trailing dot
    ['HTTPS://API.Example.COM/Path', 'https://api.example.com/Path'],
    ['https://a-b.c-d.example.co.uk/x/y/z', 'https://a-b.c-d.example.co.uk/x/y/z'],
    ['https://local.example.com/', 'https://local.example.com/'], // "local" as a label, not the TLD
    ['https://hooks.gharart.test/in', 'https://hooks.gharart.test/in'],
  ];

  it.each(good)('%s', (raw, href) => {
    const r = checkWebhookUrl(raw, strict);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.url.href).toBe(href);
  });

  it('accepts a URL of exactly the maximum length', () => {
    const base = 'https://example.com/';
    const raw = base + 'a'.repeat(MAX_WEBHOOK_URL_LENGTH - base.length);
    expect(raw.length).toBe(MAX_WEBHOOK_URL_LENGTH);
    expect(checkWebhookUrl(raw, strict).ok).toBe(true);
    expect(rejects(`${raw}a`).rule).toBe('url_too_long');
  });

  it('rejects a URL that only grows past the limit once percent-encoded', () => {
    const base = 'https://example.com/';
    const raw = base + 'é'.repeat(MAX_WEBHOOK_URL_LENGTH - base.length);
    expect(rejects(raw).rule).toBe('url_too_long');
  });
});

describe('checkWebhookUrl with allowInsecure (local dev and tests)', () => {
  const allowed = [
    'http://127.0.0.1:8123/hook',
    'http://localhost:9000',
    'http://LOCALHOST.:9000/x',
    'http://receiver.localhost:9000/',
    'http://[::1]:8080/',
    'http://127.0.0.2/',
    'https://127.0.0.1:8443/',
    'http://example.com:8080/hook', // any port
    'https://example.com/',
  ];
  it.each(allowed)('%s is allowed', (raw) => {
    expect(checkWebhookUrl(raw, insecure).ok).toBe(true);
  });

  const rejected: Array<[string, UrlRule]> = [
    ['http://10.0.0.1/', 'ip_literal_not_allowed'],
    ['http://169.254.169.254/', 'ip_literal_not_allowed'],
    ['http://192.168.1.10:8080/', 'ip_literal_not_allowed'],
    ['http://0.0.0.0:8080/', 'ip_literal_not_allowed'], // reaches localhost on Linux, but is not loopback
    ['http://[::ffff:127.0.0.1]/', 'ip_literal_not_allowed'], // only the plain loopback forms
    ['http://[fe80::1]/', 'ip_literal_not_allowed'],
    ['http://printer.local/', 'hostname_not_public'],
    ['http://intranet/', 'hostname_not_public'],
    ['http://metadata.google.internal/', 'hostname_not_public'],
    ['http://user:pass@localhost/', 'userinfo_not_allowed'],
    ['ftp://localhost/', 'scheme_not_allowed'],
    ['http://localhost/#x', 'fragment_not_allowed'],
  ];
  it.each(rejected)('%s → %s', (raw, rule) => {
    expect(rejects(raw, insecure).rule).toBe(rule);
  });

  it('says why a non-loopback literal is still refused', () => {
    expect(rejects('http://10.0.0.1/', insecure).message).toMatch(/Only loopback/);
  });
});

describe('isPrivateAddress', () => {
  const privateAddresses = [
    '0.0.0.0',
    '0.1.2.3',
    '10.0.0.1',
    '10.255.255.255',
    '100.64.0.1', // CGNAT
    '100.127.255.254',
    '127.0.0.1',
    '127.255.255.255',
    '169.254.169.254', // metadata
    '172.16.0.1',
    '172.31.255.255',
    '192.0.0.8',
    '192.0.2.1', // TEST-NET-1
    '192.88.99.1',
    '192.168.1.1',
    '198.18.0.1', // benchmarking
    '198.19.255.255',
    '198.51.100.7', // TEST-NET-2
    '203.0.113.9', // TEST-NET-3
    '224.0.0.1', // multicast
    '239.255.255.250',
    '240.0.0.1', // reserved
    '255.255.255.255', // broadcast
    '::', // unspecified
    '::1', // loopback
    '[::1]',
    '::ffff:127.0.0.1', // IPv4-mapped
    '[::ffff:7f00:1]',
    '::ffff:10.0.0.1',
    '::ffff:0:127.0.0.1', // IPv4-translated
    '::127.0.0.1', // IPv4-compatible (deprecated)
    '64:ff9b::7f00:1', // NAT64 of 127.0.0.1
    '64:ff9b:1::1', // local-use NAT64
    '2002:7f00:1::', // 6to4 of 127.0.0.1
    '2002:a9fe:a9fe::1', // 6to4 of 169.254.169.254
    '2001:0:4136:e378:8000:63bf:80ff:fffe', // Teredo, client 127.0.0.1 (inverted)
    '2001:2::1', // benchmarking
    '2001:db8::1', // documentation
    '3fff::1', // documentation (RFC 9637)
    'fc00::1', // unique-local
    'fd12:3456:789a::1',
    'fe80::1', // link-local
    'febf::1',
    'fec0::1', // site-local
    'ff02::1', // multicast
    '100::1', // discard-only
    '5f00::1', // SRv6
    // not an address at all: fail closed
    'example.com',
    '',
    '1.2.3',
    '256.1.1.1',
    '010.0.0.1',
    'fe80::1%eth0',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
  ];
  const publicAddresses = [
    '1.1.1.1',
    '8.8.8.8',
    '9.9.9.9',
    '100.63.255.255', // just below CGNAT
    '100.128.0.0', // just above CGNAT
    '126.255.255.255',
    '128.0.0.1',
    '172.15.255.255', // just below 172.16/12
    '172.32.0.0', // just above
    '192.0.1.1',
    '192.167.255.255',
    '192.169.0.1',
    '198.17.255.255',
    '198.20.0.0',
    '203.0.114.1',
    '223.255.255.255',
    '2606:4700:4700::1111',
    '[2606:4700:4700::1111]',
    '2001:4860:4860::8888',
    '2a00:1450:4001:80b::200e',
    '::ffff:8.8.8.8', // mapped public
    '::ffff:808:808',
    '64:ff9b::808:808', // NAT64 of 8.8.8.8
    '2002:808:808::1', // 6to4 of 8.8.8.8
    '2001:0:4136:e378:8000:63bf:f7f7:f7f7', // Teredo, client 8.8.8.8 (inverted)
    '2001:db9::1', // just past the documentation block
  ];

  it.each(privateAddresses)('%s is private', (ip) => {
    expect(isPrivateAddress(ip)).toBe(true);
  });
  it.each(publicAddresses)('%s is public', (ip) => {
    expect(isPrivateAddress(ip)).toBe(false);
  });

  it('agrees with the parser: every address URL.hostname yields for a private literal is private', () => {
    for (const raw of [
      'http://0x7f.1/',
      'http://2130706433/',
      'http://[::ffff:127.0.0.1]/',
      'http://[0:0:0:0:0:0:0:1]/',
    ]) {
      expect(isPrivateAddress(new URL(raw).hostname)).toBe(true);
    }
  });
});
