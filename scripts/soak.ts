/**
 * `npm run soak`: a bounded soak of the whole service on this machine, against `wrangler dev` on 127.0.0.1 with its
 * own fresh state (never .wrangler/state) and real local D1 and Queues.
 *
 * 1. Fresh secrets, migrations and the demo seed (scripts/dev-seed.ts) in a temporary state directory.
 * 2. Webhook receivers on 127.0.0.1 (test/support/node/receivers.ts): `webhooks` endpoints, `failing-share` of them answer 500.
 * 3. `wrangler dev` with a 1 s retry schedule, so a failing delivery is `dead` (8 attempts, then the DLQ) in seconds.
 * 4. Setup through the API, with every write sent several times with one Idempotency-Key (concurrently and after).
 * 5. Load: `events` ingest requests over `connections` keep-alive connections, `duplicates` of them repeats (half the
 *    same sourceEventId from another publisher, half the same request with the same Idempotency-Key), while readers
 *    page the feed, open notifications and read delivery logs. Halfway, one webhook is deleted and one disabled.
 * 6. Drain: polls the feed until no notification is `delivering` (the minute jobs run every 60 s, as the cron does).
 *    The handle's retention is 1 day and the purge's clock runs a day less PURGE_AFTER_SECONDS ahead, so every minute
 *    job run also archives to R2 and purges what closed more than that ago, between deliveries.
 * 7. Reconcile the answers the clients got with the feed, the receivers, the archives (read back through the API)
 *    and the D1 file with the archived rows put back; print the tables and write
 *    soak/results/latest.{json,md}. Exit 0 only when every check holds: lost = 0 and no unexpected answer (any 5xx).
 *
 * Along the load, `batches` batches of 100 events go through `POST …/events/batch` (scripts/soak/batches.ts), with
 * repeats, every other one `off_peak` into a peak window opened for the first minute: their deliveries are deferred,
 * then released by the minute jobs (RELEASE_SPREAD_SECONDS is short here) and reconciled like the rest.
 *
 * Options (or SOAK_<NAME> environment variables): --events 5000 --connections 50 --duplicates 0.1 --webhooks 10
 * --failing-share 0.2 --readers 4 --batches 6 --max-minutes 10 --seed 1 --no-churn --keep-state.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Webhook } from 'standardwebhooks';
import { type Hit, type Receivers, startReceivers } from '../test/support/node/receivers.ts';
import { migrateAll } from './db-migrate.ts';
import { DEMO, demoCredentials, seedShardSql, seedSql, signJwt } from './dev-seed.ts';
import { SCHEDULED_PATH } from './minute-jobs.ts';
import { archivedIds, readArchives, restoreSql } from './soak/archives.ts';
import {
  type BatchRun,
  deferralChecks,
  openPeakWindow,
  PEAK_WINDOW_SECONDS,
  planBatches,
  publishBatches,
  SOAK_RELEASE_SPREAD_SECONDS,
} from './soak/batches.ts';
import { type Answer, type Client, createClient, Recorder } from './soak/client.ts';
import { type PlannedIngest, planIngest, planWebhooks, type WebhookPlan } from './soak/plan.ts';
import { type Check, percentile, renderMarkdown, type SoakResult, summarize } from './soak/report.ts';
import { type DevServer, LOOPBACK, startDevServer } from './soak/server.ts';
import { ROOT, runWrangler, WranglerError } from './wrangler-cli.ts';

const RESULTS_DIR = join(ROOT, 'soak', 'results');
const HANDLE = DEMO.handle;
const OWNER_EMAIL = 'owner@soak.example.com';
/** 8 attempts 1 s apart (wrangler.toml's max_retries = 7 stays as deployed): a failing delivery is dead in ~10 s. */
const RETRY_DELAYS_SECONDS = '1,1,1,1,1,1,1';
const READER_SCOPES = 'notifications:read webhooks:read';
/** Each reader stays under the reads throttle (300/min per token and handle). */
const READER_INTERVAL_MS = 250;
/**
 * The cron runs the minute jobs (outbox sweeper, auto-disable, idempotency purge) every 60 s in production; the soak
 * runs them every 20 s from the start of the load to the end of the drain, so that they race with ingest and the
 * consumers a few times even in a short run.
 */
const SCHEDULED_EVERY_MS = 20_000;
/**
 * Retention during the soak: the handle keeps 1 day, and the purge reads its clock (PURGE_CLOCK_AHEAD_SECONDS) a day
 * less this many seconds ahead, so a notification is expired this long after it was accepted. Long enough for the
 * repeats of a sourceEventId (sent within the same window of requests) to find the first one still in D1.
 */
const PURGE_AFTER_SECONDS = 60;
/** Kept for the reconciliation after the drain deadline. */
const RECONCILE_RESERVE_MS = 45_000;
/** See the churn checks in reconcile(). */
const CHURN_MARGIN_MS = 5_000;
const TERMINAL = new Set(['succeeded', 'dead', 'cancelled', 'skipped']);
const OPEN = new Set(['pending', 'queued', 'retrying']);

interface Options {
  events: number;
  connections: number;
  duplicates: number;
  webhooks: number;
  failingShare: number;
  readers: number;
  batches: number;
  maxMinutes: number;
  seed: number;
  churn: boolean;
  keepState: boolean;
}

class SoakError extends Error {}

function parseOptions(): Options {
  const spec = {
    events: { type: 'string', default: process.env.SOAK_EVENTS ?? '5000' },
    connections: { type: 'string', default: process.env.SOAK_CONNECTIONS ?? '50' },
    duplicates: { type: 'string', default: process.env.SOAK_DUPLICATES ?? '0.1' },
    webhooks: { type: 'string', default: process.env.SOAK_WEBHOOKS ?? '10' },
    'failing-share': { type: 'string', default: process.env.SOAK_FAILING_SHARE ?? '0.2' },
    readers: { type: 'string', default: process.env.SOAK_READERS ?? '4' },
    batches: { type: 'string', default: process.env.SOAK_BATCHES ?? '6' },
    'max-minutes': { type: 'string', default: process.env.SOAK_MAX_MINUTES ?? '10' },
    seed: { type: 'string', default: process.env.SOAK_SEED ?? '1' },
    'no-churn': { type: 'boolean', default: process.env.SOAK_NO_CHURN === '1' },
    'keep-state': { type: 'boolean', default: process.env.SOAK_KEEP_STATE === '1' },
  } as const;
  const usage =
    'Usage: npm run soak [-- --events N --connections N --duplicates 0..1 --webhooks N --failing-share 0..1 --readers N --batches N --max-minutes N --seed N --no-churn --keep-state]';
  let values: ReturnType<typeof parseArgs<{ options: typeof spec }>>['values'];
  try {
    values = parseArgs({ options: spec }).values;
  } catch (err) {
    throw new SoakError(`${(err as Error).message}\n${usage}`);
  }
  const num = (name: string, raw: string, min: number, max: number, integer = true) => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new SoakError(
        `--${name} must be ${integer ? 'an integer' : 'a number'} in ${min}..${max} (got ${raw}).\n${usage}`,
      );
    }
    return n;
  };
  return {
    events: num('events', values.events, 10, 100_000),
    connections: num('connections', values.connections, 1, 500),
    duplicates: num('duplicates', values.duplicates, 0, 0.9, false),
    webhooks: num('webhooks', values.webhooks, 1, 50),
    failingShare: num('failing-share', values['failing-share'], 0, 1, false),
    readers: num('readers', values.readers, 1, 20),
    batches: num('batches', values.batches, 0, 40),
    maxMinutes: num('max-minutes', values['max-minutes'], 1, 60, false),
    seed: num('seed', values.seed, 0, 2 ** 31),
    churn: !values['no-churn'],
    keepState: values['keep-state'],
  };
}

