/**
 * What a user does to a webhook beyond editing it (docs/design.md#routes, #delivery, #debug-playbooks (playbook 1)): the signed test send and its
 * diagnosis, secret rotation, the delivery log, recover and single-delivery retry. Everything goes through the real
 * Worker, real local D1, the real local queues (the background consumer delivers what is enqueued) and real HTTP
 * receivers on 127.0.0.1.
 */

import { createMessageBatch } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { consumeDeliveries } from '../../src/delivery/consumer.ts';
import { newId } from '../../src/lib/ids.ts';
import {
  anyShard,
  call,
  callJson,
  callWithVars,
  expectProblem,
  provisionHandle,
  shardOf,
  shardOfDelivery,
  signJwt,
  unique,
} from '../support/helpers.ts';
import { type Hit, hits, receiverUrl, setMode, waitForHits } from '../support/receivers.ts';
import { awaitFreshWindow, userJwt } from '../support/seed.ts';

// ---------------------------------------------------------------------------------------------------------------
// Helpers

interface Ctx {
  owner: string;
  handle: string;
  token: string;
  hooks: string;
}

async function setup(): Promise<Ctx> {
  const owner = unique('wa-owner');
  const handle = await provisionHandle(owner);
  return { owner, handle, token: await userJwt(owner), hooks: `/v2/handles/${handle}/webhooks` };
}

