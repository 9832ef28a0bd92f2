/**
 * The delivery pipeline against REAL HTTP receivers (test/support/node/receivers.ts): outcome classes, what a receiver
 * gets (Standard Webhooks signatures verified with the independent `standardwebhooks` package), the retry schedule
 * through the consumer and the DLQ, concurrency and D1 cost of a batch, and the email channel (docs/design.md#delivery).
 *
 * Two ways in, chosen per test (see pipeline-helpers.ts):
 * - end to end: `POST …/events`, the real local queue delivers to the worker's own `queue` handler; the test only
 *   waits for end states (receiver hits, terminal rows);
 * - by hand: deliveries are created by the real ingest code with a RECORDING queue producer (nothing reaches the real
 *   queue, so the background consumer never sees them), then `consumeDeliveries` runs on a fake batch that records
 *   every ack/retry with its delaySeconds.
 */

import { createExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { RESPONSE_SNIPPET_BYTES } from '../../src/delivery/channels/webhook.ts';
import worker from '../../src/index.ts';
import { meterD1 } from '../support/d1-meter.ts';
import { anyShard, callJson, shardName, shardOf, unique } from '../support/helpers.ts';
import {
  allDeliveryQueues,
  attemptsOf,
  countingD1,
  createWebhook,
  deliveryMessage,
  deliveryRow,
  eventually,
  expectBetween,
  fakeBatch,
  ingestQuiet,
  insertWebhookCopies,
  maxInFlight,
  notificationRow,
  recordingEmail,
  runDeliveries,
  secondsBetween,
  setupHandle,
  type TestHandle,
  webhookDbRow,
} from '../support/pipeline-helpers.ts';
import { type Hit, hits, receiverUrl, setMode, waitForHits } from '../support/receivers.ts';
import { insertEmailSubscriptions, summaryById } from '../support/seed.ts';

const SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000];
const utf8Bytes = (s: string) => new TextEncoder().encode(s).length;

async function publish(
  h: TestHandle,
  body: Record<string, unknown> = { type: 'order.paid', data: { orderId: unique('ord') } },
) {
  const res = await callJson('POST', `/v2/handles/${h.handle}/events`, { token: h.token, body });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body as {
    notificationId: string;
    status: string;
    recipients: Array<{ deliveryId: string; status: string; recipientType: string }>;
  };
}

async function feedItem(h: TestHandle, notificationId: string) {
  const res = await callJson('GET', `/v2/handles/${h.handle}/notifications/${notificationId}`, { token: h.token });
  expect(res.status).toBe(200);
  return res.body;
}

/** Lets a stray request (e.g. a followed redirect) arrive before asserting that it did not. */
const settle = (ms = 400) => new Promise((r) => setTimeout(r, ms));