/** Wall-clock phases, for the report. */
class Phases {
  readonly seconds: Record<string, number> = {};
  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    console.log(`• ${name}…`);
    try {
      return await fn();
    } finally {
      this.seconds[name] = (performance.now() - started) / 1000;
    }
  }
}

interface Tokens {
  owner: string;
  controlPlane: string;
  publishers: string[];
  readers: string[];
}

interface WebhookCreated extends WebhookPlan {
  id: string;
  secret: string;
}

const path = (rest: string) => `/v2/handles/${HANDLE}${rest}`;

/** Sends one write `times` times with one Idempotency-Key: all but the last at once, the last after they answered. */
async function idempotentWrite(
  client: Client,
  kind: string,
  method: string,
  target: string,
  token: string,
  body: unknown,
  key: string,
  times: number,
  expected: readonly number[],
): Promise<Answer[]> {
  const once = () =>
    client.request(kind, method, target, { token, body, headers: { 'idempotency-key': key }, expected });
  const concurrent = await Promise.all(Array.from({ length: times - 1 }, once));
  return [...concurrent, await once()];
}

/** What the idempotent write answered: one 2xx that did the write, every other 2xx a replay of it. */
function replayFindings(answers: Answer[], idOf: (a: Answer) => unknown): { fresh: number; mismatched: number } {
  const ok = answers.filter((a) => a.status >= 200 && a.status < 300);
  const fresh = ok.filter((a) => a.headers['idempotent-replayed'] !== 'true').length;
  const ids = new Set(ok.map(idOf));
  return { fresh, mismatched: ids.size > 1 ? ids.size - 1 : 0 };
}

