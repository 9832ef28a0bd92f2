/**
 * `npm run bench`: the service's performance as ratios against baselines measured in the same round, on the same
 * runtime (docs/performance.md). Loopback only, bounded, a progress line per stage; prints a markdown table and writes it as JSON
 * to bench/results/latest.json (and the table to bench/results/latest.md; a --quick run writes quick.json/quick.md).
 *
 * How: the Worker is bundled exactly as production ships it (`wrangler deploy --dry-run --outdir`, which also gives
 * the Bundle row) and run through Miniflare's API — no wrangler dev proxy — next to two other Workers in the same
 * workerd: the baselines (bench/baseline-worker.ts) and a metered build of the service (bench/metered-entry.ts) that
 * counts D1 round trips, rows and queue sends. All three share one D1 database. Each Worker gets a direct socket on
 * 127.0.0.1, and one Node load generator (fixed concurrency, keep-alive) drives subject and baseline alike, in
 * interleaved rounds; the report gives medians. workerd's CPU time comes from /proc around each window.
 *
 * Phase A (API, fan-out, D1 cost) runs with no queue consumers, like the baseline's queue, so background deliveries
 * do not land in API windows; phase B (delivery) starts a fresh workerd (D1 and queues in memory, migrations applied
 * again) with wrangler.toml's queue consumers. Local storage is kept on tmpfs where there is one
 * (bench/lib/storage-dir.ts): a disk's fsync would otherwise stall workerd's one thread.
 *
 * Phase C (bench/shards.ts) runs the same publish and delivery work on 1 data shard and on 2, side by side.
 *
 * Options: --quick (fewer, shorter rounds: a smoke run, not for the README), --rounds N, --seconds S, --render (rebuild
 * the targets and the table from bench/results/latest.json without measuring again), --storage-only and
 * --shards-only (one stage, added to the last run's figures).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { SignJWT } from 'jose';
import { convertV4MiniflareOptions, Miniflare, type V4WorkerOptions as WorkerOptions } from 'miniflare';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';
import { encodeCursor } from '../src/lib/pagination.ts';
import { cpuSeconds, findWorkerdPid, type LoadResult, median, runLoad, send } from './lib/measure.ts';
import { publishBatches, publishEvents } from './lib/publish.ts';
import { type Receiver, startReceiver } from './lib/receiver.ts';
import { useMemoryStorage } from './lib/storage-dir.ts';
import { shardsStage, shardsTable } from './shards.ts';
import { capacityTable, storageStage } from './storage.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const OUT = join(ROOT, 'bench', '.out');
const RESULTS = join(ROOT, 'bench', 'results');
const WRANGLER = join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js');

const args = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    render: { type: 'boolean', default: false },
    'storage-only': { type: 'boolean', default: false },
    'shards-only': { type: 'boolean', default: false },
  },
  strict: false,
}).values as {
  quick?: boolean;
  rounds?: string;
  seconds?: string;
  render?: boolean;
  'storage-only'?: boolean;
  'shards-only'?: boolean;
};
/** Events of the storage stage (bytes per event with 3 webhooks). */
const STORAGE_EVENTS = args.quick ? 300 : 1_000;
const ROUNDS = Number(args.rounds ?? (args.quick ? 2 : 5));
const WINDOW_MS = Number(args.seconds ?? (args.quick ? 1 : 2.5)) * 1000;
const CONCURRENCY = 8;
const FEED_ROWS = 100_000;
const FANOUT_WEBHOOKS = 1_000;
const DELIVERY_WEBHOOKS = 10;
const DELIVERIES = args.quick ? 2_000 : 10_000;
const DELIVERY_ROUNDS = args.quick ? 1 : 2;

// Prices (USD, Workers Paid, beyond the included amounts): https://developers.cloudflare.com/d1/platform/pricing/ and
// https://developers.cloudflare.com/queues/platform/pricing/ (an operation per 64 KB written, read or deleted; a
// delivered message is 3 operations).
const PRICE = { d1RowRead: 0.001 / 1e6, d1RowWritten: 1.0 / 1e6, queueOperation: 0.4 / 1e6, queueOpsPerMessage: 3 };

const JWT_SECRET = 'bench-jwt-secret-that-is-long-enough-for-hs256-000000';
const ENCRYPTION_KEY = Buffer.alloc(32, 42).toString('base64');
const DB_ID = 'gharart-notify-bench';

/** Where Miniflare keeps local D1, the rate limiter and the Durable Objects: in memory (bench/lib/storage-dir.ts). */
const STORAGE = useMemoryStorage();

const t0 = performance.now();
function progress(stage: string, message: string) {
  console.log(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${stage}: ${message}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Build
// ---------------------------------------------------------------------------------------------------------------

interface BundleFigures {
  rawKiB: number;
  gzipKiB: number;
  wranglerReport: string | null;
}

export function buildService(): BundleFigures {
  const outdir = join(OUT, 'service');
  const output = execFileSync(process.execPath, [WRANGLER, 'deploy', '--dry-run', '--outdir', outdir], {
    cwd: ROOT,
    env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', WRANGLER_LOG: 'warn' },
    encoding: 'utf8',
  });
  const js = readFileSync(join(outdir, 'index.js'));
  return {
    rawKiB: js.length / 1024,
    gzipKiB: gzipSync(js, { level: 9 }).length / 1024,
    wranglerReport: /Total Upload:[^\n]*/.exec(output)?.[0]?.trim() ?? null,
  };
}

export async function bundle(entry: string, outfile: string) {
  await build({
    entryPoints: [join(ROOT, entry)],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['module', 'main'],
    external: ['node:*', 'cloudflare:*'],
    logLevel: 'warning',
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Miniflare
// ---------------------------------------------------------------------------------------------------------------

/** The D1 binding Miniflare hands to Node (`mf.getD1Database`). */
type D1 = Awaited<ReturnType<Miniflare['getD1Database']>>;

const base = unstable_getMiniflareWorkerOptions(join(ROOT, 'wrangler.toml')).workerOptions as WorkerOptions &
  Record<string, unknown>;

/** The delivery queues wrangler.toml binds (`DELIVERIES_QUEUE_<n>`). */
const DELIVERY_QUEUE_COUNT = Object.keys((base.queueProducers ?? {}) as Record<string, unknown>).filter((b) =>
  /^DELIVERIES_QUEUE_\d+$/.test(b),
).length;

/** wrangler.toml's bindings, with the bench's overrides: throttles and caps raised so they measure cost, not limits. */
function serviceOptions(name: string, scriptPath: string, consumers: boolean): WorkerOptions {
  const ratelimits = Object.fromEntries(
    Object.entries(
      (base.ratelimits ?? {}) as Record<string, { namespace_id: string; simple: { period?: 10 | 60 } }>,
    ).map(([k, v]) => [
      k,
      { namespace_id: v.namespace_id, simple: { limit: 100_000_000, period: v.simple.period ?? 60 } },
    ]),
  );
  return {
    ...base,
    name,
    modules: true,
    scriptPath,
    modulesRules: undefined,
    cronTriggers: [],
    bindings: {
      ...(base.bindings as Record<string, string>),
      ENVIRONMENT: 'bench',
      ALLOW_INSECURE_WEBHOOK_TARGETS: 'true',
      DAILY_WRITE_LIMIT: '100000000',
      MAX_WEBHOOKS_PER_HANDLE: String(FANOUT_WEBHOOKS),
      JWT_SECRET,
      ENCRYPTION_KEY,
    },
    ratelimits,
    d1Databases: { DB: DB_ID },
    queueConsumers: consumers ? (base.queueConsumers as WorkerOptions['queueConsumers']) : {},
    unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
  } as WorkerOptions;
}

export async function startMiniflare(consumers: boolean, inspectorPort?: number) {
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      ...(inspectorPort === undefined ? {} : { inspectorPort }),
      // The service logs one JSON line per request (production behaviour, so it stays in the measured cost); the bench
      // drops the info lines and passes warnings and errors through.
      handleStructuredLogs(log) {
        if (log.level !== 'info' && log.level !== 'log' && log.level !== 'debug') console.error(log.message);
      },
      workers: [
        serviceOptions('subject', join(OUT, 'service', 'index.js'), consumers),
        serviceOptions('metered', join(OUT, 'metered.js'), false),
        {
          name: 'baseline',
          modules: true,
          scriptPath: join(OUT, 'baseline.js'),
          compatibilityDate: base.compatibilityDate,
          compatibilityFlags: base.compatibilityFlags,
          d1Databases: { DB: DB_ID },
          queueProducers: { BASELINE_QUEUE: 'bench-baseline' },
          unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
        },
      ],
    }),
  );
  await mf.ready;
  const url = async (w: string) => (await mf.unsafeGetDirectURL(w)).origin;
  return {
    mf,
    subject: await url('subject'),
    metered: await url('metered'),
    baseline: await url('baseline'),
    pid: findWorkerdPid(),
  };
}

/**
 * The Worker and its metered build with the control plane `DB` and `shards` data shards `SHARD_0 …` of their own (the
 * shards stage, bench/shards.ts): an instance per configuration, with or without wrangler.toml's queue consumers.
 */
export async function startShardedMiniflare(shards: number, consumers: boolean) {
  const tag = `s${shards}-${consumers ? 'c' : 'p'}`;
  const d1Databases = {
    DB: `${DB_ID}-${tag}-control`,
    ...Object.fromEntries(Array.from({ length: shards }, (_, i) => [`SHARD_${i}`, `${DB_ID}-${tag}-shard-${i}`])),
  };
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      handleStructuredLogs(log) {
        if (log.level !== 'info' && log.level !== 'log' && log.level !== 'debug') console.error(log.message);
      },
      workers: [
        { ...serviceOptions('subject', join(OUT, 'service', 'index.js'), consumers), d1Databases },
        { ...serviceOptions('metered', join(OUT, 'metered.js'), false), d1Databases },
      ],
    }),
  );
  await mf.ready;
  const url = async (w: string) => (await mf.unsafeGetDirectURL(w)).origin;
  return { mf, shards, subject: await url('subject'), metered: await url('metered') };
}