describe('outcome classes through the pipeline (real receivers)', () => {
  it('200 → delivery succeeded, notification delivered, one attempt row with http_status 200 (end to end, real queue)', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('ok', key) });
    const pub = await publish(h);
    expect(pub.status).toBe('delivering');
    expect(pub.recipients).toHaveLength(1);
    const id = pub.recipients[0]!.deliveryId;
    expect(pub.recipients[0]!.status).toBe('queued');

    await waitForHits(key, 1);
    const d = await eventually(
      () => deliveryRow(id),
      (r) => r.status === 'succeeded',
      15_000,
      'delivery succeeded',
    );
    expect(d).toMatchObject({ attempt_count: 1, last_http_status: 200, last_error_class: null });
    const attempts = await attemptsOf(id);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ attempt_number: 1, outcome: 'succeeded', http_status: 200, error_class: null });
    expect(attempts[0]!.response_snippet).toBe('{"ok":true}');

    const n = await eventually(
      () => feedItem(h, pub.notificationId),
      (b) => b.status === 'delivered',
      5_000,
      'notification delivered',
    );
    expect(n.deliveryCounts).toEqual({ open: 0, succeeded: 1, dead: 0 });
    expect(n.deliveries).toEqual([
      expect.objectContaining({ deliveryId: id, status: 'succeeded', attempts: 1, lastHttpStatus: 200 }),
    ]);
    const w = await webhookDbRow(wh.id);
    expect(w.consecutive_failures).toBe(0);
    expect(w.last_success_at).not.toBeNull();
    expect(await hits(key)).toHaveLength(1);
  });

  it('500 always → retrying, class http_5xx, next attempt ≈ +5 s, message retried with delaySeconds in [4.5, 5.5]', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('fail', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    expect((await deliveryRow(id)).status).toBe('queued');

    const { report, fb } = await runDeliveries([id]);
    const o = fb.outcome(fb.outcomes[0]!.id);
    expect(o.calls).toHaveLength(1);
    expect(o.retried).toBe(true);
    expectBetween(o.delaySeconds!, 4.5, 5.5, 'delaySeconds');
    expect(report).toMatchObject({ messages: 1, attempts: 1, acked: 0, retried: 1 });

    const d = await deliveryRow(id);
    expect(d).toMatchObject({
      status: 'retrying',
      attempt_count: 1,
      last_error_class: 'http_5xx',
      last_http_status: 500,
    });
    expectBetween(secondsBetween(d.last_attempt_at!, d.next_attempt_at!), 4.5, 6, 'next_attempt_at − last_attempt_at');
    const [a] = await attemptsOf(id);
    expect(a).toMatchObject({ attempt_number: 1, outcome: 'failed', error_class: 'http_5xx', http_status: 500 });
    expect(a!.response_snippet).toContain('always fails');

    const n = await notificationRow(ing.notificationId);
    expect(n.status).toBe('delivering');
    expect(summaryById(n.recipients)[id]).toMatchObject({
      status: 'retrying',
      attempts: 1,
      lastErrorClass: 'http_5xx',
      lastHttpStatus: 500,
    });
    const w = await webhookDbRow(wh.id);
    expect(w).toMatchObject({ consecutive_failures: 1, last_failure_class: 'http_5xx', enabled: 1 });
    expect(w.failing_since).not.toBeNull();
    expect(await hits(key)).toHaveLength(1);
  });

  it('500 then 200 (flaky) → succeeds on the 2nd attempt through the real queue: same webhook-id, identical body bytes', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('flaky', key) });
    const pub = await publish(h);
    const id = pub.recipients[0]!.deliveryId;

    const [first, second] = await waitForHits(key, 2, 30_000);
    expect(first!.response!.status).toBe(500);
    expect(second!.response!.status).toBe(200);
    expect(first!.headers['webhook-id']).toBe(id);
    expect(second!.headers['webhook-id']).toBe(id);
    expect(second!.body).toBe(first!.body);
    expect(second!.bytes).toBe(first!.bytes);
    // The retry honoured the first step of the schedule (5 s ± 10 %), not an immediate redelivery.
    expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(4_000);
    // Both signatures verify (the timestamp may differ between attempts; the body does not).
    for (const hit of [first!, second!])
      expect(() => new Webhook(wh.secret).verify(hit.body, hit.headers)).not.toThrow();

    const d = await eventually(
      () => deliveryRow(id),
      (r) => r.status === 'succeeded',
      10_000,
      'delivery succeeded',
    );
    expect(d.attempt_count).toBe(2);
    const attempts = await attemptsOf(id);
    expect(attempts.map((a) => [a.attempt_number, a.outcome, a.http_status, a.error_class])).toEqual([
      [1, 'failed', 500, 'http_5xx'],
      [2, 'succeeded', 200, null],
    ]);
    expect((await feedItem(h, pub.notificationId)).status).toBe('delivered');
    const w = await webhookDbRow(wh.id);
    expect(w.consecutive_failures).toBe(0);
    expect(w.failing_since).toBeNull();
  }, 40_000);

  it('slower than the timeout (WEBHOOK_TIMEOUT_MS=500, receiver slow?ms=3000) → class timeout, retried', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('slow', key, { ms: 3000 }) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    const started = Date.now();
    const { fb } = await runDeliveries([id], { env: { ...env, WEBHOOK_TIMEOUT_MS: '500' } });
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(fb.outcomes[0]).toMatchObject({ retried: true, acked: false });
    expectBetween(fb.outcomes[0]!.delaySeconds!, 4.5, 5.5, 'delaySeconds');
    const d = await deliveryRow(id);
    expect(d).toMatchObject({
      status: 'retrying',
      last_error_class: 'timeout',
      last_http_status: null,
      attempt_count: 1,
    });
    const [a] = await attemptsOf(id);
    expect(a).toMatchObject({ outcome: 'failed', error_class: 'timeout', http_status: null });
    expectBetween(a!.duration_ms, 400, 2_500, 'duration_ms');
    expect(a!.error_message).toMatch(/500 ms/);
    expect(await hits(key)).toHaveLength(1);
  });

  it('302 → class http_3xx (retried) and the redirect target is never requested', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('redirect', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    const { fb } = await runDeliveries([id]);
    expect(fb.outcomes[0]).toMatchObject({ retried: true, acked: false });
    const d = await deliveryRow(id);
    expect(d).toMatchObject({ status: 'retrying', last_error_class: 'http_3xx', last_http_status: 302 });
    expect((await attemptsOf(id))[0]).toMatchObject({ error_class: 'http_3xx', http_status: 302 });
    await settle();
    expect(await hits(key)).toHaveLength(1);
    expect(await hits(`${key}-redirected`)).toEqual([]);
  });

  it('410 → delivery dead, subscription disabled (endpoint_gone), critical webhook.endpoint_disabled notification', async () => {
    const h = await setupHandle();
    const owner = `${unique('owner')}@example.com`;
    expect(
      (
        await callJson('PUT', `/v2/handles/${h.handle}/notifications/owner-default-email`, {
          token: h.token,
          body: { email: owner },
        })
      ).status,
    ).toBe(200);
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('gone', key), eventTypes: ['order.*'] });
    const ing = await ingestQuiet(h.handle, {});
    // The owner default is not a recipient of a non-critical event; the webhook is the only one.
    expect(ing.recipients.map((r) => r.recipientType)).toEqual(['webhook']);
    const [id] = ing.deliveryIds as [string];
    const quiet = { ...env, ...allDeliveryQueues(ing.capture.queue) };

    const { fb, report } = await runDeliveries([id], { env: quiet });
    expect(fb.outcomes[0]).toMatchObject({ acked: true, retried: false });
    expect(report).toMatchObject({ attempts: 1, acked: 1, retried: 0 });
    const d = await deliveryRow(id);
    expect(d).toMatchObject({ status: 'dead', last_http_status: 410, attempt_count: 1 });
    expect(d.last_error_class).toBe('http_4xx');
    expect((await notificationRow(ing.notificationId)).status).toBe('failed');

    const w = await webhookDbRow(wh.id);
    expect(w).toMatchObject({ enabled: 0, disabled_reason: 'endpoint_gone' });
    expect(w.disabled_at).not.toBeNull();
    const api = await callJson('GET', `/v2/handles/${h.handle}/webhooks/${wh.id}`, { token: h.token });
    expect(api.body).toMatchObject({ enabled: false, status: 'disabled', disabledReason: 'endpoint_gone' });

    const { results } = await anyShard
      .prepare(`SELECT * FROM notifications WHERE handle = ? AND type = 'webhook.endpoint_disabled'`)
      .bind(h.handle)
      .all<Record<string, any>>();
    expect(results).toHaveLength(1);
    const sys = results[0]!;
    expect(sys).toMatchObject({ severity: 'critical', source: 'system' });
    expect(JSON.parse(sys.data)).toMatchObject({ subscriptionId: wh.id, reason: 'endpoint_gone' });
    // The owner hears about it: an owner_default email delivery, enqueued.
    const { results: sysDeliveries } = await anyShard
      .prepare('SELECT * FROM deliveries WHERE notification_id = ?')
      .bind(sys.id)
      .all<Record<string, any>>();
    const ownerDelivery = sysDeliveries.find((x) => x.recipient_type === 'owner_default');
    expect(ownerDelivery).toMatchObject({ channel: 'email', target: owner.toLowerCase(), status: 'queued' });
    expect(ing.capture.batches.flat().map((m) => (m.body as { deliveryId: string }).deliveryId)).toContain(
      ownerDelivery!.id,
    );

    // The next matching event is recorded as skipped, not sent.
    const next = await ingestQuiet(h.handle, {});
    expect(next.recipients).toEqual([
      expect.objectContaining({ status: 'skipped', statusReason: 'subscription_disabled' }),
    ]);
    expect(await hits(key)).toHaveLength(1);
  });

  it('429 with Retry-After: 120 → retried with delaySeconds 120; Retry-After clamped to [5 s, 10 h]; 503 Retry-After honoured', async () => {
    const h = await setupHandle();
    const k120 = unique('k120');
    const k1 = unique('k1');
    const kHuge = unique('kbig');
    const k503 = unique('k503');
    await setMode(k1, { status: 429, retryAfter: 1 });
    await setMode(kHuge, { status: 429, retryAfter: 999_999 });
    await setMode(k503, { status: 503, retryAfter: 600 });
    const urls = {
      [receiverUrl('ratelimit', k120, { after: 120 })]: { key: k120, delay: 120, cls: 'http_4xx', status: 429 },
      [receiverUrl('mode', k1)]: { key: k1, delay: 5, cls: 'http_4xx', status: 429 },
      [receiverUrl('mode', kHuge)]: { key: kHuge, delay: 36_000, cls: 'http_4xx', status: 429 },
      [receiverUrl('mode', k503)]: { key: k503, delay: 600, cls: 'http_5xx', status: 503 },
    };
    for (const url of Object.keys(urls)) await createWebhook(h, { url });
    const ing = await ingestQuiet(h.handle, {});
    expect(ing.deliveryIds).toHaveLength(4);
    const { fb } = await runDeliveries(ing.deliveryIds);
    for (const [i, id] of ing.deliveryIds.entries()) {
      const d = await deliveryRow(id);
      const want = urls[d.target]!;
      const o = fb.outcomes[i]!;
      expect(o, d.target).toMatchObject({ retried: true, acked: false, delaySeconds: want.delay });
      expect(d, d.target).toMatchObject({
        status: 'retrying',
        last_error_class: want.cls,
        last_http_status: want.status,
      });
      expectBetween(
        secondsBetween(d.last_attempt_at!, d.next_attempt_at!),
        want.delay - 1,
        want.delay + 2,
        `next attempt of ${want.key}`,
      );
      expect(await hits(want.key)).toHaveLength(1);
    }
  });

  it('a 50 MB answer (huge) → succeeded, only ≤ 4096 bytes of it stored', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('huge', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    const started = Date.now();
    const { fb } = await runDeliveries([id]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(fb.outcomes[0]).toMatchObject({ acked: true });
    expect((await deliveryRow(id)).status).toBe('succeeded');
    const [a] = await attemptsOf(id);
    expect(a!.outcome).toBe('succeeded');
    expect(a!.response_snippet!.length).toBeGreaterThan(0);
    expect(utf8Bytes(a!.response_snippet!)).toBeLessThanOrEqual(RESPONSE_SNIPPET_BYTES);
    expect(RESPONSE_SNIPPET_BYTES).toBe(4096);
    expect(a!.response_snippet).toMatch(/^a+$/);
  });

  it('a response cut inside a multi-byte character still stores at most 4096 bytes', async () => {
    const h = await setupHandle();
    const key = unique('k');
    // 4095 ASCII bytes, then 2-byte characters: byte 4096 is the first half of an "é".
    await setMode(key, { status: 200, body: `${'a'.repeat(4095)}${'é'.repeat(100)}` });
    await createWebhook(h, { url: receiverUrl('mode', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    await runDeliveries([id]);
    const [a] = await attemptsOf(id);
    expect(a!.outcome).toBe('succeeded');
    expect(utf8Bytes(a!.response_snippet!)).toBeLessThanOrEqual(4096);
  });
});

describe('what a receiver gets (Standard Webhooks, verified with the standardwebhooks package)', () => {
  function expectStandardRequest(hit: Hit, secret: string, deliveryId: string) {
    expect(() => new Webhook(secret).verify(hit.body, hit.headers)).not.toThrow();
    expect(hit.method).toBe('POST');
    expect(hit.headers['webhook-id']).toBe(deliveryId);
    expect(hit.headers['webhook-timestamp']).toMatch(/^\d{10}$/);
    expect(Math.abs(Number(hit.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(120);
    expect(hit.headers['content-type']).toBe('application/json');
    expect(hit.headers['user-agent']).toMatch(/\S/);
  }

  it('every request verifies, carries webhook-id = delivery id, content-type, user-agent and the custom headers', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, {
      url: receiverUrl('ok', key),
      headers: { 'X-Crm-Tenant': 'acme', 'X-Api-Key': 'crm-key-0123456789' },
    });
    const events = [
      { type: 'order.paid', data: { orderId: unique('ord'), total: 1299, note: 'café ✓' } },
      { type: 'payment.failed', severity: 'critical', data: { orderId: unique('ord'), reason: 'card_declined' } },
    ];
    const pubs = [];
    for (const e of events) pubs.push(await publish(h, e));
    const got = await waitForHits(key, 2);
    expect(got).toHaveLength(2);
    const byId = new Map(got.map((hit) => [hit.headers['webhook-id'], hit]));
    for (const [i, pub] of pubs.entries()) {
      const deliveryId = pub.recipients.find((r) => r.recipientType === 'webhook')!.deliveryId;
      const hit = byId.get(deliveryId);
      expect(hit, `request for ${deliveryId}`).toBeDefined();
      expectStandardRequest(hit!, wh.secret, deliveryId);
      expect(hit!.headers['webhook-signature']!.split(' ')).toHaveLength(1);
      expect(hit!.headers['x-crm-tenant']).toBe('acme');
      expect(hit!.headers['x-api-key']).toBe('crm-key-0123456789');
      const body = JSON.parse(hit!.body);
      expect(Object.keys(body)).toEqual(['id', 'type', 'handle', 'severity', 'timestamp', 'data', 'test']);
      expect(body).toMatchObject({
        id: pub.notificationId,
        type: events[i]!.type,
        handle: h.handle,
        data: events[i]!.data,
        test: false,
      });
      expect(body.severity).toBe(i === 0 ? 'info' : 'critical');
      // Another secret does not verify: the check above is not vacuous.
      expect(() => new Webhook(`whsec_${btoa('x'.repeat(32))}`).verify(hit!.body, hit!.headers)).toThrow();
      // Nor does a tampered body.
      expect(() => new Webhook(wh.secret).verify(hit!.body.replace(h.handle, `${h.handle}x`), hit!.headers)).toThrow();
    }
  });

  it('after rotate-secret the next delivery carries two signatures: one verifies with the OLD, one with the NEW secret', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('ok', key) });
    const rotated = await callJson('POST', `/v2/handles/${h.handle}/webhooks/${wh.id}/rotate-secret`, {
      token: h.token,
      body: {},
    });
    expect(rotated.status).toBe(200);
    const newSecret = rotated.body.secret as string;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(wh.secret);

    const pub = await publish(h);
    const [hit] = await waitForHits(key, 1);
    const deliveryId = pub.recipients[0]!.deliveryId;
    expectStandardRequest(hit!, newSecret, deliveryId);
    const sigs = hit!.headers['webhook-signature']!.split(' ');
    expect(sigs).toHaveLength(2);
    for (const s of sigs) expect(s).toMatch(/^v1,[A-Za-z0-9+/]+={0,2}$/);
    expect(() => new Webhook(wh.secret).verify(hit!.body, hit!.headers)).not.toThrow();
    expect(() => new Webhook(newSecret).verify(hit!.body, hit!.headers)).not.toThrow();
    // Each signature on its own: the current secret signs first, the previous one second.
    const only = (sig: string) => ({ ...hit!.headers, 'webhook-signature': sig });
    expect(() => new Webhook(newSecret).verify(hit!.body, only(sigs[0]!))).not.toThrow();
    expect(() => new Webhook(wh.secret).verify(hit!.body, only(sigs[1]!))).not.toThrow();
    expect(() => new Webhook(wh.secret).verify(hit!.body, only(sigs[0]!))).toThrow();
    expect(() => new Webhook(newSecret).verify(hit!.body, only(sigs[1]!))).toThrow();
  });

  it('rotate-secret with graceHours 0 → only the new secret signs', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('ok', key) });
    const rotated = await callJson('POST', `/v2/handles/${h.handle}/webhooks/${wh.id}/rotate-secret`, {
      token: h.token,
      body: { graceHours: 0 },
    });
    expect(rotated.status).toBe(200);
    const pub = await publish(h);
    const [hit] = await waitForHits(key, 1);
    expectStandardRequest(hit!, rotated.body.secret, pub.recipients[0]!.deliveryId);
    expect(hit!.headers['webhook-signature']!.split(' ')).toHaveLength(1);
    expect(() => new Webhook(wh.secret).verify(hit!.body, hit!.headers)).toThrow();
  });
});

