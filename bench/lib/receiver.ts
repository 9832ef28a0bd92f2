/**
 * The bench's webhook receiver: a real HTTP server on 127.0.0.1 (test/support/node/http.ts) that verifies every
 * Standard Webhooks signature with the independent `standardwebhooks` library, answers 2xx only to valid ones, and
 * keeps per-group counts: unique `webhook-id`s, duplicates, bad signatures, the time of the last 2xx, and the most
 * requests it held at once (an outside view of the sender's concurrency).
 *
 * Paths are `/<group>/<n>`; a group's secrets are registered per path before its deliveries start.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { type LoopbackServer, readBody, serveOnLoopback } from '../../test/support/node/http.ts';

export interface GroupStats {
  ok: number;
  unique: number;
  duplicates: number;
  badSignature: number;
  firstAt: number | null;
  lastOkAt: number | null;
  peakInFlight: number;
  /** When each 2xx was answered (performance.now()), in order: the pacing stage's spread. */
  okTimes: number[];
}

export interface Receiver extends LoopbackServer {
  url(group: string, n: number): string;
  /** Registers the signing secret of one path; requests to a path without one are refused with 401. */
  setSecret(group: string, n: number, secret: string): void;
  stats(group: string): GroupStats;
}

interface Group extends GroupStats {
  ids: Set<string>;
  inFlight: number;
}

export async function startReceiver(): Promise<Receiver> {
  const verifiers = new Map<string, Webhook>();
  const groups = new Map<string, Group>();
  const group = (name: string): Group => {
    let g = groups.get(name);
    if (!g) {
      g = {
        ok: 0,
        unique: 0,
        duplicates: 0,
        badSignature: 0,
        firstAt: null,
        lastOkAt: null,
        peakInFlight: 0,
        okTimes: [],
        ids: new Set(),
        inFlight: 0,
      };
      groups.set(name, g);
    }
    return g;
  };

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const g = group(path.split('/')[1] ?? '');
    g.inFlight++;
    g.peakInFlight = Math.max(g.peakInFlight, g.inFlight);
    g.firstAt ??= performance.now();
    try {
      const body = (await readBody(req)).toString('utf8');
      const verifier = verifiers.get(path);
      const id = String(req.headers['webhook-id'] ?? '');
      try {
        if (!verifier) throw new Error('no secret for this path');
        verifier.verify(body, {
          'webhook-id': id,
          'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
          'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
        });
      } catch {
        g.badSignature++;
        res.writeHead(401, { 'content-type': 'text/plain' }).end('bad signature');
        return;
      }
      if (g.ids.has(id)) g.duplicates++;
      else {
        g.ids.add(id);
        g.unique++;
      }
      g.ok++;
      g.lastOkAt = performance.now();
      g.okTimes.push(g.lastOkAt);
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } finally {
      g.inFlight--;
    }
  };

  const server = await serveOnLoopback('bench receiver', (req, res) => void handler(req, res));
  server.server.keepAliveTimeout = 30_000;
  return {
    port: server.port,
    close: server.close,
    url: (name, n) => `http://127.0.0.1:${server.port}/${name}/${n}`,
    setSecret: (name, n, secret) => void verifiers.set(`/${name}/${n}`, new Webhook(secret)),
    stats: (name) => {
      const { ids: _ids, inFlight: _f, ...s } = group(name);
      return { ...s, okTimes: [...s.okTimes] };
    },
  };
}
