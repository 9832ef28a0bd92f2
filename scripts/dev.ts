/**
 * `npm run dev`: local development in one command.
 *
 * 1. Creates .dev.vars with fresh secrets on first run (and adds keys later listed in .dev.vars.example).
 * 2. Applies the D1 migrations to every local database: the control plane and the shards (.wrangler/state).
 * 3. Seeds a demo handle, its owner and a demo PAT (idempotent; the PAT is the same on every run).
 * 4. Prints the URLs (API, dashboard, docs, local mailbox) and ready-to-use credentials.
 * 5. Runs `wrangler dev` on http://localhost:8787 (or `--port N`, or `PORT=N`) and prints the credentials again once
 *    /v2/health answers. Every link the Worker builds (mails, dashboard) uses that port: PUBLIC_BASE_URL is set to
 *    http://localhost:<port> unless the vars file sets it (a tunnel, say).
 * 6. Runs the minute jobs (the cron `scheduled` handler: outbox sweeper, auto-disable, …) every minute, as the cron
 *    trigger does in production: wrangler dev has no cron (scripts/minute-jobs.ts).
 *
 * `npm run dev -- --seed-only` stops after step 4; `--cron-every <seconds>` changes the minute jobs' interval (0: off);
 * `--env-file <path>` uses that file instead of .dev.vars and `--persist-to <dir>` keeps the local D1, queues and R2
 * there instead of .wrangler/state (both for a second instance beside the first, as test/node/dev-loop.test.ts runs);
 * `--sns-fake` starts the SNS stand-in of the tests (test/support/node/sns-fake.ts: SNS's Query API wire format and
 * SigV4, on 127.0.0.1) and points EMAIL_PROVIDER=sns at it, so that the SNS failure modes (a stale subscription) can be
 * walked locally through its control API.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { constants } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, parseEnv } from 'node:util';
import { SNS_FAKE_ACCOUNT, SNS_FAKE_CREDENTIALS, type SnsFake, startSnsFake } from '../test/support/node/sns-fake.ts';
import { migrateAll, seedLocal } from './db-migrate.ts';
import { DEMO, type DemoCredentials, demoCredentials, seedShardSql, seedSql } from './dev-seed.ts';
import { SCHEDULED_PATH, startMinuteJobs } from './minute-jobs.ts';
import { ROOT, WRANGLER, WranglerError } from './wrangler-cli.ts';

const DEV_VARS_EXAMPLE = join(ROOT, '.dev.vars.example');

const HOST = '127.0.0.1';
const DEFAULT_PORT = 8787;
const READY_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 500;

/** What the command line (and `PORT`) chose; fixed once main() has parsed them. */
interface Options {
  seedOnly: boolean;
  cronEvery: number;
  port: number;
  devVars: string;
  persistTo: string | undefined;
  snsFake: boolean;
}

let PORT = DEFAULT_PORT;
let BASE_URL = `http://localhost:${PORT}`;
let HEALTH_URL = `http://${HOST}:${PORT}/v2/health`;

/**
 * Production defaults from wrangler.toml [vars] that local development must not use. PUBLIC_BASE_URL is where every
 * link in a mail or the dashboard points: the port served here, unless the vars file names another origin.
 */
function devVarOverrides(vars: Record<string, string | undefined>, sns: SnsFake | null): string[] {
  return [
    'ENVIRONMENT:development',
    'ALLOW_INSECURE_WEBHOOK_TARGETS:true',
    // A peak window's deferred deliveries leave within a minute of its end, not ten (docs/design.md#peak-campaign-windows).
    'RELEASE_SPREAD_SECONDS:60',
    `PUBLIC_BASE_URL:${vars.PUBLIC_BASE_URL || BASE_URL}`,
    ...(sns
      ? [
          'EMAIL_PROVIDER:sns',
          `SNS_API_URL:${snsFakeUrl(sns)}/`,
          `AWS_ACCOUNT_ID:${SNS_FAKE_ACCOUNT}`,
          `AWS_ACCESS_KEY_ID:${SNS_FAKE_CREDENTIALS.accessKeyId}`,
          `AWS_SECRET_ACCESS_KEY:${SNS_FAKE_CREDENTIALS.secretAccessKey}`,
        ]
      : []),
  ];
}