export async function applyMigrations(db: D1) {
  const files = readdirSync(join(ROOT, 'migrations'))
    .filter((f) => f.endsWith('.sql'))
    .sort();
  for (const f of files) {
    const sqls = readFileSync(join(ROOT, 'migrations', f), 'utf8')
      .split('--> statement-breakpoint')
      .map((s) => s.trim())
      .filter(Boolean);
    await db.batch(sqls.map((s) => db.prepare(s)));
  }
  return files.length;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * `count` notifications for `handle` in one INSERT … SELECT over a recursive CTE (as test/support/seed.ts does): row n
 * is minted at baseMs + n ms with a valid, time-ordered id; type, severity and status cycle.
 */
export async function seedNotifications(db: D1, handle: string, count: number, baseMs: number) {
  const timeChars = Array.from(
    { length: 10 },
    (_, k) => `substr('${CROCKFORD}', ((ms >> ${5 * (9 - k)}) & 31) + 1, 1)`,
  ).join(' || ');
  const pick = (values: string[], expr: string) =>
    `CASE ${expr} ${values.map((v, i) => `WHEN ${i} THEN '${v}'`).join(' ')} END`;
  const ts = `strftime('%Y-%m-%dT%H:%M:%fZ', ms / 1000.0, 'unixepoch')`;
  await db
    .prepare(
      `WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?2),
       rows AS (SELECT n, ?3 + n AS ms FROM seq)
       INSERT INTO notifications (id, handle, type, severity, data, source, source_event_id, occurred_at, status,
         recipient_count, recipients, created_at, updated_at)
       SELECT 'ntf_' || ${timeChars} || 'BENCH0' || printf('%010d', n), ?1,
         ${pick(['order.created', 'order.paid', 'order.fulfilled', 'payment.failed', 'campaign.started'], 'n % 5')},
         ${pick(['info', 'warning', 'critical'], 'n % 3')},
         '{"orderId":"ord_' || n || '","amount":2499.0,"currency":"INR"}', 'bench-seed', NULL, ${ts},
         ${pick(['delivered', 'delivering', 'partially_failed', 'failed', 'no_recipients', 'undeliverable'], '(n / 3) % 6')},
         0, '{}', ${ts}, ${ts}
       FROM rows`,
    )
    .bind(handle, count, baseMs)
    .run();
}

// ---------------------------------------------------------------------------------------------------------------
// API helpers
// ---------------------------------------------------------------------------------------------------------------

type Json = Record<string, any>;
const USER_SCOPES = 'notifications:read notifications:write webhooks:read webhooks:write events:publish support:write';

export function jwt(sub: string, scope: string, extra: Record<string, unknown> = {}) {
  return new SignJWT({ scope, ...extra })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(JWT_SECRET));
}

export async function api(
  origin: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Json; etag: string | undefined }> {
  const r = await send(
    method,
    `${origin}${path}`,
    { authorization: `Bearer ${token}`, ...headers },
    body === undefined ? undefined : JSON.stringify(body),
  );
  const etag = r.headers.etag;
  return {
    status: r.status,
    body: r.text ? (JSON.parse(r.text) as Json) : {},
    etag: typeof etag === 'string' ? etag : undefined,
  };
}

function expectStatus(what: string, r: { status: number; body: Json }, ...ok: number[]) {
  if (!ok.includes(r.status))
    throw new Error(`bench: ${what} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 500)}`);
}

/** Runs `fn` over `items` with `concurrency` at a time. */
async function pool<T, R>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!, i);
    }),
  );
  return out;
}

export interface Actors {
  service: string;
  ownerId: string;
  ownerJwt: string;
  pat: string;
}

export async function actors(subject: string): Promise<Actors> {
  const ownerId = 'user_bench_owner';
  const ownerJwt = await jwt(ownerId, USER_SCOPES);
  const service = await jwt('svc:control-plane', 'internal:provision', { handles: '*' });
  const tok = await api(subject, 'POST', '/v2/tokens', ownerJwt, {
    name: 'bench',
    scopes: USER_SCOPES.split(' '),
    expiresInDays: 1,
  });
  expectStatus('POST /v2/tokens', tok, 201);
  return { service, ownerId, ownerJwt, pat: String(tok.body.token) };
}

export async function provision(subject: string, a: Actors, handle: string) {
  const r = await api(subject, 'PUT', `/v2/internal/handles/${handle}`, a.service, {
    displayName: `Bench ${handle}`,
    ownerUserId: a.ownerId,
  });
  expectStatus(`provision ${handle}`, r, 200, 201);
}

export async function createWebhooks(
  origin: string,
  a: Actors,
  handle: string,
  receiver: Receiver,
  group: string,
  count: number,
) {
  return pool(
    Array.from({ length: count }, (_, i) => i),
    6,
    async (i) => {
      const r = await api(origin, 'POST', `/v2/handles/${handle}/webhooks`, a.pat, {
        url: receiver.url(group, i),
        description: `bench ${group} ${i}`,
      });
      expectStatus(`POST webhook ${group}/${i}`, r, 201);
      receiver.setSecret(group, i, String(r.body.secret));
      return { id: String(r.body.id), secret: String(r.body.secret), url: receiver.url(group, i) };
    },
  );
}

export const eventBody = (n: number) =>
  JSON.stringify({
    type: 'order.created',
    data: { orderId: `ord_${n}`, amount: 2499.0, currency: 'INR', items: 3, customer: 'cus_8812' },
  });

// ---------------------------------------------------------------------------------------------------------------
// Stages
// ---------------------------------------------------------------------------------------------------------------

interface Paired {
  subject: LoadResult[];
  baseline: LoadResult[];
}

function summary(results: LoadResult[]) {
  return {
    rps: median(results.map((r) => r.rps)),
    cpuUsPerReq: median(results.map((r) => r.cpuUsPerReq)),
    p50: median(results.map((r) => r.p50)),
    p99: median(results.map((r) => r.p99)),
    requests: results.reduce((s, r) => s + r.requests, 0),
    errors: results.reduce((s, r) => s + r.errors, 0),
  };
}

/** Per-round ratios (subject ÷ baseline of the same round), then their median: the noise of a round cancels out. */
function pairedRatios(p: Paired) {
  return {
    rpsRatio: median(p.subject.map((s, i) => s.rps / p.baseline[i]!.rps)),
    cpuRatio: median(p.subject.map((s, i) => s.cpuUsPerReq / p.baseline[i]!.cpuUsPerReq)),
    perRound: p.subject.map((s, i) => +(s.rps / p.baseline[i]!.rps).toFixed(3)),
  };
}