async function setup(client: Client, tokens: Tokens, receivers: Receivers, o: Options, checks: Check[]) {
  // A retention of one day: with the purge clock ahead (see PURGE_AFTER_SECONDS), the purge runs during the soak.
  const retention = await client.request('setup: retention', 'PUT', `/v2/internal/handles/${HANDLE}`, {
    token: tokens.controlPlane,
    body: { displayName: DEMO.displayName, retentionDays: 1 },
    expected: [200],
  });
  if (retention.status !== 200)
    throw new SoakError(`Could not set the retention: ${retention.status} ${JSON.stringify(retention.body)}`);
  for (let r = 0; r < o.readers; r++) {
    const res = await client.request(
      'setup: provision member',
      'PUT',
      `/v2/internal/handles/${HANDLE}/members/user_soak_reader_${r + 1}`,
      {
        token: tokens.controlPlane,
        body: { role: 'viewer' },
        expected: [200, 201],
      },
    );
    if (res.status !== 200 && res.status !== 201)
      throw new SoakError(`Could not provision reader ${r + 1}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  const email = await idempotentWrite(
    client,
    'write: owner email ×3',
    'PUT',
    path('/notifications/owner-default-email'),
    tokens.owner,
    { email: OWNER_EMAIL },
    'soak-owner-email',
    3,
    [200, 409],
  );
  const emailReplay = replayFindings(email, (a) => a.body?.email);
  checks.push({
    name: 'owner email: one write, the rest replays of it',
    expected: '1 fresh, 0 mismatched',
    actual: `${emailReplay.fresh} fresh, ${emailReplay.mismatched} mismatched`,
    ok: emailReplay.fresh === 1 && emailReplay.mismatched === 0,
  });

  const before = await client.request('read: settings', 'GET', path('/notification-settings'), {
    token: tokens.owner,
    expected: [200],
  });
  const settingsBody = {
    channels: { email: { enabled: true }, webhook: { enabled: true } },
    eventFilter: null,
    ownerFallback: 'critical',
  };
  const settings = await idempotentWrite(
    client,
    'write: settings ×4',
    'PUT',
    path('/notification-settings'),
    tokens.owner,
    settingsBody,
    'soak-settings',
    4,
    [200, 409],
  );
  const settingsReplay = replayFindings(settings, (a) => a.body?.version);
  const after = await client.request('read: settings', 'GET', path('/notification-settings'), {
    token: tokens.owner,
    expected: [200],
  });
  const versions = `${before.body?.version} → ${after.body?.version}`;
  checks.push({
    name: 'settings: 4 PUTs with one key → version +1, one write',
    expected: `+1, 1 fresh`,
    actual: `${versions}, ${settingsReplay.fresh} fresh, ${settingsReplay.mismatched} mismatched`,
    ok:
      after.body?.version === before.body?.version + 1 && settingsReplay.fresh === 1 && settingsReplay.mismatched === 0,
  });

  const plans = planWebhooks(o.webhooks, o.failingShare, o.churn);
  const created: WebhookCreated[] = [];
  let fresh = 0;
  let mismatched = 0;
  for (const plan of plans) {
    const url = `http://${LOOPBACK}:${receivers.port}/r/${plan.failing ? 'fail' : 'ok'}/${plan.name}`;
    const body = {
      url,
      description: `soak ${plan.name}${plan.failing ? ' (always 500)' : ''}`,
      eventTypes: plan.eventTypes,
    };
    const answers = await idempotentWrite(
      client,
      'write: webhook create ×4',
      'POST',
      path('/webhooks'),
      tokens.owner,
      body,
      `soak-${plan.name}`,
      4,
      [201, 409],
    );
    const r = replayFindings(answers, (a) => a.body?.id);
    fresh += r.fresh;
    mismatched += r.mismatched;
    const first = answers.find((a) => a.status === 201);
    if (!first)
      throw new SoakError(
        `Could not create webhook ${plan.name}: ${answers.map((a) => `${a.status} ${JSON.stringify(a.body)}`).join('; ')}`,
      );
    created.push({ ...plan, id: first.body.id, secret: first.body.secret });
  }
  const list = await client.request('read: webhooks', 'GET', path('/webhooks?limit=200'), {
    token: tokens.owner,
    expected: [200],
  });
  const stored = (list.body?.data ?? []).length;
  checks.push({
    name: `webhooks: ${plans.length} × 4 POSTs with one key each → ${plans.length} rows`,
    expected: `${plans.length} rows, ${plans.length} fresh, 0 mismatched`,
    actual: `${stored} rows, ${fresh} fresh, ${mismatched} mismatched`,
    ok: stored === plans.length && fresh === plans.length && mismatched === 0,
  });
  return created;
}

/** Per sourceEventId: every ingest answer for it. */
interface IngestOutcome {
  answers: Array<{ request: PlannedIngest; status: number; body: any; replayed: boolean }>;
}

const INGEST_KIND: Record<PlannedIngest['kind'], string> = {
  original: 'ingest: event',
  duplicate_source_id: 'ingest: same sourceEventId',
  idempotent_replay: 'ingest: same Idempotency-Key',
};

/** When the churn writes were answered (ISO time), for the reconciliation. */
interface Churn {
  deletedAt?: string;
  disabledAt?: string;
}

/** Halfway through the load: one webhook deleted, one disabled, by their owner. */
async function churn(client: Client, tokens: Tokens, webhooks: WebhookCreated[], done: Churn) {
  for (const wh of webhooks) {
    if (wh.churn === 'delete') {
      const res = await client.request('write: webhook delete', 'DELETE', path(`/webhooks/${wh.id}`), {
        token: tokens.owner,
        expected: [204],
      });
      if (res.status === 204) done.deletedAt = new Date().toISOString();
    } else if (wh.churn === 'disable') {
      const res = await client.request('write: webhook disable', 'PATCH', path(`/webhooks/${wh.id}`), {
        token: tokens.owner,
        body: { enabled: false },
        expected: [200],
      });
      if (res.status === 200) done.disabledAt = new Date().toISOString();
    }
  }
}

async function ingest(
  client: Client,
  tokens: Tokens,
  plan: PlannedIngest[],
  connections: number,
  outcomes: Map<string, IngestOutcome>,
  onAccepted: (notificationId: string) => void,
  halfway: () => Promise<void>,
) {
  let next = 0;
  let done = 0;
  let churned: Promise<void> | undefined;
  const progress = setInterval(() => console.log(`  ${done}/${plan.length} ingest requests answered`), 10_000);
  async function worker() {
    for (let i = next++; i < plan.length; i = next++) {
      if (i === Math.floor(plan.length / 2)) churned = halfway();
      const request = plan[i]!;
      // 409: the same Idempotency-Key is still being answered; 429: a throttle (never expected at these rates).
      const res = await client.request(INGEST_KIND[request.kind], 'POST', path('/events'), {
        token: tokens.publishers[request.publisher]!,
        body: request.body,
        headers: { 'idempotency-key': request.idempotencyKey },
        expected: [202, 409, 429],
      });
      let outcome = outcomes.get(request.body.sourceEventId);
      if (!outcome) {
        outcome = { answers: [] };
        outcomes.set(request.body.sourceEventId, outcome);
      }
      outcome.answers.push({
        request,
        status: res.status,
        body: res.body,
        replayed: res.headers['idempotent-replayed'] === 'true',
      });
      if (res.status === 202 && request.kind === 'original') onAccepted(res.body.notificationId);
      done++;
    }
  }
  try {
    await Promise.all(Array.from({ length: connections }, worker));
    await churned;
  } finally {
    clearInterval(progress);
  }
}

/**
 * The batch part of the load (scripts/soak/batches.ts): opens the peak window, then sends the batches with the
 * publisher's token; every item's answer joins `outcomes` like a single publish's.
 */
async function sendBatches(
  client: Client,
  tokens: Tokens,
  o: Options,
  runId: string,
  outcomes: Map<string, IngestOutcome>,
  onAccepted: (notificationId: string) => void,
): Promise<{ run: BatchRun; windowEnd: string } | undefined> {
  if (!o.batches) return undefined;
  const windowEnd = await openPeakWindow(client, path('/notification-settings'), tokens.owner);
  const run = await publishBatches(
    client,
    path('/events/batch'),
    tokens.publishers[0]!,
    planBatches(o.batches, runId, o.seed),
    (answer) => {
      let outcome = outcomes.get(answer.request.body.sourceEventId);
      if (!outcome) {
        outcome = { answers: [] };
        outcomes.set(answer.request.body.sourceEventId, outcome);
      }
      outcome.answers.push(answer);
      if (answer.status === 202 && !answer.replayed) onAccepted(answer.body.notificationId);
    },
  );
  if (Date.now() > Date.parse(windowEnd))
    console.log(`  ! the batches took longer than the ${PEAK_WINDOW_SECONDS} s peak window: fewer were deferred`);
  return { run, windowEnd };
}

/** Readers: the feed (newest first, then the next page), single notifications, delivery logs; until `stop()`. */
function startReaders(client: Client, tokens: Tokens, webhooks: WebhookCreated[], notificationIds: () => string[]) {
  let stopped = false;
  const loops = tokens.readers.map(async (token, r) => {
    let cursor: string | null = null;
    for (let n = 0; !stopped; n++) {
      const started = Date.now();
      const pick = (n + r) % 5;
      if (pick <= 1) {
        const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
        const res = await client.request('read: feed page', 'GET', path(`/notifications?limit=50${q}`), {
          token,
          expected: [200, 429],
        });
        cursor = res.status === 200 && n % 4 !== 0 ? (res.body?.nextCursor ?? null) : null;
      } else if (pick <= 3) {
        const ids = notificationIds();
        const id = ids[Math.floor(Math.random() * ids.length)];
        // A notification already purged answers 410 naming its archive (docs/design.md#retention-and-archives).
        if (id)
          await client.request('read: notification', 'GET', path(`/notifications/${id}`), {
            token,
            expected: [200, 410, 429],
          });
      } else {
        // The webhook deleted halfway would answer 404 (rightly); readers read the logs of the others.
        const readable = webhooks.filter((w) => w.churn !== 'delete');
        const wh = readable[n % readable.length]!;
        await client.request('read: delivery log', 'GET', path(`/webhooks/${wh.id}/deliveries?limit=20`), {
          token,
          expected: [200, 429],
        });
      }
      await sleep(Math.max(0, READER_INTERVAL_MS - (Date.now() - started)));
    }
  });
  return async () => {
    stopped = true;
    await Promise.all(loops);
  };
}

/** Polls until no notification is `delivering`; fails the soak at `deadline`. */
async function drain(client: Client, token: string, deadline: number): Promise<number> {
  let polls = 0;
  let quietPolls = 0;
  for (;;) {
    polls++;
    const res = await client.request('drain: poll', 'GET', path('/notifications?status=delivering&limit=200'), {
      token,
      expected: [200, 429],
    });
    if (res.status === 200) {
      const open = (res.body?.data ?? []).length;
      if (open === 0) quietPolls++;
      else quietPolls = 0;
      // Twice in a row: a delivery between the two reads would show up in the second.
      if (quietPolls >= 2) return polls;
      if (polls % 10 === 0) console.log(`  ${open}${res.body?.nextCursor ? '+' : ''} notifications still delivering`);
    }
    if (Date.now() > deadline) {
      const open = (res.body?.data ?? []) as Array<{
        id: string;
        deliveries: Array<{ deliveryId: string; status: string }>;
      }>;
      const first = open[0];
      throw new SoakError(
        `The queues did not drain before the time limit (--max-minutes): ${open.length}${res.body?.nextCursor ? '+' : ''} notifications still delivering` +
          (first
            ? `, e.g. ${first.id} with ${first.deliveries.map((d) => `${d.deliveryId} ${d.status}`).join(', ')}.`
            : '.'),
      );
    }
    await sleep(1_000);
  }
}

/** Runs the minute jobs every SCHEDULED_EVERY_MS until the returned function is called. */
function startCron(server: DevServer, recorder: Recorder): () => Promise<void> {
  let stopped = false;
  let wake: () => void = () => {};
  const loop = (async () => {
    while (!stopped) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, SCHEDULED_EVERY_MS).unref();
      });
      if (stopped) break;
      const started = performance.now();
      const status = await server.runScheduled().catch(() => 0);
      const ms = performance.now() - started;
      recorder.add(
        {
          kind: 'cron: minute jobs',
          status,
          ms,
          bareError: status !== 200,
          expected: status === 200,
          requestId: undefined,
          detail: undefined,
        },
        'GET',
        SCHEDULED_PATH,
      );
    }
  })();
  return async () => {
    stopped = true;
    wake();
    await loop;
  };
}

