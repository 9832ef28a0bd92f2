/**
 * The shards stage of `npm run bench` (docs/design.md#shards): the same work on 1 data shard and on 2, side by side in
 * one run, so the two configurations share the machine and its load. Each configuration is its own workerd with
 * wrangler.toml's Worker and its own in-memory databases: the control plane `DB` plus `SHARD_0` (1 shard) or `SHARD_0`
 * and `SHARD_1` (2 shards); HANDLES handles, placed round-robin over the shards.
 *
 * - Publish: `POST …/events` (3 webhooks each) round-robin over the handles, CONCURRENCY in flight, no queue consumer,
 *   in rounds that alternate 1 → 2 shards; req/s and latency are the median over the rounds.
 * - Delivery end to end: events × 10 webhooks spread over the handles through wrangler.toml's queue consumers to the
 *   bench's verifying receiver, in runs ordered 1, 2, 2, 1 shards; the clock runs from the first publish to the
 *   receiver's last 2xx; balanced as in the delivery stage (published = delivered + dead + in flight, the receiver's
 *   unique ids = delivered, no bad signature).
 * - Rows read per request: the metered build's count per D1 binding for a feed page and a publish on a handle of each
 *   shard, its placement cached: the control plane's part, the handle's shard's, and any other shard's (0: nothing
 *   joins across).
 */

import { send } from './lib/measure.ts';
import { publishEvents } from './lib/publish.ts';
import type { Receiver } from './lib/receiver.ts';
import { type Actors, actors, applyMigrations, createWebhooks, eventBody, startShardedMiniflare } from './run.ts';

type Json = Record<string, any>;
type Instance = Awaited<ReturnType<typeof startShardedMiniflare>>;

/** Handles per configuration (the issue's "at least 4"), spread over the shards by the service's own placement. */
export const HANDLES = 4;
const PUBLISH_WEBHOOKS = 3;
const DELIVERY_WEBHOOKS = 10;
const CONFIGS = [1, 2] as const;

export interface ShardsOptions {
  rounds: number;
  windowMs: number;
  concurrency: number;
  /** Deliveries per configuration (events × 10 webhooks). */
  deliveries: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[s.length >> 1]! : (s[(s.length >> 1) - 1]! + s[s.length >> 1]!) / 2) : NaN;
};
const pct = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]! : NaN;

/** Migrations on the control plane and every shard of the instance. */
async function migrate(I: Instance): Promise<void> {
  for (const binding of ['DB', ...Array.from({ length: I.shards }, (_, i) => `SHARD_${i}`)])
    await applyMigrations(await I.mf.getD1Database(binding, 'subject'));
}

/**
 * HANDLES handles placed round-robin over the instance's shards (SHARD_0, SHARD_1, SHARD_0, …), each with `webhooks`
 * webhooks on the receiver created through the API. The rows are those `PUT /v2/internal/handles/{handle}` writes (the
 * shard's copy of the handle and its settings, then the directory entry and the owner), with the shard chosen here:
 * the service's own placement, by D1's reported size, ties to the lowest index, and fresh databases of equal size
 * would put every handle of this stage on SHARD_0.
 */
async function handlesOn(I: Instance, a: Actors, receiver: Receiver, tag: string, webhooks: number) {
  const control = await I.mf.getD1Database('DB', 'subject');
  const now = new Date().toISOString();
  const row = `INSERT INTO handles (handle, display_name, shard, created_at, updated_at) VALUES (?1, ?1, ?2, ?3, ?3)`;
  const placed: Array<{ handle: string; shard: number }> = [];
  for (let k = 0; k < HANDLES; k++) {
    const handle = `bench-${tag}-h${k + 1}`;
    const shard = k % I.shards;
    const d1 = await I.mf.getD1Database(`SHARD_${shard}`, 'subject');
    await d1.batch([
      d1.prepare(row).bind(handle, shard, now),
      d1.prepare('INSERT INTO notification_settings (handle, updated_at) VALUES (?1, ?2)').bind(handle, now),
    ]);
    await control.batch([
      control.prepare(row).bind(handle, shard, now),
      control
        .prepare(
          `INSERT INTO memberships (handle, user_id, role, created_at, updated_at) VALUES (?1, ?2, 'owner', ?3, ?3)`,
        )
        .bind(handle, a.ownerId, now),
    ]);
    await createWebhooks(I.subject, a, handle, receiver, `${tag}h${k + 1}`, webhooks);
    placed.push({ handle, shard });
  }
  return placed;
}

