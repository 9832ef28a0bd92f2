/**
 * A crash mid-delivery, end to end (docs/reliability.md#scenarios, docs/design.md#overdue-deliveries): `wrangler dev`
 * runs as its own process group on a persisted local state (`--persist-to`), receivers on 127.0.0.1 hold requests open,
 * and the whole group (wrangler and workerd) is killed with SIGKILL while those requests are in flight and while a
 * retry waits in the queue. The queue's messages die with it; the D1 rows say `queued` and `retrying`. The Worker is
 * started again on the same state, the minute jobs run (every second here, with `OVERDUE_AFTER_SECONDS=2`, the only
 * speed-up), the doctor reports the overdue deliveries, and every delivery ends terminal.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAll } from '../../scripts/db-migrate.ts';
import { type MinuteJobs, startMinuteJobs } from '../../scripts/minute-jobs.ts';
import { type DevServer, startDevServer } from '../../scripts/soak/server.ts';
import { apiClient, type Json, testJwt } from '../support/node/api-client.ts';
import { type Hit, type Receivers, startReceivers } from '../support/node/receivers.ts';

const JWT_SECRET = randomBytes(48).toString('base64url');
/** Every overdue delivery is re-enqueued one grace past its due time: 2 s instead of 5 min. */
const OVERDUE_AFTER_SECONDS = 2;
/** The first retry waits 8 s in the queue: long enough to kill the Worker while it waits. */
const RETRY_DELAYS_SECONDS = '8,1,1,1,1,1,1';

let stateDir: string;
let receivers: Receivers;
let server: DevServer | undefined;
let jobs: MinuteJobs | undefined;

async function start(): Promise<DevServer> {
  return startDevServer({
    persistDir: join(stateDir, 'state'),
    envFile: join(stateDir, 'secrets.env'),
    vars: (baseUrl) => ({
      ENVIRONMENT: 'test',
      PUBLIC_BASE_URL: baseUrl,
      ALLOW_INSECURE_WEBHOOK_TARGETS: 'true',
      JWT_ISSUER: '',
      JWT_AUDIENCE: '',
      RETRY_DELAYS_SECONDS,
      OVERDUE_AFTER_SECONDS: String(OVERDUE_AFTER_SECONDS),
    }),
    logFile: join(stateDir, `wrangler-${Date.now()}.log`),
    readyTimeoutMs: 90_000,
  });
}

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'gharart-notify-crash-'));
  const envFile = `JWT_SECRET=${JWT_SECRET}\nENCRYPTION_KEY=${randomBytes(32).toString('base64')}\n`;
  await writeFile(join(stateDir, 'secrets.env'), envFile, { mode: 0o600 });
  await migrateAll(join(stateDir, 'state'));
  receivers = await startReceivers();
  server = await start();
});