/** Lines of the Worker's JSON log by level, and the minute jobs it reports as done or failed. */
async function workerLog(
  file: string,
): Promise<{ levels: Record<string, number>; jobsDone: number; jobsFailed: number; errorLines: string[] }> {
  const levels: Record<string, number> = {};
  const errorLines: string[] = [];
  let jobsDone = 0;
  let jobsFailed = 0;
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: { level?: string; msg?: string };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    const level = entry.level ?? 'unknown';
    levels[level] = (levels[level] ?? 0) + 1;
    if (entry.msg === 'job_done') jobsDone++;
    if (entry.msg === 'job_failed') jobsFailed++;
    if (level === 'error' && errorLines.length < 10) errorLines.push(line.slice(0, 500));
  }
  return { levels, jobsDone, jobsFailed, errorLines };
}

/** Every notification of the feed, through the API (the reconciliation's view of what a user sees). */
async function readFeed(client: Client, token: string): Promise<any[]> {
  const all: any[] = [];
  let cursor: string | null = null;
  do {
    const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const res = await client.request('reconcile: feed page', 'GET', path(`/notifications?limit=200${q}`), {
      token,
      expected: [200],
    });
    if (res.status !== 200) throw new SoakError(`Reading the feed failed: ${res.status} ${JSON.stringify(res.body)}`);
    all.push(...res.body.data);
    cursor = res.body.nextCursor;
  } while (cursor);
  return all;
}

/**
 * Runs read-only SQL against one of the soak's local D1 files; one result set per statement. The demo handle's rows are
 * on SHARD_0 (scripts/dev-seed.ts), the mailbox and rejections on the control plane DB (docs/design.md#shards).
 */
async function sql(
  persistDir: string,
  statements: string[],
  binding: 'DB' | 'SHARD_0' = 'SHARD_0',
): Promise<Array<Array<Record<string, any>>>> {
  const out = await runWrangler(
    'read the soak database',
    ['d1', 'execute', binding, '--local', '--persist-to', persistDir, '--json', '--command', statements.join(';\n')],
    { timeoutMs: 120_000 },
  );
  const parsed = JSON.parse(out.slice(out.indexOf('['))) as Array<{ results: Array<Record<string, any>> }>;
  return parsed.map((p) => p.results);
}

async function receiverHits(receivers: Receivers, key: string): Promise<Hit[]> {
  const res = await fetch(`http://${LOOPBACK}:${receivers.port}/_hits/${encodeURIComponent(key)}`);
  return (await res.json()) as Hit[];
}

/** True when one of the `v1,` signatures of the hit is the one the standardwebhooks library computes. */
function signatureValid(hit: Hit, secret: string): boolean {
  const id = hit.headers['webhook-id'];
  const ts = Number(hit.headers['webhook-timestamp']);
  if (!id || !Number.isFinite(ts)) return false;
  const expected = new Webhook(secret).sign(id, new Date(ts * 1000), hit.body);
  return (hit.headers['webhook-signature'] ?? '').split(' ').includes(expected);
}

const count = <T>(items: Iterable<T>, pred: (t: T) => boolean) => {
  let n = 0;
  for (const t of items) if (pred(t)) n++;
  return n;
};

function tally(rows: Iterable<{ status: string }>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) out[r.status] = (out[r.status] ?? 0) + 1;
  return out;
}

interface ReconcileInput {
  client: Client;
  tokens: Tokens;
  receivers: Receivers;
  webhooks: WebhookCreated[];
  outcomes: Map<string, IngestOutcome>;
  churned: Churn;
  persistDir: string;
  baseUrl: string;
  stopServer: () => Promise<void>;
  checks: Check[];
  /** Observations that are not pass/fail (e.g. at-least-once redeliveries). */
  notes: string[];
  /** The batches sent and the peak window they were deferred by, when any. */
  batches?: { run: BatchRun; windowEnd: string } | undefined;
}

/**
 * The batch publish and deferral part of the reconciliation (on the D1 file with the archived rows back): the
 * deliveries of batch-stored events join `created`, whose checks then cover them; then the deferral checks.
 */
async function reconcileBatches(
  x: ReconcileInput,
  batches: { run: BatchRun; windowEnd: string },
  batchCreated: Set<string>,
  created: Map<string, { notificationId: string; subscriptionId: string | null; channel: string }>,
  deliveries: Array<{
    id: string;
    notification_id: string;
    subscription_id: string | null;
    channel: string;
    status: string;
  }>,
): Promise<{ released: number }> {
  for (const d of deliveries) {
    if (batchCreated.has(d.notification_id))
      created.set(d.id, { notificationId: d.notification_id, subscriptionId: d.subscription_id, channel: d.channel });
  }
  const [first] = (await sql(x.persistDir, [
    `SELECT d.id AS id, min(a.created_at) AS at FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id
     WHERE d.handle = '${HANDLE}' AND d.kind = 'event' GROUP BY d.id`,
  ])) as [Array<{ id: string; at: string }>];
  const firstAttempts = new Map(first.map((r) => [r.id, r.at]));
  const { checks, released } = deferralChecks(batches.run, batches.windowEnd, deliveries, firstAttempts);
  x.checks.push(...checks);
  x.notes.push(
    `batch publish: ${batches.run.requests} batch requests, ${batches.run.events} events (repeats and replays included), ` +
      `${batchCreated.size} stored, ${batches.run.refused} refused; ${batches.run.deferred.size} deferred by the peak window, ` +
      `${released} deliveries released after it`,
  );
  return { released };
}

