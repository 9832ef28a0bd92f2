/**
 * `npm run bench:profile -- [read|write|jwt|deliver|deliver-batch]`: a CPU profile of the service under the bench's
 * load, through workerd's V8 inspector — where the time of one request goes, by function (self time) and by source
 * file. `deliver` profiles the delivery stage's work end to end: events published 4 at a time to 10 webhooks, with
 * wrangler.toml's queue consumers delivering them to the loopback receiver, until every delivery has ended.
 * `deliver-batch` publishes the same events 100 per `POST …/events/batch`, one call at a time, so the profile is
 * mostly the consumer's. `PROFILE_ISOLATE=<name>` profiles another isolate of the same workerd instead of the service
 * (`d1:db` is local D1's SQLite object; the busy line names them all). A tool for fixing a MISS, not part of
 * `npm run bench`: with its inspector on, workerd runs at about half the bench's rates (the read at 114 and 120 req/s
 * with it, 235 and 198 a minute later without it, on the same machine), so its rates compare only with each other.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { join } from 'node:path';
import { cpuSeconds, findWorkerdPid, runLoad } from './lib/measure.ts';
import { publishBatches, publishEvents } from './lib/publish.ts';
import { startReceiver } from './lib/receiver.ts';
import {
  actors,
  applyMigrations,
  buildService,
  bundle,
  createWebhooks,
  eventBody,
  OUT,
  provision,
  seedNotifications,
  startMiniflare,
} from './run.ts';

const what = process.argv[2] ?? 'read';
const delivering = what === 'deliver' || what === 'deliver-batch';
buildService();
await bundle('bench/baseline-worker.ts', join(OUT, 'baseline.js'));
await bundle('bench/metered-entry.ts', join(OUT, 'metered.js'));
const receiver = await startReceiver();
const port = 9300 + Math.floor(Math.random() * 500);
const A = await startMiniflare(delivering, port);
const db = await A.mf.getD1Database('DB', 'subject');
await applyMigrations(db);
const a = await actors(A.subject);
await provision(A.subject, a, 'bench-store');
if (what === 'read' || what === 'jwt')
  await seedNotifications(db, 'bench-store', 100_000, Date.parse('2026-01-01T00:00:00Z'));
await provision(A.subject, a, 'bench-write');
await createWebhooks(A.subject, a, 'bench-write', receiver, 'write', 3);
if (delivering) {
  await provision(A.subject, a, 'bench-deliver');
  await createWebhooks(A.subject, a, 'bench-deliver', receiver, 'deliver', 10);
}

const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{
  id: string;
  title: string;
  webSocketDebuggerUrl?: string;
}>;

/** A CDP session on one inspector target (one isolate). */
async function session(t: (typeof list)[number]) {
  const ws = new WebSocket(t.webSocketDebuggerUrl ?? `ws://127.0.0.1:${port}/${t.id}`);
  await new Promise((r) => ws.addEventListener('open', r, { once: true }));
  let nextId = 1;
  const pending = new Map<number, (v: any) => void>();
  ws.addEventListener('message', (e) => {
    const msg = JSON.parse(String(e.data));
    if (msg.id && pending.has(msg.id)) pending.get(msg.id)!(msg.result ?? msg.error);
  });
  const cdp = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<any>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { name: (t.title || t.id).replace('workerd: worker ', ''), ws, cdp };
}
const sessions = await Promise.all(list.map(session));
// `PROFILE_ISOLATE=d1:db` reads another isolate's profile (e.g. local D1's) instead of the service's.
const profiled = process.env.PROFILE_ISOLATE ?? 'core:user:subject';
const main = sessions.find((x) => x.name === profiled) ?? sessions.find((x) => x.name.includes(profiled));
if (!main)
  throw new Error(`profile: no isolate named ${profiled}; there are ${sessions.map((x) => x.name).join(', ')}`);

const specs: Record<string, Parameters<typeof runLoad>[0]> = {
  read: {
    method: 'GET',
    url: `${A.subject}/v2/handles/bench-store/notifications?limit=50`,
    headers: { authorization: `Bearer ${a.pat}` },
    concurrency: 8,
    durationMs: 4000,
  },
  jwt: {
    method: 'GET',
    url: `${A.subject}/v2/handles/bench-store/notifications?limit=50`,
    headers: { authorization: `Bearer ${a.ownerJwt}` },
    concurrency: 8,
    durationMs: 4000,
  },
  write: {
    method: 'POST',
    url: `${A.subject}/v2/handles/bench-write/events`,
    headers: { authorization: `Bearer ${a.pat}` },
    body: () => eventBody(1),
    concurrency: 8,
    durationMs: 4000,
  },
};
/**
 * The delivery stage's work: `events` publishes 4 at a time (100 per call for `deliver-batch`), then waiting until none
 * of their deliveries is open.
 */
async function deliverAll(events: number, from: number) {
  const started = performance.now();
  // The bench's own publishers (bench/lib/publish.ts): 4 in flight one event each, or 100 per call one call at a time.
  const body = (i: number) => eventBody(from + i);
  if (what === 'deliver-batch') await publishBatches(A.subject, a.pat, 'bench-deliver', events, body);
  else await publishEvents(A.subject, a.pat, ['bench-deliver'], events, body);
  const ingestMs = performance.now() - started;
  for (;;) {
    const open = await db
      .prepare(
        `SELECT count(*) AS n FROM deliveries WHERE handle = 'bench-deliver' AND status IN ('pending', 'queued', 'retrying')`,
      )
      .first<{ n: number }>();
    if (!open?.n) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ingestMs, totalMs: performance.now() - started };
}