async function createWebhook(
  s: Ctx,
  url: string,
  extra: Record<string, unknown> = {},
): Promise<{ id: string; secret: string; url: string }> {
  const r = await callJson('POST', s.hooks, { token: s.token, body: { url, ...extra } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return { id: r.body.id, secret: r.body.secret, url: r.body.url };
}

async function publish(
  s: Ctx,
  type: string,
  data: Record<string, unknown> = { orderId: unique('ord') },
): Promise<string> {
  const r = await callJson('POST', `/v2/handles/${s.handle}/events`, { token: s.token, body: { type, data } });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.notificationId as string;
}

/** What the receiver got from test sends (`"test": true` in the body), leaving out production deliveries. */
async function testSendHits(key: string) {
  return (await hits(key)).filter((h) => (JSON.parse(h.body) as { test?: unknown }).test === true);
}

async function testSend(s: Ctx, webhookId: string, body?: Record<string, unknown>) {
  return callJson('POST', `${s.hooks}/${webhookId}/test`, { token: s.token, ...(body ? { body } : {}) });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; throws naming `what` after `timeoutMs`. */
async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const v = await fn();
    if (v) return v;
    last = v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(50);
  }
}

type Row = Record<string, any>;

const webhookRow = (id: string) =>
  anyShard.prepare('SELECT * FROM webhook_subscriptions WHERE id = ?').bind(id).first<Row>();
const deliveryRow = (id: string) => anyShard.prepare('SELECT * FROM deliveries WHERE id = ?').bind(id).first<Row>();
const notificationRow = (id: string) =>
  anyShard.prepare('SELECT * FROM notifications WHERE id = ?').bind(id).first<Row>();
async function attemptRows(deliveryId: string): Promise<Row[]> {
  const { results } = await anyShard
    .prepare('SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt_number')
    .bind(deliveryId)
    .all<Row>();
  return results;
}
async function deliveriesOfSubscription(subscriptionId: string, kind: 'event' | 'test' = 'event'): Promise<Row[]> {
  const { results } = await anyShard
    .prepare('SELECT * FROM deliveries WHERE subscription_id = ? AND kind = ? ORDER BY id')
    .bind(subscriptionId, kind)
    .all<Row>();
  return results;
}

/** True when `secret` verifies `hit` with the given signature header value (default: the header as sent). */
function verifies(secret: string, hit: Hit, signature = hit.headers['webhook-signature']!): boolean {
  try {
    new Webhook(secret).verify(hit.body, { ...hit.headers, 'webhook-signature': signature });
    return true;
  } catch {
    return false;
  }
}

/** Inserts a notification row whose counters agree with the deliveries the test inserts for it. */
async function insertNotification(
  handle: string,
  n: {
    ms?: number;
    type?: string;
    data?: Record<string, unknown>;
    status: string;
    open?: number;
    succeeded?: number;
    dead?: number;
  },
): Promise<string> {
  const ms = n.ms ?? Date.now();
  const id = newId('ntf', ms);
  const at = new Date(ms).toISOString();
  await (await shardOf(handle))
    .prepare(
      `INSERT INTO notifications (id, handle, type, severity, data, source, source_event_id, occurred_at, status,
       recipient_count, recipients, open_count, succeeded_count, dead_count, created_at, updated_at)
     VALUES (?1, ?2, ?3, 'info', ?4, 'test-seed', NULL, ?5, ?6, 1, '{}', ?7, ?8, ?9, ?5, ?5)`,
    )
    .bind(
      id,
      handle,
      n.type ?? 'order.paid',
      JSON.stringify(n.data ?? { seeded: true }),
      at,
      n.status,
      n.open ?? 0,
      n.succeeded ?? 0,
      n.dead ?? 0,
    )
    .run();
  return id;
}

interface DeliverySeed {
  ms?: number;
  kind?: 'event' | 'test';
  notificationId: string | null;
  subscriptionId: string;
  target: string;
  status: string;
  statusReason?: string | null;
  attemptCount?: number;
  lastErrorClass?: string | null;
  lastHttpStatus?: number | null;
  payload?: string | null;
}

async function insertDelivery(handle: string, d: DeliverySeed): Promise<string> {
  const ms = d.ms ?? Date.now();
  const id = newId('dlv', ms);
  const at = new Date(ms).toISOString();
  await (await shardOf(handle))
    .prepare(
      `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target, status,
       status_reason, attempt_count, last_error_class, last_http_status, retry_base, payload, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, 'webhook', 'webhook', ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, ?13, ?13)`,
    )
    .bind(
      id,
      handle,
      d.notificationId,
      d.kind ?? 'event',
      d.subscriptionId,
      d.target,
      d.status,
      d.statusReason ?? null,
      d.attemptCount ?? 0,
      d.lastErrorClass ?? null,
      d.lastHttpStatus ?? null,
      d.payload ?? null,
      at,
    )
    .run();
  return id;
}

/** A failed (dead) test send to `webhook`, as the test-send route records it: kind `test`, its own payload. */
function insertDeadTestSend(handle: string, webhook: { id: string; url: string }, ms?: number): Promise<string> {
  return insertDelivery(handle, {
    ...(ms === undefined ? {} : { ms }),
    kind: 'test',
    notificationId: null,
    subscriptionId: webhook.id,
    target: webhook.url,
    status: 'dead',
    attemptCount: 1,
    payload: JSON.stringify({
      id: newId('ntf'),
      handle,
      type: 'order.created',
      severity: 'info',
      occurredAt: new Date().toISOString(),
      data: {},
      test: true,
    }),
  });
}

interface AttemptSeed {
  n: number;
  outcome: 'succeeded' | 'failed';
  errorClass: string | null;
  httpStatus: number | null;
  durationMs: number;
  requestBytes: number;
  snippet: string | null;
  errorMessage?: string | null;
  at: string;
}

async function insertAttempts(deliveryId: string, attempts: AttemptSeed[]): Promise<void> {
  if (!attempts.length) return;
  const d1 = await shardOfDelivery(deliveryId);
  await d1.batch(
    attempts.map((a) =>
      d1
        .prepare(
          `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, error_class, http_status, duration_ms,
           request_bytes, response_snippet, error_message, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .bind(
          newId('att'),
          deliveryId,
          a.n,
          a.outcome,
          a.errorClass,
          a.httpStatus,
          a.durationMs,
          a.requestBytes,
          a.snippet,
          a.errorMessage ?? null,
          a.at,
        ),
    ),
  );
}

/** A dead event delivery (with its notification, counted as dead) of `webhook`, `attempts` attempts spent. */
async function insertDead(s: Ctx, webhook: { id: string; url: string }, opts: { ms?: number; attempts?: number } = {}) {
  const notificationId = await insertNotification(s.handle, { ms: opts.ms, status: 'failed', dead: 1 });
  const deliveryId = await insertDelivery(s.handle, {
    ms: opts.ms,
    notificationId,
    subscriptionId: webhook.id,
    target: webhook.url,
    status: 'dead',
    statusReason: 'retries_exhausted',
    attemptCount: opts.attempts ?? 8,
    lastErrorClass: 'http_5xx',
    lastHttpStatus: 500,
  });
  return { notificationId, deliveryId };
}

// ---------------------------------------------------------------------------------------------------------------

describe('POST …/webhooks/{id}/test', () => {
  it('against `ok`: succeeds with 200, signed with the creation secret, body.test true, recorded as kind test', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('ok', key));
    const r = await testSend(s, wh.id);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.attempt).toMatchObject({ attemptNumber: 1, outcome: 'succeeded', errorClass: null, httpStatus: 200 });
    expect(r.body.attempt.durationMs).toBeGreaterThanOrEqual(0);
    expect(r.body.attempt.requestBytes).toBeGreaterThan(0);
    expect(r.body.diagnosis.test).toMatchObject({ eventType: 'order.created', outcome: 'succeeded', httpStatus: 200 });

    const [hit] = await waitForHits(key, 1);
    expect(hit!.method).toBe('POST');
    expect(hit!.headers['content-type']).toBe('application/json');
    expect(hit!.headers['webhook-id']).toBe(r.body.deliveryId);
    const payload = new Webhook(wh.secret).verify(hit!.body, hit!.headers) as Record<string, any>;
    expect(payload).toMatchObject({ type: 'order.created', handle: s.handle, test: true });
    expect(payload.data).toMatchObject({ orderId: 'ord_10482' });
    expect(r.body.attempt.requestBytes).toBe(hit!.bytes);
    // A wrong secret does not verify: the check above can fail.
    expect(verifies(`whsec_${btoa('x'.repeat(32))}`, hit!)).toBe(false);

    const d = await deliveryRow(r.body.deliveryId);
    expect(d).toMatchObject({
      kind: 'test',
      status: 'succeeded',
      attempt_count: 1,
      subscription_id: wh.id,
      handle: s.handle,
    });
    const log = await callJson('GET', `${s.hooks}/${wh.id}/deliveries`, { token: s.token });
    expect(log.status).toBe(200);
    const entry = log.body.data.find((x: Row) => x.id === r.body.deliveryId);
    expect(entry).toMatchObject({ kind: 'test', status: 'succeeded', attemptCount: 1 });
    expect(entry.attempts).toHaveLength(1);
    expect(entry.attempts[0]).toMatchObject({
      attemptNumber: 1,
      outcome: 'succeeded',
      httpStatus: 200,
      errorClass: null,
    });
  });

  it('against `fail`: fails http_5xx with the snippet; recorded (kind test, dead) and listed with its attempt', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('fail', key));
    const r = await testSend(s, wh.id, { eventType: 'payment.failed' });
    expect(r.status).toBe(200);
    expect(r.body.attempt).toMatchObject({ outcome: 'failed', errorClass: 'http_5xx', httpStatus: 500 });
    expect(r.body.attempt.responseSnippet).toContain('always fails');
    expect(r.body.diagnosis.test).toMatchObject({
      eventType: 'payment.failed',
      outcome: 'failed',
      errorClass: 'http_5xx',
      httpStatus: 500,
    });
    expect(r.body.diagnosis.summary).toMatch(/http_5xx/);
    const [hit] = await waitForHits(key, 1);
    expect(JSON.parse(hit!.body)).toMatchObject({ type: 'payment.failed', test: true });

    const log = await callJson('GET', `${s.hooks}/${wh.id}/deliveries`, { token: s.token });
    expect(log.body.data).toHaveLength(1);
    expect(log.body.data[0]).toMatchObject({
      id: r.body.deliveryId,
      kind: 'test',
      status: 'dead',
      lastErrorClass: 'http_5xx',
      lastHttpStatus: 500,
    });
    expect(log.body.data[0].attempts).toEqual([
      expect.objectContaining({
        attemptNumber: 1,
        outcome: 'failed',
        errorClass: 'http_5xx',
        httpStatus: 500,
        responseSnippet: expect.stringContaining('always fails'),
      }),
    ]);
  });

  it('test sends never change the subscription health: neither a failure nor a success touches the streak', async () => {
    const s = await setup();
    const failKey = unique('k');
    const failing = await createWebhook(s, receiverUrl('fail', failKey));
    for (let i = 0; i < 3; i++) expect((await testSend(s, failing.id)).body.attempt.outcome).toBe('failed');
    const after = await webhookRow(failing.id);
    expect(after).toMatchObject({
      consecutive_failures: 0,
      failing_since: null,
      last_failure_at: null,
      last_failure_class: null,
      enabled: 1,
    });
    const api = await callJson('GET', `${s.hooks}/${failing.id}`, { token: s.token });
    expect(api.body.health.consecutiveFailures).toBe(0);

    // A subscription in a failure streak: a successful test must not reset it (nor claim a production success).
    const okKey = unique('k');
    const streak = await createWebhook(s, receiverUrl('ok', okKey));
    const since = new Date(Date.now() - 3 * 86_400_000).toISOString();
    await anyShard
      .prepare(
        `UPDATE webhook_subscriptions SET consecutive_failures = 7, failing_since = ?2, last_failure_class = 'timeout' WHERE id = ?1`,
      )
      .bind(streak.id, since)
      .run();
    const r = await testSend(s, streak.id);
    expect(r.body.attempt.outcome).toBe('succeeded');
    expect(r.body.diagnosis.subscription).toMatchObject({ consecutiveFailures: 7, failingSince: since });
    expect(r.body.diagnosis.subscription.projectedAutoDisableAt).toBe(
      new Date(Date.parse(since) + 5 * 86_400_000).toISOString(),
    );
    expect(await webhookRow(streak.id)).toMatchObject({
      consecutive_failures: 7,
      failing_since: since,
      last_success_at: null,
      last_failure_class: 'timeout',
    });
  });

  it('a disabled subscription: the test still goes out and the diagnosis says subscription_disabled', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('ok', key), { enabled: false });
    const r = await testSend(s, wh.id);
    expect(r.status).toBe(200);
    expect(r.body.attempt.outcome).toBe('succeeded');
    await waitForHits(key, 1);
    expect(r.body.diagnosis.subscription.status).toBe('disabled');
    expect(r.body.diagnosis.differences.map((f: Row) => f.code)).toContain('subscription_disabled');
    expect(r.body.diagnosis.nextSteps.join('\n')).toMatch(/enabled/);

    // Control: the same on an enabled subscription names no such difference.
    const enabled = await createWebhook(s, receiverUrl('ok', unique('k')));
    const c = await testSend(s, enabled.id);
    expect(c.body.diagnosis.differences.map((f: Row) => f.code)).not.toContain('subscription_disabled');
  });

  it("eventTypes matching none of the handle's recent events → filters_exclude_recent_events, per type with the reason", async () => {
    const s = await setup();
    const campaignsOnly = await createWebhook(s, receiverUrl('ok', unique('k')), { eventTypes: ['campaign.*'] });
    const orders = await createWebhook(s, receiverUrl('ok', unique('k')), { eventTypes: ['order.*'] });
    await publish(s, 'order.paid');
    await publish(s, 'order.paid');
    await publish(s, 'order.cancelled');

    const r = await testSend(s, campaignsOnly.id, { eventType: 'campaign.started' });
    expect(r.status).toBe(200);
    expect(r.body.attempt.outcome).toBe('succeeded');
    const d = r.body.diagnosis;
    expect(d.differences.map((f: Row) => f.code)).toContain('filters_exclude_recent_events');
    const byType = Object.fromEntries(d.matching.recentEventTypes.map((t: Row) => [t.type, t]));
    expect(byType['order.paid']).toMatchObject({ count: 2, wouldMatch: false });
    expect(byType['order.paid'].reason).toMatch(/eventTypes/);
    expect(byType['order.cancelled']).toMatchObject({ count: 1, wouldMatch: false });

    const c = await testSend(s, orders.id);
    expect(c.body.diagnosis.differences.map((f: Row) => f.code)).not.toContain('filters_exclude_recent_events');
    expect(c.body.diagnosis.matching.recentEventTypes.every((t: Row) => t.wouldMatch)).toBe(true);
  });

  it("validation: both options → 400; unknown eventType → 422; another handle's notification → 422; unknown fields → 400", async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('ok', key));
    const other = await setup();
    await createWebhook(other, receiverUrl('ok', unique('k')));
    const foreign = await publish(other, 'order.paid');
    const mine = await publish(s, 'order.paid');
    const path = `${s.hooks}/${wh.id}/test`;

    await expectProblem(
      await call('POST', path, { token: s.token, body: { eventType: 'order.paid', notificationId: mine } }),
      400,
    );
    const unknown = await expectProblem(
      await call('POST', path, { token: s.token, body: { eventType: 'order.teleported' } }),
      422,
    );
    expect(unknown.detail).toContain('order.teleported');
    const cross = await expectProblem(
      await call('POST', path, { token: s.token, body: { notificationId: foreign } }),
      422,
    );
    expect(cross.detail).toContain(foreign);
    const extra = await expectProblem(
      await call('POST', path, { token: s.token, body: { eventType: 'order.paid', secret: 'x' } }),
      400,
    );
    expect(extra.errors.map((e: Row) => e.path)).toContain('body.secret');
    await expectProblem(await call('POST', path, { token: s.token, body: { notificationId: 'not-an-id' } }), 400);
    // Nothing was sent for any of them. A test send answers after its request, so none can still be on its way; the
    // background consumer may deliver `mine` to this receiver meanwhile, so count only test sends.
    expect(await testSendHits(key)).toHaveLength(0);
    expect(await deliveriesOfSubscription(wh.id, 'test')).toHaveLength(0);

    // Another handle's webhook id, or the owner of another handle: 404, nothing sent.
    await expectProblem(await call('POST', `${other.hooks}/${wh.id}/test`, { token: other.token }), 404);
    await expectProblem(await call('POST', path, { token: other.token }), 404);
    // Without webhooks:write → 403.
    const readOnly = await signJwt({ sub: s.owner, scope: 'webhooks:read notifications:read notifications:write' });
    await expectProblem(await call('POST', path, { token: readOnly }), 403);
    expect(await testSendHits(key)).toHaveLength(0);
  });

  it('throttle: the 11th test send within a minute → 429 with Retry-After; nothing sent for it', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('ok', key));
    await awaitFreshWindow(25_000);
    for (let i = 0; i < 10; i++) {
      const r = await call('POST', `${s.hooks}/${wh.id}/test`, { token: s.token });
      expect(r.status, `send ${i + 1}`).toBe(200);
      await r.text();
    }
    const res = await call('POST', `${s.hooks}/${wh.id}/test`, { token: s.token });
    const problem = await expectProblem(res, 429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(res.headers.get('ratelimit-policy')).toContain('test_sends');
    expect(problem.detail).toMatch(/test sends/);
    expect(await hits(key)).toHaveLength(10);
    expect(await deliveriesOfSubscription(wh.id, 'test')).toHaveLength(10);
    // Other writes by the same caller are not throttled by the test-send class.
    const patch = await call('PATCH', `${s.hooks}/${wh.id}`, {
      token: s.token,
      body: { description: 'still writable' },
    });
    expect(patch.status).toBe(200);
  }, 60_000);
});

describe('playbook 1: "the test passes but production retries to the DLQ"', () => {
  it('a receiver rejecting order.fulfilled: the test passes and the diagnosis names the event type and the 422', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('reject-type', key, { type: 'order.fulfilled' }));
    const failing = [];
    for (let i = 0; i < 3; i++)
      failing.push(await publish(s, 'order.fulfilled', { orderId: `ord_${i}`, carrier: 'Delhivery' }));
    // The background consumer delivers them; each first attempt is rejected and recorded.
    const rows = await waitUntil(
      'three failed production attempts',
      async () => {
        const r = await deliveriesOfSubscription(wh.id);
        return r.length === 3 && r.every((d) => d.attempt_count >= 1 && d.status === 'retrying') ? r : null;
      },
      15_000,
    );
    const failingDeliveries = rows.map((d) => d.id);
    expect(rows.map((d) => d.last_error_class)).toEqual(['http_4xx', 'http_4xx', 'http_4xx']);

    const r = await testSend(s, wh.id);
    expect(r.status).toBe(200);
    expect(r.body.attempt).toMatchObject({ outcome: 'succeeded', httpStatus: 200 });
    const d = r.body.diagnosis;
    const codes = d.differences.map((f: Row) => f.code);
    expect(codes).toContain('event_type_specific');
    expect(codes).toContain('receiver_rejects_payload');
    expect(d.differences.find((f: Row) => f.code === 'event_type_specific').message).toContain('order.fulfilled');
    expect(d.differences.find((f: Row) => f.code === 'receiver_rejects_payload').message).toContain(
      'unsupported payload',
    );
    expect(d.differences.find((f: Row) => f.code === 'receiver_rejects_payload').message).toContain('422');
    expect(d.productionFailures.map((p: Row) => p.deliveryId).sort()).toEqual([...failingDeliveries].sort());
    for (const p of d.productionFailures) {
      expect(p).toMatchObject({ type: 'order.fulfilled', errorClass: 'http_4xx', httpStatus: 422 });
      expect(failing).toContain(p.notificationId);
      expect(p.responseSnippet).toContain('unsupported payload');
    }
    const replayStep = d.nextSteps.find((x: string) => x.includes('notificationId'));
    expect(replayStep).toBeDefined();
    expect(failing.some((n) => replayStep.includes(n))).toBe(true);
    expect(d.summary).toMatch(/test succeeded/i);

    // Replaying a real failing event reproduces the production failure.
    const replay = await testSend(s, wh.id, { notificationId: failing[0] });
    expect(replay.status).toBe(200);
    expect(replay.body.attempt).toMatchObject({ outcome: 'failed', errorClass: 'http_4xx', httpStatus: 422 });
    expect(replay.body.diagnosis.test).toMatchObject({ eventType: 'order.fulfilled', outcome: 'failed' });
    const replayHit = (await hits(key)).find((h) => h.headers['webhook-id'] === replay.body.deliveryId)!;
    expect(JSON.parse(replayHit.body)).toMatchObject({
      id: failing[0],
      type: 'order.fulfilled',
      test: true,
      data: { orderId: 'ord_0' },
    });

    // The delivery log shows each production attempt's class (the second half of the playbook).
    const log = await callJson('GET', `${s.hooks}/${wh.id}/deliveries`, { token: s.token });
    for (const id of failingDeliveries) {
      const entry = log.body.data.find((x: Row) => x.id === id);
      expect(entry.kind).toBe('event');
      expect(entry.attempts[0]).toMatchObject({
        attemptNumber: 1,
        outcome: 'failed',
        errorClass: 'http_4xx',
        httpStatus: 422,
      });
    }
  }, 30_000);

  it('a receiver slow only for large bodies: production timed out, the small test passes → latency and payload_size', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('slow-large', key, { bytes: 2000, ms: 1500 }));
    // Two large production deliveries, queued, consumed with a 300 ms timeout (the background consumer runs with the
    // normal env, so the batch is handed to the consumer directly).
    const bigData = {
      orderId: 'ord_big',
      lines: Array.from({ length: 60 }, (_, i) => ({ sku: `SKU-${i}`, title: 'Hand-woven cotton kurta', qty: 1 })),
    };
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const notificationId = await insertNotification(s.handle, {
        type: 'order.created',
        data: bigData,
        status: 'delivering',
        open: 1,
      });
      ids.push(
        await insertDelivery(s.handle, { notificationId, subscriptionId: wh.id, target: wh.url, status: 'queued' }),
      );
    }
    const batch = createMessageBatch<unknown>(
      'notify-deliveries',
      ids.map((deliveryId, i) => ({
        id: `m-${i}-${deliveryId}`,
        timestamp: new Date(),
        attempts: 1,
        // The handle picks the shard, as in every enqueued message (docs/design.md#shards).
        body: { deliveryId, handle: s.handle },
      })),
    );
    const report = await consumeDeliveries(batch, { ...env, WEBHOOK_TIMEOUT_MS: '300' });
    expect(report.attempts).toBe(2);
    for (const id of ids) {
      expect(await deliveryRow(id)).toMatchObject({ status: 'retrying', last_error_class: 'timeout' });
      const [a] = await attemptRows(id);
      expect(a).toMatchObject({ outcome: 'failed', error_class: 'timeout' });
      expect(a!.request_bytes).toBeGreaterThan(2000);
    }

    const res = await callWithVars({ WEBHOOK_TIMEOUT_MS: '300' }, 'POST', `${s.hooks}/${wh.id}/test`, {
      token: s.token,
    });
    expect(res.status).toBe(200);
    const r = (await res.json()) as Row;
    expect(r.attempt).toMatchObject({ outcome: 'succeeded', httpStatus: 200 });
    expect(r.attempt.requestBytes).toBeLessThan(2000);
    const codes = r.diagnosis.differences.map((f: Row) => f.code);
    expect(codes).toContain('latency');
    expect(codes).toContain('payload_size');
    expect(codes).not.toContain('event_type_specific');
    expect(r.diagnosis.differences.find((f: Row) => f.code === 'latency').message).toContain('300 ms');
    expect(r.diagnosis.productionFailures.map((p: Row) => p.deliveryId).sort()).toEqual([...ids].sort());
    for (const p of r.diagnosis.productionFailures)
      expect(p).toMatchObject({ errorClass: 'timeout', httpStatus: null });
  }, 30_000);
});

/** One correct sentence: no capital after a joining word, no ".;" or ".)", one full stop at the end. */
function expectOneSentence(text: string) {
  expect(text).not.toMatch(/\b(but|and|so|while) [A-Z][a-z]/);
  expect(text).not.toMatch(/[.][;,)]/);
  expect(text).toMatch(/[^.][.]$/);
}

describe('diagnosis wording', () => {
  it('a disabled subscription with no production deliveries yet: one sentence, and no claim of healthy deliveries', async () => {
    const s = await setup();
    const wh = await createWebhook(s, receiverUrl('ok', unique('k')), { enabled: false });
    const d = (await testSend(s, wh.id)).body.diagnosis;
    expect(d.summary).toMatch(/^The test succeeded, but the subscription is disabled/);
    expectOneSentence(d.summary);
    for (const step of d.nextSteps) expectOneSentence(step);

    const fresh = await createWebhook(s, receiverUrl('ok', unique('k')));
    const f = (await testSend(s, fresh.id)).body.diagnosis;
    expect(f.summary).not.toMatch(/healthy/);
    expect(f.summary).toBe('The test succeeded; there are no production deliveries yet to compare it with.');
  });

  it('a test that times out: the next step says what to do, without repeating the failure', async () => {
    const s = await setup();
    const wh = await createWebhook(s, receiverUrl('slow', unique('k'), { ms: 1500 }));
    const res = await callWithVars({ WEBHOOK_TIMEOUT_MS: '300' }, 'POST', `${s.hooks}/${wh.id}/test`, {
      token: s.token,
    });
    const d = ((await res.json()) as Row).diagnosis;
    expect(d.test.errorClass).toBe('timeout');
    expect(d.summary).toMatch(/^The test failed with timeout/);
    expectOneSentence(d.summary);
    expect(d.nextSteps[0]).toMatch(/^Make the endpoint answer 2xx within 300 ms/);
    for (const step of d.nextSteps) {
      expectOneSentence(step);
      expect(step).not.toMatch(/failed|timed out|timeout \(/i);
    }
  }, 30_000);
});

describe('POST …/webhooks/{id}/rotate-secret', () => {
  it('returns a new secret once; during the grace period each delivery carries a signature per secret', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('ok', key));
    const before = Date.now();
    const r = await callJson('POST', `${s.hooks}/${wh.id}/rotate-secret`, { token: s.token });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const fresh = r.body.secret as string;
    expect(fresh).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(fresh).not.toBe(wh.secret);
    const expires = Date.parse(r.body.secretRotation.previousSecretExpiresAt);
    expect(expires).toBeGreaterThanOrEqual(before + 24 * 3600_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 24 * 3600_000 + 1000);
    // Shown once: reads do not carry it.
    const got = await callJson('GET', `${s.hooks}/${wh.id}`, { token: s.token });
    expect(JSON.stringify(got.body)).not.toContain(fresh);
    expect(got.body.secretRotation.previousSecretExpiresAt).toBe(r.body.secretRotation.previousSecretExpiresAt);

    const t = await testSend(s, wh.id);
    expect(t.body.attempt.outcome).toBe('succeeded');
    expect(t.body.diagnosis.subscription.secretInRotation).toBe(true);
    expect(t.body.diagnosis.differences.map((f: Row) => f.code)).toContain('secret_in_rotation');
    const [hit] = await waitForHits(key, 1);
    const signatures = hit!.headers['webhook-signature']!.split(' ');
    expect(signatures).toHaveLength(2);
    // Current secret first; each signature verifies with exactly one of the secrets.
    expect(verifies(fresh, hit!, signatures[0])).toBe(true);
    expect(verifies(wh.secret, hit!, signatures[0])).toBe(false);
    expect(verifies(wh.secret, hit!, signatures[1])).toBe(true);
    expect(verifies(fresh, hit!, signatures[1])).toBe(false);

    // Once the grace period is over, only the new secret signs.
    await anyShard
      .prepare('UPDATE webhook_subscriptions SET previous_secret_expires_at = ? WHERE id = ?')
      .bind(new Date(Date.now() - 1000).toISOString(), wh.id)
      .run();
    await testSend(s, wh.id);
    const [, later] = await waitForHits(key, 2);
    expect(later!.headers['webhook-signature']!.split(' ')).toHaveLength(1);
    expect(verifies(fresh, later!)).toBe(true);
    expect(verifies(wh.secret, later!)).toBe(false);
  });

  it('graceHours: 0 → only the new secret signs at once; graceHours: 2 → the old one expires in 2 h', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('ok', key));
    const r = await callJson('POST', `${s.hooks}/${wh.id}/rotate-secret`, { token: s.token, body: { graceHours: 0 } });
    expect(r.status).toBe(200);
    expect(r.body.secretRotation).toBeNull();
    const fresh = r.body.secret as string;
    const t = await testSend(s, wh.id);
    expect(t.body.diagnosis.subscription.secretInRotation).toBe(false);
    const [hit] = await waitForHits(key, 1);
    expect(hit!.headers['webhook-signature']!.split(' ')).toHaveLength(1);
    expect(verifies(fresh, hit!)).toBe(true);
    expect(verifies(wh.secret, hit!)).toBe(false);

    const before = Date.now();
    const r2 = await callJson('POST', `${s.hooks}/${wh.id}/rotate-secret`, { token: s.token, body: { graceHours: 2 } });
    expect(r2.status).toBe(200);
    const expires = Date.parse(r2.body.secretRotation.previousSecretExpiresAt);
    expect(Math.abs(expires - (before + 2 * 3600_000))).toBeLessThan(5_000);
    await testSend(s, wh.id);
    const [, second] = await waitForHits(key, 2);
    const sigs = second!.headers['webhook-signature']!.split(' ');
    expect(sigs).toHaveLength(2);
    expect(verifies(r2.body.secret, second!, sigs[0])).toBe(true);
    expect(verifies(fresh, second!, sigs[1])).toBe(true);
  });

  it('validation, tenancy and permissions', async () => {
    const s = await setup();
    const wh = await createWebhook(s, receiverUrl('ok', unique('k')));
    const path = `${s.hooks}/${wh.id}/rotate-secret`;
    const stored = (await webhookRow(wh.id))!.secret_encrypted;
    await expectProblem(await call('POST', path, { token: s.token, body: { graceHours: 169 } }), 400);
    await expectProblem(await call('POST', path, { token: s.token, body: { graceHours: -1 } }), 400);
    await expectProblem(
      await call('POST', path, { token: s.token, body: { graceHours: 1, secret: 'whsec_mine' } }),
      400,
    );
    const other = await setup();
    await expectProblem(await call('POST', `${other.hooks}/${wh.id}/rotate-secret`, { token: other.token }), 404);
    await expectProblem(await call('POST', path, { token: other.token }), 404);
    const readOnly = await signJwt({ sub: s.owner, scope: 'webhooks:read' });
    await expectProblem(await call('POST', path, { token: readOnly }), 403);
    expect((await webhookRow(wh.id))!.secret_encrypted).toBe(stored);
  });
});

describe('GET …/webhooks/{id}/deliveries', () => {
  it('newest first, keyset pages over more than `limit` deliveries exactly once, each with its attempts in order', async () => {
    const s = await setup();
    const url = receiverUrl('ok', unique('k'));
    const wh = await createWebhook(s, url);
    const sibling = await createWebhook(s, receiverUrl('ok', unique('k')));
    const base = Date.now() - 60_000;
    const expected: Array<{ id: string; attempts: AttemptSeed[] }> = [];
    for (let i = 0; i < 7; i++) {
      const ms = base + i * 1000;
      const n = await insertNotification(s.handle, { ms, status: 'delivering', open: 1 });
      const count = i % 4; // 0..3 attempts
      const id = await insertDelivery(s.handle, {
        ms,
        notificationId: n,
        subscriptionId: wh.id,
        target: url,
        status: count ? 'retrying' : 'queued',
        attemptCount: count,
        lastErrorClass: count ? 'timeout' : null,
      });
      const attempts: AttemptSeed[] = Array.from({ length: count }, (_, k) => ({
        n: k + 1,
        outcome: 'failed' as const,
        errorClass: k % 2 ? 'timeout' : 'http_5xx',
        httpStatus: k % 2 ? null : 502,
        durationMs: 100 * (k + 1) + i,
        requestBytes: 300 + i,
        snippet: k % 2 ? null : `bad gateway ${i}.${k + 1}`,
        errorMessage: k % 2 ? 'No answer within 15000 ms.' : null,
        at: new Date(ms + (k + 1) * 10).toISOString(),
      }));
      // Inserted newest attempt first: the log must order them by attempt number, not by insertion.
      await insertAttempts(id, [...attempts].reverse());
      expected.push({ id, attempts });
    }
    // Another subscription's delivery on the same handle is not in this log.
    const n = await insertNotification(s.handle, { status: 'delivering', open: 1 });
    const foreign = await insertDelivery(s.handle, {
      notificationId: n,
      subscriptionId: sibling.id,
      target: sibling.url,
      status: 'queued',
    });

    const seen: Row[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `?limit=3&cursor=${encodeURIComponent(cursor)}` : '?limit=3';
      const page = await callJson('GET', `${s.hooks}/${wh.id}/deliveries${q}`, { token: s.token });
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      expect(page.body.data.length).toBeLessThanOrEqual(3);
      seen.push(...page.body.data);
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen.map((d) => d.id)).toEqual(expected.map((e) => e.id).reverse());
    expect(seen.map((d) => d.id)).not.toContain(foreign);
    for (const d of seen) {
      const e = expected.find((x) => x.id === d.id)!;
      expect(d.attemptCount).toBe(e.attempts.length);
      expect(d.attempts).toEqual(
        e.attempts.map((a) => ({
          attemptNumber: a.n,
          outcome: a.outcome,
          errorClass: a.errorClass,
          httpStatus: a.httpStatus,
          durationMs: a.durationMs,
          requestBytes: a.requestBytes,
          responseSnippet: a.snippet,
          errorMessage: a.errorMessage ?? null,
          at: a.at,
        })),
      );
    }
  });

  it('shows a real production attempt (class, status, duration, snippet) as the background consumer recorded it', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('fail', key));
    const notificationId = await publish(s, 'order.paid');
    const row = await waitUntil('the first production attempt', async () => {
      const [d] = await deliveriesOfSubscription(wh.id);
      return d && d.attempt_count >= 1 ? d : null;
    });
    const log = await callJson('GET', `${s.hooks}/${wh.id}/deliveries`, { token: s.token });
    expect(log.body.data[0]).toMatchObject({
      id: row.id,
      kind: 'event',
      notificationId,
      status: 'retrying',
      lastErrorClass: 'http_5xx',
      lastHttpStatus: 500,
    });
    expect(log.body.data[0].nextAttemptAt).not.toBeNull();
    expect(log.body.data[0].attempts[0]).toMatchObject({
      attemptNumber: 1,
      outcome: 'failed',
      errorClass: 'http_5xx',
      httpStatus: 500,
    });
    expect(log.body.data[0].attempts[0].responseSnippet).toContain('always fails');
    expect(log.body.data[0].attempts[0].durationMs).toBeGreaterThanOrEqual(0);
  }, 20_000);

  it("another handle's webhook id → 404; a bad cursor → 400; without webhooks:read → 403", async () => {
    const s = await setup();
    const wh = await createWebhook(s, receiverUrl('ok', unique('k')));
    const other = await setup();
    await expectProblem(await call('GET', `${other.hooks}/${wh.id}/deliveries`, { token: other.token }), 404);
    await expectProblem(await call('GET', `${s.hooks}/${wh.id}/deliveries`, { token: other.token }), 404);
    await expectProblem(
      await call('GET', `${s.hooks}/whk_00000000000000000000000000/deliveries`, { token: s.token }),
      404,
    );
    const bad = await expectProblem(
      await call('GET', `${s.hooks}/${wh.id}/deliveries?cursor=nope`, { token: s.token }),
      400,
    );
    expect(bad.errors.map((e: Row) => e.path)).toContain('query.cursor');
    const noRead = await signJwt({ sub: s.owner, scope: 'notifications:read' });
    await expectProblem(await call('GET', `${s.hooks}/${wh.id}/deliveries`, { token: noRead }), 403);
  });
});

describe('POST …/webhooks/{id}/recover', () => {
  it('redrives dead and skipped deliveries since the time with a fresh schedule; delivered once the receiver is fixed', async () => {
    const s = await setup();
    const key = unique('k');
    await setMode(key, { status: 500 });
    const wh = await createWebhook(s, receiverUrl('mode', key));
    const now = Date.now();
    const old = await insertDead(s, wh, { ms: now - 2 * 3600_000 });
    const dead = await insertDead(s, wh, { ms: now - 10 * 60_000 });
    const skippedNotification = await insertNotification(s.handle, { ms: now - 5 * 60_000, status: 'no_recipients' });
    const skipped = await insertDelivery(s.handle, {
      ms: now - 5 * 60_000,
      notificationId: skippedNotification,
      subscriptionId: wh.id,
      target: wh.url,
      status: 'skipped',
      statusReason: 'subscription_disabled',
    });
    // Not redrivable: a succeeded delivery and a dead test send since the time.
    const okNotification = await insertNotification(s.handle, {
      ms: now - 4 * 60_000,
      status: 'delivered',
      succeeded: 1,
    });
    const succeeded = await insertDelivery(s.handle, {
      ms: now - 4 * 60_000,
      notificationId: okNotification,
      subscriptionId: wh.id,
      target: wh.url,
      status: 'succeeded',
      attemptCount: 1,
    });
    const deadTest = await insertDeadTestSend(s.handle, wh, now - 3 * 60_000);

    const since = new Date(now - 3600_000).toISOString();
    const r = await callJson('POST', `${s.hooks}/${wh.id}/recover`, { token: s.token, body: { since } });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect([...r.body.redriven].sort()).toEqual([dead.deliveryId, skipped].sort());
    expect(r.body).toMatchObject({ enqueued: 2, more: false });

    const deadRow = (await deliveryRow(dead.deliveryId))!;
    expect(deadRow.retry_base).toBe(8);
    expect(['pending', 'queued', 'retrying']).toContain(deadRow.status);
    const skippedRow = (await deliveryRow(skipped))!;
    expect(skippedRow.retry_base).toBe(0);
    expect(['pending', 'queued', 'retrying']).toContain(skippedRow.status);
    expect((await notificationRow(dead.notificationId))!.status).toBe('delivering');

    // The receiver still fails: the redriven deliveries retry on a fresh schedule instead of dying at once.
    await waitUntil('both redriven deliveries attempted and retrying', async () => {
      const [a, b] = [await deliveryRow(dead.deliveryId), await deliveryRow(skipped)];
      return a!.attempt_count === 9 && b!.attempt_count === 1 && a!.status === 'retrying' && b!.status === 'retrying';
    });
    expect((await attemptRows(dead.deliveryId)).map((a) => a.attempt_number)).toEqual([9]);

    await setMode(key, { status: 200 });
    await waitUntil(
      'both redriven deliveries succeeded',
      async () =>
        (await deliveryRow(dead.deliveryId))!.status === 'succeeded' &&
        (await deliveryRow(skipped))!.status === 'succeeded',
      15_000,
    );
    expect(await deliveryRow(dead.deliveryId)).toMatchObject({ attempt_count: 10, last_http_status: 200 });
    expect((await notificationRow(dead.notificationId))!.status).toBe('delivered');
    expect((await notificationRow(skippedNotification))!.status).toBe('delivered');
    const got = await hits(key);
    expect(new Set(got.map((h) => h.headers['webhook-id']))).toEqual(new Set([dead.deliveryId, skipped]));

    // Earlier and non-redrivable ones untouched.
    expect(await deliveryRow(old.deliveryId)).toMatchObject({ status: 'dead', attempt_count: 8, retry_base: 0 });
    expect((await notificationRow(old.notificationId))!.status).toBe('failed');
    expect(await deliveryRow(succeeded)).toMatchObject({ status: 'succeeded', attempt_count: 1 });
    expect(await deliveryRow(deadTest)).toMatchObject({ status: 'dead', retry_base: 0 });
  }, 40_000);

  it('a disabled webhook → 409 and nothing is redriven; validation and tenancy', async () => {
    const s = await setup();
    const wh = await createWebhook(s, receiverUrl('ok', unique('k')), { enabled: false });
    const dead = await insertDead(s, wh);
    const since = new Date(Date.now() - 3600_000).toISOString();
    const path = `${s.hooks}/${wh.id}/recover`;
    const conflict = await expectProblem(await call('POST', path, { token: s.token, body: { since } }), 409);
    expect(conflict.detail).toMatch(/enable/i);
    expect(await deliveryRow(dead.deliveryId)).toMatchObject({ status: 'dead', retry_base: 0 });

    await expectProblem(await call('POST', path, { token: s.token, body: {} }), 400);
    await expectProblem(await call('POST', path, { token: s.token, body: { since: 'yesterday' } }), 400);
    const other = await setup();
    await expectProblem(
      await call('POST', `${other.hooks}/${wh.id}/recover`, { token: other.token, body: { since } }),
      404,
    );
    await expectProblem(await call('POST', path, { token: other.token, body: { since } }), 404);
    const readOnly = await signJwt({ sub: s.owner, scope: 'webhooks:read notifications:write' });
    await expectProblem(await call('POST', path, { token: readOnly, body: { since } }), 403);
  });
});

describe('POST …/deliveries/{id}/retry', () => {
  it('a dead delivery → 202, back on a fresh schedule, and delivered; notifications:write alone is enough', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('ok', key));
    const dead = await insertDead(s, wh, { attempts: 8 });
    await insertAttempts(dead.deliveryId, [
      {
        n: 8,
        outcome: 'failed',
        errorClass: 'http_5xx',
        httpStatus: 500,
        durationMs: 12,
        requestBytes: 200,
        snippet: 'boom',
        at: new Date().toISOString(),
      },
    ]);
    const path = `/v2/handles/${s.handle}/deliveries/${dead.deliveryId}/retry`;

    // Neither webhooks:write nor notifications:write → 403, and nothing changes.
    const neither = await signJwt({ sub: s.owner, scope: 'webhooks:read notifications:read events:publish' });
    const forbidden = await expectProblem(await call('POST', path, { token: neither }), 403);
    expect(forbidden.detail).toMatch(/webhooks:write|notifications:write/);
    expect((await deliveryRow(dead.deliveryId))!.status).toBe('dead');

    const notificationsWrite = await signJwt({ sub: s.owner, scope: 'notifications:write' });
    const r = await callJson('POST', path, { token: notificationsWrite });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body.id).toBe(dead.deliveryId);
    expect(['pending', 'queued']).toContain(r.body.status);
    expect(r.body.attempts.map((a: Row) => a.attemptNumber)).toEqual([8]);
    expect((await deliveryRow(dead.deliveryId))!.retry_base).toBe(8);

    const [hit] = await waitForHits(key, 1, 15_000);
    expect(hit!.headers['webhook-id']).toBe(dead.deliveryId);
    expect(new Webhook(wh.secret).verify(hit!.body, hit!.headers)).toMatchObject({
      id: dead.notificationId,
      test: false,
    });
    await waitUntil(
      'the retried delivery succeeded',
      async () => (await deliveryRow(dead.deliveryId))!.status === 'succeeded',
    );
    expect(await deliveryRow(dead.deliveryId)).toMatchObject({ attempt_count: 9, last_http_status: 200 });
    expect((await notificationRow(dead.notificationId))!.status).toBe('delivered');

    // Succeeded now: a second retry → 409.
    const conflict = await expectProblem(await call('POST', path, { token: s.token }), 409);
    expect(conflict.detail).toContain('succeeded');
  }, 30_000);

  it('webhooks:write alone works too; a test send → 422; cross-tenant and unknown ids → 404', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('ok', key));
    const dead = await insertDead(s, wh);
    const other = await setup();

    await expectProblem(
      await call('POST', `/v2/handles/${other.handle}/deliveries/${dead.deliveryId}/retry`, { token: other.token }),
      404,
    );
    await expectProblem(
      await call('POST', `/v2/handles/${s.handle}/deliveries/${dead.deliveryId}/retry`, { token: other.token }),
      404,
    );
    await expectProblem(
      await call('POST', `/v2/handles/${s.handle}/deliveries/${newId('dlv')}/retry`, { token: s.token }),
      404,
    );
    await expectProblem(
      await call('POST', `/v2/handles/${s.handle}/deliveries/not-a-delivery/retry`, { token: s.token }),
      404,
    );
    expect((await deliveryRow(dead.deliveryId))!.status).toBe('dead');

    const webhooksWrite = await signJwt({ sub: s.owner, scope: 'webhooks:write' });
    const r = await callJson('POST', `/v2/handles/${s.handle}/deliveries/${dead.deliveryId}/retry`, {
      token: webhooksWrite,
    });
    expect(r.status).toBe(202);
    await waitForHits(key, 1, 15_000);

    const t = await testSend(s, wh.id);
    const failedTest = await insertDeadTestSend(s.handle, wh);
    await expectProblem(
      await call('POST', `/v2/handles/${s.handle}/deliveries/${failedTest}/retry`, { token: s.token }),
      422,
    );
    // A succeeded test send is refused as well (it is not a production delivery).
    expect([409, 422]).toContain(
      (await call('POST', `/v2/handles/${s.handle}/deliveries/${t.body.deliveryId}/retry`, { token: s.token })).status,
    );
  }, 30_000);

  it('a skipped delivery of a webhook that is still disabled → 409 (as recover answers), not a 202 that is skipped again', async () => {
    const s = await setup();
    const key = unique('k');
    const wh = await createWebhook(s, receiverUrl('ok', key), { enabled: false });
    const notificationId = await publish(s, 'order.paid');
    const [skipped] = await deliveriesOfSubscription(wh.id);
    expect(skipped).toMatchObject({
      status: 'skipped',
      status_reason: 'subscription_disabled',
      notification_id: notificationId,
    });
    const res = await call('POST', `/v2/handles/${s.handle}/deliveries/${skipped!.id}/retry`, { token: s.token });
    const text = await res.text();
    // Today: 202 "Queued again", then the consumer skips it again at once (subscription_disabled) — the user is told
    // it was redelivered while nothing was sent.
    await sleep(2_500);
    const after = await deliveryRow(skipped!.id);
    expect(await hits(key)).toHaveLength(0);
    expect(res.status, `${text} → then ${after!.status} (${after!.status_reason})`).toBe(409);
  }, 15_000);
});