/** POST …/events round-robin over `handles` with `concurrency` in flight for `ms`. */
async function publishWindow(
  I: Instance,
  a: Actors,
  handles: string[],
  concurrency: number,
  ms: number,
  seq: { n: number },
) {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const t0 = performance.now();
  const deadline = t0 + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const n = seq.n++;
        const start = performance.now();
        const r = await send(
          'POST',
          `${I.subject}/v2/handles/${handles[n % handles.length]}/events`,
          { authorization: `Bearer ${a.pat}` },
          eventBody(n),
        );
        if (r.status === 202) latencies.push(performance.now() - start);
        else {
          errors++;
          firstError ??= `${r.status} ${r.text.slice(0, 300)}`;
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((x, y) => x - y);
  if (errors) throw new Error(`bench: shards publish had ${errors} failed requests, first: ${firstError}`);
  return {
    requests: latencies.length,
    rps: latencies.length / seconds,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
  };
}

/** The metered build's D1 cost of one request, per binding: control plane, the handle's shard, the other shards. */
async function meteredCost(I: Instance, a: Actors, method: string, path: string, shard: number, body?: string) {
  // The isolate's directory cache warm for the handle (a read of its feed first), as in steady traffic.
  const handle = path.split('/')[3];
  await send('GET', `${I.metered}/v2/handles/${handle}/notifications?limit=1`, { authorization: `Bearer ${a.pat}` });
  await send('POST', `${I.metered}/__bench/reset`, {}, '{}');
  const r = await send(method, `${I.metered}${path}`, { authorization: `Bearer ${a.pat}` }, body);
  await new Promise((res) => setTimeout(res, 30));
  const stats = JSON.parse((await send('GET', `${I.metered}/__bench/stats`)).text) as Json;
  const by = stats.byBinding as Record<string, { d1Calls: number; rowsRead: number; rowsWritten: number }>;
  const part = (pick: (name: string) => boolean) =>
    Object.entries(by)
      .filter(([name]) => pick(name))
      .reduce((n, [, v]) => ({ calls: n.calls + v.d1Calls, rowsRead: n.rowsRead + v.rowsRead }), {
        calls: 0,
        rowsRead: 0,
      });
  return {
    status: r.status,
    // Of latency: calls in flight at once count as one (bench/metered-entry.ts); `calls` is every D1 call.
    roundTrips: stats.d1RoundTrips as number,
    calls: stats.d1Calls as number,
    rowsRead: stats.rowsRead as number,
    controlPlane: part((n) => n === 'DB'),
    ownShard: part((n) => n === `SHARD_${shard}`),
    otherShards: part((n) => n !== 'DB' && n !== `SHARD_${shard}`),
  };
}

/** End to end: `deliveries` over the handles of a fresh instance with queue consumers, balanced. */
async function deliveryRun(
  shards: number,
  receiver: Receiver,
  deliveries: number,
  run: string,
  progress: (m: string) => void,
) {
  const I = await startShardedMiniflare(shards, true);
  try {
    await migrate(I);
    const a = await actors(I.subject);
    const tag = `dl${shards}r${run}`;
    const placed = await handlesOn(I, a, receiver, tag, DELIVERY_WEBHOOKS);
    const events = Math.round(deliveries / DELIVERY_WEBHOOKS);
    const start = performance.now();
    const handles = placed.map((p) => p.handle);
    const published = await publishEvents(I.subject, a.pat, handles, events, eventBody);
    const ingestSeconds = (performance.now() - start) / 1000;
    const dbs = await Promise.all(
      Array.from({ length: shards }, (_, i) => I.mf.getD1Database(`SHARD_${i}`, 'subject')),
    );
    const names = JSON.stringify(handles);
    const deadline = performance.now() + 240_000;
    let counts: Record<string, number> = {};
    for (;;) {
      counts = {};
      for (const db of dbs) {
        const rows = await db
          .prepare(
            `SELECT status, count(*) AS n FROM deliveries WHERE handle IN (SELECT value FROM json_each(?1)) GROUP BY status`,
          )
          .bind(names)
          .all<{ status: string; n: number }>();
        for (const r of rows.results) counts[r.status] = (counts[r.status] ?? 0) + r.n;
      }
      const open = (counts.pending ?? 0) + (counts.queued ?? 0) + (counts.retrying ?? 0);
      if (open === 0 || performance.now() > deadline) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    const groups = placed.map((_, k) => receiver.stats(`${tag}h${k + 1}`));
    const unique = groups.reduce((n, g) => n + g.unique, 0);
    const bad = groups.reduce((n, g) => n + g.badSignature, 0);
    const lastOk = Math.max(...groups.map((g) => g.lastOkAt ?? 0));
    const delivered = counts.succeeded ?? 0;
    const dead = counts.dead ?? 0;
    const inFlight = (counts.pending ?? 0) + (counts.queued ?? 0) + (counts.retrying ?? 0);
    const total = Object.values(counts).reduce((x, y) => x + y, 0);
    const balanced = published === delivered + dead + inFlight && total === published && unique === delivered && !bad;
    const seconds = ((lastOk || performance.now()) - start) / 1000;
    const out = {
      shards,
      placement: placed,
      events,
      published,
      delivered,
      dead,
      inFlight,
      receiverUnique: unique,
      badSignatures: bad,
      balanced,
      ingestSeconds,
      seconds,
      perSecond: delivered / seconds,
    };
    progress(
      `delivery, ${shards} shard${shards > 1 ? 's' : ''}: ${delivered} of ${published} in ${seconds.toFixed(1)} s = ` +
        `${out.perSecond.toFixed(0)}/s (ingest ${ingestSeconds.toFixed(1)} s); balance ${balanced ? 'OK' : 'FAILED'}`,
    );
    return out;
  } finally {
    await I.mf.dispose();
  }
}

/** 1 vs 2 shards: publish throughput, delivery end to end, D1 rows read per request. */
export async function shardsStage(
  receiver: Receiver,
  o: ShardsOptions,
  progress: (stage: string, message: string) => void,
): Promise<Json> {
  const say = (m: string) => progress('Shards', m);
  // Publish and rows read: both configurations up at once, rounds alternating between them.
  const instances = await Promise.all(CONFIGS.map((n) => startShardedMiniflare(n, false)));
  const publish: Record<number, Json> = {};
  const cost: Record<number, Json> = {};
  try {
    const setups = [];
    for (const [i, I] of instances.entries()) {
      await migrate(I);
      const a = await actors(I.subject);
      const placed = await handlesOn(I, a, receiver, `pub${CONFIGS[i]}`, PUBLISH_WEBHOOKS);
      setups.push({ I, a, placed, seq: { n: 0 }, runs: [] as Json[] });
      say(`${CONFIGS[i]} shard(s): ${placed.map((p) => `${p.handle} → SHARD_${p.shard}`).join(', ')}`);
    }
    for (const s of setups)
      await publishWindow(
        s.I,
        s.a,
        s.placed.map((p) => p.handle),
        o.concurrency,
        500,
        s.seq,
      );
    for (let r = 0; r < o.rounds; r++) {
      for (const s of setups)
        s.runs.push(
          await publishWindow(
            s.I,
            s.a,
            s.placed.map((p) => p.handle),
            o.concurrency,
            o.windowMs,
            s.seq,
          ),
        );
      say(
        `publish round ${r + 1}/${o.rounds}: ${setups.map((s) => `${s.I.shards} shard(s) ${s.runs[r]!.rps.toFixed(0)} req/s`).join(', ')}`,
      );
    }
    for (const s of setups) {
      const n = s.I.shards;
      publish[n] = {
        handles: s.placed,
        rps: median(s.runs.map((x) => x.rps)),
        p50: median(s.runs.map((x) => x.p50)),
        p99: median(s.runs.map((x) => x.p99)),
        rounds: s.runs.map((x) => +x.rps.toFixed(1)),
      };
      // A handle on each shard in use: the feed page (its notifications are the publish stage's) and one publish.
      const perHandle = [];
      for (const p of s.placed.filter((x, i, all) => all.findIndex((y) => y.shard === x.shard) === i)) {
        perHandle.push({
          handle: p.handle,
          shard: p.shard,
          feed: await meteredCost(s.I, s.a, 'GET', `/v2/handles/${p.handle}/notifications?limit=50`, p.shard),
          publish: await meteredCost(s.I, s.a, 'POST', `/v2/handles/${p.handle}/events`, p.shard, eventBody(7_000_000)),
        });
      }
      cost[n] = perHandle;
    }
  } finally {
    await Promise.all(instances.map((I) => I.mf.dispose()));
  }
  // Delivery: one configuration at a time (each its own consumers), in the order 1, 2, 2, 1 with half the deliveries
  // each, so a drift of the machine's load over the stage weighs on both alike; the rate is over both runs.
  const runs: Record<number, Json[]> = { 1: [], 2: [] };
  for (const [i, n] of [1, 2, 2, 1].entries())
    runs[n]!.push(await deliveryRun(n, receiver, Math.round(o.deliveries / 2), `${i}`, say));
  const delivery: Record<number, Json> = {};
  for (const n of CONFIGS) {
    const [a, b] = runs[n]! as [Json, Json];
    delivery[n] = {
      shards: n,
      runs: runs[n],
      events: a.events + b.events,
      published: a.published + b.published,
      delivered: a.delivered + b.delivered,
      dead: a.dead + b.dead,
      inFlight: a.inFlight + b.inFlight,
      balanced: a.balanced && b.balanced,
      seconds: a.seconds + b.seconds,
      perSecond: (a.delivered + b.delivered) / (a.seconds + b.seconds),
    };
  }
  return {
    handles: HANDLES,
    publishWebhooks: PUBLISH_WEBHOOKS,
    deliveryWebhooks: DELIVERY_WEBHOOKS,
    publish,
    cost,
    delivery,
  };
}

const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en') : '—');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '—');

/** The table rows of the stage: one per measure, 1 shard and 2 shards side by side. */
export function shardsTable(s: Json): string[] {
  const p1 = s.publish[1];
  const p2 = s.publish[2];
  const d1 = s.delivery[1];
  const d2 = s.delivery[2];
  const costCell = (list: Json[], kind: 'feed' | 'publish') =>
    list
      .map(
        (c) =>
          `SHARD_${c.shard}: ${c[kind].rowsRead} (DB ${c[kind].controlPlane.rowsRead} + own shard ${c[kind].ownShard.rowsRead} + other ${c[kind].otherShards.rowsRead}; ${c[kind].roundTrips} round trip${c[kind].roundTrips === 1 ? '' : 's'} of ${c[kind].calls} D1 calls)`,
      )
      .join('; ');
  const placement = (list: Json[]) => {
    const perShard = new Map<string, number>();
    for (const h of list) perShard.set(`SHARD_${h.shard}`, (perShard.get(`SHARD_${h.shard}`) ?? 0) + 1);
    return [...perShard]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  };
  const balance = (d: Json) =>
    `published ${d.published} = delivered ${d.delivered} + dead ${d.dead} + in flight ${d.inFlight} ${d.balanced ? '✓' : '✗ VOID'}`;
  return [
    `| Shards: 1 vs 2 (${s.handles} handles each, same run) | 1 shard | 2 shards | 2 ÷ 1 |`,
    '|---|---|---|---|',
    `| handles per shard (round-robin) | ${placement(p1.handles)} | ${placement(p2.handles)} | |`,
    `| Publish \`POST …/events\` (${s.publishWebhooks} webhooks), round-robin over the handles, req/s (p50/p99 ms) | ${f0(p1.rps)} (${f1(p1.p50)}/${f1(p1.p99)}) | ${f0(p2.rps)} (${f1(p2.p50)}/${f1(p2.p99)}) | **${(p2.rps / p1.rps).toFixed(2)}×** |`,
    `| Delivery end to end, ${d1.events} events × ${s.deliveryWebhooks} webhooks, deliveries/s | ${f0(d1.perSecond)} (${f1(d1.seconds)} s; ${balance(d1)}) | ${f0(d2.perSecond)} (${f1(d2.seconds)} s; ${balance(d2)}) | **${(d2.perSecond / d1.perSecond).toFixed(2)}×** |`,
    `| Rows read, feed page \`?limit=50\` (PAT) | ${costCell(s.cost[1], 'feed')} | ${costCell(s.cost[2], 'feed')} | |`,
    `| Rows read, one publish (3 webhooks) | ${costCell(s.cost[1], 'publish')} | ${costCell(s.cost[2], 'publish')} | |`,
  ];
}
