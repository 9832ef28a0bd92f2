/**
 * A stand-in DNS-over-HTTPS resolver for the send-time SSRF check (src/delivery/dns-check.ts): a real HTTP server on
 * 127.0.0.1 speaking the JSON DoH API of cloudflare-dns.com / dns.google (`GET /dns-query?name=…&type=1|28`,
 * `accept: application/dns-json`). Started once per run by `global-setup.ts`; port provided as `dohPort`.
 *
 * The zone is encoded in the name, so each test makes its own without a control API:
 *   `<anything>.a-10-0-0-1.test`          A 10.0.0.1 (dashes for dots), no AAAA
 *   `<anything>.aaaa-fd00--1.test`        AAAA fd00::1 (one dash per colon), no A
 *   `<anything>.cname-a-93-184-215-14.test`  a CNAME to `x.a-93-184-215-14.test`, then its A record (chains work)
 *   `<anything>.nx.test`                  NXDOMAIN
 *   `<anything>.servfail.test`            HTTP 502 from the resolver
 * Anything else: NOERROR with no answer. `GET /_queries?name=<fqdn>` lists the queries seen for a name.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type LoopbackServer, serveOnLoopback } from './http.ts';

const A = 1;
const AAAA = 28;
const CNAME = 5;

interface Record {
  name: string;
  type: number;
  TTL: number;
  data: string;
}

function answersFor(name: string, type: number): { status: number; answers: Record[] } | 'servfail' {
  const labels = name.split('.');
  if (labels.includes('servfail')) return 'servfail';
  if (labels.includes('nx')) return { status: 3, answers: [] };
  const cname = labels.find((l) => l.startsWith('cname-'));
  if (cname) {
    const target = `x.${cname.slice('cname-'.length)}.test`;
    const rest = answersFor(target, type);
    if (rest === 'servfail') return rest;
    return { status: rest.status, answers: [{ name, type: CNAME, TTL: 30, data: `${target}.` }, ...rest.answers] };
  }
  const v4 = labels.find((l) => /^a-\d+-\d+-\d+-\d+$/.test(l));
  const v6 = labels.find((l) => l.startsWith('aaaa-'));
  const answers: Record[] = [];
  if (type === A && v4) answers.push({ name, type: A, TTL: 30, data: v4.slice(2).replaceAll('-', '.') });
  if (type === AAAA && v6) answers.push({ name, type: AAAA, TTL: 30, data: v6.slice(5).replaceAll('-', ':') });
  return { status: 0, answers };
}

/** Starts the resolver stub on a free loopback port. */
export async function startDohStub(): Promise<LoopbackServer> {
  const queries = new Map<string, Array<{ type: number; accept: string }>>();
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/_queries') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(queries.get(url.searchParams.get('name') ?? '') ?? []));
      return;
    }
    const name = (url.searchParams.get('name') ?? '').toLowerCase().replace(/\.$/, '');
    const type = Number(url.searchParams.get('type') ?? A);
    if (url.pathname !== '/dns-query' || !name) {
      res.writeHead(400).end();
      return;
    }
    queries.set(name, [...(queries.get(name) ?? []), { type, accept: String(req.headers.accept ?? '') }]);
    const result = answersFor(name, type);
    if (result === 'servfail') {
      res.writeHead(502).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/dns-json' });
    res.end(
      JSON.stringify({
        Status: result.status,
        TC: false,
        RD: true,
        RA: true,
        AD: false,
        CD: false,
        Question: [{ name: `${name}.`, type }],
        ...(result.answers.length ? { Answer: result.answers.map((a) => ({ ...a, name: `${a.name}.` })) } : {}),
      }),
    );
  };
  return serveOnLoopback('doh-stub', handler);
}