async function reconcile(x: ReconcileInput) {
  const { checks } = x;
  // What the clients were told.
  const acceptedIds = new Map<string, string>(); // sourceEventId → notificationId
  const created = new Map<string, { notificationId: string; subscriptionId: string | null; channel: string }>();
  let splitAnswers = 0;
  let unmarkedReplays = 0;
  let creations = 0;
  // Notifications stored by a batch: its answer names no deliveries, so its rows in D1 are the ones created.
  const batchCreated = new Set<string>();
  for (const [sourceEventId, outcome] of x.outcomes) {
    const ok = outcome.answers.filter((a) => a.status === 202);
    const ids = new Set(ok.map((a) => a.body?.notificationId as string));
    if (ids.size > 1) splitAnswers++;
    if (ids.size) acceptedIds.set(sourceEventId, [...ids][0]!);
    const creators = ok.filter((a) => !a.replayed && a.body?.duplicate === false);
    creations += creators.length;
    // A second 202 for one Idempotency-Key must be the stored answer, marked as such.
    const byKey = new Map<string, number>();
    for (const a of ok)
      byKey.set(a.request.idempotencyKey, (byKey.get(a.request.idempotencyKey) ?? 0) + (a.replayed ? 0 : 1));
    unmarkedReplays += count(byKey.values(), (n) => n > 1);
    for (const a of creators) {
      if (!a.body.recipients) batchCreated.add(a.body.notificationId);
      for (const r of (a.body.recipients ?? []) as Array<{
        deliveryId: string;
        subscriptionId: string | null;
        channel: string;
      }>) {
        created.set(r.deliveryId, {
          notificationId: a.body.notificationId,
          subscriptionId: r.subscriptionId,
          channel: r.channel,
        });
      }
    }
  }
  checks.push({
    name: 'one notification per sourceEventId in every answer',
    expected: 0,
    actual: `${splitAnswers} split`,
    ok: splitAnswers === 0,
  });
  checks.push({
    name: 'answers that created a notification = events accepted',
    expected: acceptedIds.size,
    actual: creations,
    ok: creations === acceptedIds.size,
  });
  checks.push({
    name: 'repeated Idempotency-Key answered as a marked replay',
    expected: '0 unmarked',
    actual: `${unmarkedReplays} unmarked`,
    ok: unmarkedReplays === 0,
  });

  // What a user sees in the feed, read while the Worker still runs.
  const feed = await readFeed(x.client, x.tokens.readers[0]!);
  const feedById = new Map(feed.map((n) => [n.id as string, n]));

  // What the receivers saw.
  const hitsByWebhook = new Map<string, Hit[]>();
  for (const wh of x.webhooks) hitsByWebhook.set(wh.id, await receiverHits(x.receivers, wh.name));

  // What the purge took out of D1, as a user downloads it (the cron is stopped: nothing is purged any more).
  const archived = await readArchives(x.baseUrl, HANDLE, x.tokens.readers[0]!);
  const archivedNotifications = archived.lines.length;

  // What is stored: the D1 file, read after the Worker stopped (nothing can change under the reading), with the
  // archived rows put back, so that every check below counts them as present.
  await x.stopServer();
  const [present] = (await sql(x.persistDir, [
    `SELECT id FROM notifications WHERE handle = '${HANDLE}' UNION ALL SELECT id FROM deliveries WHERE handle = '${HANDLE}'
     UNION ALL SELECT a.id FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.handle = '${HANDLE}'`,
  ])) as [Array<{ id: string }>];
  const ids = archivedIds(archived);
  const stillInD1 = count(present, (r) => ids.has(r.id));
  checks.push({
    name: 'purged rows: each in exactly one verified archive (SHA-256, gunzip, NDJSON), none open, none still in D1',
    expected: '0 / 0 / 0 / 0',
    actual: `${archived.unverified.length} unverified / ${archived.repeated.length} repeated / ${archived.open.length} open / ${stillInD1} in D1`,
    ok: !archived.unverified.length && !archived.repeated.length && !archived.open.length && stillInD1 === 0,
  });
  checks.push({
    name: `notifications purged during the soak (archives)`,
    expected: '> 0',
    actual: `${archivedNotifications} (${archived.archives})`,
    ok: archivedNotifications > 0,
  });
  if (archivedNotifications) {
    const file = join(x.persistDir, '..', 'restore-archived.sql');
    await writeFile(file, restoreSql(archived));
    await runWrangler(
      'put the archived rows back',
      ['d1', 'execute', 'SHARD_0', '--local', '--persist-to', x.persistDir, '--file', file],
      { timeoutMs: 300_000 },
    );
  }
  const [mailbox, rejections, controlKeys] = (await sql(
    x.persistDir,
    [
      `SELECT sum(subject NOT LIKE '[TEST]%') AS notifications, sum(subject LIKE '[TEST]%') AS tests FROM dev_mailbox WHERE to_address = '${OWNER_EMAIL}'`,
      `SELECT count(*) AS n FROM event_rejections`,
      `SELECT count(*) AS n FROM idempotency_keys WHERE state = 'in_progress'`,
    ],
    'DB',
  )) as [any[], any[], any[]];
  const [notifications, deliveries, attempts, shardKeys, miscounted, latency, durations] = (await sql(x.persistDir, [
    `SELECT id, source_event_id, status, open_count FROM notifications WHERE handle = '${HANDLE}'`,
    `SELECT id, notification_id, subscription_id, channel, recipient_type, status, status_reason, attempt_count, created_at FROM deliveries WHERE handle = '${HANDLE}' AND kind = 'event'`,
    `SELECT d.subscription_id AS subscription_id, d.channel AS channel, a.outcome AS outcome, a.error_class AS error_class,
       a.http_status AS http_status, count(*) AS n
     FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
     WHERE d.handle = '${HANDLE}' AND d.kind = 'event' GROUP BY 1, 2, 3, 4, 5`,
    `SELECT count(*) AS n FROM idempotency_keys WHERE state = 'in_progress'`,
    // Deliveries whose attempt_count (what the feed shows) differs from the attempt rows (what the log shows).
    `SELECT d.id AS id, d.status AS status, d.status_reason AS status_reason, d.attempt_count AS attempt_count,
       (SELECT count(*) FROM delivery_attempts a WHERE a.delivery_id = d.id) AS attempt_rows,
       (SELECT group_concat(a.outcome) FROM delivery_attempts a WHERE a.delivery_id = d.id) AS outcomes
     FROM deliveries d WHERE d.handle = '${HANDLE}' AND d.kind = 'event'
       AND d.attempt_count <> (SELECT count(*) FROM delivery_attempts a WHERE a.delivery_id = d.id)`,
    // End-to-end delivery latency: accepted → first attempt, and accepted → succeeded.
    `SELECT (julianday(min(a.created_at)) - julianday(d.created_at)) * 86400000 AS first_ms,
       CASE WHEN d.status = 'succeeded' THEN (julianday(d.last_attempt_at) - julianday(d.created_at)) * 86400000 END AS succeeded_ms
     FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id
     WHERE d.handle = '${HANDLE}' AND d.kind = 'event' GROUP BY d.id`,
    `SELECT a.duration_ms AS ms FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
     WHERE d.handle = '${HANDLE}' AND d.kind = 'event' AND d.channel = 'webhook'`,
  ])) as [any[], any[], any[], any[], any[], any[], any[]];
  const stuckKeys: Array<{ n: number }> & [{ n: number }] = [
    { n: Number(controlKeys[0]?.n ?? 0) + Number(shardKeys[0]?.n ?? 0) },
  ];

  // Notifications: accepted = stored, as sets.
  const storedBySource = new Map(notifications.map((n) => [n.source_event_id as string, n]));
  const missingNotifications = count(acceptedIds, ([src, id]) => storedBySource.get(src)?.id !== id);
  const unannounced = count(notifications, (n) => !acceptedIds.has(n.source_event_id));
  checks.push({
    name: 'events accepted = notifications stored',
    expected: acceptedIds.size,
    actual: notifications.length,
    ok: acceptedIds.size === notifications.length && missingNotifications === 0 && unannounced === 0,
  });
  checks.push({
    name: 'notifications in the feed (API) = stored − archived',
    // The feed was read before the archived rows were put back: they are not in it.
    expected: notifications.length - archivedNotifications,
    actual: feed.length,
    ok:
      feed.length === notifications.length - archivedNotifications &&
      notifications.every((n) => ids.has(n.id) || feedById.get(n.id)?.status === n.status),
  });

  const batchPart = x.batches ? await reconcileBatches(x, x.batches, batchCreated, created, deliveries) : undefined;

  // Deliveries: created (answered at ingest) = stored = terminal.
  const storedDeliveries = new Map(deliveries.map((d) => [d.id as string, d]));
  const missingDeliveries = count(created.keys(), (id) => !storedDeliveries.has(id));
  const terminal = count(deliveries, (d) => TERMINAL.has(d.status));
  const inFlight = count(deliveries, (d) => OPEN.has(d.status));
  checks.push({
    name: 'deliveries created (ingest answers) = stored',
    expected: created.size,
    actual: deliveries.length,
    ok: created.size === deliveries.length && missingDeliveries === 0,
  });
  checks.push({
    name: 'deliveries terminal = deliveries created',
    expected: created.size,
    actual: terminal,
    ok: terminal === created.size,
  });
  // The drain watched the notifications' aggregate status; the rows themselves must agree that nothing is open.
  checks.push({
    name: 'deliveries still pending / queued / retrying after the drain',
    expected: 0,
    actual: inFlight,
    ok: inFlight === 0,
  });
  let feedMismatches = 0;
  for (const n of feed) {
    for (const d of n.deliveries as Array<{ deliveryId: string; status: string; attempts: number }>) {
      const s = storedDeliveries.get(d.deliveryId);
      if (!s || s.status !== d.status || s.attempt_count !== d.attempts) feedMismatches++;
    }
  }
  checks.push({
    name: 'feed deliveries agree with the delivery rows',
    expected: 0,
    actual: `${feedMismatches} differ`,
    ok: feedMismatches === 0,
  });
  // The counts each notification keeps (open / succeeded / dead) against a recount of its delivery rows.
  const recount = new Map<string, { open: number; succeeded: number; dead: number }>();
  for (const d of deliveries) {
    let c = recount.get(d.notification_id);
    if (!c) {
      c = { open: 0, succeeded: 0, dead: 0 };
      recount.set(d.notification_id, c);
    }
    if (OPEN.has(d.status)) c.open++;
    else if (d.status === 'succeeded') c.succeeded++;
    else if (d.status === 'dead') c.dead++;
  }
  const countMismatches = count(feed, (n) => {
    const c = recount.get(n.id) ?? { open: 0, succeeded: 0, dead: 0 };
    const k = n.deliveryCounts as { open: number; succeeded: number; dead: number };
    return k.open !== c.open || k.succeeded !== c.succeeded || k.dead !== c.dead;
  });
  checks.push({
    name: 'notification delivery counts = recount of delivery rows',
    expected: 0,
    actual: `${countMismatches} differ`,
    ok: countMismatches === 0,
  });

  // Receivers: every succeeded webhook delivery arrived, signed; every dead one was tried 8 times.
  const secrets = new Map(x.webhooks.map((w) => [w.id, w.secret]));
  let unseen = 0;
  let badSignatures = 0;
  let redelivered = 0;
  let hits = 0;
  for (const wh of x.webhooks) {
    const got = hitsByWebhook.get(wh.id)!;
    hits += got.length;
    badSignatures += count(got, (h) => !signatureValid(h, secrets.get(wh.id)!));
    const byDelivery = new Map<string, Hit[]>();
    for (const h of got) {
      const id = h.headers['webhook-id'] ?? '';
      let list = byDelivery.get(id);
      if (!list) {
        list = [];
        byDelivery.set(id, list);
      }
      list.push(h);
    }
    for (const d of deliveries.filter((d) => d.subscription_id === wh.id)) {
      const got = byDelivery.get(d.id) ?? [];
      if (d.status === 'succeeded') {
        if (!got.some((h) => h.response?.status === 200)) unseen++;
        if (got.length > 1) redelivered++;
      }
    }
  }
  const succeededWebhooks = count(deliveries, (d) => d.channel === 'webhook' && d.status === 'succeeded');
  checks.push({
    name: 'succeeded webhook deliveries the receivers got (by webhook-id)',
    expected: succeededWebhooks,
    actual: succeededWebhooks - unseen,
    ok: unseen === 0,
  });
  checks.push({
    name: 'webhook requests with a valid signature (standardwebhooks)',
    expected: 'all',
    actual: `${badSignatures} invalid`,
    ok: badSignatures === 0,
  });
  const dead = count(deliveries, (d) => d.status === 'dead');
  const deadWith8 = count(deliveries, (d) => d.status === 'dead' && d.attempt_count === 8);
  checks.push({
    name: 'dead deliveries with 8 attempts (then the DLQ)',
    expected: dead,
    actual: deadWith8,
    ok: deadWith8 === dead,
  });
  // Every attempt that got an HTTP answer is a request a receiver recorded, and the other way round.
  const answered = attempts
    .filter((a) => a.channel === 'webhook' && a.http_status !== null)
    .reduce((n, a) => n + a.n, 0);
  checks.push({
    name: 'webhook requests the receivers got = attempts with an HTTP status',
    expected: answered,
    actual: hits,
    ok: hits === answered,
  });

  checks.push({
    name: 'deliveries whose attempt count ≠ their attempt rows',
    expected: 0,
    actual: miscounted.length
      ? `${miscounted.length} (${Object.entries(
          tally(
            miscounted.map((m) => ({
              status: `${m.status}/${m.status_reason ?? '-'}: ${m.attempt_count} vs ${m.outcomes}`,
            })),
          ),
        )
          .slice(0, 3)
          .map(([k, n]) => `${n}× ${k}`)
          .join('; ')})`
      : 0,
    ok: miscounted.length === 0,
  });

  // Churn: nothing new for the deleted webhook, only `skipped` for the disabled one, once each change was answered.
  // The margin covers an ingest that read the subscriptions just before the change and wrote just after it.
  const margin = (iso: string | undefined) =>
    iso ? new Date(Date.parse(iso) + CHURN_MARGIN_MS).toISOString() : undefined;
  for (const wh of x.webhooks.filter((w) => w.churn)) {
    const mine = deliveries.filter((d) => d.subscription_id === wh.id);
    const changedAt = wh.churn === 'delete' ? x.churned.deletedAt : x.churned.disabledAt;
    const after = margin(changedAt);
    const allowed = wh.churn === 'delete' ? ['succeeded', 'cancelled'] : ['dead', 'skipped'];
    const late = after
      ? count(mine, (d) => d.created_at > after && (wh.churn === 'delete' || d.status !== 'skipped'))
      : 0;
    const outside = count(mine, (d) => !allowed.includes(d.status));
    checks.push({
      name: `webhook ${wh.churn === 'delete' ? 'deleted' : 'disabled'} halfway: final states ⊆ {${allowed.join(', ')}}, ${wh.churn === 'delete' ? 'none' : 'only skipped'} created > ${CHURN_MARGIN_MS / 1000} s after`,
      expected: changedAt ? '0 / 0' : 'change answered',
      actual: changedAt ? `${outside} / ${late}` : 'not answered',
      ok: Boolean(changedAt) && outside === 0 && late === 0,
    });
    if (wh.churn === 'delete') {
      // A request in flight at the DELETE that the receiver accepted is a delivery that happened: not `cancelled`.
      const accepted = new Set(
        (hitsByWebhook.get(wh.id) ?? []).filter((h) => h.response?.status === 200).map((h) => h.headers['webhook-id']),
      );
      const cancelledButAccepted = count(mine, (d) => d.status === 'cancelled' && accepted.has(d.id));
      checks.push({
        name: 'deleted webhook: cancelled deliveries its receiver had accepted (200)',
        expected: 0,
        actual: cancelledButAccepted,
        ok: cancelledButAccepted === 0,
      });
      x.notes.push(
        `deleted webhook: ${count(mine, (d) => d.status === 'cancelled')} deliveries cancelled, ${count(mine, (d) => d.status === 'succeeded')} succeeded`,
      );
    }
  }

  // Email: every succeeded owner-default delivery is a mail in the local mailbox; the address, set by three PUTs
  // with one Idempotency-Key, got exactly one test mail.
  const mailsSucceeded = count(deliveries, (d) => d.channel === 'email' && d.status === 'succeeded');
  const mails = mailbox[0] as { notifications: number | null; tests: number | null };
  checks.push({
    name: 'succeeded email deliveries = notification mails sent',
    expected: mailsSucceeded,
    actual: mails.notifications ?? 0,
    ok: (mails.notifications ?? 0) === mailsSucceeded,
  });
  checks.push({
    name: 'owner email set by 3 PUTs with one key → test mails',
    expected: 1,
    actual: mails.tests ?? 0,
    ok: mails.tests === 1,
  });
  checks.push({ name: 'event rejections recorded', expected: 0, actual: rejections[0].n, ok: rejections[0].n === 0 });
  checks.push({
    name: 'idempotency keys left in progress',
    expected: 0,
    actual: stuckKeys[0].n,
    ok: stuckKeys[0].n === 0,
  });

  const groupOf = new Map(
    x.webhooks.map((w) => [
      w.id,
      `webhook, receiver ${w.failing ? 500 : 200}${w.churn === 'delete' ? ', deleted halfway' : w.churn === 'disable' ? ', disabled halfway' : ''}`,
    ]),
  );
  const byGroup = new Map<string, Array<{ status: string }>>();
  for (const d of deliveries) {
    const group =
      d.channel === 'email'
        ? `email, ${d.recipient_type.replace('_', ' ')}`
        : (groupOf.get(d.subscription_id) ?? 'webhook, unknown');
    let list = byGroup.get(group);
    if (!list) {
      list = [];
      byGroup.set(group, list);
    }
    list.push(d);
  }
  const groups: SoakResult['deliveries'] = [...byGroup]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([group, rows]) => ({ group, counts: tally(rows) }));
  if (redelivered)
    x.notes.push(`${redelivered} succeeded webhook deliveries reached their receiver more than once (at-least-once)`);
  const byClass: Record<string, number> = {};
  for (const a of attempts) {
    const label = `${a.channel} ${a.outcome}${a.error_class ? ` ${a.error_class}` : ''}${a.http_status ? ` ${a.http_status}` : ''}`;
    byClass[label] = (byClass[label] ?? 0) + a.n;
  }
  const spread = (values: number[]) => {
    const sorted = values.sort((a, b) => a - b);
    return {
      p50Ms: Math.round(percentile(sorted, 50)),
      p99Ms: Math.round(percentile(sorted, 99)),
      maxMs: Math.round(sorted.at(-1) ?? 0),
    };
  };
  return {
    deliveries: groups,
    deliveryLatency: {
      firstAttempt: spread(latency.map((l) => l.first_ms as number)),
      succeeded: spread(latency.filter((l) => l.succeeded_ms !== null).map((l) => l.succeeded_ms as number)),
      webhookAttempt: spread(durations.map((d) => d.ms as number)),
    },
    attempts: { total: Object.values(byClass).reduce((a, b) => a + b, 0), byClass },
    // Accepted but not stored, or created but neither stored in a terminal state nor still on its way.
    lost:
      missingNotifications +
      count(created.keys(), (id) => {
        const status = storedDeliveries.get(id)?.status;
        return !status || !(TERMINAL.has(status) || OPEN.has(status));
      }),
    redelivered,
    deferredReleased: batchPart?.released ?? 0,
  };
}