describe('retry schedule through the consumer, then the DLQ', () => {
  it('attempts 1..7 failing → delays 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (±10 %); the 8th is handed to the DLQ, which writes dead', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('fail', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];

    for (let n = 1; n <= 7; n++) {
      const before = await deliveryRow(id);
      expect(before.attempt_count, `before attempt ${n}`).toBe(n - 1);
      expect(before.status).toBe(n === 1 ? 'queued' : 'retrying');
      const { fb } = await runDeliveries([id], { attempts: n });
      const o = fb.outcomes[0]!;
      expect(o.retried, `attempt ${n} retried`).toBe(true);
      const base = SCHEDULE[n - 1]!;
      expectBetween(
        o.delaySeconds!,
        n === 1 ? 4.5 : base * 0.9,
        n === 1 ? 5.5 : base * 1.1,
        `delay after attempt ${n}`,
      );
      const after = await deliveryRow(id);
      expect(after).toMatchObject({
        status: 'retrying',
        attempt_count: n,
        last_error_class: 'http_5xx',
        status_reason: 'retry_scheduled',
      });
      expectBetween(
        secondsBetween(after.last_attempt_at!, after.next_attempt_at!),
        o.delaySeconds! - 1,
        o.delaySeconds! + 2,
        `next_attempt_at after ${n}`,
      );
    }

    // 8th attempt, 8th delivery of the message: the schedule is spent → retry() hands the message to the DLQ.
    const { fb: last } = await runDeliveries([id], { attempts: 8 });
    expect(last.outcomes[0]).toMatchObject({ retried: true, acked: false });
    const exhausted = await deliveryRow(id);
    expect(exhausted).toMatchObject({
      status: 'retrying',
      attempt_count: 8,
      last_error_class: 'http_5xx',
      status_reason: 'retries_exhausted',
    });
    const attempts = await attemptsOf(id);
    expect(attempts.map((a) => a.attempt_number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(new Set(attempts.map((a) => a.error_class))).toEqual(new Set(['http_5xx']));
    const got = await hits(key);
    expect(got).toHaveLength(8);
    expect(new Set(got.map((x) => x.headers['webhook-id']))).toEqual(new Set([id]));
    expect(new Set(got.map((x) => x.body)).size).toBe(1);
    expect((await notificationRow(ing.notificationId)).status).toBe('delivering');

    // The DLQ consumer, through the queue entry point.
    const dlq = fakeBatch('notify-deliveries-dlq', [{ body: await deliveryMessage(id), attempts: 1 }]);
    await worker.queue(dlq.batch, env, createExecutionContext());
    expect(dlq.ackAll || dlq.outcomes[0]!.acked).toBe(true);
    expect(dlq.outcomes[0]!.retried).toBe(false);
    const dead = await deliveryRow(id);
    expect(dead).toMatchObject({
      status: 'dead',
      last_error_class: 'http_5xx',
      last_http_status: 500,
      attempt_count: 8,
    });
    const n = await notificationRow(ing.notificationId);
    expect(n).toMatchObject({ status: 'failed', open_count: 0, succeeded_count: 0, dead_count: 1 });
    const feed = await feedItem(h, ing.notificationId);
    expect(feed.status).toBe('failed');
    expect(feed.deliveries).toEqual([
      expect.objectContaining({ deliveryId: id, status: 'dead', lastErrorClass: 'http_5xx' }),
    ]);
    const w = await webhookDbRow(wh.id);
    expect(w.consecutive_failures).toBe(8);
    expect(await hits(key)).toHaveLength(8);
  });

  it('dead for one recipient while another succeeded → notification partially_failed', async () => {
    const h = await setupHandle();
    const okKey = unique('ok');
    const failKey = unique('fail');
    const okHook = await createWebhook(h, { url: receiverUrl('ok', okKey) });
    await createWebhook(h, { url: receiverUrl('fail', failKey) });
    const ing = await ingestQuiet(h.handle, {});
    expect(ing.deliveryIds).toHaveLength(2);
    await runDeliveries(ing.deliveryIds);
    const rows = await Promise.all(ing.deliveryIds.map(deliveryRow));
    const ok = rows.find((r) => r.subscription_id === okHook.id)!;
    const failing = rows.find((r) => r.subscription_id !== okHook.id)!;
    expect(ok.status).toBe('succeeded');
    expect(failing.status).toBe('retrying');
    // Fast-forward: 7 failed attempts behind it, the queue's last delivery of the message now.
    await anyShard.prepare('UPDATE deliveries SET attempt_count = 7 WHERE id = ?').bind(failing.id).run();
    const { fb } = await runDeliveries([failing.id], { attempts: 8 });
    expect(fb.outcomes[0]!.retried).toBe(true);
    const dlq = fakeBatch('notify-deliveries-dlq', [{ body: await deliveryMessage(failing.id) }]);
    await worker.queue(dlq.batch, env, createExecutionContext());
    expect(await deliveryRow(failing.id)).toMatchObject({ status: 'dead', last_error_class: 'http_5xx' });
    const n = await notificationRow(ing.notificationId);
    expect(n).toMatchObject({ status: 'partially_failed', open_count: 0, succeeded_count: 1, dead_count: 1 });
    expect((await feedItem(h, ing.notificationId)).status).toBe('partially_failed');
  });

  it('a message redelivered after the schedule is spent (attempts < 8, e.g. re-sent by the sweeper) → dead at once, acked', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('fail', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    await anyShard.prepare(`UPDATE deliveries SET attempt_count = 7, status = 'retrying' WHERE id = ?`).bind(id).run();
    const { fb } = await runDeliveries([id], { attempts: 1 });
    expect(fb.outcomes[0]).toMatchObject({ acked: true, retried: false });
    expect(await deliveryRow(id)).toMatchObject({
      status: 'dead',
      attempt_count: 8,
      status_reason: 'retries_exhausted',
      last_error_class: 'http_5xx',
    });
  });

  it('a dead delivery redriven (POST …/deliveries/{id}/retry) restarts the schedule: its next failure waits 5 s again', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('fail', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    await runDeliveries([id]);
    await anyShard.prepare('UPDATE deliveries SET attempt_count = 7 WHERE id = ?').bind(id).run();
    await runDeliveries([id], { attempts: 8 });
    await worker.queue(
      fakeBatch('notify-deliveries-dlq', [{ body: await deliveryMessage(id) }]).batch,
      env,
      createExecutionContext(),
    );
    expect(await deliveryRow(id)).toMatchObject({ status: 'dead', attempt_count: 8 });
    expect((await notificationRow(ing.notificationId)).status).toBe('failed');

    // Through the API and the real queue from here on.
    const res = await callJson('POST', `/v2/handles/${h.handle}/deliveries/${id}/retry`, { token: h.token });
    expect(res.status).toBe(202);
    expect(['pending', 'queued', 'retrying']).toContain(res.body.status);
    expect(res.body.attempts).toHaveLength(2);
    await waitForHits(key, 3, 15_000);
    const d = await eventually(
      () => deliveryRow(id),
      (r) => r.attempt_count === 9,
      10_000,
      '9th attempt recorded',
    );
    expect(d).toMatchObject({ status: 'retrying', retry_base: 8, last_error_class: 'http_5xx' });
    expectBetween(
      secondsBetween(d.last_attempt_at!, d.next_attempt_at!),
      4.5,
      6,
      'delay after the first attempt of the redrive',
    );
    expect((await notificationRow(ing.notificationId)).status).toBe('delivering');
  });

  it('the DLQ leaves a delivery that already succeeded alone', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('ok', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    await runDeliveries([id]);
    expect((await deliveryRow(id)).status).toBe('succeeded');
    const dlq = fakeBatch('notify-deliveries-dlq', [{ body: await deliveryMessage(id) }]);
    await worker.queue(dlq.batch, env, createExecutionContext());
    expect(dlq.ackAll || dlq.outcomes[0]!.acked).toBe(true);
    expect((await deliveryRow(id)).status).toBe('succeeded');
    expect((await notificationRow(ing.notificationId)).status).toBe('delivered');
  });
});

describe('consumer concurrency and cost', () => {
  it('20 deliveries to slow?ms=300 → at most 6 in flight (consumer and receiver agree), all 20 succeeded', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('slow', key, { ms: 300 }) });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(...(await ingestQuiet(h.handle, {})).deliveryIds);
    expect(ids).toHaveLength(20);

    const started = Date.now();
    const { report, fb } = await runDeliveries(ids);
    const elapsed = Date.now() - started;
    expect(report.attempts).toBe(20);
    expect(report.peakConcurrency).toBeLessThanOrEqual(6);
    expect(report.peakConcurrency).toBeGreaterThanOrEqual(2);
    expect(fb.outcomes.every((o) => o.acked && !o.retried)).toBe(true);

    const got = await waitForHits(key, 20);
    expect(got).toHaveLength(20);
    const inFlight = maxInFlight(got);
    expect(inFlight, 'receiver saw at most 6 requests at once').toBeLessThanOrEqual(6);
    expect(inFlight, 'and the consumer did run them in parallel').toBeGreaterThanOrEqual(2);
    // 20 requests of 300 ms, 6 at a time → at least 4 waves.
    expect(elapsed).toBeGreaterThanOrEqual(1_100);
    const rows = await Promise.all(ids.map(deliveryRow));
    expect(rows.map((r) => r.status)).toEqual(Array(20).fill('succeeded'));
    expect(new Set(got.map((x) => x.headers['webhook-id']))).toEqual(new Set(ids));
  });

  it('a batch of deliveries on both shards: one load and one write round trip per shard', async () => {
    // A handle on each shard.
    const byShard = new Map([
      ['SHARD_0', await setupHandle('SHARD_0')],
      ['SHARD_1', await setupHandle('SHARD_1')],
    ]);
    const ids: string[] = [];
    for (const h of byShard.values()) {
      await createWebhook(h, { url: receiverUrl('ok', unique('ok')) });
      await createWebhook(h, { url: receiverUrl('ok', unique('ok')) });
      ids.push(...(await ingestQuiet(h.handle, {})).deliveryIds);
    }
    expect(ids).toHaveLength(4);
    const meter = meterD1();
    const { report, fb } = await runDeliveries(ids, { env: { ...env, ...meter.vars } });
    expect(report.attempts).toBe(4);
    expect(fb.outcomes.every((o) => o.acked)).toBe(true);
    expect(report.d1RoundTrips).toBe(4);
    expect(meter.counts).toMatchObject({ SHARD_0: 2, SHARD_1: 2 });
    // On the control plane at most the directory, once per handle for an isolate that has not cached it yet.
    expect(meter.counts.DB).toBeLessThanOrEqual(2);
    expect((await Promise.all(ids.map(deliveryRow))).map((r) => r.status)).toEqual(Array(4).fill('succeeded'));
  });

  it('a batch of 100 deliveries costs at most 3 D1 round trips (counted at the binding, and as reported)', async () => {
    const h = await setupHandle();
    const okKey = unique('ok');
    const failKey = unique('fail');
    const template = await createWebhook(h, { url: receiverUrl('ok', okKey) });
    await insertWebhookCopies(template.id, [
      ...Array.from({ length: 49 }, (_, i) => receiverUrl('ok', okKey, { n: i })),
      ...Array.from({ length: 50 }, (_, i) => receiverUrl('fail', failKey, { n: i })),
    ]);
    const ing = await ingestQuiet(h.handle, {});
    expect(ing.deliveryIds).toHaveLength(100);

    // Only the handle's shard is read and written (docs/design.md#shards).
    const counting = countingD1(await shardOf(h.handle));
    const { report, fb } = await runDeliveries(ing.deliveryIds, {
      env: { ...env, [await shardName(h.handle)]: counting.db },
    });
    expect(report.attempts).toBe(100);
    expect(report.d1RoundTrips).toBeLessThanOrEqual(3);
    expect(counting.count(), 'D1 calls seen at the binding').toBe(report.d1RoundTrips);
    expect(counting.count()).toBeLessThanOrEqual(3);
    expect(fb.outcomes.filter((o) => o.acked)).toHaveLength(50);
    expect(fb.outcomes.filter((o) => o.retried)).toHaveLength(50);

    const n = await notificationRow(ing.notificationId);
    expect(n).toMatchObject({ status: 'delivering', open_count: 50, succeeded_count: 50, dead_count: 0 });
    const { results } = await anyShard
      .prepare('SELECT status, count(*) AS n FROM deliveries WHERE notification_id = ? GROUP BY status ORDER BY status')
      .bind(ing.notificationId)
      .all<{ status: string; n: number }>();
    expect(results).toEqual([
      { status: 'retrying', n: 50 },
      { status: 'succeeded', n: 50 },
    ]);
    const attempts = await anyShard
      .prepare(
        'SELECT count(*) AS n FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE notification_id = ?)',
      )
      .bind(ing.notificationId)
      .first<{ n: number }>();
    expect(attempts!.n).toBe(100);
    expect(await hits(okKey)).toHaveLength(50);
    expect(await hits(failKey)).toHaveLength(50);
  });
});

