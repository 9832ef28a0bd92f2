/**
 * The send-time address check (src/delivery/dns-check.ts) against a real DoH resolver stub on 127.0.0.1
 * (test/support/node/doh-stub.ts, the JSON wire format of cloudflare-dns.com).
 */
import { describe, expect, it } from 'vitest';
import { checkResolvedAddresses, needsLookup } from '../../src/delivery/dns-check.ts';
import { dohUrl, dohQueries as queries } from '../support/doh.ts';
import { unique } from '../support/helpers.ts';

describe('checkResolvedAddresses', () => {
  it('a public A record passes, asking for A and AAAA with accept: application/dns-json', async () => {
    const host = `${unique('pub')}.a-93-184-215-14.test`;
    const v = await checkResolvedAddresses(host, { dohUrl: dohUrl() });
    expect(v).toEqual({ ok: true, addresses: ['93.184.215.14'] });
    const seen = await queries(host);
    expect(seen.map((q) => q.type).sort()).toEqual([1, 28]);
    expect(seen.every((q) => q.accept === 'application/dns-json')).toBe(true);
  });

  it.each([
    ['private A (RFC 1918)', 'a-10-0-0-1', '10.0.0.1'],
    ['cloud metadata', 'a-169-254-169-254', '169.254.169.254'],
    ['loopback', 'a-127-0-0-1', '127.0.0.1'],
    ['CGNAT', 'a-100-100-100-200', '100.100.100.200'],
    ['unique-local AAAA', 'aaaa-fd00--1', 'fd00::1'],
    ['a CNAME chain ending private', 'cname-a-192-168-1-1', '192.168.1.1'],
  ])('%s → private_address naming the address', async (_name, zone, address) => {
    const host = `${unique('priv')}.${zone}.test`;
    const v = await checkResolvedAddresses(host, { dohUrl: dohUrl() });
    expect(v).toMatchObject({ ok: false, reason: 'private_address', address });
    if (!v.ok) expect(v.message).toContain(address);
  });

  it('a CNAME chain ending public passes', async () => {
    const v = await checkResolvedAddresses(`${unique('c')}.cname-a-8-8-8-8.test`, { dohUrl: dohUrl() });
    expect(v).toEqual({ ok: true, addresses: ['8.8.8.8'] });
  });

  it.each([
    ['NXDOMAIN', 'nx', /NXDOMAIN/],
    ['no address records', 'empty', /no A or AAAA record/],
    ['resolver error (HTTP 502)', 'servfail', /HTTP 502/],
  ])('%s → lookup_failed (retried, not a verdict on the target)', async (_name, zone, message) => {
    const v = await checkResolvedAddresses(`${unique('f')}.${zone}.test`, { dohUrl: dohUrl() });
    expect(v).toMatchObject({ ok: false, reason: 'lookup_failed' });
    if (!v.ok) expect(v.message).toMatch(message);
  });

  it('an unreachable resolver → lookup_failed, never a throw', async () => {
    const v = await checkResolvedAddresses(`${unique('u')}.a-8-8-8-8.test`, {
      dohUrl: 'http://127.0.0.1:1/dns-query',
      timeoutMs: 2000,
    });
    expect(v).toMatchObject({ ok: false, reason: 'lookup_failed' });
  });

  it('answers are cached for their TTL (≤ 60 s): a second check asks the resolver nothing', async () => {
    const host = `${unique('cache')}.a-10-1-2-3.test`;
    await checkResolvedAddresses(host, { dohUrl: dohUrl() });
    const again = await checkResolvedAddresses(`${host.toUpperCase()}.`, { dohUrl: dohUrl() });
    expect(again).toMatchObject({ ok: false, address: '10.1.2.3' });
    expect(await queries(host)).toHaveLength(2);
  });
});

describe('needsLookup', () => {
  it('skips IP literals and localhost names (already judged by the URL rules), looks up every other name', () => {
    expect(needsLookup('127.0.0.1')).toBe(false);
    expect(needsLookup('[::1]')).toBe(false);
    expect(needsLookup('localhost')).toBe(false);
    expect(needsLookup('api.localhost.')).toBe(false);
    expect(needsLookup('hooks.example.com')).toBe(true);
    expect(needsLookup('localhost.example.com')).toBe(true);
    expect(needsLookup('1.2.3.4.nip.io')).toBe(true);
  });
});