const snsFakeUrl = (sns: SnsFake) => `http://${HOST}:${sns.port}`;

/** How to drive the SNS stand-in: what AWS would do on its own (a recipient confirms, a subscription disappears). */
function printSnsFakeHelp(sns: SnsFake): void {
  const url = snsFakeUrl(sns);
  console.log(`
SNS stand-in  ${url}/   (EMAIL_PROVIDER=sns; SigV4-checked, SNS's wire format; state is lost when you stop)
  Subscriptions, topics, messages:   curl ${url}/_control/state
  The recipient confirms:            curl -X POST '${url}/_control/confirm?arn=<SubscriptionArn>'
  AWS drops the subscription:        curl -X POST '${url}/_control/delete?arn=<SubscriptionArn>'
    then POST …/email-subscriptions/{id}/test, or wait for the minute job: the subscription turns stale.
`);
}

/** How to make a fresh value for each secret in .dev.vars.example (the Worker checks these shapes). */
const SECRET_GENERATORS: Record<string, () => string> = {
  JWT_SECRET: () => randomBytes(48).toString('base64url'),
  ENCRYPTION_KEY: () => randomBytes(32).toString('base64'),
};

/** A failure with a message for the user and, when a command failed, its output. */
class DevError extends Error {
  readonly output: string;
  constructor(message: string, output = '') {
    super(message);
    this.output = output;
  }
}

/**
 * Creates .dev.vars if missing, or appends any key of .dev.vars.example it lacks. Never changes an existing value:
 * a new JWT_SECRET would invalidate every token already handed out, a new ENCRYPTION_KEY every stored webhook secret.
 */
function ensureDevVars(path: string): Record<string, string | undefined> {
  const example = parseEnv(readFileSync(DEV_VARS_EXAMPLE, 'utf8'));
  const existing = existsSync(path) ? readFileSync(path, 'utf8') : null;
  const vars: Record<string, string | undefined> = existing === null ? {} : parseEnv(existing);

  const added: string[] = [];
  for (const [key, placeholder] of Object.entries(example)) {
    if (key in vars) continue;
    const generate = SECRET_GENERATORS[key];
    if (!generate && placeholder)
      console.warn(`! .dev.vars: copied ${key} from .dev.vars.example; replace the placeholder value.`);
    vars[key] = generate?.() ?? placeholder ?? '';
    added.push(`${key}=${vars[key]}`);
  }

  if (existing === null) {
    const header = '# Local secrets for `wrangler dev`, generated by `npm run dev`. Never commit this file.\n';
    writeFileSync(path, `${header}${added.join('\n')}\n`, { mode: 0o600 });
    console.log(`• Created ${relative(ROOT, path)} with fresh secrets.`);
  } else if (added.length) {
    const separator = existing === '' || existing.endsWith('\n') ? '' : '\n';
    appendFileSync(path, `${separator}${added.join('\n')}\n`);
    console.log(`• Added ${added.map((line) => line.split('=')[0]).join(', ')} to ${relative(ROOT, path)}.`);
  }

  // The Worker refuses shorter HS256 secrets (src/auth/jwt.ts); better to say so now than answer every JWT with 500.
  if ((vars.JWT_SECRET ?? '').length < 32) {
    throw new DevError(
      `JWT_SECRET in ${relative(ROOT, path)} must be at least 32 characters. Delete the line to get a fresh one.`,
    );
  }
  return vars;
}

/** Fails early with a clear message instead of letting wrangler die, or the health poll reach another server. */
function assertPortFree(): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new DevError(
          err.code === 'EADDRINUSE'
            ? `Port ${PORT} is already in use (another \`npm run dev\`?). Stop that process or use --port <another>.`
            : `Cannot listen on ${HOST}:${PORT}: ${err.message}`,
        ),
      ),
    );
    server.listen(PORT, HOST, () => server.close(() => resolve()));
  });
}

