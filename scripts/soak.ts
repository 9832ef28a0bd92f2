/**
 * `npm run soak`: a bounded soak of the whole service on this machine, against `wrangler dev` on 127.0.0.1 with its
 * own fresh state (never .wrangler/state) and real local D1 and Queues.
 *
 * 1. Fresh secrets, migrations and the seed in a temporary state directory: the demo handle (scripts/dev-seed.ts) and
 *    `handles − 1` more, spread round-robin over SHARD_0 and SHARD_1 (docs/design.md#shards), each with its own owner.
 * 2. Webhook receivers on 127.0.0.1 (test/support/node/receivers.ts): per handle `webhooks` endpoints,
 *    `failing-share` of them answer 500.
 * 3. `wrangler dev` with a 1 s retry schedule, so a failing delivery is `dead` (8 attempts, then the DLQ) in seconds.
 * 4. Setup through the API, per handle, with every write sent several times with one Idempotency-Key (concurrently
 *    and after).
 * 5. Load: `events` ingest requests over `connections` keep-alive connections, spread over the handles (each with its
 *    own publisher tokens), `duplicates` of them repeats (half the same sourceEventId from another publisher, half the
 *    same request with the same Idempotency-Key), while readers page each handle's feed, open notifications and read
 *    delivery logs. Halfway (`midLoad`), one webhook of each handle is deleted and one disabled, and the first handle
 *    moves to the other shard (its writes wait out the 503 of the read-only pass and are sent again).
 * 6. Drain: polls every handle's feed until no notification is `delivering` (the minute jobs run every 20 s). Each
 *    handle's retention is 1 day and the purge's clock runs a day less PURGE_AFTER_SECONDS ahead, so every minute job
 *    run also archives to R2 and purges what closed more than that ago, between deliveries.
 * 7. Reconcile, per handle on the shard the directory names (that shard's own local D1 file): the answers the clients
 *    got with the feed, the receivers, the archives (read back through the API) and the rows with the archived ones
 *    put back; print the tables (per shard, per handle, the checks) and write soak/results/latest.{json,md}. Exit 0
 *    only when every check holds for every handle: lost = 0 and no unexpected answer (any 5xx).
 *
 * Along the load, `batches` batches of 100 events go through `POST …/events/batch` (scripts/soak/batches.ts), spread
 * over the handles, with repeats, every other one `off_peak` into a peak window opened for the first minute: their
 * deliveries are deferred, then released by the minute jobs (RELEASE_SPREAD_SECONDS is short here) and reconciled
 * like the rest.
 *
 * Options (or SOAK_<NAME> environment variables): --events 5000 --connections 50 --duplicates 0.1 --handles 4
 * --webhooks 10 (per handle) --failing-share 0.2 --readers 4 --batches 6 --max-minutes 10 --seed 1 --no-churn --no-move
 * --keep-state.
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
import {
  demoCredentials,
  type SeedHandle,
  seedHandles,
  seedHandlesSql,
  seedShardSql,
  seedSql,
  signJwt,
  userJwt,
} from './dev-seed.ts';
import { SCHEDULED_PATH } from './minute-jobs.ts';
import { moveHandle } from './move-handle.ts';
import { type ArchivedRows, archivedIds, readArchives, restoreSql } from './soak/archives.ts';
import {
  type BatchRun,
  type DeferralCounts,
  deferralChecks,
  deferralCounts,
  openPeakWindow,
  PEAK_WINDOW_SECONDS,
  planBatches,
  publishBatches,
  SOAK_RELEASE_SPREAD_SECONDS,
} from './soak/batches.ts';
import { type Answer, type Client, createClient, Recorder } from './soak/client.ts';
import { type PlannedIngest, planIngest, planWebhooks, type WebhookPlan } from './soak/plan.ts';
import {
  type Check,
  type LedgerRow,
  mergeChecks,
  percentile,
  renderMarkdown,
  type SoakResult,
  summarize,
} from './soak/report.ts';
import { type DevServer, LOOPBACK, startDevServer } from './soak/server.ts';
import { ROOT, runWrangler, WranglerError } from './wrangler-cli.ts';

const RESULTS_DIR = join(ROOT, 'soak', 'results');
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
 * Retention during the soak: every handle keeps 1 day, and the purge reads its clock (PURGE_CLOCK_AHEAD_SECONDS) a
 * day less this many seconds ahead, so a notification is expired this long after it was accepted. Long enough for the
 * repeats of a sourceEventId (sent within the same window of requests) to find the first one still in D1.
 */
const PURGE_AFTER_SECONDS = 60;
/** Kept for the reconciliation after the drain deadline. */
const RECONCILE_RESERVE_MS = 45_000;
/** See the churn checks in reconcileHandle(). */
const CHURN_MARGIN_MS = 5_000;
/** The data shards the soak spreads its handles over (wrangler.toml binds SHARD_0 and SHARD_1). */
const SHARDS = 2;
const TERMINAL = new Set(['succeeded', 'dead', 'cancelled', 'skipped']);
const OPEN = new Set(['pending', 'queued', 'retrying']);

interface Options {
  events: number;
  connections: number;
  duplicates: number;
  handles: number;
  webhooks: number;
  failingShare: number;
  readers: number;
  batches: number;
  maxMinutes: number;
  seed: number;
  churn: boolean;
  /** Move the first handle to another shard halfway through the load (docs/design.md#moving-a-handle). */
  move: boolean;
  keepState: boolean;
}

class SoakError extends Error {}