function checkErrors(stage: string, results: LoadResult[]) {
  const bad = results.find((r) => r.errors > 0);
  if (bad) throw new Error(`bench: ${stage} had ${bad.errors} failed requests, first: ${bad.firstError}`);
}

async function meteredCall(
  metered: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  await send('POST', `${metered}/__bench/reset`, {}, '{}');
  const r = await api(metered, method, path, token, body, headers);
  // Let waitUntil work (a PAT's last-used touch) land before reading the counters.
  await new Promise((res) => setTimeout(res, 30));
  const s = JSON.parse((await send('GET', `${metered}/__bench/stats`)).text) as MeteredStats;
  return { response: r, stats: s };
}

/** What bench/metered-entry.ts counted for one request (see its `Stats`). */
interface MeteredStats {
  /** Of latency: calls in flight at the same time count as one. */
  d1RoundTrips: number;
  d1Calls: number;
  peakInFlight: number;
  d1WriteRoundTrips: number;
  rowsRead: number;
  rowsWritten: number;
  statements: Array<{ sql: string; rowsRead: number; rowsWritten: number }>;
  sendCalls: number;
  sendBatchCalls: number;
  messagesSent: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------------------------

async function main() {
  mkdirSync(OUT, { recursive: true });
  mkdirSync(RESULTS, { recursive: true });

  progress('build', 'wrangler deploy --dry-run --outdir bench/.out/service; esbuild baseline and metered builds');
  const bundleFigures = buildService();
  await bundle('bench/baseline-worker.ts', join(OUT, 'baseline.js'));
  await bundle('bench/metered-entry.ts', join(OUT, 'metered.js'));
  progress(
    'build',
    `service bundle ${bundleFigures.rawKiB.toFixed(1)} KiB raw, ${bundleFigures.gzipKiB.toFixed(1)} KiB gzipped (${bundleFigures.wranglerReport ?? 'no wrangler size line'})`,
  );

  const receiver = await startReceiver();
  const A = await startMiniflare(false);
  const results: Json = {
    meta: {
      startedAt: new Date().toISOString(),
      node: process.version,
      cpus: (await import('node:os')).cpus().length,
      rounds: ROUNDS,
      windowMs: WINDOW_MS,
      concurrency: CONCURRENCY,
      quick: args.quick,
      storage: STORAGE,
    },
  };
  try {
    const db = await A.mf.getD1Database('DB', 'subject');
    const migrations = await applyMigrations(db);
    const a = await actors(A.subject);
    progress(
      'setup',
      `workerd pid ${A.pid}; ${migrations} migration(s) applied; PAT minted through POST /v2/tokens; storage ${STORAGE}`,
    );

    // --- seed ------------------------------------------------------------------------------------------------
    const READ = 'bench-store';
    await provision(A.subject, a, READ);
    const seedStart = performance.now();
    await seedNotifications(db, READ, FEED_ROWS, Date.parse('2026-01-01T00:00:00Z'));
    await db.prepare('ANALYZE').run();
    progress(
      'seed',
      `${FEED_ROWS.toLocaleString('en')} notifications for ${READ} in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`,
    );

    // --- API read + auth ---------------------------------------------------------------------------------------
    const feed = `/v2/handles/${READ}/notifications?limit=50`;
    const read = {
      baseline: { method: 'GET' as const, url: `${A.baseline}/read?handle=${READ}` },
      pat: { method: 'GET' as const, url: `${A.subject}${feed}`, headers: { authorization: `Bearer ${a.pat}` } },
      jwt: { method: 'GET' as const, url: `${A.subject}${feed}`, headers: { authorization: `Bearer ${a.ownerJwt}` } },
    };
    const spec = (
      s: { method: 'GET' | 'POST'; url: string; headers?: Record<string, string>; body?: () => string },
      ms = WINDOW_MS,
    ) => ({ ...s, concurrency: CONCURRENCY, durationMs: ms });
    for (const s of Object.values(read)) await runLoad(spec(s, 500), A.pid); // warm-up
    const readRuns: Paired & { jwt: LoadResult[] } = { subject: [], baseline: [], jwt: [] };
    for (let r = 0; r < ROUNDS; r++) {
      readRuns.baseline.push(await runLoad(spec(read.baseline), A.pid));
      readRuns.subject.push(await runLoad(spec(read.pat), A.pid));
      readRuns.jwt.push(await runLoad(spec(read.jwt), A.pid));
      progress(
        'API read',
        `round ${r + 1}/${ROUNDS}: baseline ${readRuns.baseline[r]!.rps.toFixed(0)} req/s, PAT ${readRuns.subject[r]!.rps.toFixed(0)} req/s, JWT ${readRuns.jwt[r]!.rps.toFixed(0)} req/s`,
      );
    }
    checkErrors('API read', [...readRuns.subject, ...readRuns.baseline, ...readRuns.jwt]);
    results.apiRead = {
      subject: summary(readRuns.subject),
      baseline: summary(readRuns.baseline),
      ...pairedRatios(readRuns),
    };
    results.auth = {
      pat: summary(readRuns.subject),
      jwt: summary(readRuns.jwt),
      jwtOverPat: median(readRuns.jwt.map((j, i) => j.rps / readRuns.subject[i]!.rps)),
    };

    // --- API write ---------------------------------------------------------------------------------------------
    const WRITE = 'bench-write';
    await provision(A.subject, a, WRITE);
    await createWebhooks(A.subject, a, WRITE, receiver, 'write', 3);
    let seq = 0;
    const write = {
      baseline: {
        method: 'POST' as const,
        url: `${A.baseline}/write`,
        body: () => JSON.stringify({ handle: WRITE, ...JSON.parse(eventBody(++seq)) }),
      },
      subject: {
        method: 'POST' as const,
        url: `${A.subject}/v2/handles/${WRITE}/events`,
        headers: { authorization: `Bearer ${a.pat}` },
        body: () => eventBody(++seq),
      },
    };
    for (const s of Object.values(write)) await runLoad(spec(s, 500), A.pid);
    const writeRuns: Paired = { subject: [], baseline: [] };
    for (let r = 0; r < ROUNDS; r++) {
      writeRuns.baseline.push(await runLoad(spec(write.baseline), A.pid));
      writeRuns.subject.push(await runLoad(spec(write.subject), A.pid));
      progress(
        'API write',
        `round ${r + 1}/${ROUNDS}: baseline ${writeRuns.baseline[r]!.rps.toFixed(0)} req/s, POST events ${writeRuns.subject[r]!.rps.toFixed(0)} req/s`,
      );
    }
    checkErrors('API write', [...writeRuns.subject, ...writeRuns.baseline]);
    results.apiWrite = {
      subject: summary(writeRuns.subject),
      baseline: summary(writeRuns.baseline),
      ...pairedRatios(writeRuns),
    };
    // The baseline's rows are not the service's: remove them so they do not sit in the write handle's feed.
    await db.prepare(`DELETE FROM notifications WHERE handle = ?1 AND source = 'bench-baseline'`).bind(WRITE).run();

    // --- Fan-out -----------------------------------------------------------------------------------------------
    const FAN = 'bench-fanout';
    await provision(A.subject, a, FAN);
    const hooksStart = performance.now();
    await createWebhooks(A.subject, a, FAN, receiver, 'fanout', FANOUT_WEBHOOKS);
    progress(
      'Fan-out',
      `${FANOUT_WEBHOOKS} webhooks created through the API in ${((performance.now() - hooksStart) / 1000).toFixed(1)} s`,
    );
    const fanTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      const r = await api(A.subject, 'POST', `/v2/handles/${FAN}/events`, a.pat, JSON.parse(eventBody(900_000 + i)));
      expectStatus('fan-out event', r, 202);
      const queued = (r.body.recipients as Json[]).filter((x) => x.status === 'queued').length;
      if (queued !== FANOUT_WEBHOOKS) throw new Error(`bench: fan-out queued ${queued} of ${FANOUT_WEBHOOKS}`);
      fanTimes.push(performance.now() - start);
    }
    const fan = await meteredCall(
      A.metered,
      'POST',
      `/v2/handles/${FAN}/events`,
      a.pat,
      JSON.parse(eventBody(900_100)),
    );
    expectStatus('metered fan-out event', fan.response, 202);
    const fanQueued = (fan.response.body.recipients as Json[])
      .filter((x) => x.status === 'queued')
      .map((x) => String(x.deliveryId));
    results.fanout = {
      webhooks: FANOUT_WEBHOOKS,
      msToAllEnqueued: median(fanTimes),
      runsMs: fanTimes.map((t) => +t.toFixed(1)),
      queued: fanQueued.length,
      sendBatchCalls: fan.stats.sendBatchCalls,
      messagesSent: fan.stats.messagesSent,
      d1RoundTrips: fan.stats.d1RoundTrips,
      d1WriteRoundTrips: fan.stats.d1WriteRoundTrips,
      rowsRead: fan.stats.rowsRead,
      rowsWritten: fan.stats.rowsWritten,
    };
    progress(
      'Fan-out',
      `1 event → ${FANOUT_WEBHOOKS} webhooks: all enqueued in ${median(fanTimes).toFixed(0)} ms (median of 3), ${fan.stats.sendBatchCalls} sendBatch calls, ${fan.stats.d1WriteRoundTrips} write round trips of ${fan.stats.d1RoundTrips}`,
    );

    // --- D1 cost -----------------------------------------------------------------------------------------------
    results.d1 = await d1Costs(A, a, db, receiver, { READ, WRITE, FAN, fanQueued });
    progress(
      'D1 cost',
      `${results.d1.routes.length} routes, a consumer batch of ${results.d1.consumerBatch.messages}, one delivered event metered`,
    );
  } finally {
    await A.mf.dispose();
  }

