/**
 * `npm run bench:pacing`: the pacing row of docs/performance.md — a burst of 1,000 events to ONE webhook limited to
 * 20 deliveries per second (docs/design.md#pacing), on the bench's verifying receiver on 127.0.0.1. The Worker is the
 * production bundle in Miniflare with wrangler.toml's queue consumers and its EndpointPacer Durable Object (as
 * bench/run.ts's phase B). Reports the observed rate (first to last 2xx), the spread per second and the busiest
 * 1-second window, and what each delivery cost in attempts; writes bench/results/pacing.json and pacing.md (other
 * sizes: pacing-<events>-at-<rate>.*).
 *
 * Options: --events N (default 1000), --rate R (default 20).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from './lib/measure.ts';
import { startReceiver } from './lib/receiver.ts';
import {
  actors,
  api,
  applyMigrations,
  buildService,
  bundle,
  createWebhooks,
  eventBody,
  OUT,
  provision,
  startMiniflare,
} from './run.ts';

const RESULTS = fileURLToPath(new URL('./results', import.meta.url));
const args = parseArgs({ options: { events: { type: 'string' }, rate: { type: 'string' } }, strict: false }).values as {
  events?: string;
  rate?: string;
};
const EVENTS = Number(args.events ?? 1000);
const RATE = Number(args.rate ?? 20);
/** The pace holds when the observed rate is within this of the limit. */
const TOLERANCE = 0.1;

const t0 = performance.now();
const progress = (message: string) =>
  console.log(`[bench:pacing ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${message}`);

/** Sends per 1-second bucket from the first send, and the most sends in any 1-second window. */
function spread(times: number[]) {
  const first = times[0]!;
  const buckets: number[] = [];
  for (const t of times) {
    const i = Math.floor((t - first) / 1000);
    buckets[i] = (buckets[i] ?? 0) + 1;
  }
  const full = Array.from(buckets.slice(0, -1), (n) => n ?? 0); // the last second is partial
  let busiest = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= 1000) j++;
    busiest = Math.max(busiest, i - j + 1);
  }
  return {
    perSecondMin: Math.min(...full),
    perSecondMedian: median(full),
    perSecondMax: Math.max(...full),
    busiestWindow: busiest,
  };
}