async function main(): Promise<number> {
  const o = parseOptions();
  const startedAt = new Date();
  const budgetMs = o.maxMinutes * 60_000;
  const deadline = Date.now() + budgetMs;
  const phases = new Phases();
  const recorder = new Recorder();
  const checks: Check[] = [];
  const notes: string[] = [];
  const runId = `soak${startedAt.getTime().toString(36)}`;

  await mkdir(RESULTS_DIR, { recursive: true });
  const stateDir = await mkdtemp(join(tmpdir(), 'gharart-notify-soak-'));
  const persistDir = join(stateDir, 'state');
  const envFile = join(stateDir, 'secrets.env');
  const logFile = join(RESULTS_DIR, 'wrangler.log');
  const jwtSecret = randomBytes(48).toString('base64url');
  await writeFile(envFile, `JWT_SECRET=${jwtSecret}\nENCRYPTION_KEY=${randomBytes(32).toString('base64')}\n`, {
    mode: 0o600,
  });

  let server: DevServer | undefined;
  let receivers: Receivers | undefined;
  let client: Client | undefined;
  // A run over its time budget is a failure; the timer stops everything so nothing outlives it.
  const watchdog = setTimeout(() => {
    console.error(`✖ The soak exceeded its ${o.maxMinutes}-minute budget; stopping.`);
    void (server?.stop() ?? Promise.resolve()).finally(() => process.exit(1));
  }, budgetMs + 30_000);
  watchdog.unref();
  const interrupt = (signal: NodeJS.Signals) => {
    console.error(`✖ ${signal}: stopping wrangler dev.`);
    void (server?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);

  try {
    const creds = await demoCredentials(jwtSecret);
    await phases.run('migrate + seed', async () => {
      await migrateAll(['--local', '--persist-to', persistDir]);
      await runWrangler(
        'seed the demo data',
        ['d1', 'execute', 'DB', '--local', '--persist-to', persistDir, '--command', seedSql(creds.pat)],
        { timeoutMs: 120_000 },
      );
      await runWrangler(
        'seed the demo shard',
        ['d1', 'execute', 'SHARD_0', '--local', '--persist-to', persistDir, '--command', seedShardSql()],
        { timeoutMs: 120_000 },
      );
    });
    receivers = await startReceivers();
    const rx = receivers;
    server = await phases.run('start wrangler dev', () =>
      startDevServer({
        persistDir,
        envFile,
        vars: (baseUrl) => ({
          ENVIRONMENT: 'development',
          ALLOW_INSECURE_WEBHOOK_TARGETS: 'true',
          PUBLIC_BASE_URL: baseUrl,
          RETRY_DELAYS_SECONDS,
          PURGE_ENABLED: 'true',
          PURGE_CLOCK_AHEAD_SECONDS: String(86_400 - PURGE_AFTER_SECONDS),
          RELEASE_SPREAD_SECONDS: String(SOAK_RELEASE_SPREAD_SECONDS),
        }),
        logFile,
        readyTimeoutMs: 120_000,
      }),
    );
    const srv = server;
    console.log(`  ${server.baseUrl} (state ${persistDir}, log soak/results/wrangler.log)`);
    client = createClient(server.baseUrl, o.connections, recorder);
    const c = client;

    const publishers = Math.max(1, Math.ceil(o.connections / 10));
    const tokens: Tokens = {
      owner: creds.ownerJwt,
      controlPlane: creds.serviceJwt,
      // Several publisher services, each with its own throttle budget (6,000/min per token and handle).
      publishers: await Promise.all(
        Array.from({ length: publishers }, (_, p) =>
          signJwt(jwtSecret, `svc:soak-publisher-${p + 1}`, 'events:publish', { handles: [HANDLE] }),
        ),
      ),
      readers: await Promise.all(
        Array.from({ length: o.readers }, (_, r) => signJwt(jwtSecret, `user_soak_reader_${r + 1}`, READER_SCOPES)),
      ),
    };

    const webhooks = await phases.run('setup (idempotent writes)', () => setup(c, tokens, rx, o, checks));

    const plan = planIngest({
      requests: o.events,
      duplicateShare: o.duplicates,
      publishers,
      window: o.connections * 2,
      runId,
      seed: o.seed,
    });
    const outcomes = new Map<string, IngestOutcome>();
    const churned: Churn = {};
    const accepted: string[] = [];
    let batches: { run: BatchRun; windowEnd: string } | undefined;
    const stopCron = startCron(srv, recorder);
    try {
      const stopReaders = startReaders(c, tokens, webhooks, () => accepted);
      try {
        await phases.run(`ingest (${o.events} requests over ${o.connections} connections, with reads)`, async () => {
          const sent = sendBatches(c, tokens, o, runId, outcomes, (id) => accepted.push(id));
          await ingest(
            c,
            tokens,
            plan,
            o.connections,
            outcomes,
            (id) => accepted.push(id),
            () => churn(c, tokens, webhooks, churned),
          );
          batches = await sent;
        });
      } finally {
        await stopReaders();
      }
      const polls = await phases.run('drain', () => drain(c, tokens.readers[0]!, deadline - RECONCILE_RESERVE_MS));
      console.log(`  drained after ${polls} polls`);
    } finally {
      await stopCron();
    }

    const reconciled = await phases.run('reconcile', () =>
      reconcile({
        client: c,
        tokens,
        receivers: rx,
        webhooks,
        outcomes,
        churned,
        persistDir,
        baseUrl: srv.baseUrl,
        stopServer: () => srv.stop(),
        checks,
        notes,
        batches,
      }),
    );

    // The Worker's own account: no error logged, and every minute job run reported done.
    const log = await workerLog(logFile);
    const cronRuns = count(recorder.samples, (s) => s.kind === 'cron: minute jobs' && s.status === 200);
    checks.push({
      name: 'Worker log lines at level error',
      expected: 0,
      actual: log.levels.error ?? 0,
      ok: !log.levels.error,
    });
    checks.push({
      name: `minute jobs over ${cronRuns} cron runs: done / failed`,
      expected: `≥ ${cronRuns} / 0`,
      actual: `${log.jobsDone} / ${log.jobsFailed}`,
      ok: log.jobsDone >= cronRuns && log.jobsFailed === 0,
    });
    if (log.errorLines.length) console.log('Worker errors:', log.errorLines);

    const { kinds, errorsByStatus } = summarize(recorder.samples);
    const unexpected = recorder.samples.filter((s) => !s.expected);
    const unexpected5xx = count(recorder.samples, (s) => s.status >= 500);
    checks.push({
      name: 'unexpected answers (any 5xx, any error without problem+json, any other status)',
      expected: 0,
      actual: unexpected.length,
      ok: unexpected.length === 0,
    });
    checks.push({
      name: 'lost (accepted or created, but not stored in a terminal or open state)',
      expected: 0,
      actual: reconciled.lost,
      ok: reconciled.lost === 0,
    });
    const durationSeconds = (Date.now() - startedAt.getTime()) / 1000;
    checks.push({
      name: `whole run within ${o.maxMinutes} min`,
      expected: `≤ ${o.maxMinutes * 60} s`,
      actual: `${durationSeconds.toFixed(0)} s`,
      ok: durationSeconds <= o.maxMinutes * 60,
    });

    const result: SoakResult = {
      startedAt: startedAt.toISOString(),
      durationSeconds,
      phases: phases.seconds,
      config: {
        events: o.events,
        connections: o.connections,
        duplicates: o.duplicates,
        webhooks: o.webhooks,
        failingShare: o.failingShare,
        readers: o.readers,
        publishers,
        seed: o.seed,
        churn: o.churn,
        retryDelaysSeconds: RETRY_DELAYS_SECONDS,
      },
      requests: kinds,
      errorsByStatus,
      deliveries: reconciled.deliveries,
      deliveryLatency: reconciled.deliveryLatency,
      attempts: reconciled.attempts,
      lost: reconciled.lost,
      unexpected5xx,
      checks,
      notes,
      unexpectedSamples: recorder.unexpected,
      passed: checks.every((ch) => ch.ok),
    };
    const markdown = renderMarkdown(result);
    await writeFile(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(join(RESULTS_DIR, 'latest.md'), `${markdown}\n`);
    console.log(`\n${markdown}\n`);
    if (recorder.unexpected.length) console.log('First unexpected answers:', recorder.unexpected.slice(0, 5));
    console.log(`Results: soak/results/latest.json, soak/results/latest.md`);
    console.log(
      `soak ${result.passed ? 'passed' : 'FAILED'}: lost ${reconciled.lost}, ${durationSeconds.toFixed(0)} s, ` +
        `deferred released ${reconciled.deferredReleased}, batch events ${batches?.run.events ?? 0}`,
    );
    return result.passed ? 0 : 1;
  } finally {
    clearTimeout(watchdog);
    client?.close();
    await server?.stop();
    await receivers?.close();
    if (o.keepState) console.log(`State kept in ${stateDir}`);
    else await rm(stateDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof SoakError || err instanceof WranglerError) {
      console.error(`✖ ${err.message}`);
      if (err instanceof WranglerError && err.output) console.error(err.output.trimEnd());
    } else {
      console.error(err);
    }
    process.exit(1);
  },
);