function parseOptions(): Options {
  const spec = {
    events: { type: 'string', default: process.env.SOAK_EVENTS ?? '5000' },
    connections: { type: 'string', default: process.env.SOAK_CONNECTIONS ?? '50' },
    duplicates: { type: 'string', default: process.env.SOAK_DUPLICATES ?? '0.1' },
    handles: { type: 'string', default: process.env.SOAK_HANDLES ?? '4' },
    webhooks: { type: 'string', default: process.env.SOAK_WEBHOOKS ?? '10' },
    'failing-share': { type: 'string', default: process.env.SOAK_FAILING_SHARE ?? '0.2' },
    readers: { type: 'string', default: process.env.SOAK_READERS ?? '4' },
    batches: { type: 'string', default: process.env.SOAK_BATCHES ?? '6' },
    'max-minutes': { type: 'string', default: process.env.SOAK_MAX_MINUTES ?? '10' },
    seed: { type: 'string', default: process.env.SOAK_SEED ?? '1' },
    'no-churn': { type: 'boolean', default: process.env.SOAK_NO_CHURN === '1' },
    'no-move': { type: 'boolean', default: process.env.SOAK_NO_MOVE === '1' },
    'keep-state': { type: 'boolean', default: process.env.SOAK_KEEP_STATE === '1' },
  } as const;
  const usage =
    'Usage: npm run soak [-- --events N --connections N --duplicates 0..1 --handles N --webhooks N --failing-share 0..1 --readers N --batches N --max-minutes N --seed N --no-churn --no-move --keep-state]';
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
    handles: num('handles', values.handles, 1, 16),
    webhooks: num('webhooks', values.webhooks, 1, 50),
    failingShare: num('failing-share', values['failing-share'], 0, 1, false),
    readers: num('readers', values.readers, 1, 20),
    batches: num('batches', values.batches, 0, 40),
    maxMinutes: num('max-minutes', values['max-minutes'], 1, 60, false),
    seed: num('seed', values.seed, 0, 2 ** 31),
    churn: !values['no-churn'],
    move: !values['no-move'],
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
      console.log(`  (${name}: ${this.seconds[name].toFixed(1)} s)`);
    }
  }
}

interface WebhookCreated extends WebhookPlan {
  id: string;
  secret: string;
}

/** When the churn writes were answered (ISO time), for the reconciliation. */
interface Churn {
  deletedAt?: string;
  disabledAt?: string;
}

/** One handle of the soak: where it was seeded, its own tokens and webhooks, and what its clients were told. */
interface SoakHandle extends SeedHandle {
  index: number;
  /** Its owner default email (one per handle, so the local mailbox tells them apart). */
  ownerEmail: string;
  tokens: {
    owner: string;
    /** Several publisher services, each with its own throttle budget (6,000/min per token and handle). */
    publishers: string[];
    readers: string[];
  };
  webhooks: WebhookCreated[];
  /** Notification ids accepted by single publishes, for the readers. */
  accepted: string[];
  churned: Churn;
  batches?: { run: BatchRun; windowEnd: string } | undefined;
  /** This handle's checks (setup and reconciliation); merged over the handles for the report. */
  checks: Check[];
}

const path = (h: SoakHandle, rest: string) => `/v2/handles/${h.handle}${rest}`;

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

