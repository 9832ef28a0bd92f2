/**
 * End to end, in Node: the Worker built and started from wrangler.toml by wrangler itself (`unstable_startWorker`,
 * every binding local: D1 persisted to a temporary directory with the migrations applied by `wrangler d1 migrations
 * apply`, the real local queues with wrangler.toml's consumer settings), a real HTTP receiver on 127.0.0.1, and the
 * public API only. Proves the queue configuration (consumers, max_retries = 7, dead_letter_queue, the DLQ consumer)
 * and not only the code: a failing endpoint gets exactly 8 attempts, then the DLQ consumer writes `dead`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unstable_startWorker } from 'wrangler';
import { D1_BINDINGS } from '../../scripts/db-migrate.ts';
import { ROOT, runWrangler, type WranglerError } from '../../scripts/wrangler-cli.ts';
import { apiClient, type Json, testJwt } from '../support/node/api-client.ts';
import { type Hit, type Receivers, startReceivers } from '../support/node/receivers.ts';

const JWT_SECRET = 'e2e-secret-that-is-long-enough-for-hs256-0123456789abcdef';
const ENCRYPTION_KEY = Buffer.alloc(32, 7).toString('base64');

type Worker = Awaited<ReturnType<typeof unstable_startWorker>>;

let persistDir: string;
let worker: Worker | undefined;
let receivers: Receivers | undefined;
const previousLogLevel = process.env.WRANGLER_LOG;

const plain = (value: string) => ({ type: 'plain_text' as const, value });
const secret = (value: string) => ({ type: 'secret_text' as const, value });

beforeAll(async () => {
  // One "[wrangler:info] GET …" line per request and queue batch would bury the test output; warnings still print.
  process.env.WRANGLER_LOG = 'warn';
  persistDir = await mkdtemp(join(tmpdir(), 'gharart-notify-e2e-'));
  // The same migrations `npm run dev` applies, into a throw-away local D1.
  for (const binding of D1_BINDINGS)
    await runWrangler(
      `apply the D1 migrations to ${binding}`,
      ['d1', 'migrations', 'apply', binding, '--local', '--persist-to', persistDir],
      { timeoutMs: 60_000 },
    ).catch((err: WranglerError) => {
      throw new Error(`${err.message}\n${err.output}`);
    });
  receivers = await startReceivers();
  worker = await unstable_startWorker({
    config: join(ROOT, 'wrangler.toml'),
    // Input bindings take precedence over wrangler.toml's [vars] and .dev.vars.
    bindings: {
      ENVIRONMENT: plain('test'),
      ALLOW_INSECURE_WEBHOOK_TARGETS: plain('true'),
      RETRY_DELAYS_SECONDS: plain('1,1,1,1,1,1,1'),
      JWT_ISSUER: plain(''),
      JWT_AUDIENCE: plain(''),
      JWT_SECRET: secret(JWT_SECRET),
      ENCRYPTION_KEY: secret(ENCRYPTION_KEY),
    },
    dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: false, persist: persistDir, watch: false },
  });
  await worker.ready;
}, 90_000);

afterAll(async () => {
  await worker?.dispose();
  await receivers?.close();
  if (persistDir) await rm(persistDir, { recursive: true, force: true });
  if (previousLogLevel === undefined) delete process.env.WRANGLER_LOG;
  else process.env.WRANGLER_LOG = previousLogLevel;
}, 30_000);

const jwt = (sub: string, scope: string, extra: Record<string, unknown> = {}) => testJwt(JWT_SECRET, sub, scope, extra);
const api = apiClient((url, init) => worker!.fetch(url, init as never), 'http://notify.test');

async function receiverHits(key: string): Promise<Hit[]> {
  const res = await fetch(`http://127.0.0.1:${receivers!.port}/_hits/${encodeURIComponent(key)}`);
  return (await res.json()) as Hit[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | null | false | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

let n = 0;
const uniq = (p: string) => `${p}-${Date.now().toString(36)}-${++n}`;

/** Provisions a handle through the control-plane API; returns an owner JWT and a publishing service JWT. */
async function provision() {
  const handle = uniq('e2e');
  const owner = uniq('owner');
  const service = await jwt('svc:control-plane', 'internal:provision', { svc: 'control-plane' });
  const r = await api('PUT', `/v2/internal/handles/${handle}`, service, {
    displayName: `E2E ${handle}`,
    ownerUserId: owner,
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return {
    handle,
    owner: await jwt(owner, 'notifications:read notifications:write webhooks:read webhooks:write'),
    publisher: await jwt('svc:oms', 'events:publish', { handles: [handle] }),
  };
}

describe('the Worker started from wrangler.toml, end to end', () => {
  it('answers /v2/health with D1 reachable (migrations applied to the persisted local D1)', async () => {
    const res = await worker!.fetch('http://notify.test/v2/health');
    expect(res.status).toBe(200);
    expect(((await res.json()) as Json).d1.ok).toBe(true);
  });

  it('an event reaches the receiver, signed, and the notification is delivered', async () => {
    const { handle, owner, publisher } = await provision();
    const key = uniq('ok');
    const url = `http://127.0.0.1:${receivers!.port}/r/ok/${key}`;
    const wh = await api('POST', `/v2/handles/${handle}/webhooks`, owner, { url });
    expect(wh.status, JSON.stringify(wh.body)).toBe(201);
    const pub = await api('POST', `/v2/handles/${handle}/events`, publisher, {
      type: 'order.paid',
      data: { orderId: 'ord_e2e_1', total: 10 },
    });
    expect(pub.status, JSON.stringify(pub.body)).toBe(202);
    const notificationId = pub.body.notificationId as string;

    const [hit] = await waitUntil(
      'the receiver to get the event',
      async () => {
        const h = await receiverHits(key);
        return h.length && h[0]!.response ? h : null;
      },
      20_000,
    );
    const payload = new Webhook(wh.body.secret).verify(hit!.body, hit!.headers) as Json;
    expect(payload).toMatchObject({
      id: notificationId,
      type: 'order.paid',
      handle,
      test: false,
      data: { orderId: 'ord_e2e_1' },
    });

    const notification = await waitUntil(
      'the notification to be delivered',
      async () => {
        const r = await api('GET', `/v2/handles/${handle}/notifications/${notificationId}`, owner);
        return r.body.status === 'delivered' ? r.body : null;
      },
      15_000,
    );
    expect(notification.deliveries).toEqual([
      expect.objectContaining({ status: 'succeeded', attempts: 1, lastHttpStatus: 200 }),
    ]);
    expect(await receiverHits(key)).toHaveLength(1);
  }, 45_000);

  it('a receiver answering 500: 8 attempts about 1 s apart, then the DLQ consumer marks the delivery dead and the notification failed', async () => {
    const { handle, owner, publisher } = await provision();
    const key = uniq('fail');
    const url = `http://127.0.0.1:${receivers!.port}/r/fail/${key}`;
    const wh = await api('POST', `/v2/handles/${handle}/webhooks`, owner, { url });
    expect(wh.status).toBe(201);
    const pub = await api('POST', `/v2/handles/${handle}/events`, publisher, {
      type: 'order.fulfilled',
      data: { orderId: 'ord_e2e_2' },
    });
    expect(pub.status).toBe(202);
    const notificationId = pub.body.notificationId as string;
    const deliveryId = pub.body.recipients[0].deliveryId as string;

    const notification = await waitUntil(
      'the notification to fail',
      async () => {
        const r = await api('GET', `/v2/handles/${handle}/notifications/${notificationId}`, owner);
        return r.body.status === 'failed' ? r.body : null;
      },
      60_000,
    );
    expect(notification.deliveries).toEqual([
      expect.objectContaining({
        deliveryId,
        status: 'dead',
        statusReason: 'retries_exhausted',
        attempts: 8,
        lastErrorClass: 'http_5xx',
        lastHttpStatus: 500,
      }),
    ]);

    // Exactly 8 requests, all for the same delivery, spaced by the 1 s schedule (plus batching), never a 9th.
    await sleep(2_500);
    const got = await receiverHits(key);
    expect(got).toHaveLength(8);
    expect(new Set(got.map((h) => h.headers['webhook-id']))).toEqual(new Set([deliveryId]));
    for (let i = 1; i < got.length; i++) {
      const gap = got[i]!.receivedAt - got[i - 1]!.receivedAt;
      expect(gap, `gap before attempt ${i + 1}`).toBeGreaterThanOrEqual(900);
      expect(gap, `gap before attempt ${i + 1}`).toBeLessThan(6_000);
    }

    const log = await api('GET', `/v2/handles/${handle}/webhooks/${wh.body.id}/deliveries`, owner);
    expect(log.status).toBe(200);
    const entry = log.body.data[0];
    expect(entry).toMatchObject({ id: deliveryId, status: 'dead', attemptCount: 8 });
    expect(entry.attempts.map((a: Json) => a.attemptNumber)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const a of entry.attempts)
      expect(a).toMatchObject({ outcome: 'failed', errorClass: 'http_5xx', httpStatus: 500 });

    const hook = await api('GET', `/v2/handles/${handle}/webhooks/${wh.body.id}`, owner);
    expect(hook.body.health.consecutiveFailures).toBe(8);
  }, 80_000);
});