function curlExample(pat: string): string {
  return `curl -H "Authorization: Bearer ${pat}" ${BASE_URL}/v2/tokens`;
}

function printBanner(creds: DemoCredentials): void {
  console.log(`
──────────────── gharart-notify · local development ────────────────
API          ${BASE_URL}
Dashboard    ${BASE_URL}/dashboard   (sign in with the demo PAT below)
Docs         ${BASE_URL}/docs
Mailbox      ${BASE_URL}/dev/mailbox
Demo handle  ${DEMO.handle} ("${DEMO.displayName}"), owner ${DEMO.ownerId}

Owner JWT (${DEMO.ownerId}, all user scopes, expires in 12 hours; run npm run dev again for new ones):
  ${creds.ownerJwt}

Demo PAT (${DEMO.tokenId}, all user scopes, not restricted to a handle; stable while JWT_SECRET is):
  ${creds.pat}

Service JWT (${DEMO.serviceSubject}, internal:provision, expires in 12 hours; for /v2/internal/*):
  ${creds.serviceJwt}

Try:
  ${curlExample(creds.pat)}
─────────────────────────────────────────────────────────────────────
`);
}

/**
 * Once the server is up, runs the minute jobs every `cronEverySeconds` until it exits; says so once, and warns when a
 * run fails (wrangler prints the job's own error).
 */
function runMinuteJobsWhileUp(server: ChildProcess, cronEverySeconds: number): void {
  if (!cronEverySeconds) {
    console.log(`  Minute jobs: off (--cron-every 0); run them with: curl ${BASE_URL}${SCHEDULED_PATH}`);
    return;
  }
  console.log(`  Minute jobs (sweeper, auto-disable, …): every ${cronEverySeconds} s via ${SCHEDULED_PATH}\n`);
  const jobs = startMinuteJobs(`http://${HOST}:${PORT}`, cronEverySeconds * 1000, (run) => {
    if ('error' in run) console.warn(`! Minute jobs: no answer (${String(run.error)})`);
    else if (run.status !== 200) console.warn(`! Minute jobs: a job failed (HTTP ${run.status}); see the log above.`);
  });
  server.once('exit', () => void jobs.stop());
}

/** Polls /v2/health until it answers 200, then repeats the essentials below wrangler's own start-up output. */
async function announceWhenReady(server: ChildProcess, creds: DemoCredentials, startedAt: number, cronEvery: number) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const running = () => server.exitCode === null && server.signalCode === null;
  while (running() && Date.now() < deadline) {
    try {
      const res = await fetch(HEALTH_URL, { signal: AbortSignal.timeout(POLL_INTERVAL_MS * 4) });
      if (res.status === 200) {
        const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
        console.log(`\n✔ Ready in ${seconds} s: ${BASE_URL} (docs: ${BASE_URL}/docs)`);
        console.log(`  Dashboard: ${BASE_URL}/dashboard (sign in with the demo PAT)`);
        console.log(`  Demo PAT: ${creds.pat}`);
        console.log(`  ${curlExample(creds.pat)}\n`);
        runMinuteJobsWhileUp(server, cronEvery);
        return;
      }
    } catch {
      // Not listening yet.
    }
    await sleep(POLL_INTERVAL_MS);
  }
  if (running()) console.warn(`\n! ${HEALTH_URL} did not answer 200 within 60 s; see wrangler's output above.\n`);
}