/** One handle's setup: retention, its readers' memberships, owner email, settings and webhooks. */
async function setup(client: Client, h: SoakHandle, controlPlane: string, receivers: Receivers, o: Options) {
  const checks = h.checks;
  // A retention of one day: with the purge clock ahead (see PURGE_AFTER_SECONDS), the purge runs during the soak.
  const retention = await client.request('setup: retention', 'PUT', `/v2/internal/handles/${h.handle}`, {
    token: controlPlane,
    body: { displayName: h.displayName, retentionDays: 1 },
    expected: [200],
  });
  if (retention.status !== 200)
    throw new SoakError(
      `Could not set the retention of ${h.handle}: ${retention.status} ${JSON.stringify(retention.body)}`,
    );
  for (let r = 0; r < h.tokens.readers.length; r++) {
    const res = await client.request(
      'setup: provision member',
      'PUT',
      `/v2/internal/handles/${h.handle}/members/${readerId(h, r)}`,
      { token: controlPlane, body: { role: 'viewer' }, expected: [200, 201] },
    );
    if (res.status !== 200 && res.status !== 201)
      throw new SoakError(`Could not provision reader ${readerId(h, r)}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  const email = await idempotentWrite(
    client,
    'write: owner email ×3',
    'PUT',
    path(h, '/notifications/owner-default-email'),
    h.tokens.owner,
    { email: h.ownerEmail },
    `soak-owner-email-${h.handle}`,
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

  const before = await client.request('read: settings', 'GET', path(h, '/notification-settings'), {
    token: h.tokens.owner,
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
    path(h, '/notification-settings'),
    h.tokens.owner,
    settingsBody,
    `soak-settings-${h.handle}`,
    4,
    [200, 409],
  );
  const settingsReplay = replayFindings(settings, (a) => a.body?.version);
  const after = await client.request('read: settings', 'GET', path(h, '/notification-settings'), {
    token: h.tokens.owner,
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

  // Receiver keys (and names) carry the handle's number: each handle's webhooks are its own.
  const plans = planWebhooks(o.webhooks, o.failingShare, o.churn).map((p) => ({
    ...p,
    name: `h${h.index + 1}-${p.name}`,
  }));
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
      path(h, '/webhooks'),
      h.tokens.owner,
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
    h.webhooks.push({ ...plan, id: first.body.id, secret: first.body.secret });
  }
  const list = await client.request('read: webhooks', 'GET', path(h, '/webhooks?limit=200'), {
    token: h.tokens.owner,
    expected: [200],
  });
  const stored = (list.body?.data ?? []).length;
  checks.push({
    name: `webhooks: ${plans.length} × 4 POSTs with one key each → ${plans.length} rows`,
    expected: `${plans.length} rows, ${plans.length} fresh, 0 mismatched`,
    actual: `${stored} rows, ${fresh} fresh, ${mismatched} mismatched`,
    ok: stored === plans.length && fresh === plans.length && mismatched === 0,
  });
}

const readerId = (h: SoakHandle, r: number) => `user_soak_reader_${h.index + 1}_${r + 1}`;

/** Per sourceEventId: the handle it was published to, and every ingest answer for it. */
interface IngestOutcome {
  handle: number;
  answers: Array<{ request: PlannedIngest; status: number; body: any; replayed: boolean }>;
}

const INGEST_KIND: Record<PlannedIngest['kind'], string> = {
  original: 'ingest: event',
  duplicate_source_id: 'ingest: same sourceEventId',
  idempotent_replay: 'ingest: same Idempotency-Key',
};

/** The answers of one sourceEventId (created on its first answer). */
function outcomeOf(outcomes: Map<string, IngestOutcome>, sourceEventId: string, handle: number): IngestOutcome {
  let outcome = outcomes.get(sourceEventId);
  if (!outcome) {
    outcome = { handle, answers: [] };
    outcomes.set(sourceEventId, outcome);
  }
  return outcome;
}

/** Halfway through the load: one webhook of the handle deleted, one disabled, by its owner. */
async function churn(client: Client, h: SoakHandle) {
  for (const wh of h.webhooks) {
    if (wh.churn === 'delete') {
      const res = await client.request('write: webhook delete', 'DELETE', path(h, `/webhooks/${wh.id}`), {
        token: h.tokens.owner,
        expected: [204],
      });
      if (res.status === 204) h.churned.deletedAt = new Date().toISOString();
    } else if (wh.churn === 'disable') {
      const res = await client.request('write: webhook disable', 'PATCH', path(h, `/webhooks/${wh.id}`), {
        token: h.tokens.owner,
        body: { enabled: false },
        expected: [200],
      });
      if (res.status === 200) h.churned.disabledAt = new Date().toISOString();
    }
  }
}

/**
 * What happens halfway through the load, while events keep coming to every handle: each handle's webhook churn.
 * This is the one place for a change of topology mid-load, such as moving a handle to the other shard (one awaited
 * call beside the churn): the reconciliation reads each handle's shard from the directory once the Worker stopped,
 * so a handle is reconciled on the shard it ended up on.
 */
async function midLoad(
  client: Client,
  handles: readonly SoakHandle[],
  move: { url: string; serviceToken: string } | null,
): Promise<MoveRun | null> {
  const [moved] = await Promise.all([
    move ? moveFirstHandle(handles, move) : null,
    ...handles.map((h) => churn(client, h)),
  ]);
  return moved;
}

/** The mid-load move: which handle went where, and how the move ended (its last state, or the error). */
interface MoveRun {
  handle: string;
  from: number;
  to: number;
  phase: string;
  rowsCopied: number;
  seconds: number;
  error: string | null;
}

/**
 * Moves the first handle to the other shard while the load goes on, through the same steps as `npm run handle:move`
 * (scripts/move-handle.ts). Its writes answer 503 with Retry-After during the last pass; the soak's client waits and
 * sends them again, as a client should (scripts/soak/client.ts).
 */
async function moveFirstHandle(
  handles: readonly SoakHandle[],
  move: { url: string; serviceToken: string },
): Promise<MoveRun> {
  const h = handles[0]!;
  const to = h.shard === 0 ? 1 : 0;
  const started = performance.now();
  console.log(`  moving ${h.handle}: SHARD_${h.shard} → SHARD_${to}`);
  const run = { handle: h.handle, from: h.shard, to };
  try {
    const state = await moveHandle({ ...move, handle: h.handle, toShard: to });
    const seconds = Math.round((performance.now() - started) / 1000);
    console.log(`  moved ${h.handle} in ${seconds} s: ${state.phase}, ${state.rowsCopied} rows copied`);
    return { ...run, phase: state.phase, rowsCopied: state.rowsCopied, seconds, error: state.error };
  } catch (err) {
    const seconds = Math.round((performance.now() - started) / 1000);
    return { ...run, phase: 'error', rowsCopied: 0, seconds, error: err instanceof Error ? err.message : String(err) };
  }
}

/** The handle an ingest request goes to: by its event, so a repeat goes where its original went. */
const handleOfRequest = (handles: readonly SoakHandle[], request: PlannedIngest) =>
  handles[request.event % handles.length]!;

async function ingest(
  client: Client,
  handles: readonly SoakHandle[],
  plan: PlannedIngest[],
  connections: number,
  outcomes: Map<string, IngestOutcome>,
  halfway: () => Promise<void>,
) {
  let next = 0;
  let done = 0;
  let halfwayDone: Promise<void> | undefined;
  const progress = setInterval(() => console.log(`  ${done}/${plan.length} ingest requests answered`), 10_000);
  async function worker() {
    for (let i = next++; i < plan.length; i = next++) {
      if (i === Math.floor(plan.length / 2)) halfwayDone = halfway();
      const request = plan[i]!;
      const h = handleOfRequest(handles, request);
      // 409: the same Idempotency-Key is still being answered; 429: a throttle (never expected at these rates).
      const res = await client.request(INGEST_KIND[request.kind], 'POST', path(h, '/events'), {
        token: h.tokens.publishers[request.publisher]!,
        body: request.body,
        headers: { 'idempotency-key': request.idempotencyKey },
        expected: [202, 409, 429],
      });
      outcomeOf(outcomes, request.body.sourceEventId, h.index).answers.push({
        request,
        status: res.status,
        body: res.body,
        replayed: res.headers['idempotent-replayed'] === 'true',
      });
      if (res.status === 202 && request.kind === 'original') h.accepted.push(res.body.notificationId);
      done++;
    }
  }
  try {
    await Promise.all(Array.from({ length: connections }, worker));
    await halfwayDone;
  } finally {
    clearInterval(progress);
  }
}

/**
 * The batch part of the load (scripts/soak/batches.ts), spread over the handles (handle k gets the k-th share of
 * `batches`, planned on its own so a batch's repeats are of its own handle's events): each handle with batches opens
 * its peak window, then sends them with its first publisher's token, the handles at once; every item's answer joins
 * `outcomes` like a single publish's.
 */
async function sendBatches(
  client: Client,
  handles: readonly SoakHandle[],
  o: Options,
  runId: string,
  outcomes: Map<string, IngestOutcome>,
): Promise<void> {
  await Promise.all(
    handles.map(async (h) => {
      const count = Math.floor(o.batches / handles.length) + (h.index < o.batches % handles.length ? 1 : 0);
      if (!count) return;
      const windowEnd = await openPeakWindow(client, path(h, '/notification-settings'), h.tokens.owner);
      const run = await publishBatches(
        client,
        path(h, '/events/batch'),
        h.tokens.publishers[0]!,
        planBatches(count, `${runId}-h${h.index + 1}`, o.seed + h.index),
        (answer) => outcomeOf(outcomes, answer.request.body.sourceEventId, h.index).answers.push(answer),
      );
      if (Date.now() > Date.parse(windowEnd))
        console.log(`  ! ${h.handle}: the batches took longer than the ${PEAK_WINDOW_SECONDS} s peak window`);
      h.batches = { run, windowEnd };
    }),
  );
}

/** Readers: per handle, the feed (newest first, then the next page), single notifications, delivery logs. */
function startReaders(client: Client, handles: readonly SoakHandle[]) {
  let stopped = false;
  const loops = handles.flatMap((h) =>
    h.tokens.readers.map(async (token, r) => {
      let cursor: string | null = null;
      for (let n = 0; !stopped; n++) {
        const started = Date.now();
        const pick = (n + r + h.index) % 5;
        if (pick <= 1) {
          const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
          const res = await client.request('read: feed page', 'GET', path(h, `/notifications?limit=50${q}`), {
            token,
            expected: [200, 429],
          });
          cursor = res.status === 200 && n % 4 !== 0 ? (res.body?.nextCursor ?? null) : null;
        } else if (pick <= 3) {
          const id = h.accepted[Math.floor(Math.random() * h.accepted.length)];
          // A notification already purged answers 410 naming its archive (docs/design.md#retention-and-archives).
          if (id)
            await client.request('read: notification', 'GET', path(h, `/notifications/${id}`), {
              token,
              expected: [200, 410, 429],
            });
        } else {
          // The webhook deleted halfway would answer 404 (rightly); readers read the logs of the others.
          const readable = h.webhooks.filter((w) => w.churn !== 'delete');
          const wh = readable[n % readable.length]!;
          await client.request('read: delivery log', 'GET', path(h, `/webhooks/${wh.id}/deliveries?limit=20`), {
            token,
            expected: [200, 429],
          });
        }
        await sleep(Math.max(0, READER_INTERVAL_MS - (Date.now() - started)));
      }
    }),
  );
  return async () => {
    stopped = true;
    await Promise.all(loops);
  };
}

/** Polls every handle until none has a notification `delivering`; fails the soak at `deadline`. */
async function drain(client: Client, handles: readonly SoakHandle[], deadline: number): Promise<number> {
  let polls = 0;
  const quiet = new Map(handles.map((h) => [h.index, 0]));
  for (;;) {
    polls++;
    const open: string[] = [];
    for (const h of handles) {
      // Twice in a row: a delivery between the two reads would show up in the second.
      if (quiet.get(h.index)! >= 2) continue;
      const res = await client.request('drain: poll', 'GET', path(h, '/notifications?status=delivering&limit=200'), {
        token: h.tokens.readers[0]!,
        expected: [200, 429],
      });
      if (res.status !== 200) {
        open.push(`${h.handle}: ${res.status}`);
        continue;
      }
      const data = (res.body?.data ?? []) as Array<{
        id: string;
        deliveries: Array<{ deliveryId: string; status: string }>;
      }>;
      quiet.set(h.index, data.length === 0 ? quiet.get(h.index)! + 1 : 0);
      if (data.length) {
        const first = data[0]!;
        open.push(
          `${h.handle}: ${data.length}${res.body?.nextCursor ? '+' : ''} delivering, e.g. ${first.id} with ` +
            first.deliveries.map((d) => `${d.deliveryId} ${d.status}`).join(', '),
        );
      }
    }
    if ([...quiet.values()].every((n) => n >= 2)) return polls;
    if (polls % 10 === 0) console.log(`  still delivering: ${open.map((s) => s.split(', e.g.')[0]).join('; ')}`);
    if (Date.now() > deadline) {
      throw new SoakError(
        `The queues did not drain before the time limit (--max-minutes): ${open.join('; ') || 'no quiet poll twice'}.`,
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

/** Every notification of a handle's feed, through the API (the reconciliation's view of what a user sees). */
async function readFeed(client: Client, h: SoakHandle): Promise<any[]> {
  const all: any[] = [];
  let cursor: string | null = null;
  do {
    const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const res = await client.request('reconcile: feed page', 'GET', path(h, `/notifications?limit=200${q}`), {
      token: h.tokens.readers[0]!,
      expected: [200],
    });
    if (res.status !== 200)
      throw new SoakError(`Reading the feed of ${h.handle} failed: ${res.status} ${JSON.stringify(res.body)}`);
    all.push(...res.body.data);
    cursor = res.body.nextCursor;
  } while (cursor);
  return all;
}

/**
 * Runs read-only SQL against one of the soak's local D1 files (`DB`, the control plane, or a data shard `SHARD_<n>`:
 * docs/design.md#shards); one result set per statement.
 */
async function sql(
  persistDir: string,
  statements: string[],
  binding: string,
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

/** What the Worker showed of one handle before it stopped: its feed, its receivers' requests and its archives. */
interface SeenThroughApi {
  feed: any[];
  hitsByWebhook: Map<string, Hit[]>;
  archived: ArchivedRows;
}

/** One handle's rows, read from the local D1 file of the shard it lives on (with the archived rows put back). */
interface HandleRows {
  /** Ids of its notifications, deliveries and attempts before the archived rows were put back. */
  present: Array<{ id: string }>;
  notifications: any[];
  deliveries: any[];
  attempts: any[];
  miscounted: any[];
  /** Per delivery with an attempt: its first attempt's time, and the latencies from acceptance. */
  latency: any[];
  durations: any[];
  mailbox: { notifications: number | null; tests: number | null };
}

/** One handle's reconciliation, beyond its checks (which go to `h.checks`). */
interface HandleResult {
  lost: number;
  redelivered: number;
  groups: Map<string, Array<{ status: string }>>;
  attemptsByClass: Record<string, number>;
  firstMs: number[];
  succeededMs: number[];
  durationMs: number[];
  deferral?: DeferralCounts;
  row: LedgerRow;
}

interface ReconcileInput {
  client: Client;
  receivers: Receivers;
  handles: SoakHandle[];
  outcomes: Map<string, IngestOutcome>;
  persistDir: string;
  baseUrl: string;
  stopServer: () => Promise<void>;
  /** Checks over the whole run (not one handle's). */
  checks: Check[];
  /** Observations that are not pass/fail (e.g. at-least-once redeliveries). */
  notes: string[];
}

/** `'a', 'b'`: the handles of a shard as an SQL list (seeded names, no quotes in them). */
const sqlList = (handles: readonly SoakHandle[]) => handles.map((h) => `'${h.handle}'`).join(', ');

/**
 * Reads every handle's rows from the shard `directory` names (one `wrangler d1 execute` per statement group and shard,
 * never across shards), after putting that shard's archived rows back. Answers the rows per handle index and
 * the shard's idempotency keys left in progress.
 */
async function readShards(
  x: ReconcileInput,
  seen: Map<number, SeenThroughApi>,
  directory: Array<{ handle: string; shard: number }>,
): Promise<{ rows: Map<number, Omit<HandleRows, 'mailbox'>>; shardOf: Map<number, number>; stuckKeys: number }> {
  const placed = new Map(directory.map((r) => [r.handle, Number(r.shard)]));
  const onShard = new Map<number, SoakHandle[]>();
  const shardOf = new Map<number, number>();
  for (const h of x.handles) {
    const shard = placed.get(h.handle);
    if (shard === undefined) throw new SoakError(`${h.handle} is not in the directory any more.`);
    shardOf.set(h.index, shard);
    onShard.set(shard, [...(onShard.get(shard) ?? []), h]);
  }
  const rows = new Map<number, Omit<HandleRows, 'mailbox'>>();
  let stuckKeys = 0;
  // The shards one after another would each wait for the other's wrangler; their files are apart, so at once.
  const perShard = async ([shard, hs]: [number, SoakHandle[]]) => {
    const binding = `SHARD_${shard}`;
    const list = sqlList(hs);
    const [present] = (await sql(
      x.persistDir,
      [
        `SELECT handle, id FROM notifications WHERE handle IN (${list})
         UNION ALL SELECT handle, id FROM deliveries WHERE handle IN (${list})
         UNION ALL SELECT d.handle AS handle, a.id AS id FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
           WHERE d.handle IN (${list})`,
      ],
      binding,
    )) as [Array<{ handle: string; id: string }>];
    const restore = hs
      .map((h) => seen.get(h.index)!.archived)
      .filter((a) => a.lines.length)
      .map(restoreSql)
      .join('\n');
    if (restore) {
      const file = join(x.persistDir, '..', `restore-archived-${binding}.sql`);
      await writeFile(file, restore);
      await runWrangler(
        `put the archived rows back (${binding})`,
        ['d1', 'execute', binding, '--local', '--persist-to', x.persistDir, '--file', file],
        { timeoutMs: 300_000 },
      );
    }
    const [notifications, deliveries, attempts, keys, miscounted, latency, durations] = (await sql(
      x.persistDir,
      [
        `SELECT handle, id, source_event_id, status, open_count FROM notifications WHERE handle IN (${list})`,
        `SELECT handle, id, notification_id, subscription_id, channel, recipient_type, status, status_reason, attempt_count,
           created_at FROM deliveries WHERE handle IN (${list}) AND kind = 'event'`,
        `SELECT d.handle AS handle, d.subscription_id AS subscription_id, d.channel AS channel, a.outcome AS outcome,
           a.error_class AS error_class, a.http_status AS http_status, count(*) AS n
         FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE d.handle IN (${list}) AND d.kind = 'event' GROUP BY 1, 2, 3, 4, 5, 6`,
        `SELECT count(*) AS n FROM idempotency_keys WHERE state = 'in_progress'`,
        // Deliveries whose attempt_count (what the feed shows) differs from the attempt rows (what the log shows).
        `SELECT d.handle AS handle, d.id AS id, d.status AS status, d.status_reason AS status_reason,
           d.attempt_count AS attempt_count,
           (SELECT count(*) FROM delivery_attempts a WHERE a.delivery_id = d.id) AS attempt_rows,
           (SELECT group_concat(a.outcome) FROM delivery_attempts a WHERE a.delivery_id = d.id) AS outcomes
         FROM deliveries d WHERE d.handle IN (${list}) AND d.kind = 'event'
           AND d.attempt_count <> (SELECT count(*) FROM delivery_attempts a WHERE a.delivery_id = d.id)`,
        // End-to-end delivery latency: accepted → first attempt, and accepted → succeeded.
        `SELECT d.handle AS handle, d.id AS id, min(a.created_at) AS first_at,
           (julianday(min(a.created_at)) - julianday(d.created_at)) * 86400000 AS first_ms,
           CASE WHEN d.status = 'succeeded' THEN (julianday(d.last_attempt_at) - julianday(d.created_at)) * 86400000 END
             AS succeeded_ms
         FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id
         WHERE d.handle IN (${list}) AND d.kind = 'event' GROUP BY d.id`,
        `SELECT d.handle AS handle, a.duration_ms AS ms FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE d.handle IN (${list}) AND d.kind = 'event' AND d.channel = 'webhook'`,
      ],
      binding,
    )) as [any[], any[], any[], any[], any[], any[], any[]];
    stuckKeys += Number(keys[0]?.n ?? 0);
    for (const h of hs) {
      const mine = <T extends { handle: string }>(list: T[]) => list.filter((r) => r.handle === h.handle);
      rows.set(h.index, {
        present: mine(present),
        notifications: mine(notifications),
        deliveries: mine(deliveries),
        attempts: mine(attempts),
        miscounted: mine(miscounted),
        latency: mine(latency),
        durations: mine(durations),
      });
    }
  };
  await Promise.all([...onShard].map(perShard));
  return { rows, shardOf, stuckKeys };
}

async function reconcile(x: ReconcileInput) {
  // What a user sees of each handle, read while the Worker still runs: the feed, the receivers, the archives (the cron
  // is stopped: nothing is purged any more).
  const seen = new Map<number, SeenThroughApi>();
  for (const h of x.handles) {
    const feed = await readFeed(x.client, h);
    const hitsByWebhook = new Map<string, Hit[]>();
    for (const wh of h.webhooks) hitsByWebhook.set(wh.id, await receiverHits(x.receivers, wh.name));
    seen.set(h.index, { feed, hitsByWebhook, archived: await readArchives(x.baseUrl, h.handle, h.tokens.readers[0]!) });
  }

  // What is stored: the D1 files, read after the Worker stopped (nothing can change under the reading).
  await x.stopServer();
  const [directory, mailboxes, rejections, controlKeys] = (await sql(
    x.persistDir,
    [
      // Where each handle lives now (a handle moved during the run is reconciled on its new shard).
      'SELECT handle, shard FROM handles',
      `SELECT to_address, sum(subject NOT LIKE '[TEST]%') AS notifications, sum(subject LIKE '[TEST]%') AS tests
       FROM dev_mailbox GROUP BY to_address`,
      `SELECT count(*) AS n FROM event_rejections`,
      `SELECT count(*) AS n FROM idempotency_keys WHERE state = 'in_progress'`,
    ],
    'DB',
  )) as [Array<{ handle: string; shard: number }>, any[], any[], any[]];
  const { rows, shardOf, stuckKeys } = await readShards(x, seen, directory);
  const mailboxOf = new Map(mailboxes.map((m) => [m.to_address as string, m]));

  const results: HandleResult[] = [];
  for (const h of x.handles) {
    const mailbox = mailboxOf.get(h.ownerEmail) ?? { notifications: 0, tests: 0 };
    const outcomes = [...x.outcomes].filter(([, o]) => o.handle === h.index);
    results.push(
      reconcileHandle(
        h,
        shardOf.get(h.index)!,
        outcomes,
        seen.get(h.index)!,
        { ...rows.get(h.index)!, mailbox },
        x.notes,
      ),
    );
  }

  // Over the whole run: the deferral checks (summed over the handles that sent batches), the control plane's rows.
  const deferrals = results.flatMap((r) => (r.deferral ? [r.deferral] : []));
  if (deferrals.length) x.checks.push(...deferralChecks(deferrals));
  x.checks.push({
    name: 'event rejections recorded',
    expected: 0,
    actual: Number(rejections[0]?.n ?? 0),
    ok: Number(rejections[0]?.n ?? 0) === 0,
  });
  const stuck = Number(controlKeys[0]?.n ?? 0) + stuckKeys;
  x.checks.push({
    name: 'idempotency keys left in progress (control plane and every shard)',
    expected: 0,
    actual: stuck,
    ok: stuck === 0,
  });

  // The ledger per handle and per shard.
  for (const [i, r] of results.entries()) r.row.failedChecks = count(x.handles[i]!.checks, (c) => !c.ok);
  const handleRows = results.map((r) => r.row);
  const shardRows: LedgerRow[] = [...new Set(handleRows.map((r) => r.shard))]
    .sort((a, b) => a - b)
    .map((shard) => {
      const mine = results.filter((r) => r.row.shard === shard);
      const sum = (k: keyof LedgerRow) => mine.reduce((n, r) => n + (r.row[k] as number), 0);
      const first = mine.flatMap((r) => r.firstMs).sort((a, b) => a - b);
      return {
        name: `SHARD_${shard}`,
        shard,
        handles: mine.length,
        accepted: sum('accepted'),
        stored: sum('stored'),
        archived: sum('archived'),
        deliveries: sum('deliveries'),
        terminal: sum('terminal'),
        succeeded: sum('succeeded'),
        dead: sum('dead'),
        attempts: sum('attempts'),
        lost: sum('lost'),
        firstAttemptP50Ms: Math.round(percentile(first, 50)),
        firstAttemptP99Ms: Math.round(percentile(first, 99)),
        failedChecks: sum('failedChecks'),
      };
    });

  // The whole run's tables: deliveries by group, attempts by class, latency.
  const byGroup = new Map<string, Array<{ status: string }>>();
  for (const r of results) for (const [g, list] of r.groups) byGroup.set(g, [...(byGroup.get(g) ?? []), ...list]);
  const groups: SoakResult['deliveries'] = [...byGroup]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([group, list]) => ({ group, counts: tally(list) }));
  const byClass: Record<string, number> = {};
  for (const r of results) for (const [k, n] of Object.entries(r.attemptsByClass)) byClass[k] = (byClass[k] ?? 0) + n;
  const spread = (values: number[]) => {
    const sorted = values.sort((a, b) => a - b);
    return {
      p50Ms: Math.round(percentile(sorted, 50)),
      p99Ms: Math.round(percentile(sorted, 99)),
      maxMs: Math.round(sorted.at(-1) ?? 0),
    };
  };
  const redelivered = results.reduce((n, r) => n + r.redelivered, 0);
  if (redelivered)
    x.notes.push(`${redelivered} succeeded webhook deliveries reached their receiver more than once (at-least-once)`);
  return {
    deliveries: groups,
    deliveryLatency: {
      firstAttempt: spread(results.flatMap((r) => r.firstMs)),
      succeeded: spread(results.flatMap((r) => r.succeededMs)),
      webhookAttempt: spread(results.flatMap((r) => r.durationMs)),
    },
    attempts: { total: Object.values(byClass).reduce((a, b) => a + b, 0), byClass },
    lost: results.reduce((n, r) => n + r.lost, 0),
    redelivered,
    deferredReleased: deferrals.reduce((n, d) => n + d.released, 0),
    handles: handleRows,
    shards: shardRows,
  };
}

/**
 * One handle's reconciliation, on the rows of the shard it lives on: what its clients were told against its feed, its
 * receivers, its archives and its rows. Every check goes to `h.checks`.
 */
function reconcileHandle(
  h: SoakHandle,
  shard: number,
  outcomes: Array<[string, IngestOutcome]>,
  seen: SeenThroughApi,
  stored: HandleRows,
  notes: string[],
): HandleResult {
  const checks = h.checks;
  const { feed, hitsByWebhook, archived } = seen;
  const { notifications, deliveries, attempts, miscounted, latency, durations, mailbox } = stored;
  // What the clients were told.
  const acceptedIds = new Map<string, string>(); // sourceEventId → notificationId
  const created = new Map<string, { notificationId: string; subscriptionId: string | null; channel: string }>();
  let splitAnswers = 0;
  let unmarkedReplays = 0;
  let creations = 0;
  // Notifications stored by a batch: its answer names no deliveries, so its rows in D1 are the ones created.
  const batchCreated = new Set<string>();
  for (const [sourceEventId, outcome] of outcomes) {
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

  const feedById = new Map(feed.map((n) => [n.id as string, n]));
  const archivedNotifications = archived.lines.length;
  const ids = archivedIds(archived);
  const stillInD1 = count(stored.present, (r) => ids.has(r.id));
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

  // The batch publish and deferral part: the deliveries of batch-stored events join `created`, whose checks then
  // cover them; the deferral counts are checked over every handle (reconcile()).
  let deferral: DeferralCounts | undefined;
  if (h.batches) {
    for (const d of deliveries) {
      if (batchCreated.has(d.notification_id))
        created.set(d.id, { notificationId: d.notification_id, subscriptionId: d.subscription_id, channel: d.channel });
    }
    const firstAttempts = new Map(latency.map((r) => [r.id as string, r.first_at as string]));
    deferral = deferralCounts(h.batches.run, h.batches.windowEnd, deliveries, firstAttempts);
    const run = h.batches.run;
    notes.push(
      `${h.handle}: batch publish: ${run.requests} batch requests, ${run.events} events (repeats and replays included), ` +
        `${batchCreated.size} stored, ${run.refused} refused; ${run.deferred.size} deferred by the peak window, ` +
        `${deferral.released} deliveries released after it`,
    );
  }

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
  const secrets = new Map(h.webhooks.map((w) => [w.id, w.secret]));
  let unseen = 0;
  let badSignatures = 0;
  let redelivered = 0;
  let hits = 0;
  for (const wh of h.webhooks) {
    const got = hitsByWebhook.get(wh.id)!;
    hits += got.length;
    badSignatures += count(got, (hit) => !signatureValid(hit, secrets.get(wh.id)!));
    const byDelivery = new Map<string, Hit[]>();
    for (const hit of got) {
      const id = hit.headers['webhook-id'] ?? '';
      byDelivery.set(id, [...(byDelivery.get(id) ?? []), hit]);
    }
    for (const d of deliveries.filter((d) => d.subscription_id === wh.id)) {
      const mine = byDelivery.get(d.id) ?? [];
      if (d.status === 'succeeded') {
        if (!mine.some((hit) => hit.response?.status === 200)) unseen++;
        if (mine.length > 1) redelivered++;
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
  for (const wh of h.webhooks.filter((w) => w.churn)) {
    const mine = deliveries.filter((d) => d.subscription_id === wh.id);
    const changedAt = wh.churn === 'delete' ? h.churned.deletedAt : h.churned.disabledAt;
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
        (hitsByWebhook.get(wh.id) ?? [])
          .filter((hit) => hit.response?.status === 200)
          .map((hit) => hit.headers['webhook-id']),
      );
      const cancelledButAccepted = count(mine, (d) => d.status === 'cancelled' && accepted.has(d.id));
      checks.push({
        name: 'deleted webhook: cancelled deliveries its receiver had accepted (200)',
        expected: 0,
        actual: cancelledButAccepted,
        ok: cancelledButAccepted === 0,
      });
      notes.push(
        `${h.handle}: deleted webhook: ${count(mine, (d) => d.status === 'cancelled')} deliveries cancelled, ${count(mine, (d) => d.status === 'succeeded')} succeeded`,
      );
    }
  }

  // Email: every succeeded owner-default delivery is a mail in the local mailbox; the address, set by three PUTs
  // with one Idempotency-Key, got exactly one test mail.
  const mailsSucceeded = count(deliveries, (d) => d.channel === 'email' && d.status === 'succeeded');
  checks.push({
    name: 'succeeded email deliveries = notification mails sent',
    expected: mailsSucceeded,
    actual: Number(mailbox.notifications ?? 0),
    ok: Number(mailbox.notifications ?? 0) === mailsSucceeded,
  });
  checks.push({
    name: 'owner email set by 3 PUTs with one key → test mails',
    expected: 1,
    actual: Number(mailbox.tests ?? 0),
    ok: Number(mailbox.tests) === 1,
  });

  const groupOf = new Map(
    h.webhooks.map((w) => [
      w.id,
      `webhook, receiver ${w.failing ? 500 : 200}${w.churn === 'delete' ? ', deleted halfway' : w.churn === 'disable' ? ', disabled halfway' : ''}`,
    ]),
  );
  const groups = new Map<string, Array<{ status: string }>>();
  for (const d of deliveries) {
    const group =
      d.channel === 'email'
        ? `email, ${d.recipient_type.replace('_', ' ')}`
        : (groupOf.get(d.subscription_id) ?? 'webhook, unknown');
    groups.set(group, [...(groups.get(group) ?? []), d]);
  }
  const attemptsByClass: Record<string, number> = {};
  for (const a of attempts) {
    const label = `${a.channel} ${a.outcome}${a.error_class ? ` ${a.error_class}` : ''}${a.http_status ? ` ${a.http_status}` : ''}`;
    attemptsByClass[label] = (attemptsByClass[label] ?? 0) + a.n;
  }
  // Accepted but not stored, or created but neither stored in a terminal state nor still on its way.
  const lost =
    missingNotifications +
    count(created.keys(), (id) => {
      const status = storedDeliveries.get(id)?.status;
      return !status || !(TERMINAL.has(status) || OPEN.has(status));
    });
  const firstMs = latency.map((l) => l.first_ms as number).sort((a, b) => a - b);
  return {
    lost,
    redelivered,
    groups,
    attemptsByClass,
    firstMs,
    succeededMs: latency.filter((l) => l.succeeded_ms !== null).map((l) => l.succeeded_ms as number),
    durationMs: durations.map((d) => d.ms as number),
    ...(deferral ? { deferral } : {}),
    row: {
      name: h.handle,
      shard,
      handles: 1,
      accepted: acceptedIds.size,
      stored: notifications.length,
      archived: archivedNotifications,
      deliveries: created.size,
      terminal,
      succeeded: count(deliveries, (d) => d.status === 'succeeded'),
      dead,
      attempts: Object.values(attemptsByClass).reduce((a, b) => a + b, 0),
      lost,
      firstAttemptP50Ms: Math.round(percentile(firstMs, 50)),
      firstAttemptP99Ms: Math.round(percentile(firstMs, 99)),
      failedChecks: 0,
    },
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
    const seeds = seedHandles(o.handles, SHARDS);
    await phases.run(`migrate + seed (${o.handles} handles over ${Math.min(SHARDS, o.handles)} shards)`, async () => {
      await migrateAll(persistDir);
      const local = ['--local', '--persist-to', persistDir];
      // One `wrangler d1 execute` per database: the demo seed and the other handles' rows together.
      const { control, shards } = seedHandlesSql(seeds.slice(1));
      const perShard = new Map(shards);
      perShard.set(0, [seedShardSql(), perShard.get(0) ?? ''].join('\n'));
      await runWrangler(
        'seed the control plane',
        ['d1', 'execute', 'DB', ...local, '--command', [seedSql(creds.pat), control].join('\n')],
        { timeoutMs: 120_000 },
      );
      await Promise.all(
        [...perShard].map(([shard, statements]) =>
          runWrangler(`seed SHARD_${shard}`, ['d1', 'execute', `SHARD_${shard}`, ...local, '--command', statements], {
            timeoutMs: 120_000,
          }),
        ),
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
    // Readers spread over the handles, each handle at least one (the drain and the reconciliation read with it).
    const readersOf = (k: number) =>
      Math.max(1, Math.floor(o.readers / o.handles) + (k < o.readers % o.handles ? 1 : 0));
    const handles: SoakHandle[] = await Promise.all(
      seeds.map(async (seed, k) => {
        const h: SoakHandle = {
          ...seed,
          index: k,
          ownerEmail: `owner+${seed.handle}@soak.example.com`,
          tokens: { owner: '', publishers: [], readers: [] },
          webhooks: [],
          accepted: [],
          churned: {},
          checks: [],
        };
        h.tokens = {
          owner: k === 0 ? creds.ownerJwt : await userJwt(jwtSecret, seed.ownerId),
          // Several publisher services per handle, each with its own throttle budget (6,000/min per token and handle).
          publishers: await Promise.all(
            Array.from({ length: publishers }, (_, p) =>
              signJwt(jwtSecret, `svc:soak-publisher-${k + 1}-${p + 1}`, 'events:publish', { handles: [seed.handle] }),
            ),
          ),
          readers: await Promise.all(
            Array.from({ length: readersOf(k) }, (_, r) => signJwt(jwtSecret, readerId(h, r), READER_SCOPES)),
          ),
        };
        return h;
      }),
    );

    await phases.run(`setup (idempotent writes, ${o.handles} handles)`, () =>
      Promise.all(handles.map((h) => setup(c, h, creds.serviceJwt, rx, o))),
    );

    const plan = planIngest({
      requests: o.events,
      duplicateShare: o.duplicates,
      publishers,
      window: o.connections * 2,
      runId,
      seed: o.seed,
    });
    const outcomes = new Map<string, IngestOutcome>();
    let moved = null as MoveRun | null; // set by the mid-load step (a closure: not narrowed)
    const stopCron = startCron(srv, recorder);
    try {
      const stopReaders = startReaders(c, handles);
      try {
        await phases.run(
          `ingest (${o.events} requests over ${o.connections} connections to ${o.handles} handles, with reads)`,
          async () => {
            const sent = sendBatches(c, handles, o, runId, outcomes);
            const move = o.move && o.handles > 1 ? { url: srv.baseUrl, serviceToken: creds.serviceJwt } : null;
            await ingest(c, handles, plan, o.connections, outcomes, async () => {
              moved = await midLoad(c, handles, move);
            });
            await sent;
          },
        );
      } finally {
        await stopReaders();
      }
      const polls = await phases.run('drain', () => drain(c, handles, deadline - RECONCILE_RESERVE_MS));
      console.log(`  drained after ${polls} polls`);
    } finally {
      await stopCron();
    }

    const reconciled = await phases.run('reconcile', () =>
      reconcile({
        client: c,
        receivers: rx,
        handles,
        outcomes,
        persistDir,
        baseUrl: srv.baseUrl,
        stopServer: () => srv.stop(),
        checks,
        notes,
      }),
    );

    if (moved) {
      // The moved handle was reconciled on the shard the directory named at the end: its new one, nothing lost.
      const m = moved;
      const endedOn = reconciled.handles.find((r) => r.name === m.handle)?.shard;
      checks.push({
        name: `${m.handle} moved mid-load (SHARD_${m.from} → SHARD_${m.to}, ${m.seconds} s): phase / shard after`,
        expected: `done / ${m.to}`,
        actual: `${m.phase}${m.error ? ` (${m.error})` : ''} / ${endedOn}`,
        ok: m.phase === 'done' && endedOn === m.to,
      });
    }

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
      name: 'lost (accepted or created, but not stored in a terminal or open state), all handles',
      expected: 0,
      actual: reconciled.lost,
      ok: reconciled.lost === 0,
    });
    const shardsUsed = new Set(reconciled.handles.map((r) => r.shard)).size;
    checks.push({
      name: 'handles / shards they were reconciled on',
      expected: `${o.handles} / ${Math.min(SHARDS, o.handles)}`,
      actual: `${reconciled.handles.length} / ${shardsUsed}`,
      ok: reconciled.handles.length === o.handles && shardsUsed === Math.min(SHARDS, o.handles),
    });
    const durationSeconds = (Date.now() - startedAt.getTime()) / 1000;
    checks.push({
      name: `whole run within ${o.maxMinutes} min`,
      expected: `≤ ${o.maxMinutes * 60} s`,
      actual: `${durationSeconds.toFixed(0)} s`,
      ok: durationSeconds <= o.maxMinutes * 60,
    });
    // Each handle's checks, merged by name (numbers summed), before the run-wide ones.
    const allChecks = [...mergeChecks(handles.map((h) => ({ handle: h.handle, checks: h.checks }))), ...checks];

    const result: SoakResult = {
      startedAt: startedAt.toISOString(),
      durationSeconds,
      phases: phases.seconds,
      config: {
        events: o.events,
        connections: o.connections,
        duplicates: o.duplicates,
        handles: o.handles,
        placement: Object.fromEntries(reconciled.handles.map((r) => [r.name, `SHARD_${r.shard}`])),
        webhooksPerHandle: o.webhooks,
        failingShare: o.failingShare,
        readers: handles.reduce((n, h) => n + h.tokens.readers.length, 0),
        publishersPerHandle: publishers,
        batches: o.batches,
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
      shards: reconciled.shards,
      handles: reconciled.handles,
      checks: allChecks,
      notes,
      unexpectedSamples: recorder.unexpected,
      passed: allChecks.every((ch) => ch.ok),
    };
    const markdown = renderMarkdown(result);
    await writeFile(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(join(RESULTS_DIR, 'latest.md'), `${markdown}\n`);
    console.log(`\n${markdown}\n`);
    if (recorder.unexpected.length) console.log('First unexpected answers:', recorder.unexpected.slice(0, 5));
    console.log(`Results: soak/results/latest.json, soak/results/latest.md`);
    const batchEvents = handles.reduce((n, h) => n + (h.batches?.run.events ?? 0), 0);
    console.log(
      `soak ${result.passed ? 'passed' : 'FAILED'}: lost ${reconciled.lost} over ${o.handles} handles on ` +
        `${shardsUsed} shards, ${durationSeconds.toFixed(0)} s, deferred released ${reconciled.deferredReleased}, ` +
        `batch events ${batchEvents}`,
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