const spec = specs[what];
if (spec) await runLoad({ ...spec, durationMs: 1000 }, findWorkerdPid());
else await deliverAll(20, 0);
for (const x of sessions) {
  await x.cdp('Profiler.enable');
  await x.cdp('Profiler.setSamplingInterval', { interval: 200 });
  await x.cdp('Profiler.start');
}
let result: { rps: number; cpuUsPerReq: number };
if (spec) result = await runLoad(spec, A.pid);
else {
  const events = 300;
  const cpu0 = cpuSeconds(A.pid);
  const t = await deliverAll(events, 1000);
  const deliveries = events * 10;
  result = { rps: (deliveries * 1000) / t.totalMs, cpuUsPerReq: ((cpuSeconds(A.pid) - cpu0) * 1e6) / deliveries };
  console.log(
    `deliver: ${deliveries} deliveries in ${(t.totalMs / 1000).toFixed(1)} s (ingest ${(t.ingestMs / 1000).toFixed(1)} s)`,
  );
}
const profiles = await Promise.all(
  sessions.map(async (x) => ({ name: x.name, profile: (await x.cdp('Profiler.stop')).profile })),
);
const { profile } = profiles.find((p) => p.name === main.name)!;
// Busy samples per isolate (everything but idle): where workerd's CPU goes, beyond the service's own isolate.
type P = { nodes: Array<{ id: number; callFrame: { functionName: string }; hitCount: number }> };
const busy = profiles
  .map((p) => ({
    name: p.name,
    busy:
      (p.profile as P | undefined)?.nodes
        .filter((n) => n.callFrame.functionName !== '(idle)')
        .reduce((s, n) => s + n.hitCount, 0) ?? 0,
  }))
  .filter((x) => x.busy > 0)
  .sort((x, y) => y.busy - x.busy);
console.log('busy samples per isolate (200 µs each):', busy.map((x) => `${x.name} ${x.busy}`).join(', '));
const [unit, units] = spec ? ['request', 'req'] : ['delivery', 'deliveries'];
console.log(`${what}: ${result.rps.toFixed(0)} ${units}/s, ${result.cpuUsPerReq.toFixed(0)} µs CPU per ${unit}`);
writeFileSync(join(OUT, `${what}.cpuprofile`), JSON.stringify(profile));

type Node = {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount: number;
  children?: number[];
};
const nodes = new Map<number, Node>((profile.nodes as Node[]).map((n) => [n.id, n]));
const total = (profile.nodes as Node[]).reduce((s, n) => s + n.hitCount, 0);
// The service is minified (wrangler.toml): its frames are named through the bundle's source map, as
// `<original file>:<line> <original name>`, and its self time is also added up per original source file.
const map = new SourceMap(JSON.parse(readFileSync(join(OUT, 'service', 'index.js.map'), 'utf8')));
const frameName = (f: Node['callFrame']) => {
  if (f.url.endsWith('index.js') && f.lineNumber >= 0) {
    const e = map.findEntry(f.lineNumber, f.columnNumber) as {
      originalSource?: string;
      originalLine?: number;
      name?: string;
    };
    if (e.originalSource) {
      const file = e.originalSource.replace(/^.*?(node_modules\/|src\/)/, '$1');
      return { file, name: `${file}:${(e.originalLine ?? 0) + 1} ${e.name ?? (f.functionName || '(anon)')}` };
    }
  }
  const file = f.url ? f.url.split('/').slice(-1)[0]! : '(native)';
  return { file, name: `${f.functionName || '(anon)'} ${file}:${f.lineNumber}` };
};
const self = new Map<string, number>();
const byFile = new Map<string, number>();
for (const n of nodes.values()) {
  const { file, name } = frameName(n.callFrame);
  self.set(name, (self.get(name) ?? 0) + n.hitCount);
  byFile.set(file, (byFile.get(file) ?? 0) + n.hitCount);
}
// Inclusive time per function (each sample counted once per distinct function on its stack).
const parent = new Map<number, number>();
for (const n of nodes.values()) for (const c of n.children ?? []) parent.set(c, n.id);
const inclusive = new Map<string, number>();
for (const n of nodes.values()) {
  if (!n.hitCount) continue;
  const seen = new Set<string>();
  for (let cur: number | undefined = n.id; cur !== undefined; cur = parent.get(cur)) {
    const f = frameName(nodes.get(cur)!.callFrame).name;
    if (!seen.has(f)) {
      seen.add(f);
      inclusive.set(f, (inclusive.get(f) ?? 0) + n.hitCount);
    }
  }
}
const top = (m: Map<string, number>, k: number) =>
  [...m.entries()]
    .sort((x, y) => y[1] - x[1])
    .slice(0, k)
    .map(([n, c]) => `${((100 * c) / total).toFixed(1).padStart(5)}%  ${n}`)
    .join('\n');
console.log(`\nself time (of ${total} samples):\n${top(self, 30)}\n\ninclusive:\n${top(inclusive, 45)}`);
console.log(`\nself time by source file:\n${top(byFile, 25)}`);
for (const x of sessions) x.ws.close();
await A.mf.dispose();
await receiver.close();