async function main() {
  progress('building the production bundle (wrangler deploy --dry-run) and the bench workers');
  buildService();
  await bundle('bench/baseline-worker.ts', join(OUT, 'baseline.js'));
  await bundle('bench/metered-entry.ts', join(OUT, 'metered.js'));
  const receiver = await startReceiver();
  const B = await startMiniflare(true);
  try {
    const db = await B.mf.getD1Database('DB', 'subject');
    await applyMigrations(db);
    const a = await actors(B.subject);
    const handle = 'bench-pacing';
    await provision(B.subject, a, handle);
    const [webhook] = await createWebhooks(B.subject, a, handle, receiver, 'pace', 1);
    const patched = await api(B.subject, 'PATCH', `/v2/handles/${handle}/webhooks/${webhook!.id}`, a.pat, {
      rateLimit: RATE,
    });
    if (patched.status !== 200) throw new Error(`bench: PATCH rateLimit answered ${patched.status}`);

    progress(
      `publishing ${EVENTS} events at once (notify-events, 100 a sendBatch) to one webhook limited to ${RATE}/s`,
    );
    // Straight onto notify-events, as another Gharart Worker publishes: the whole burst is queued within a second or
    // two, so what the receiver sees is the pacer, not how fast the bench can POST.
    const events = await B.mf.getQueueProducer('EVENTS_QUEUE', 'subject');
    const start = performance.now();
    for (let i = 0; i < EVENTS; i += 100) {
      await events.sendBatch(
        Array.from({ length: Math.min(100, EVENTS - i) }, (_, k) => ({
          body: { ...JSON.parse(eventBody(i + k)), handle, source: 'bench' },
          contentType: 'json' as const,
        })),
      );
    }
    const ingestSeconds = (performance.now() - start) / 1000;
    progress(`queued in ${ingestSeconds.toFixed(1)} s; waiting for the receiver`);
    const expected = EVENTS / RATE;
    const deadline = performance.now() + (expected * 3 + 60) * 1000;
    let shown = 0;
    while (receiver.stats('pace').unique < EVENTS && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      const n = receiver.stats('pace').unique;
      if (n >= shown + 100) {
        shown = n - (n % 100);
        progress(`${n} received`);
      }
    }
    // The last batch's outcomes are written after its requests were answered: let the rows settle.
    for (let i = 0; i < 20; i++) {
      const open = await db
        .prepare(`SELECT count(*) AS n FROM deliveries WHERE handle = ?1 AND status <> 'succeeded'`)
        .bind(handle)
        .first<{ n: number }>();
      if (!open?.n) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const s = receiver.stats('pace');
    const times = s.okTimes;
    const seconds = (times.at(-1)! - times[0]!) / 1000;
    const observed = (times.length - 1) / seconds;
    // Once the whole burst is queued the pacer alone sets the pace (before, the events consumer is still ingesting).
    const after = times.filter((t) => t >= start + ingestSeconds * 1000);
    const steady = after.length > 1 ? (after.length - 1) / ((after.at(-1)! - after[0]!) / 1000) : null;
    const rows = await db
      .prepare(
        `SELECT count(*) AS n, sum(status = 'succeeded') AS ok, max(attempt_count) AS max_attempts,
           sum(attempt_count) AS attempts FROM deliveries WHERE handle = ?1`,
      )
      .bind(handle)
      .first<{ n: number; ok: number; max_attempts: number; attempts: number }>();
    const result = {
      events: EVENTS,
      rateLimit: RATE,
      received: s.unique,
      duplicates: s.duplicates,
      badSignatures: s.badSignature,
      deliveries: rows?.n ?? 0,
      succeeded: rows?.ok ?? 0,
      attemptsPerDelivery: (rows?.attempts ?? 0) / Math.max(1, rows?.n ?? 1),
      maxAttempts: rows?.max_attempts ?? 0,
      ingestSeconds: +ingestSeconds.toFixed(2),
      seconds: +seconds.toFixed(2),
      observedPerSecond: +observed.toFixed(2),
      ofLimitPercent: +((observed / RATE) * 100).toFixed(1),
      afterQueued: { sends: after.length, perSecond: steady === null ? null : +steady.toFixed(2) },
      ...spread(times),
      holds: Math.abs(observed / RATE - 1) <= TOLERANCE && s.unique === EVENTS,
      measuredAt: new Date().toISOString(),
    };
    const table = [
      '| Pacing (burst to one endpoint) | Observed | Once all queued | Spread per second (min / median / max) | ' +
        'Busiest 1 s | Attempts | Holds (±10 %) |',
      '|---|---|---|---|---|---|---|',
      `| ${EVENTS.toLocaleString('en')} events, rateLimit ${RATE}/s, queued in ${result.ingestSeconds} s | ` +
        `${result.observedPerSecond}/s over ${result.seconds} s (${result.ofLimitPercent} % of the limit) | ` +
        `${result.afterQueued.perSecond ?? '–'}/s (${result.afterQueued.sends} sends) | ` +
        `${result.perSecondMin} / ${result.perSecondMedian} / ${result.perSecondMax} | ${result.busiestWindow} | ` +
        `${result.attemptsPerDelivery.toFixed(2)} per delivery (max ${result.maxAttempts}) | ` +
        `${result.holds ? 'yes' : 'NO'} |`,
    ].join('\n');
    const name = RATE === 20 && EVENTS === 1000 ? 'pacing' : `pacing-${EVENTS}-at-${RATE}`;
    writeFileSync(join(RESULTS, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(RESULTS, `${name}.md`), `${table}\n`);
    console.log(`\n${table}\n`);
    if (!result.holds) process.exitCode = 1;
  } finally {
    await B.mf.dispose();
    await receiver.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