  // --- Delivery (phase B) ------------------------------------------------------------------------------------
  const B = await startMiniflare(true);
  try {
    results.delivery = await deliveryStage(B, receiver);
    results.storage = await storageStage(B, receiver, await actors(B.subject), STORAGE_EVENTS, progress);
  } finally {
    await B.mf.dispose();
  }
  // --- Shards, 1 vs 2 (phase C) ----------------------------------------------------------------------------------
  try {
    results.shards = await shardsStage(receiver, shardsOptions(), progress);
  } finally {
    await receiver.close();
  }

  results.bundle = bundleFigures;
  results.meta.finishedAt = new Date().toISOString();
  results.meta.seconds = +((performance.now() - t0) / 1000).toFixed(1);
  results.targets = targets(results);
  const table = renderTable(results);
  results.table = table;
  // A smoke run never replaces the figures the README quotes.
  const name = args.quick ? 'quick' : 'latest';
  writeFileSync(join(RESULTS, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(RESULTS, `${name}.md`), `${table}\n`);
  console.log(`\n${table}\n`);
  progress('done', `bench/results/${name}.json written in ${results.meta.seconds} s`);
}

// ---------------------------------------------------------------------------------------------------------------
// D1 cost per route, per consumer batch, per delivered event
// ---------------------------------------------------------------------------------------------------------------

async function d1Costs(
  A: Awaited<ReturnType<typeof startMiniflare>>,
  a: Actors,
  db: D1,
  receiver: Receiver,
  h: { READ: string; WRITE: string; FAN: string; fanQueued: string[] },
) {
  const m = A.metered;
  const routes: Json[] = [];
  const measure = async (
    label: string,
    method: string,
    path: string,
    body?: unknown,
    token = a.pat,
    expect = [200, 201, 202, 204],
    headers: Record<string, string> = {},
  ) => {
    const { response, stats } = await meteredCall(m, method, path, token, body, headers);
    if (!expect.includes(response.status))
      console.warn(`! D1 cost: ${label} answered ${response.status}: ${JSON.stringify(response.body).slice(0, 300)}`);
    routes.push({
      route: label,
      status: response.status,
      d1RoundTrips: stats.d1RoundTrips,
      d1Calls: stats.d1Calls,
      peakInFlight: stats.peakInFlight,
      rowsRead: stats.rowsRead,
      rowsWritten: stats.rowsWritten,
      statements: stats.statements,
    });
    return { response, stats };
  };
  const H = `/v2/handles/${h.WRITE}`;

  // The feed at 100,000 rows: first page, a deep page (after 50,000 rows), a filtered page; and one by id. The first
  // page twice: the handle's first request in this isolate reads the directory before its shard; the second finds the
  // placement cached (30 s, docs/design.md#shards), as steady traffic does, and is the one the target row reads.
  await measure(
    'GET …/notifications?limit=50 (PAT, placement not yet cached)',
    'GET',
    `/v2/handles/${h.READ}/notifications?limit=50`,
  );
  const first = await measure(
    'GET …/notifications?limit=50 (PAT)',
    'GET',
    `/v2/handles/${h.READ}/notifications?limit=50`,
  );
  // The cursor of the 50,000th newest row, built the way the API builds cursors.
  const deepRow = await db
    .prepare(`SELECT id FROM notifications WHERE handle = ?1 ORDER BY id DESC LIMIT 1 OFFSET 50000`)
    .bind(h.READ)
    .first<{ id: string }>();
  const deepCursor = encodeCursor(deepRow!.id);
  await measure(
    'GET …/notifications?limit=50&cursor=<after 50,000> (PAT)',
    'GET',
    `/v2/handles/${h.READ}/notifications?limit=50&cursor=${encodeURIComponent(deepCursor)}`,
    undefined,
    a.pat,
    [200],
  );
  await measure(
    'GET …/notifications?limit=50&severity=critical (PAT)',
    'GET',
    `/v2/handles/${h.READ}/notifications?limit=50&severity=critical`,
  );
  await measure(
    'GET …/notifications?limit=50 (JWT)',
    'GET',
    `/v2/handles/${h.READ}/notifications?limit=50`,
    undefined,
    a.ownerJwt,
  );
  const someId = String((first.response.body.data as Json[])[7]!.id);
  await measure('GET …/notifications/{id}', 'GET', `/v2/handles/${h.READ}/notifications/${someId}`);

  // Every other route of the handle, as a PAT (JWT where only a JWT may call).
  await measure('GET /v2/health', 'GET', '/v2/health');
  await measure('GET /v2/openapi.json', 'GET', '/v2/openapi.json');
  await measure('GET /v2/event-types', 'GET', '/v2/event-types');
  await measure('GET /v2/tokens', 'GET', '/v2/tokens');
  const tok = await measure(
    'POST /v2/tokens (JWT)',
    'POST',
    '/v2/tokens',
    { name: 'bench-cost', scopes: ['notifications:read'] },
    a.ownerJwt,
  );
  await measure('DELETE /v2/tokens/{id} (JWT)', 'DELETE', `/v2/tokens/${tok.response.body.id}`, undefined, a.ownerJwt);
  await measure('GET /v2/handles/{h}', 'GET', H);
  await measure(
    'PUT /v2/internal/handles/{h} (service)',
    'PUT',
    `/v2/internal/handles/bench-cost`,
    { displayName: 'Bench cost', ownerUserId: a.ownerId },
    a.service,
  );
  await measure(
    'PUT …/members/{user} (service)',
    'PUT',
    `/v2/internal/handles/bench-cost/members/user_bench_viewer`,
    { role: 'viewer' },
    a.service,
  );
  await measure(
    'DELETE …/members/{user} (service)',
    'DELETE',
    `/v2/internal/handles/bench-cost/members/user_bench_viewer`,
    undefined,
    a.service,
  );
  await measure('GET …/webhooks', 'GET', `${H}/webhooks`);
  const wh = await measure('POST …/webhooks', 'POST', `${H}/webhooks`, { url: receiver.url('cost', 0) });
  receiver.setSecret('cost', 0, String(wh.response.body.secret));
  const whId = String(wh.response.body.id);
  await measure('GET …/webhooks/{id}', 'GET', `${H}/webhooks/${whId}`);
  await measure('PATCH …/webhooks/{id}', 'PATCH', `${H}/webhooks/${whId}`, { description: 'patched' });
  await measure('POST …/webhooks/{id}/test', 'POST', `${H}/webhooks/${whId}/test`, {});
  await measure('GET …/webhooks/{id}/deliveries', 'GET', `${H}/webhooks/${whId}/deliveries`);
  await measure('POST …/webhooks/{id}/rotate-secret', 'POST', `${H}/webhooks/${whId}/rotate-secret`, {});
  await measure(
    'POST …/webhooks/{id}/recover',
    'POST',
    `${H}/webhooks/${whId}/recover`,
    { since: new Date(Date.now() - 3_600_000).toISOString() },
    a.pat,
    [200, 202, 409],
  );
  await measure('DELETE …/webhooks/{id}', 'DELETE', `${H}/webhooks/${whId}`);
  const settings = await measure('GET …/notification-settings', 'GET', `${H}/notification-settings`);
  await measure(
    'PUT …/notification-settings (If-Match)',
    'PUT',
    `${H}/notification-settings`,
    {
      channels: { email: { enabled: true }, webhook: { enabled: true } },
      eventFilter: null,
      ownerFallback: 'critical',
    },
    a.pat,
    [200],
    { 'if-match': settings.response.etag ?? '*' },
  );
  await measure('POST …/notification-settings/evaluate', 'POST', `${H}/notification-settings/evaluate`, {
    eventType: 'order.created',
  });
  await measure('GET …/notifications/email-subscriptions', 'GET', `${H}/notifications/email-subscriptions`);
  const sub = await measure(
    'POST …/notifications/email-subscriptions',
    'POST',
    `${H}/notifications/email-subscriptions`,
    { email: 'bench@example.com' },
  );
  // Its first confirmation mail went out just now, and a resend within the minute answers 429 (the cooldown,
  // src/email/confirmation-limits.ts): that mail is dated two minutes back, so the resend itself is measured.
  await db
    .prepare('UPDATE email_subscriptions SET confirm_sent_at = ?2 WHERE id = ?1')
    .bind(sub.response.body.id, new Date(Date.now() - 120_000).toISOString())
    .run();
  await measure(
    'POST …/email-subscriptions/{id}/resend-confirmation',
    'POST',
    `${H}/notifications/email-subscriptions/${sub.response.body.id}/resend-confirmation`,
    {},
    a.pat,
    [200, 202],
  );
  await measure(
    'DELETE …/notifications/email-subscriptions/{id}',
    'DELETE',
    `${H}/notifications/email-subscriptions/${sub.response.body.id}`,
  );
  await measure('GET …/notifications/owner-default-email', 'GET', `${H}/notifications/owner-default-email`);
  await measure('PUT …/notifications/owner-default-email', 'PUT', `${H}/notifications/owner-default-email`, {
    email: 'owner@example.com',
  });
  await measure('GET …/health (delivery doctor)', 'GET', `${H}/health`);
  await measure('POST /v2/support/report', 'POST', '/v2/support/report', {
    handle: h.WRITE,
    summary: 'bench',
    details: 'How much does a support report cost?',
  });

  // The event path: one event matching 3 webhooks, ingested, then its deliveries consumed (real POSTs to the receiver).
  // A first event is delivered unmeasured: what is measured is the steady cost, the webhooks' health having been
  // written by it less than a minute ago (written at most once a minute while nothing changes; the first success of
  // a webhook adds 1 row per recipient: docs/performance.md#rows-and-bytes-of-one-event).
  const warm = await api(m, 'POST', `${H}/events`, a.pat, JSON.parse(eventBody(0)));
  const warmIds = (warm.body.recipients as Json[])
    .filter((x) => x.status === 'queued')
    .map((x) => String(x.deliveryId));
  await send('POST', `${m}/__bench/consume`, {}, JSON.stringify({ deliveryIds: warmIds }));
  const ingest = await measure('POST …/events (3 webhooks)', 'POST', `${H}/events`, JSON.parse(eventBody(1)));
  const ids = (ingest.response.body.recipients as Json[])
    .filter((x) => x.status === 'queued')
    .map((x) => String(x.deliveryId));
  await send('POST', `${m}/__bench/reset`, {}, '{}');
  const consumed = JSON.parse(
    (await send('POST', `${m}/__bench/consume`, {}, JSON.stringify({ deliveryIds: ids }))).text,
  ) as Json;
  const consumeStats = JSON.parse((await send('GET', `${m}/__bench/stats`)).text) as MeteredStats;
  const delivered = (await db
    .prepare(
      `SELECT count(*) AS n FROM deliveries WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'succeeded'`,
    )
    .bind(JSON.stringify(ids))
    .first<{ n: number }>())!.n;
  const perEvent = {
    recipients: ids.length,
    delivered,
    d1RoundTrips: ingest.stats.d1RoundTrips + consumeStats.d1RoundTrips,
    rowsRead: ingest.stats.rowsRead + consumeStats.rowsRead,
    rowsWritten: ingest.stats.rowsWritten + consumeStats.rowsWritten,
    ingestRowsWritten: ingest.stats.rowsWritten,
    consumerRowsWritten: consumeStats.rowsWritten,
    rowsWrittenPerDelivered: delivered ? (ingest.stats.rowsWritten + consumeStats.rowsWritten) / delivered : NaN,
    queueMessages: ids.length,
    consumerReport: consumed.report,
    ingestStatements: ingest.stats.statements,
    consumerStatements: consumeStats.statements,
  };
  const dollars = (p: typeof perEvent) =>
    p.rowsRead * PRICE.d1RowRead +
    p.rowsWritten * PRICE.d1RowWritten +
    p.queueMessages * PRICE.queueOpsPerMessage * PRICE.queueOperation;
  const perMillion = {
    d1RowsRead: perEvent.rowsRead * PRICE.d1RowRead * 1e6,
    d1RowsWritten: perEvent.rowsWritten * PRICE.d1RowWritten * 1e6,
    queues: perEvent.queueMessages * PRICE.queueOpsPerMessage * PRICE.queueOperation * 1e6,
    total: dollars(perEvent) * 1e6,
  };

  // Batch publish (docs/design.md#batch-publish): D1 round trips of one batch of 100 events (metered build), then
  // events/s over a few batches of 100 sent one after another; and the usage call's cost.
  const batchOf = (k: number) => ({
    events: Array.from({ length: 100 }, (_, i) => JSON.parse(eventBody(3_000_000 + k * 100 + i))),
  });
  const batched = await measure(
    'POST …/events/batch (100 events, 3 webhooks)',
    'POST',
    `${H}/events/batch`,
    batchOf(0),
  );
  await measure('GET …/usage', 'GET', `${H}/usage`);
  const BATCHES = 5;
  const started = performance.now();
  for (let k = 1; k <= BATCHES; k++) {
    const r = await api(A.subject, 'POST', `${H}/events/batch`, a.pat, batchOf(k));
    if (r.status !== 200 || r.body.stored !== 100) console.warn(`! batch publish ${k}: ${r.status} ${r.body.stored}`);
  }
  const batchPublish = {
    eventsPerBatch: 100,
    d1RoundTrips: batched.stats.d1RoundTrips,
    rowsWritten: batched.stats.rowsWritten,
    eventsPerSecond: (BATCHES * 100) / ((performance.now() - started) / 1000),
  };

  // A consumer batch of 100: deliveries of the metered fan-out event (queued, never consumed in phase A).
  const batchIds = h.fanQueued.slice(0, 100);
  await send('POST', `${m}/__bench/reset`, {}, '{}');
  const batchOut = JSON.parse(
    (await send('POST', `${m}/__bench/consume`, {}, JSON.stringify({ deliveryIds: batchIds }))).text,
  ) as Json;
  const batchStats = JSON.parse((await send('GET', `${m}/__bench/stats`)).text) as MeteredStats;
  const batchDelivered = (await db
    .prepare(
      `SELECT count(*) AS n FROM deliveries WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'succeeded'`,
    )
    .bind(JSON.stringify(batchIds))
    .first<{ n: number }>())!.n;

  return {
    routes,
    consumerBatch: {
      messages: batchIds.length,
      delivered: batchDelivered,
      d1RoundTrips: batchStats.d1RoundTrips,
      reportedD1RoundTrips: batchOut.report.d1RoundTrips,
      peakConcurrency: batchOut.report.peakConcurrency,
      receiverPeakInFlight: receiver.stats('fanout').peakInFlight,
      rowsRead: batchStats.rowsRead,
      rowsWritten: batchStats.rowsWritten,
      acked: batchOut.outcome.acked,
    },
    perEvent,
    batchPublish,
    dollarsPerMillionEvents: perMillion,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Delivery, end to end (phase B)
// ---------------------------------------------------------------------------------------------------------------

async function deliveryStage(B: Awaited<ReturnType<typeof startMiniflare>>, receiver: Receiver) {
  const db = await B.mf.getD1Database('DB', 'subject');
  // Phase A's database is not needed here (each delivery round has its own handle); D1 state is kept in memory.
  const migrated = await db
    .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'access_tokens'`)
    .first();
  if (!migrated) await applyMigrations(db);
  const a = await actors(B.subject);
  const events = DELIVERIES / DELIVERY_WEBHOOKS;
  const rounds: Json[] = [];
  const baselineRounds: Json[] = [];

  const runBaseline = async (r: number) => {
    const group = `raw${r}`;
    const targets = Array.from({ length: DELIVERY_WEBHOOKS }, (_, i) => {
      const secret = `whsec_${Buffer.alloc(32, r * 16 + i + 1).toString('base64')}`;
      receiver.setSecret(group, i, secret);
      return { url: receiver.url(group, i), secret };
    });
    const cpu0 = cpuSeconds(B.pid);
    const start = performance.now();
    let delivered = 0;
    // One invocation per 100 deliveries (a consumer batch's worth), one invocation at a time, 6 fetches at once.
    for (let i = 0; i < DELIVERIES / 100; i++) {
      const res = await send(
        'POST',
        `${B.baseline}/raw-deliver`,
        {},
        JSON.stringify({ targets, n: 100, prefix: `msg_raw${r}_${i}_`, payload: JSON.parse(eventBody(i)).data }),
      );
      delivered += (JSON.parse(res.text) as { delivered: number }).delivered;
    }
    const s = receiver.stats(group);
    const seconds = ((s.lastOkAt ?? performance.now()) - start) / 1000;
    const out = {
      delivered,
      unique: s.unique,
      seconds,
      perSecond: s.unique / seconds,
      workerdCpuMsPerDelivery: ((cpuSeconds(B.pid) - cpu0) * 1000) / Math.max(1, s.unique),
      receiverPeakInFlight: s.peakInFlight,
    };
    baselineRounds.push(out);
    progress(
      'Delivery',
      `round ${r + 1}/${DELIVERY_ROUNDS} baseline: ${s.unique} raw signed POSTs in ${seconds.toFixed(1)} s = ${out.perSecond.toFixed(0)}/s`,
    );
  };

  const batchRounds: Json[] = [];
  /**
   * One service round: events published one per request (`single`, the target's figure), or 100 per request
   * (`batch`, beside it: the same consumer with ingest's per-request cost taken out of the clock).
   */
  const runSubject = async (r: number, mode: 'single' | 'batch' = 'single') => {
    const handle = mode === 'single' ? `bench-delivery-${r}` : `bench-delivery-batch-${r}`;
    const group = mode === 'single' ? `dlv${r}` : `dlvb${r}`;
    const provisioned = await api(B.subject, 'PUT', `/v2/internal/handles/${handle}`, a.service, {
      displayName: handle,
      ownerUserId: a.ownerId,
    });
    expectStatus('provision delivery handle', provisioned, 200, 201);
    await createWebhooks(B.subject, a, handle, receiver, group, DELIVERY_WEBHOOKS);
    const cpu0 = cpuSeconds(B.pid);
    const start = performance.now();
    const published =
      mode === 'single'
        ? await publishEvents(B.subject, a.pat, [handle], events, eventBody)
        : (await publishBatches(B.subject, a.pat, handle, events, eventBody)) * DELIVERY_WEBHOOKS;
    const ingestSeconds = (performance.now() - start) / 1000;
    // Wait until nothing is in flight (bounded): every delivery succeeded, died, or the deadline passed. The receiver's
    // own count is watched (no cost to the Worker); D1 is asked only every 2 s, for deliveries that died, and once at
    // the end for the balance: the status count scans the handle's deliveries, in the same local D1 the consumer uses.
    const deadline = performance.now() + 180_000;
    const statusCounts = async () => {
      const rows = await db
        .prepare(`SELECT status, count(*) AS n FROM deliveries WHERE handle = ?1 GROUP BY status`)
        .bind(handle)
        .all<{ status: string; n: number }>();
      return Object.fromEntries(rows.results.map((x) => [x.status, x.n])) as Record<string, number>;
    };
    const open = (c: Record<string, number>) => (c.pending ?? 0) + (c.queued ?? 0) + (c.retrying ?? 0);
    let counts: Record<string, number> = {};
    for (let polls = 1; ; polls++) {
      const received = receiver.stats(group).unique >= published;
      if (received || polls % 40 === 0 || performance.now() > deadline) {
        counts = await statusCounts();
        if (open(counts) === 0 || performance.now() > deadline) break;
      }
      await new Promise((res) => setTimeout(res, 50));
    }
    const cpu = cpuSeconds(B.pid) - cpu0;
    const s = receiver.stats(group);
    const deliveredRows = counts.succeeded ?? 0;
    const dead = counts.dead ?? 0;
    const inFlight = open(counts);
    const total = Object.values(counts).reduce((x, y) => x + y, 0);
    const balanced =
      published === deliveredRows + dead + inFlight &&
      total === published &&
      s.unique === deliveredRows &&
      s.badSignature === 0;
    const seconds = ((s.lastOkAt ?? performance.now()) - start) / 1000;
    const out = {
      handle,
      events,
      published,
      delivered: deliveredRows,
      dead,
      inFlight,
      otherStatuses: total - deliveredRows - dead - inFlight,
      receiverUnique: s.unique,
      receiverDuplicates: s.duplicates,
      badSignatures: s.badSignature,
      balanced,
      void: !balanced,
      ingestSeconds,
      seconds,
      perSecond: deliveredRows / seconds,
      workerdCpuMsPerDelivery: (cpu * 1000) / Math.max(1, deliveredRows),
      receiverPeakInFlight: s.peakInFlight,
    };
    (mode === 'single' ? rounds : batchRounds).push(out);
    progress(
      'Delivery',
      `round ${r + 1}/${DELIVERY_ROUNDS} service (${mode === 'single' ? '1 event per publish' : '100 events per publish'}): ${deliveredRows} of ${published} delivered in ${seconds.toFixed(1)} s = ${out.perSecond.toFixed(0)}/s (ingest ${ingestSeconds.toFixed(1)} s); balance ${balanced ? 'OK' : 'FAILED — run void'}: published ${published} = delivered ${deliveredRows} + dead ${dead} + in flight ${inFlight}`,
    );
  };

  progress(
    'Delivery',
    `${DELIVERIES.toLocaleString('en')} deliveries per run (${events} events × ${DELIVERY_WEBHOOKS} webhooks) vs raw signed fetch at concurrency 6; workerd pid ${B.pid}`,
  );
  for (let r = 0; r < DELIVERY_ROUNDS; r++) {
    await runBaseline(r);
    await runSubject(r);
    await runSubject(r, 'batch');
  }
  const valid = rounds.every((r) => r.balanced);
  const batchValid = batchRounds.every((r) => r.balanced);
  return {
    deliveries: DELIVERIES,
    rounds,
    baselineRounds,
    balanced: valid,
    void: !valid,
    subjectPerSecond: median(rounds.map((r) => r.perSecond)),
    baselinePerSecond: median(baselineRounds.map((r) => r.perSecond)),
    ratio: median(rounds.map((r, i) => r.perSecond / baselineRounds[i]!.perSecond)),
    // workerd's CPU (every isolate: the service, local D1, the queues) per delivered message, subject and baseline.
    subjectCpuMsPerDelivery: median(rounds.map((r) => r.workerdCpuMsPerDelivery)),
    baselineCpuMsPerDelivery: median(baselineRounds.map((r) => r.workerdCpuMsPerDelivery)),
    batchPublished: {
      rounds: batchRounds,
      balanced: batchValid,
      perSecond: median(batchRounds.map((r) => r.perSecond)),
      ratio: median(batchRounds.map((r, i) => r.perSecond / baselineRounds[i]!.perSecond)),
      cpuMsPerDelivery: median(batchRounds.map((r) => r.workerdCpuMsPerDelivery)),
      ingestSeconds: median(batchRounds.map((r) => r.ingestSeconds)),
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Targets and the table
// ---------------------------------------------------------------------------------------------------------------

/**
 * CPU per request (or per delivery) beside a throughput target: workerd's user + system time from /proc over the
 * measured windows (every isolate of the process: the Worker, local D1, queues, the rate limiter), divided by the
 * requests done, subject vs baseline. Local workerd reports no per-invocation CPU time, so this is the process's.
 */
function cpuBeside(x: { subject?: Json; baseline?: Json; cpuRatio?: number }, unit: string): string {
  const s = x.subject?.cpuUsPerReq;
  const b = x.baseline?.cpuUsPerReq;
  if (!Number.isFinite(s) || !Number.isFinite(b)) return 'CPU —';
  // The API stages' ratio is the median of the per-round ratios (as in the stage table); otherwise of the medians.
  return `CPU ${f0(s)} vs ${f0(b)} µs/${unit} (${f2(x.cpuRatio ?? s / b)}×)`;
}

function targets(r: Json) {
  const route = (prefix: string) => (r.d1.routes as Json[]).find((x) => String(x.route).startsWith(prefix))!;
  const feedFirst = route('GET …/notifications?limit=50 (PAT)');
  const feedDeep = route('GET …/notifications?limit=50&cursor');
  const byId = route('GET …/notifications/{id}');
  const notifRows = (x: Json) =>
    (x.statements as Json[]).filter((s) => /from "?notifications"?/i.test(s.sql)).reduce((n, s) => n + s.rowsRead, 0);
  const list: Array<{ target: string; measured: string; pass: boolean }> = [
    {
      target: 'API read ≥ 0.6× the one-SELECT route (req/s)',
      measured: `${r.apiRead.rpsRatio.toFixed(2)}×; ${cpuBeside(r.apiRead, 'request')}`,
      pass: r.apiRead.rpsRatio >= 0.6,
    },
    {
      target: 'Authenticated read = 1 D1 round trip',
      measured: `${feedFirst.d1RoundTrips} (PAT, placement cached; ${feedFirst.d1Calls} D1 calls, ${feedFirst.peakInFlight} at once)`,
      pass: feedFirst.d1RoundTrips === 1 && feedFirst.status === 200,
    },
    {
      target: 'API write ≥ 0.5× the insert+send route (req/s)',
      measured: `${r.apiWrite.rpsRatio.toFixed(2)}×; ${cpuBeside(r.apiWrite, 'request')}`,
      pass: r.apiWrite.rpsRatio >= 0.5,
    },
    {
      target:
        'Delivery end to end ≥ 0.5× raw fetch (deliveries/s), balanced; events published 1 per request, 4 at a time',
      measured: `${r.delivery.ratio.toFixed(2)}×${r.delivery.void ? ' (VOID: unbalanced)' : ''}; ${cpuBeside(
        {
          subject: { cpuUsPerReq: r.delivery.subjectCpuMsPerDelivery * 1000 },
          baseline: { cpuUsPerReq: r.delivery.baselineCpuMsPerDelivery * 1000 },
        },
        'delivery',
      )}`,
      pass: r.delivery.ratio >= 0.5 && !r.delivery.void,
    },
    ...(r.delivery.batchPublished?.rounds?.length
      ? [
          {
            target: 'Delivery end to end ≥ 0.5× raw fetch (deliveries/s), balanced; events published 100 per request',
            measured: `${r.delivery.batchPublished.ratio.toFixed(2)}×${r.delivery.batchPublished.balanced ? '' : ' (VOID: unbalanced)'}; ${cpuBeside(
              {
                subject: { cpuUsPerReq: r.delivery.batchPublished.cpuMsPerDelivery * 1000 },
                baseline: { cpuUsPerReq: r.delivery.baselineCpuMsPerDelivery * 1000 },
              },
              'delivery',
            )}`,
            pass: r.delivery.batchPublished.ratio >= 0.5 && r.delivery.batchPublished.balanced,
          },
        ]
      : []),
    {
      target: '≤ 6 concurrent fetches per consumer invocation',
      measured: `peak ${r.d1.consumerBatch.peakConcurrency} (limiter), receiver saw ${r.d1.consumerBatch.receiverPeakInFlight}`,
      pass: r.d1.consumerBatch.peakConcurrency <= 6 && r.d1.consumerBatch.receiverPeakInFlight <= 6,
    },
    {
      target: 'Feed page rows read ≤ limit + 10 (100,000 rows)',
      measured: `first ${feedFirst.rowsRead}, deep ${feedDeep.rowsRead}`,
      pass: feedFirst.rowsRead <= 60 && feedDeep.rowsRead <= 60 && feedFirst.status === 200 && feedDeep.status === 200,
    },
    {
      target: 'Get-by-id ≤ 2 rows read',
      measured: `${notifRows(byId)} (notification query), ${byId.rowsRead} with auth`,
      pass: notifRows(byId) <= 2 && byId.status === 200,
    },
    {
      target: 'Consumer batch of 100 ≤ 3 D1 round trips',
      measured: `${r.d1.consumerBatch.d1RoundTrips}`,
      pass: r.d1.consumerBatch.d1RoundTrips <= 3 && r.d1.consumerBatch.messages === 100,
    },
    {
      target: 'Rows written per delivered recipient ≤ 8',
      measured: `${r.d1.perEvent.rowsWrittenPerDelivered.toFixed(1)}`,
      pass: r.d1.perEvent.rowsWrittenPerDelivered <= 8,
    },
    {
      target: 'Cost per million events with 3 webhooks ≤ $25 (D1 + Queues, from the measured rows)',
      measured: `$${r.d1.dollarsPerMillionEvents.total.toFixed(2)}`,
      pass: r.d1.dollarsPerMillionEvents.total <= 25,
    },
    ...(r.storage
      ? [
          {
            target: 'D1 bytes per event with 3 webhooks ≤ 2.5 KB (2,500 bytes)',
            measured: `${Math.round(r.storage.bytesPerEvent).toLocaleString('en')} bytes`,
            pass: r.storage.bytesPerEvent <= 2_500,
          },
        ]
      : []),
    {
      // Chunks of ≤ 100 on each of the Q delivery queues (docs/design.md#several-delivery-queues): ⌈1000/100⌉ + Q − 1.
      target: `Fan-out 1,000: ≤ ${10 + DELIVERY_QUEUE_COUNT - 1} sendBatch calls (${DELIVERY_QUEUE_COUNT} queues)`,
      measured: `${r.fanout.sendBatchCalls}`,
      pass: r.fanout.sendBatchCalls <= 10 + DELIVERY_QUEUE_COUNT - 1,
    },
    {
      target: 'Fan-out 1,000: ≤ 2 D1 round trips for the writes',
      measured: `${r.fanout.d1WriteRoundTrips}`,
      pass: r.fanout.d1WriteRoundTrips <= 2,
    },
    {
      target: 'Bundle ≤ 200 KiB gzipped',
      measured: `${r.bundle.gzipKiB.toFixed(1)} KiB`,
      pass: r.bundle.gzipKiB <= 200,
    },
  ];
  return list;
}

const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en') : '—');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '—');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '—');

function renderTable(r: Json): string {
  const rd = r.apiRead;
  const wr = r.apiWrite;
  const dl = r.delivery;
  const pe = r.d1.perEvent;
  const cb = r.d1.consumerBatch;
  const usd = r.d1.dollarsPerMillionEvents;
  const routeRows = (r.d1.routes as Json[]).map(
    (x) =>
      `| ${x.route.replaceAll('|', '\\|')} | ${x.status} | ${x.d1RoundTrips} (${x.d1Calls ?? x.d1RoundTrips}) | ${x.rowsRead} | ${x.rowsWritten} |`,
  );
  const lines = [
    '| stage | subject | baseline (same round, same runtime) | figures |',
    '|---|---|---|---|',
    `| API read | \`GET …/notifications?limit=50\` with a PAT, 100,000 notifications | a bare Hono route doing one indexed D1 SELECT | **${f2(rd.rpsRatio)}× req/s** (${f0(rd.subject.rps)} vs ${f0(rd.baseline.rps)}), **${f2(rd.cpuRatio)}× CPU/request** (${f0(rd.subject.cpuUsPerReq)} vs ${f0(rd.baseline.cpuUsPerReq)} µs); p50/p99 ${f1(rd.subject.p50)}/${f1(rd.subject.p99)} ms vs ${f1(rd.baseline.p50)}/${f1(rd.baseline.p99)} ms |`,
    `| API write | \`POST …/events\` matching 3 webhooks | a bare route doing one insert and one queue send | **${f2(wr.rpsRatio)}× req/s** (${f0(wr.subject.rps)} vs ${f0(wr.baseline.rps)}), **${f2(wr.cpuRatio)}× CPU/request** (${f0(wr.subject.cpuUsPerReq)} vs ${f0(wr.baseline.cpuUsPerReq)} µs); p50/p99 ${f1(wr.subject.p50)}/${f1(wr.subject.p99)} ms vs ${f1(wr.baseline.p50)}/${f1(wr.baseline.p99)} ms |`,
    `| Auth | the read with a JWT vs with a PAT | — | JWT ${f0(r.auth.jwt.rps)} req/s, PAT ${f0(r.auth.pat.rps)} req/s (JWT/PAT ${f2(r.auth.jwtOverPat)}×) |`,
    `| Delivery | ${dl.deliveries.toLocaleString('en')} deliveries, ingest → loopback receiver 2xx, end to end | raw signed \`fetch\` POSTs to the same receiver at concurrency 6 | **${f2(dl.ratio)}× deliveries/s** (${f0(dl.subjectPerSecond)} vs ${f0(dl.baselinePerSecond)}/s), CPU ${f2(dl.subjectCpuMsPerDelivery)} vs ${f2(dl.baselineCpuMsPerDelivery)} ms/delivery; balance: ${(dl.rounds as Json[]).map((x) => `published ${x.published} = delivered ${x.delivered} + dead ${x.dead} + in flight ${x.inFlight} ${x.balanced ? '✓' : '✗ VOID'}`).join('; ')} |`,
    ...(dl.batchPublished?.rounds?.length
      ? [
          `| Delivery, 100 events per publish (beside the target) | the same deliveries published through \`POST …/events/batch\`, one call at a time | the same raw signed \`fetch\` rounds | **${f2(dl.batchPublished.ratio)}× deliveries/s** (${f0(dl.batchPublished.perSecond)}/s, ingest ${dl.batchPublished.ingestSeconds.toFixed(1)} s), CPU ${f2(dl.batchPublished.cpuMsPerDelivery)} ms/delivery; balance: ${(dl.batchPublished.rounds as Json[]).map((x) => `published ${x.published} = delivered ${x.delivered} + dead ${x.dead} + in flight ${x.inFlight} ${x.balanced ? '✓' : '✗ VOID'}`).join('; ')} |`,
        ]
      : []),
    `| Fan-out | one event to 1,000 webhooks | — | all enqueued in ${f0(r.fanout.msToAllEnqueued)} ms; ${r.fanout.sendBatchCalls} \`sendBatch\` calls; ${r.fanout.d1RoundTrips} D1 round trips (${r.fanout.d1WriteRoundTrips} for the writes) |`,
    `| D1 cost | every route, the consumer per batch, and per delivered event | — | consumer batch of ${cb.messages}: ${cb.d1RoundTrips} round trips, ${f0(cb.rowsRead)} rows read, ${f0(cb.rowsWritten)} written (peak ${cb.peakConcurrency} fetches); per event with 3 webhooks delivered: ${pe.d1RoundTrips} round trips, ${pe.rowsRead} read, ${pe.rowsWritten} written (${f1(pe.rowsWrittenPerDelivered)} per recipient); **$${f2(usd.total)} per million events** (D1 writes $${f2(usd.d1RowsWritten)}, reads $${usd.d1RowsRead.toFixed(4)}, Queues $${f2(usd.queues)}); every route below |`,
    ...(r.d1.batchPublish
      ? [
          `| Batch publish | \`POST …/events/batch\`, 100 events matching 3 webhooks, batches sent one after another | — | **${f0(r.d1.batchPublish.eventsPerSecond)} events/s**; **${r.d1.batchPublish.d1RoundTrips} D1 round trips per batch of 100** (${f0(r.d1.batchPublish.rowsWritten)} rows written) |`,
        ]
      : []),
    `| Bundle | \`wrangler deploy --dry-run --outdir\` | — | ${f1(r.bundle.rawKiB)} KiB raw, **${f1(r.bundle.gzipKiB)} KiB gzipped** |`,
    ...(r.storage
      ? [
          `| Storage | ${r.storage.events.toLocaleString('en')} events × ${r.storage.webhooks} webhooks, delivered | — | **${f0(r.storage.bytesPerEvent)} D1 bytes per event** (growth of \`meta.size_after\`; ${r.storage.rows.notifications} notifications, ${r.storage.rows.deliveries} deliveries, ${r.storage.rows.attempts} attempts) |`,
        ]
      : []),
  ];
  const t = [
    '',
    '| target | measured | result |',
    '|---|---|---|',
    ...(r.targets as Json[]).map((x) => `| ${x.target} | ${x.measured} | ${x.pass ? 'PASS' : 'MISS'} |`),
  ];
  const routes = [
    '',
    '| D1 cost per route (metered build, one call each) | status | round trips (D1 calls) | rows read | rows written |',
    '|---|---|---|---|---|',
    ...routeRows,
  ];
  const shards = r.shards ? ['', ...shardsTable(r.shards)] : [];
  const capacity = r.storage
    ? [
        '',
        `Capacity at ${f0(r.storage.bytesPerEvent)} bytes per event (D1 holds 10 GB; ✗ = over it):`,
        '',
        ...capacityTable(r.storage.bytesPerEvent),
      ]
    : [];
  // Runs from before the storage was named kept it under os.tmpdir(), on this machine's disk.
  const where = [
    '',
    `Miniflare's local storage (D1, rate limiter, Durable Objects): ${r.meta?.storage ?? 'os.tmpdir() (a disk)'}.`,
  ];
  return [...lines, ...t, ...routes, ...shards, ...capacity, ...where].join('\n');
}

/** `--storage-only`: measures the storage stage alone and adds it to the last run's figures. */
async function storageOnly() {
  buildService();
  await bundle('bench/baseline-worker.ts', join(OUT, 'baseline.js'));
  await bundle('bench/metered-entry.ts', join(OUT, 'metered.js'));
  const receiver = await startReceiver();
  const B = await startMiniflare(true);
  try {
    await applyMigrations(await B.mf.getD1Database('DB', 'subject'));
    const storage = await storageStage(B, receiver, await actors(B.subject), STORAGE_EVENTS, progress);
    const results = JSON.parse(readFileSync(join(RESULTS, 'latest.json'), 'utf8')) as Json;
    results.storage = storage;
    writeFileSync(join(RESULTS, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  } finally {
    await B.mf.dispose();
    await receiver.close();
  }
  render();
}

/**
 * The shards stage's sizes: the API stages' rounds and windows; 4,000 deliveries per configuration (2,000 with
 * --quick), enough for a steady rate while two configurations fit in the bench's time.
 */
function shardsOptions() {
  return { rounds: ROUNDS, windowMs: WINDOW_MS, concurrency: CONCURRENCY, deliveries: args.quick ? 2_000 : 4_000 };
}

/** `--shards-only`: measures the shards stage alone (1 vs 2 shards) and adds it to the last run's figures. */
async function shardsOnly() {
  buildService();
  await bundle('bench/metered-entry.ts', join(OUT, 'metered.js'));
  const receiver = await startReceiver();
  let shards: Json;
  try {
    shards = await shardsStage(receiver, shardsOptions(), progress);
  } finally {
    await receiver.close();
  }
  const name = args.quick ? 'quick' : 'latest';
  const file = join(RESULTS, `${name}.json`);
  let results: Json;
  try {
    results = JSON.parse(readFileSync(file, 'utf8')) as Json;
  } catch {
    results = {};
  }
  results.shards = shards;
  results.shardsMeasuredAt = new Date().toISOString();
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  const table = shardsTable(shards).join('\n');
  console.log(`\n${table}\n`);
  if (results.d1) {
    results.table = renderTable(results);
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(RESULTS, `${name}.md`), `${results.table}\n`);
  }
  progress('done', `bench/results/${name}.json: shards stage written`);
}

/** Targets and table from the measurements of the last run (after a change to the report, not to the service). */
function render() {
  const results = JSON.parse(readFileSync(join(RESULTS, 'latest.json'), 'utf8')) as Json;
  results.targets = targets(results);
  results.table = renderTable(results);
  writeFileSync(join(RESULTS, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(RESULTS, 'latest.md'), `${results.table}\n`);
  console.log(results.table);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  (args.render
    ? Promise.resolve().then(render)
    : args['storage-only']
      ? storageOnly()
      : args['shards-only']
        ? shardsOnly()
        : main()
  ).catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  });
}
