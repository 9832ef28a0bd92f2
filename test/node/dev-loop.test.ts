/**
 * The local loop as a new user runs it: `npm run dev` itself (scripts/dev.ts, the real wrangler dev and workerd) on a
 * port of the test's choosing, with its own vars file and local state so that it never touches the developer's
 * .dev.vars or .wrangler/state. Proves the port is honoured (`--port`, and `PORT` for the printed URLs) and that a
 * link the Worker mails names that port rather than a fixed 8787; and that `--sns-fake` lets the stale SNS
 * subscription failure mode be walked locally.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO, demoCredentials } from '../../scripts/dev-seed.ts';
import { ROOT } from '../../scripts/wrangler-cli.ts';

const JWT_SECRET = 'dev-loop-secret-that-is-long-enough-for-hs256-0123456789';
const ENCRYPTION_KEY = Buffer.alloc(32, 9).toString('base64');

let dir: string;
let envFile: string;
const started: ChildProcess[] = [];

/** A port nobody listens on right now (the OS picks it; closed again before npm run dev binds it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Starts `npm run dev -- <args>` in its own process group (so that the test can stop wrangler and workerd too). */
function npmRunDev(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => string } {
  const child = spawn('npm', ['run', 'dev', '--', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env, WRANGLER_SEND_METRICS: 'false', CI: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  started.push(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk));
  return { child, output: () => output };
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil<T>(what: string, fn: () => Promise<T | null | undefined | false>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(250);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gharart-notify-dev-loop-'));
  envFile = join(dir, 'dev.vars');
  await writeFile(envFile, `JWT_SECRET=${JWT_SECRET}\nENCRYPTION_KEY=${ENCRYPTION_KEY}\n`);
});

afterAll(async () => {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      await Promise.race([exited(child), sleep(10_000)]);
    }
  }
  if (dir) await rm(dir, { recursive: true, force: true });
}, 30_000);

describe('npm run dev', () => {
  it('PORT picks the port the printed URLs name', async () => {
    const { child, output } = npmRunDev(
      ['--seed-only', '--env-file', envFile, '--persist-to', join(dir, 'state-seed')],
      { PORT: '18123' },
    );
    expect(await exited(child), output()).toBe(0);
    expect(output()).toContain('API          http://localhost:18123');
    expect(output()).not.toContain(':8787');
  });

  it('--port N serves on N and the confirmation link it mails names N', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const { child, output } = npmRunDev([
      '--port',
      String(port),
      '--env-file',
      envFile,
      '--persist-to',
      join(dir, 'state'),
      '--cron-every',
      '0',
    ]);
    await waitUntil(
      `npm run dev on port ${port}`,
      async () => child.exitCode !== null || (await fetch(`${base}/v2/health`)).status === 200,
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${output()}`);
    });
    expect(child.exitCode, output()).toBeNull();
    expect(output()).toContain(`Dashboard    http://localhost:${port}/dashboard`);

    const { pat } = await demoCredentials(JWT_SECRET);
    const email = `dev-loop-${Date.now()}@example.com`;
    const created = await fetch(`${base}/v2/handles/${DEMO.handle}/notifications/email-subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${pat}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email }),
    });
    expect(created.status, await created.clone().text()).toBe(201);

    const mail = await waitUntil(
      'the confirmation mail in the local mailbox',
      async () => {
        const res = await fetch(`${base}/dev/mailbox?format=json&to=${encodeURIComponent(email)}`);
        const { data } = (await res.json()) as { data: { text: string; html: string }[] };
        return data[0];
      },
      30_000,
    );
    expect(mail.text).toContain(`http://localhost:${port}/v2/email/confirm?token=`);
    expect(mail.text).not.toContain('localhost:8787');
    expect(mail.text).not.toContain('notify.gharart.com');
  });

  it('--sns-fake: a subscription AWS dropped is diagnosed stale, walked locally through the stand-in', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const { child, output } = npmRunDev([
      '--port',
      String(port),
      '--env-file',
      envFile,
      '--persist-to',
      join(dir, 'state-sns'),
      '--cron-every',
      '0',
      '--sns-fake',
    ]);
    await waitUntil(
      `npm run dev --sns-fake on port ${port}`,
      async () => child.exitCode !== null || (await fetch(`${base}/v2/health`)).status === 200,
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${output()}`);
    });
    expect(child.exitCode, output()).toBeNull();
    const fake = /SNS stand-in {2}(http:\/\/127\.0\.0\.1:\d+)\//.exec(output())?.[1];
    expect(fake, output()).toBeDefined();

    const { pat } = await demoCredentials(JWT_SECRET);
    const auth = { authorization: `Bearer ${pat}`, 'content-type': 'application/json' };
    const subs = `${base}/v2/handles/${DEMO.handle}/notifications/email-subscriptions`;
    const email = `sns-walk-${Date.now()}@example.com`;
    const created = await fetch(subs, { method: 'POST', headers: auth, body: JSON.stringify({ email }) });
    const sub = (await created.json()) as { id: string; status: string; statusReason: string };
    expect(created.status, JSON.stringify(sub)).toBe(201);
    expect(sub.statusReason).toMatch(/AWS SNS/);

    // What AWS does on its own, through the stand-in's control API: the recipient confirms, then the ARN disappears.
    const state = (await (await fetch(`${fake}/_control/state`)).json()) as {
      subscriptions: { arn: string; endpoint: string }[];
    };
    const arn = state.subscriptions.find((x) => x.endpoint === email)?.arn;
    expect(arn, JSON.stringify(state)).toBeDefined();
    expect((await fetch(`${fake}/_control/confirm?arn=${encodeURIComponent(arn!)}`, { method: 'POST' })).ok).toBe(true);
    expect((await fetch(`${fake}/_control/delete?arn=${encodeURIComponent(arn!)}`, { method: 'POST' })).ok).toBe(true);

    const test = await fetch(`${subs}/${sub.id}/test`, { method: 'POST', headers: auth, body: '{}' });
    const { diagnosis } = (await test.json()) as { diagnosis: { summary: string; providerCheck: { state: string } } };
    expect(test.status, JSON.stringify(diagnosis)).toBe(200);
    expect(diagnosis.providerCheck).toMatchObject({ state: 'not_found' });
    expect(diagnosis.summary).toMatch(new RegExp(`^${email.replace(/[.]/g, '\\.')} is stale`));
  });
});
