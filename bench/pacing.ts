/**
 * `npm run bench:pacing`: the pacing row of docs/performance.md — a burst of 1,000 events to ONE webhook limited to
 * 20 deliveries per second (docs/design.md#pacing), on the bench's verifying receiver on 127.0.0.1. The Worker is the
 * production bundle in Miniflare with wrangler.toml's queue consumers and its EndpointPacer Durable Object (as
 * bench/run.ts's phase B). The measure is the send side: each attempt's start as the consumer recorded it (its ledger
 * row's time less its duration), which is what the endpoint sees less the network. Reports the rate (first to last
 * send), the spread per second and the busiest 1-second window, the sends that missed their grant (not sent, sent
 * again later), the receiver's own view, what each delivery cost in attempts, and the machine's load average;
 * writes bench/results/pacing.json and pacing.md (other sizes: pacing-<events>-at-<rate>.*). The pace holds when the
 * rate is within ±10 % of the limit and no 1-second window holds more than the limit plus 10 %.
 *
 * Options: --events N (default 1000), --rate R (default 20).
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
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
/** The pace holds when the rate is within this of the limit, and no second holds more than the limit plus this. */
const TOLERANCE = 0.1;

/** Sends that missed their grant (the consumer's `paced_send_late` warnings), counted instead of printed. */
let lateForGrant = 0;
const printError = console.error.bind(console);
console.error = (...args: unknown[]) => {
  if (String(args[0]).includes('"paced_send_late"')) lateForGrant++;
  else printError(...args);
};
const loadStart = os.loadavg()[0]!;

const t0 = performance.now();
const progress = (message: string) =>
  console.log(`[bench:pacing ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${message}`);

/** Sends per 1-second bucket from the first send, and the most sends in any 1-second window [t, t + 1 s). */
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
    // When the events consumer has stored every delivery of the burst (epoch ms, the ledger's clock): before, the
    // ingest of the burst shares the machine with the first paced sends.
    let ingestedAt: number | null = null;
    while (receiver.stats('pace').unique < EVENTS && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, ingestedAt === null ? 100 : 500));
      if (ingestedAt === null) {
        const stored = await db
          .prepare('SELECT count(*) AS n FROM deliveries WHERE handle = ?1')
          .bind(handle)
          .first<{ n: number }>();
        if ((stored?.n ?? 0) >= EVENTS) ingestedAt = Date.now();
      }
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
    // The send side — the measure: when the consumer started each attempt (its ledger row's time less its
    // duration), which is what the endpoint sees less the network.
    const attempts = await db
      .prepare(
        `SELECT a.created_at AS at, a.duration_ms AS ms FROM delivery_attempts a JOIN deliveries d
           ON d.id = a.delivery_id WHERE d.handle = ?1`,
      )
      .bind(handle)
      .all<{ at: string; ms: number }>();
    const sendTimes = attempts.results.map((r) => Date.parse(r.at) - r.ms).sort((x, y) => x - y);
    const sentSeconds = (sendTimes.at(-1)! - sendTimes[0]!) / 1000;
    const sentRate = (sendTimes.length - 1) / sentSeconds;
    const sentSpread = spread(sendTimes);
    const afterIngest = sendTimes.filter((t) => ingestedAt !== null && t >= ingestedAt);
    const afterIngestRate =
      afterIngest.length > 1 ? (afterIngest.length - 1) / ((afterIngest.at(-1)! - afterIngest[0]!) / 1000) : null;
    // The receiver's view adds the loopback network and its own event loop on the same loaded machine.
    const s = receiver.stats('pace');
    const times = s.okTimes;
    const receivedRate = (times.length - 1) / ((times.at(-1)! - times[0]!) / 1000);
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
      sent: {
        sends: sendTimes.length,
        seconds: +sentSeconds.toFixed(2),
        perSecond: +sentRate.toFixed(2),
        ofLimitPercent: +((sentRate / RATE) * 100).toFixed(1),
        ...sentSpread,
        afterIngest: {
          sends: afterIngest.length,
          startsAfterFirstSendSeconds: ingestedAt === null ? null : +((ingestedAt - sendTimes[0]!) / 1000).toFixed(2),
          perSecond: afterIngestRate === null ? null : +afterIngestRate.toFixed(2),
        },
      },
      lateForGrant,
      atReceiver: { perSecond: +receivedRate.toFixed(2), busiestWindow: spread(times).busiestWindow },
      loadAverage: { atStart: +loadStart.toFixed(1), atEnd: +os.loadavg()[0]!.toFixed(1) },
      holds:
        Math.abs(sentRate / RATE - 1) <= TOLERANCE &&
        sentSpread.busiestWindow <= Math.floor(RATE * (1 + TOLERANCE)) &&
        s.unique === EVENTS,
      measuredAt: new Date().toISOString(),
    };
    const table = [
      '| Pacing (burst to one endpoint) | Sent (consumer side) | Once the burst is stored | ' +
        'Spread per second (min / median / max) | Busiest 1 s | Late for their grant | At the receiver | Attempts | ' +
        'Load (1-min avg) | Holds (±10 %) |',
      '|---|---|---|---|---|---|---|---|---|---|',
      `| ${EVENTS.toLocaleString('en')} events, rateLimit ${RATE}/s, queued in ${result.ingestSeconds} s | ` +
        `${result.sent.perSecond}/s over ${result.sent.seconds} s (${result.sent.ofLimitPercent} % of the limit) | ` +
        `${result.sent.afterIngest.perSecond ?? '–'}/s (${result.sent.afterIngest.sends} sends, from ` +
        `${result.sent.afterIngest.startsAfterFirstSendSeconds ?? '–'} s) | ` +
        `${result.sent.perSecondMin} / ${result.sent.perSecondMedian} / ${result.sent.perSecondMax} | ` +
        `${result.sent.busiestWindow} | ${lateForGrant} | ` +
        `${result.atReceiver.perSecond}/s, busiest 1 s ${result.atReceiver.busiestWindow} | ` +
        `${result.attemptsPerDelivery.toFixed(2)} per delivery (max ${result.maxAttempts}) | ` +
        `${result.loadAverage.atStart} → ${result.loadAverage.atEnd} | ${result.holds ? 'yes' : 'NO'} |`,
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