describe('email channel', () => {
  async function emailSetup() {
    const h = await setupHandle();
    const [subId] = await insertEmailSubscriptions(h.handle, 1);
    const sub = await anyShard
      .prepare('SELECT * FROM email_subscriptions WHERE id = ?')
      .bind(subId)
      .first<Record<string, any>>();
    return { h, subId: subId!, address: sub!.email_normalized as string };
  }

  it('an active subscription gets its mail through the send_email binding (succeeded, attempt recorded)', async () => {
    const { h, subId, address } = await emailSetup();
    // The real (local) binding.
    const first = await ingestQuiet(h.handle, { type: 'order.fulfilled', data: { orderId: unique('ord') } });
    expect(first.recipients).toEqual([
      expect.objectContaining({ channel: 'email', recipientType: 'email', subscriptionId: subId, target: address }),
    ]);
    const [id1] = first.deliveryIds as [string];
    const r1 = await runDeliveries([id1]);
    expect(r1.fb.outcomes[0]).toMatchObject({ acked: true });
    expect(await deliveryRow(id1)).toMatchObject({ status: 'succeeded', attempt_count: 1, last_error_class: null });
    const [a1] = await attemptsOf(id1);
    expect(a1).toMatchObject({ outcome: 'succeeded', error_class: null, http_status: null });
    expect(a1!.response_snippet).toMatch(/^accepted/);
    expect((await notificationRow(first.notificationId)).status).toBe('delivered');

    // A recording binding: the message really goes to the subscriber's address.
    const mail = recordingEmail();
    const second = await ingestQuiet(h.handle, { type: 'order.fulfilled', data: { orderId: 'ord_visible_42' } });
    const [id2] = second.deliveryIds as [string];
    await runDeliveries([id2], { env: { ...env, EMAIL: mail.binding } });
    expect(mail.sent).toHaveLength(1);
    expect(mail.sent[0]!.to).toBe(address);
    expect(mail.sent[0]!.subject).toContain('order');
    expect(mail.sent[0]!.headers['X-Gharart-Delivery-Id']).toBe(id2);
    expect(mail.sent[0]!.text).toContain('ord_visible_42');
    expect(await deliveryRow(id2)).toMatchObject({ status: 'succeeded' });
  });

  it('a notification mail carries List-Unsubscribe and List-Unsubscribe-Post: List-Unsubscribe=One-Click (docs/design.md#email)', async () => {
    const { h } = await emailSetup();
    const mail = recordingEmail();
    const ing = await ingestQuiet(h.handle, { type: 'order.fulfilled', data: { orderId: unique('ord') } });
    await runDeliveries(ing.deliveryIds, { env: { ...env, EMAIL: mail.binding } });
    expect(mail.sent).toHaveLength(1);
    const { headers } = mail.sent[0]!;
    expect(headers['List-Unsubscribe']).toMatch(/^<https?:\/\/[^>]+>$/);
    expect(headers['List-Unsubscribe-Post']).toBe('List-Unsubscribe=One-Click');
  });

  it("a pending_confirmation subscription's delivery is skipped and nothing is sent", async () => {
    const { h, subId } = await emailSetup();
    const ing = await ingestQuiet(h.handle, { type: 'order.fulfilled', data: { orderId: unique('ord') } });
    const [id] = ing.deliveryIds as [string];
    await anyShard
      .prepare(`UPDATE email_subscriptions SET status = 'pending_confirmation' WHERE id = ?`)
      .bind(subId)
      .run();
    const mail = recordingEmail();
    const { fb, report } = await runDeliveries([id], { env: { ...env, EMAIL: mail.binding } });
    expect(fb.outcomes[0]).toMatchObject({ acked: true, retried: false });
    expect(report.attempts).toBe(0);
    expect(mail.sent).toEqual([]);
    expect(await deliveryRow(id)).toMatchObject({
      status: 'skipped',
      status_reason: 'subscription_pending_confirmation',
      attempt_count: 0,
    });
    expect(await attemptsOf(id)).toEqual([]);
    expect((await notificationRow(ing.notificationId)).open_count).toBe(0);
  });

  it('provider errors: permanent → dead (provider_permanent); transient → retried (provider_transient)', async () => {
    const { h } = await emailSetup();
    const permanent = await ingestQuiet(h.handle, { type: 'order.fulfilled', data: { orderId: unique('ord') } });
    const r1 = await runDeliveries(permanent.deliveryIds, {
      env: { ...env, EMAIL: recordingEmail('destination address not verified').binding },
    });
    expect(r1.fb.outcomes[0]).toMatchObject({ acked: true });
    expect(await deliveryRow(permanent.deliveryIds[0]!)).toMatchObject({
      status: 'dead',
      last_error_class: 'provider_permanent',
    });

    const transient = await ingestQuiet(h.handle, { type: 'order.fulfilled', data: { orderId: unique('ord') } });
    const r2 = await runDeliveries(transient.deliveryIds, {
      env: { ...env, EMAIL: recordingEmail('upstream timeout, try later').binding },
    });
    expect(r2.fb.outcomes[0]).toMatchObject({ retried: true });
    expectBetween(r2.fb.outcomes[0]!.delaySeconds!, 4.5, 5.5, 'delaySeconds');
    expect(await deliveryRow(transient.deliveryIds[0]!)).toMatchObject({
      status: 'retrying',
      last_error_class: 'provider_transient',
    });
  });
});