/** Runs `wrangler dev` in the foreground; resolves with the exit code to pass on. */
function runDevServer(
  creds: DemoCredentials,
  startedAt: number,
  options: Options,
  vars: Record<string, string | undefined>,
  sns: SnsFake | null,
): Promise<number> {
  // --test-scheduled: wrangler then stops warning that crons do not run (runMinuteJobsWhileUp runs them).
  const args = [
    'dev',
    '--ip',
    HOST,
    '--port',
    String(PORT),
    '--test-scheduled',
    '--env-file',
    options.devVars,
    ...persistArgs(options),
    ...devVarOverrides(vars, sns).flatMap((v) => ['--var', v]),
  ];
  const server = spawn(process.execPath, [WRANGLER, ...args], { cwd: ROOT, stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => server.kill(signal);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward);
  if (sns) server.once('exit', () => void sns.close());
  void announceWhenReady(server, creds, startedAt, options.cronEvery);
  return new Promise((resolve, reject) => {
    server.on('error', (err) => reject(new DevError(`Could not start wrangler dev: ${err.message}`)));
    server.on('exit', (code, signal) => resolve(code ?? 128 + constants.signals[signal!]));
  });
}

const USAGE =
  'Usage: npm run dev [-- --port <n, default $PORT or 8787>] [--seed-only] [--cron-every <seconds, 0 = off>]' +
  ' [--sns-fake]' +
  ' [--env-file <path, default .dev.vars>] [--persist-to <dir, default .wrangler/state>]';

/** `--persist-to` for every wrangler command that touches local state, so that they all see the same database. */
function persistArgs(options: Options): string[] {
  return options.persistTo ? ['--persist-to', options.persistTo] : [];
}

function parseOptions(): Options {
  let values: {
    'seed-only': boolean;
    'cron-every': string;
    port?: string;
    'env-file': string;
    'persist-to'?: string;
    'sns-fake': boolean;
  };
  try {
    ({ values } = parseArgs({
      options: {
        'seed-only': { type: 'boolean', default: false },
        'cron-every': { type: 'string', default: '60' },
        port: { type: 'string' },
        'env-file': { type: 'string', default: '.dev.vars' },
        'persist-to': { type: 'string' },
        'sns-fake': { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    throw new DevError(`${(err as Error).message}\n${USAGE}`);
  }
  const cronEvery = Number(values['cron-every']);
  if (!Number.isInteger(cronEvery) || cronEvery < 0)
    throw new DevError(`--cron-every must be whole seconds.\n${USAGE}`);
  const portText = values.port ?? process.env.PORT ?? String(DEFAULT_PORT);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65_535) {
    const source = values.port === undefined ? 'PORT' : '--port';
    throw new DevError(`${source} must be a port number from 1 to 65535, not "${portText}".\n${USAGE}`);
  }
  return {
    seedOnly: values['seed-only'],
    cronEvery,
    port,
    devVars: resolve(ROOT, values['env-file']),
    persistTo: values['persist-to'] && resolve(values['persist-to']),
    snsFake: values['sns-fake'],
  };
}

async function main(): Promise<number> {
  const startedAt = Date.now();
  const options = parseOptions();
  PORT = options.port;
  BASE_URL = `http://localhost:${PORT}`;
  HEALTH_URL = `http://${HOST}:${PORT}/v2/health`;

  const vars = ensureDevVars(options.devVars);
  if (!options.seedOnly) await assertPortFree();

  console.log('• Applying D1 migrations to the local databases (control plane and shards)…');
  await migrateAll(options.persistTo);

  console.log('• Seeding demo data…');
  const creds = await demoCredentials(vars.JWT_SECRET!);
  await seedLocal(options.persistTo, { DB: seedSql(creds.pat), SHARD_0: seedShardSql() });

  printBanner(creds);
  if (options.seedOnly) return 0;

  const sns = options.snsFake ? await startSnsFake() : null;
  if (sns) printSnsFakeHelp(sns);

  console.log('• Starting wrangler dev…\n');
  return runDevServer(creds, startedAt, options, vars, sns);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof DevError || err instanceof WranglerError) {
      console.error(`✖ ${err.message}`);
      if (err.output) console.error(err.output.trimEnd());
    } else {
      console.error(err);
    }
    process.exit(1);
  },
);