afterAll(async () => {
  await jobs?.stop();
  await server?.stop();
  await receivers?.close();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

const jwt = (sub: string, scope: string, extra: Record<string, unknown> = {}) =>
  testJwt(JWT_SECRET, sub, scope, extra, 900);
const api = apiClient(
  fetch,
  () => server!.baseUrl,
  () => ({ signal: AbortSignal.timeout(20_000) }),
);

async function receiver(method: string, path: string, body?: unknown): Promise<Json> {
  const res = await fetch(`http://127.0.0.1:${receivers.port}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await res.json()) as Json;
}

const hitsOf = async (key: string) => (await receiver('GET', `/_hits/${encodeURIComponent(key)}`)) as Hit[];

/** Polls `read` until it returns a value; fails with `what` and the last value when `ms` pass. */
async function until<T>(what: string, read: () => Promise<T | null | undefined | false>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    const v = await read();
    if (v) return v;
    last = v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(last)})`);
    await sleep(250);
  }
}

describe('the Worker killed mid-delivery and started again on the same state', () => {
  it('every delivery in flight or waiting for a retry ends terminal; the doctor reports them overdue until then', async () => {
    const unique = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const handle = `crash-${unique}`;
    const owner = `owner-${unique}`;
    const service = await jwt('svc:control-plane', 'internal:provision', { svc: 'control-plane' });
    const provisioned = await api('PUT', `/v2/internal/handles/${handle}`, service, {
      displayName: 'Crash test',
      ownerUserId: owner,
    });
    expect(provisioned.status, JSON.stringify(provisioned.body)).toBe(201);
    const ownerToken = await jwt(owner, 'notifications:read notifications:write webhooks:read webhooks:write');
    const publisher = await jwt('svc:oms', 'events:publish', { handles: [handle] });

    // One endpoint holds every request open (until it is told otherwise); one fails the first request of each id.
    const holdKey = `hold-${unique}`;
    const flakyKey = `flaky-${unique}`;
    await receiver('PUT', `/_mode/${holdKey}`, { status: 200, delayMs: 600_000 });
    const hold = await api('POST', `/v2/handles/${handle}/webhooks`, ownerToken, {
      url: `http://127.0.0.1:${receivers.port}/r/mode/${holdKey}`,
      eventTypes: ['order.paid'],
    });
    const flaky = await api('POST', `/v2/handles/${handle}/webhooks`, ownerToken, {
      url: `http://127.0.0.1:${receivers.port}/r/flaky/${flakyKey}`,
      eventTypes: ['order.fulfilled'],
    });
    expect([hold.status, flaky.status]).toEqual([201, 201]);

    const publish = async (type: string, orderId: string) => {
      const r = await api('POST', `/v2/handles/${handle}/events`, publisher, { type, data: { orderId } });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      return { notificationId: r.body.notificationId as string, deliveryId: r.body.recipients[0].deliveryId as string };
    };
    const delivery = async (n: { notificationId: string; deliveryId: string }) => {
      const r = await api('GET', `/v2/handles/${handle}/notifications/${n.notificationId}`, ownerToken);
      return (r.body.deliveries as Json[]).find((d) => d.deliveryId === n.deliveryId)!;
    };

    // A retry waiting in the queue: the first attempt failed, the next is due in 8 s.
    const retrying = await publish('order.fulfilled', 'ord_retry');
    await until('the first attempt to fail', async () => (await delivery(retrying)).status === 'retrying', 30_000);
    // Requests in flight: the receiver has them and does not answer.
    const inFlight = [await publish('order.paid', 'ord_1'), await publish('order.paid', 'ord_2')];
    await until('both requests to reach the holding receiver', async () => (await hitsOf(holdKey)).length >= 2, 30_000);

    await server!.crash();
    server = undefined;
    const all = [retrying, ...inFlight];
    // The receivers answer normally from now on (the held requests died with the Worker).
    await receiver('PUT', `/_mode/${holdKey}`, { status: 200 });

    server = await start();
    // Nothing was lost from D1, nothing re-sent yet: the rows are as the crash left them.
    for (const n of inFlight) expect((await delivery(n)).status).toBe('queued');
    expect((await delivery(retrying)).status).toBe('retrying');

    // Once past their due time plus the grace, the doctor reports all three, with what happens next.
    const report = await until(
      'the doctor to report the overdue deliveries',
      async () => {
        const r = await api('GET', `/v2/handles/${handle}/health`, ownerToken);
        return r.body.overdueDeliveries?.count === 3 ? r.body : null;
      },
      30_000,
    );
    expect(all.map((n) => n.deliveryId)).toContain(report.overdueDeliveries.oldest.deliveryId);
    expect(report.overdueDeliveries.next).toMatch(/sweeper sends them again/);
    expect(report.status).not.toBe('healthy');

    // The minute jobs, every second: the sweeper re-enqueues them and the consumer finishes each one.
    jobs = startMinuteJobs(server.baseUrl, 1_000);
    for (const n of all) {
      await until(
        `delivery ${n.deliveryId} to end terminal`,
        async () => (await delivery(n)).status === 'succeeded',
        60_000,
      );
      const r = await api('GET', `/v2/handles/${handle}/notifications/${n.notificationId}`, ownerToken);
      expect(r.body.status).toBe('delivered');
    }
    const after = await api('GET', `/v2/handles/${handle}/health`, ownerToken);
    expect(after.body.overdueDeliveries).toEqual({ count: 0, oldest: null, next: null });

    // Each held request was sent again under its own webhook-id; the retried one got its second attempt.
    const held = await hitsOf(holdKey);
    for (const n of inFlight) {
      const mine = held.filter((h) => h.headers['webhook-id'] === n.deliveryId);
      expect(mine.length).toBeGreaterThanOrEqual(2);
      expect(mine.at(-1)!.response).toMatchObject({ status: 200, aborted: false });
    }
    const flakyHits = (await hitsOf(flakyKey)).filter((h) => h.headers['webhook-id'] === retrying.deliveryId);
    expect(flakyHits.map((h) => h.response?.status)).toEqual([500, 200]);
  });
});
