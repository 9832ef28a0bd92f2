/**
 * Resend (docs/design.md#email, EMAIL_PROVIDER=resend) against a fake of Resend's API that is a REAL HTTP server on
 * 127.0.0.1 (test/support/node/resend-fake.ts, started by the globalSetup; its port arrives as `inject('resendFakePort')`):
 *
 * - the adapter (src/email/providers/resend.ts) on its own: the JSON Resend receives, and how every answer is mapped
 *   (accepted / permanent / transient);
 * - through the pipeline: deliveries created by the real ingest code, then `consumeDeliveries` with an env that selects
 *   Resend (see pipeline-helpers.ts for why deliveries are kept away from the background queue consumer);
 * - the webhook `POST /v2/providers/resend/events`: signatures (Svix / Standard Webhooks, made with our own
 *   `signPayload`, and independently with the `standardwebhooks` package), bounces and complaints → suppression.
 *
 * Every test uses its own addresses, and the fake's records are read per address, so tests never see each other's
 * mails and never need to clear the fake.
 */

import { env } from 'cloudflare:workers';
import { Webhook } from 'standardwebhooks';
import { describe, expect, inject, it } from 'vitest';
import { newWebhookSecret, signPayload } from '../../src/delivery/signing.ts';
import type { OutgoingMail } from '../../src/email/message.ts';
import type { SendMeta } from '../../src/email/provider.ts';
import { resendProvider, resendRequestBody } from '../../src/email/providers/resend.ts';
import { runContext } from '../../src/env.ts';
import { newId } from '../../src/lib/ids.ts';
import { anyShard, callJson, callWithVars, expectProblem, shardOf, unique } from '../support/helpers.ts';
import { assertMatchesDocument } from '../support/openapi-check.ts';
import {
  attemptsOf,
  deliveryRow,
  expectBetween,
  ingestQuiet,
  runDeliveries,
  setupHandle,
} from '../support/pipeline-helpers.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Port of the fake Resend API on 127.0.0.1 (test/support/node/global-setup.ts). */
    resendFakePort: number;
  }
}

/** The fake accepts keys starting with `re_test_` (test/support/node/resend-fake.ts). */
const RESEND_KEY = 're_test_gharart_0123456789abcdef';
const EVENTS_PATH = '/v2/providers/resend/events';

function resendBase(): string {
  const port = inject('resendFakePort');
  if (!Number.isInteger(port) || port <= 0)
    throw new Error('resendFakePort was not provided: is the globalSetup registered?');
  return `http://127.0.0.1:${port}`;
}

/** The vars that select Resend, pointed at the fake. */
function resendVars(extra: Partial<Env> = {}): Partial<Env> {
  return { EMAIL_PROVIDER: 'resend', RESEND_API_URL: resendBase(), RESEND_API_KEY: RESEND_KEY, ...extra };
}

function resendEnv(extra: Partial<Env> = {}): Env {
  return { ...env, ...resendVars(extra) } as Env;
}

interface Sent {
  seq: number;
  headers: Record<string, string>;
  body: string;
  json: any;
  to: string[];
  sent: boolean;
  replayed: boolean;
  response: { status: number; body: any };
}

/** What the fake recorded for requests to `address`. */
async function sentTo(address: string): Promise<Sent[]> {
  const res = await fetch(`${resendBase()}/_sent?to=${encodeURIComponent(address)}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Sent[];
}

const address = (scenario = 'ok') => `${scenario}-${unique('rs')}@example.com`;

function mail(to: string, overrides: Partial<OutgoingMail> = {}): OutgoingMail {
  return {
    from: { email: 'notifications@gharart.com', name: 'Gharart notifications' },
    to: { email: to },
    subject: 'Order ord_1 was paid',
    text: 'Order ord_1 was paid.',
    html: '<p>Order <b>ord_1</b> was paid.</p>',
    headers: {
      'List-Unsubscribe': '<https://notify.test/v2/email/unsubscribe?token=abc>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
    ...overrides,
  };
}

function meta(overrides: Partial<SendMeta> = {}): SendMeta {
  return {
    subscriptionId: newId('esub'),
    deliveryId: newId('dlv'),
    handle: 'demo-store',
    eventType: 'order.paid',
    severity: 'info',
    ...overrides,
  };
}

/** Inserts an email subscription row as the service writes it. */
async function insertSubscription(
  handle: string,
  email: string,
  kind: 'standard' | 'owner_default' = 'standard',
  status = 'active',
): Promise<string> {
  const id = newId('esub');
  const now = new Date().toISOString();
  await (await shardOf(handle))
    .prepare(
      `INSERT INTO email_subscriptions (id, handle, kind, email, email_normalized, status, confirmed_at, provider, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'resend', ?7, ?7)`,
    )
    .bind(id, handle, kind, email, email.trim().toLowerCase(), status, now)
    .run();
  return id;
}

async function subscriptionRow(
  id: string,
): Promise<{ status: string; status_reason: string | null; email_normalized: string }> {
  const row = await anyShard
    .prepare('SELECT status, status_reason, email_normalized FROM email_subscriptions WHERE id = ?1')
    .bind(id)
    .first<{ status: string; status_reason: string | null; email_normalized: string }>();
  if (!row) throw new Error(`no subscription ${id}`);
  return row;
}

// ---------------------------------------------------------------------------------------------------------------------

describe('resendProvider (adapter) against the fake Resend API', () => {
  it('POST /emails with Bearer key and Resend\'s JSON (from "Name <email>", to[], subject, text, html, headers, tags) → ok with Resend\'s id', async () => {
    const to = address();
    const m = meta();
    const outcome = await resendProvider(runContext(resendEnv())).send(mail(to), m);
    const [req] = await sentTo(to);
    expect(req, 'one request reached the fake').toBeDefined();
    expect(outcome).toEqual({ ok: true, providerMessageId: req!.response.body.id });
    expect(req!.response.status).toBe(200);
    expect(req!.headers.authorization).toBe(`Bearer ${RESEND_KEY}`);
    expect(req!.headers['content-type']).toMatch(/^application\/json/);
    expect(req!.headers['idempotency-key']).toMatch(new RegExp(`^${m.deliveryId}/[0-9a-f]{32}$`));
    expect(req!.json).toEqual({
      from: 'Gharart notifications <notifications@gharart.com>',
      to: [to],
      subject: 'Order ord_1 was paid',
      text: 'Order ord_1 was paid.',
      html: '<p>Order <b>ord_1</b> was paid.</p>',
      headers: {
        'List-Unsubscribe': '<https://notify.test/v2/email/unsubscribe?token=abc>',
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      },
      tags: [
        { name: 'subscription_id', value: m.subscriptionId },
        { name: 'delivery_id', value: m.deliveryId },
      ],
    });
    expect(await sentTo(to)).toHaveLength(1);
  });

  it('the platform alert address (no subscription) is tagged with the delivery id only', async () => {
    const body = resendRequestBody(mail('ops@example.com'), meta({ subscriptionId: null, deliveryId: 'dlv_01ABC' }));
    expect(body.tags).toEqual([{ name: 'delivery_id', value: 'dlv_01ABC' }]);
  });

  it('CR/LF never reaches a header: subject and header values are flattened, a display name with specials is quoted', () => {
    const body = resendRequestBody(
      mail('a@example.com', {
        from: { email: 'notifications@gharart.com', name: 'Doe, "Jane"\r\nBcc: x@evil.test' },
        subject: 'Paid\r\nBcc: victim@example.com',
        headers: { 'X-Note': 'one\r\ntwo' },
      }),
      meta(),
    );
    expect(body.subject).toBe('Paid Bcc: victim@example.com');
    expect(body.from).toBe('"Doe, \\"Jane\\" Bcc: x@evil.test" <notifications@gharart.com>');
    expect(body.headers).toEqual({ 'X-Note': 'one two' });
    expect(JSON.stringify(body)).not.toMatch(/\\r|\\n/);
  });

  it('an invalid custom header (reserved name, non-token name) is permanent and nothing is sent', async () => {
    const to = address();
    const provider = resendProvider(runContext(resendEnv()));
    const bcc = await provider.send(mail(to, { headers: { Bcc: 'x@evil.test' } }), meta());
    expect(bcc).toMatchObject({ ok: false, permanent: true });
    expect((bcc as { message: string }).message).toMatch(/Bcc/);
    const bad = await provider.send(mail(to, { headers: { 'Bad Name': 'x' } }), meta());
    expect(bad).toMatchObject({ ok: false, permanent: true });
    expect(await sentTo(to)).toEqual([]);
  });

  it("422 validation_error (invalid `to`) → permanent, with Resend's name and message", async () => {
    const to = address('invalid');
    const outcome = await resendProvider(runContext(resendEnv())).send(mail(to), meta());
    expect(outcome).toMatchObject({ ok: false, permanent: true });
    const message = (outcome as { message: string }).message;
    expect(message).toContain('422');
    expect(message).toContain('validation_error');
    expect(message).toContain('Invalid `to` field');
    const [req] = await sentTo(to);
    expect(req!.response.status).toBe(422);
  });

  it('429 rate_limit_exceeded → transient; 500 → transient', async () => {
    const provider = resendProvider(runContext(resendEnv()));
    const throttled = await provider.send(mail(address('throttle')), meta());
    expect(throttled).toMatchObject({ ok: false, permanent: false });
    expect((throttled as { message: string }).message).toMatch(/429 rate_limit_exceeded: Too many requests/);

    const boom = await provider.send(mail(address('boom')), meta());
    expect(boom).toMatchObject({ ok: false, permanent: false });
    expect((boom as { message: string }).message).toMatch(/500 application_error: An unexpected error occurred/);
  });

  it('no API key configured → permanent with a clear message, and no request is made', async () => {
    const to = address();
    const outcome = await resendProvider(runContext(resendEnv({ RESEND_API_KEY: '' }))).send(mail(to), meta());
    expect(outcome).toMatchObject({ ok: false, permanent: true });
    expect((outcome as { message: string }).message).toMatch(/RESEND_API_KEY is not set/);
    expect(await sentTo(to)).toEqual([]);
  });

  it('a wrong key (403 invalid_api_key) and no Bearer (401 missing_api_key) → permanent; the key never appears in the message', async () => {
    const to = address();
    const wrong = await resendProvider(runContext(resendEnv({ RESEND_API_KEY: 're_live_wrong_key_123' }))).send(
      mail(to),
      meta(),
    );
    expect(wrong).toMatchObject({ ok: false, permanent: true });
    expect((wrong as { message: string }).message).toMatch(/403 invalid_api_key: API key is invalid/);
    expect((wrong as { message: string }).message).not.toContain('re_live_wrong_key_123');

    const res = await fetch(`${resendBase()}/emails`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ statusCode: 401, name: 'missing_api_key' });
  });

  it('a network error (the connection closes without an answer) → transient', async () => {
    // workerd itself logs the lost connection ("uncaught exception … Network connection lost") even though the
    // fetch's rejection is caught; that log line is expected here.
    const to = address('hangup');
    const lost = await resendProvider(runContext(resendEnv())).send(mail(to), meta());
    expect(lost).toMatchObject({ ok: false, permanent: false });
    expect((lost as { message: string }).message).toMatch(/^Resend request failed: /);
    expect(await sentTo(to)).toHaveLength(1);
  });

  it('no answer within the timeout → transient', async () => {
    const started = Date.now();
    const slow = await resendProvider(runContext(resendEnv()), { timeoutMs: 300 }).send(mail(address('slow')), meta());
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(slow).toEqual({ ok: false, permanent: false, message: 'Resend did not answer within 300 ms.' });
  });

  it('a retry of the same mail sends the same Idempotency-Key: Resend replays the first id instead of sending twice', async () => {
    const to = address();
    const m = meta();
    const provider = resendProvider(runContext(resendEnv()));
    const first = await provider.send(mail(to), m);
    const second = await provider.send(mail(to), m);
    expect(first).toMatchObject({ ok: true });
    expect(second).toEqual(first);
    const reqs = await sentTo(to);
    expect(reqs.map((r) => [r.sent, r.replayed])).toEqual([
      [true, false],
      [false, true],
    ]);
    expect(reqs[1]!.headers['idempotency-key']).toBe(reqs[0]!.headers['idempotency-key']);

    // A different mail under the same delivery id (a re-sent confirmation mail with a new link) is a new key: sent.
    const third = await provider.send(mail(to, { text: 'A new link.' }), m);
    expect(third).toMatchObject({ ok: true });
    expect((third as { providerMessageId: string }).providerMessageId).not.toBe(
      (first as { providerMessageId: string }).providerMessageId,
    );
    const after = await sentTo(to);
    expect(after).toHaveLength(3);
    expect(after[2]).toMatchObject({ sent: true, replayed: false });
    expect(after[2]!.headers['idempotency-key']).not.toBe(reqs[0]!.headers['idempotency-key']);
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe('EMAIL_PROVIDER=resend through the delivery pipeline (consumeDeliveries)', () => {
  async function subscribed(scenario = 'ok') {
    const h = await setupHandle();
    const to = address(scenario);
    const subId = await insertSubscription(h.handle, to);
    const ing = await ingestQuiet(h.handle, { type: 'order.fulfilled', data: { orderId: unique('ord') } });
    expect(ing.recipients).toEqual([expect.objectContaining({ channel: 'email', subscriptionId: subId, target: to })]);
    return { h, to, subId, id: ing.deliveryIds[0]!, notificationId: ing.notificationId };
  }

  it("a notification mail reaches Resend: List-Unsubscribe (+ One-Click), tags, and the delivery succeeds with Resend's id", async () => {
    const { to, subId, id } = await subscribed();
    const { fb, report } = await runDeliveries([id], { env: resendEnv() });
    expect(fb.outcomes[0]).toMatchObject({ acked: true, retried: false });
    expect(report).toMatchObject({ attempts: 1, acked: 1 });

    const [req] = await sentTo(to);
    expect(req).toBeDefined();
    const body = req!.json;
    expect(body.from).toBe(`Gharart notifications <${env.EMAIL_FROM}>`);
    expect(body.to).toEqual([to]);
    expect(typeof body.subject).toBe('string');
    expect(body.subject.length).toBeGreaterThan(0);
    expect(body.html).toMatch(/<html|<table|<p/i);
    expect(body.text.length).toBeGreaterThan(0);
    expect(body.headers['List-Unsubscribe']).toMatch(/^<https?:\/\/[^>]+\/v2\/email\/unsubscribe\?token=[^>]+>$/);
    expect(body.headers['List-Unsubscribe-Post']).toBe('List-Unsubscribe=One-Click');
    expect(body.headers['X-Gharart-Delivery-Id']).toBe(id);
    expect(body.tags).toEqual([
      { name: 'subscription_id', value: subId },
      { name: 'delivery_id', value: id },
    ]);
    expect(JSON.stringify(body)).not.toMatch(/\\r/);

    expect(await deliveryRow(id)).toMatchObject({ status: 'succeeded', attempt_count: 1, last_error_class: null });
    const [a] = await attemptsOf(id);
    expect(a).toMatchObject({ outcome: 'succeeded', error_class: null });
    expect(a!.response_snippet).toBe(`accepted ${req!.response.body.id}`);
  });

  it('an invalid address (422) → provider_permanent and the delivery is dead at once', async () => {
    const { to, id } = await subscribed('invalid');
    const { fb } = await runDeliveries([id], { env: resendEnv() });
    expect(fb.outcomes[0]).toMatchObject({ acked: true, retried: false });
    expect(await deliveryRow(id)).toMatchObject({
      status: 'dead',
      attempt_count: 1,
      last_error_class: 'provider_permanent',
    });
    const [a] = await attemptsOf(id);
    expect(a).toMatchObject({ outcome: 'failed', error_class: 'provider_permanent' });
    expect(a!.error_message).toMatch(/validation_error: Invalid `to` field/);
    expect(await sentTo(to)).toHaveLength(1);
  });

  it('throttling (429) → provider_transient, retried on the schedule (≈ 5 s)', async () => {
    const { id } = await subscribed('throttle');
    const { fb } = await runDeliveries([id], { env: resendEnv() });
    expect(fb.outcomes[0]).toMatchObject({ acked: false, retried: true });
    expectBetween(fb.outcomes[0]!.delaySeconds!, 4.5, 5.5, 'delaySeconds');
    expect(await deliveryRow(id)).toMatchObject({ status: 'retrying', last_error_class: 'provider_transient' });
    expect((await attemptsOf(id))[0]!.error_message).toMatch(/rate_limit_exceeded/);
  });

  it('throttled once, then accepted on the retry: same Idempotency-Key both times, one mail', async () => {
    const { to, id } = await subscribed('throttle-once');
    const r1 = await runDeliveries([id], { env: resendEnv() });
    expect(r1.fb.outcomes[0]).toMatchObject({ retried: true });
    expect(await deliveryRow(id)).toMatchObject({ status: 'retrying', last_error_class: 'provider_transient' });
    const r2 = await runDeliveries([id], { env: resendEnv(), attempts: 2 });
    expect(r2.fb.outcomes[0]).toMatchObject({ acked: true });
    expect(await deliveryRow(id)).toMatchObject({ status: 'succeeded', attempt_count: 2 });
    const reqs = await sentTo(to);
    expect(reqs.map((r) => r.response.status)).toEqual([429, 200]);
    expect(reqs[1]!.headers['idempotency-key']).toBe(reqs[0]!.headers['idempotency-key']);
    expect(reqs[1]!.body).toBe(reqs[0]!.body);
  });

  it('a Resend 500 → provider_transient, retried', async () => {
    const { id } = await subscribed('boom');
    const { fb } = await runDeliveries([id], { env: resendEnv() });
    expect(fb.outcomes[0]).toMatchObject({ retried: true });
    expect(await deliveryRow(id)).toMatchObject({ status: 'retrying', last_error_class: 'provider_transient' });
  });

  it('no RESEND_API_KEY → provider_permanent, dead, nothing sent', async () => {
    const { to, id } = await subscribed();
    const { fb } = await runDeliveries([id], { env: resendEnv({ RESEND_API_KEY: '' }) });
    expect(fb.outcomes[0]).toMatchObject({ acked: true });
    expect(await deliveryRow(id)).toMatchObject({ status: 'dead', last_error_class: 'provider_permanent' });
    expect((await attemptsOf(id))[0]!.error_message).toMatch(/RESEND_API_KEY is not set/);
    expect(await sentTo(to)).toEqual([]);
  });

  it('the email test send (POST …/email-subscriptions/{id}/test) goes through Resend too (callWithVars)', async () => {
    const h = await setupHandle();
    const to = address();
    const subId = await insertSubscription(h.handle, to);
    const res = await callWithVars(
      resendVars(),
      'POST',
      `/v2/handles/${h.handle}/notifications/email-subscriptions/${subId}/test`,
      {
        token: h.token,
        body: {},
      },
    );
    const body = (await res.json()) as any;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.diagnosis.test).toMatchObject({ sent: true, outcome: 'succeeded' });
    const [req] = await sentTo(to);
    expect(req).toMatchObject({ sent: true });
    expect(req!.json.tags).toContainEqual({ name: 'subscription_id', value: subId });
  });

  it('a re-sent confirmation mail (same `confirm-<id>` delivery id, new link) is really sent again, not replayed or refused', async () => {
    const h = await setupHandle();
    const to = address();
    const created = await callWithVars(
      resendVars(),
      'POST',
      `/v2/handles/${h.handle}/notifications/email-subscriptions`,
      {
        token: h.token,
        body: { email: to },
      },
    );
    const sub = (await created.json()) as { id: string; statusReason: string };
    expect(created.status, JSON.stringify(sub)).toBe(201);
    expect(sub.statusReason).toMatch(/Confirmation mail sent/);
    // Past the resend cooldown, which counts from the first mail.
    await anyShard
      .prepare('UPDATE email_subscriptions SET confirm_sent_at = ?2 WHERE id = ?1')
      .bind(sub.id, new Date(Date.now() - 61_000).toISOString())
      .run();
    const again = await callWithVars(
      resendVars(),
      'POST',
      `/v2/handles/${h.handle}/notifications/email-subscriptions/${sub.id}/resend-confirmation`,
      {
        token: h.token,
      },
    );
    expect(again.status, await again.clone().text()).toBe(202);
    const reqs = await sentTo(to);
    expect(reqs.map((r) => [r.response.status, r.sent, r.replayed])).toEqual([
      [200, true, false],
      [200, true, false],
    ]);
    expect(
      reqs.every((r) =>
        r.json.tags.some(
          (t: { name: string; value: string }) => t.name === 'delivery_id' && t.value === `confirm-${sub.id}`,
        ),
      ),
    ).toBe(true);
    expect(reqs[1]!.headers['idempotency-key']).not.toBe(reqs[0]!.headers['idempotency-key']);
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe('POST /v2/providers/resend/events (Resend webhook)', () => {
  const secret = newWebhookSecret();
  const vars = () => ({ RESEND_WEBHOOK_SECRET: secret });

  interface SignOptions {
    secret?: string;
    timestamp?: number;
    id?: string;
    prefix?: 'svix' | 'webhook';
  }

  async function signedHeaders(body: string, o: SignOptions = {}): Promise<Record<string, string>> {
    const id = o.id ?? `msg_${unique('svix')}`;
    const ts = o.timestamp ?? Math.floor(Date.now() / 1000);
    const p = o.prefix ?? 'svix';
    return {
      'content-type': 'application/json',
      [`${p}-id`]: id,
      [`${p}-timestamp`]: String(ts),
      [`${p}-signature`]: await signPayload(o.secret ?? secret, id, ts, body),
    };
  }

  async function post(
    event: unknown,
    o: SignOptions & { headers?: Record<string, string>; envVars?: Partial<Env> } = {},
  ) {
    const body = typeof event === 'string' ? event : JSON.stringify(event);
    const headers = o.headers ?? (await signedHeaders(body, o));
    return callWithVars(o.envVars ?? vars(), 'POST', EVENTS_PATH, { rawBody: body, headers });
  }

  async function postOk(event: unknown, o: SignOptions = {}) {
    const res = await post(event, o);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const body = JSON.parse(text);
    await assertMatchesDocument('POST', EVENTS_PATH, 200, body);
    return body as { received: true; applied: number; ignored?: string };
  }

  const bounced = (to: string, bounce: Record<string, unknown> | undefined, tags?: unknown) => ({
    type: 'email.bounced',
    created_at: new Date().toISOString(),
    data: {
      created_at: new Date().toISOString(),
      email_id: '56761188-7520-42d8-8898-ff6fc54ce618',
      from: 'Gharart notifications <notifications@gharart.com>',
      to: [to],
      subject: 'Order ord_1 was paid',
      ...(bounce ? { bounce } : {}),
      ...(tags ? { tags } : {}),
    },
  });

  const complained = (to: string, tags?: unknown) => ({
    type: 'email.complained',
    created_at: new Date().toISOString(),
    data: { email_id: 'a1b2c3', from: 'notifications@gharart.com', to: [to], subject: 'x', ...(tags ? { tags } : {}) },
  });

  it('is documented in /v2/openapi.json with its request and response schemas', async () => {
    const { body: doc } = await callJson('GET', '/v2/openapi.json');
    const op = doc.paths[EVENTS_PATH]?.post;
    expect(op).toBeDefined();
    expect(op.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ResendEvent' });
    expect(op.responses['200'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/ResendEventReceipt',
    });
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '503']));
    expect(op.parameters.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining(['svix-id', 'svix-timestamp', 'svix-signature']),
    );
    expect(doc.components.schemas.ResendEvent).toBeDefined();
  });

  it('a permanent bounce suppresses every subscription with the address (any handle, any case); the next event is not delivered to it', async () => {
    const h1 = await setupHandle();
    const h2 = await setupHandle();
    const to = address();
    const a = await insertSubscription(h1.handle, to);
    const owner = await insertSubscription(h1.handle, to.toUpperCase(), 'owner_default');
    const b = await insertSubscription(h2.handle, to);
    const other = await insertSubscription(h1.handle, address());
    // A delivery made before the bounce, still queued.
    const before = await ingestQuiet(h1.handle, { type: 'order.fulfilled', data: { orderId: unique('ord') } });
    const queuedForA = before.recipients.find((r) => r.subscriptionId === a)!.deliveryId;

    const receipt = await postOk(
      bounced(
        to.toUpperCase(),
        { type: 'Permanent', subType: 'General', message: '550 5.1.1 user unknown' },
        { subscription_id: a },
      ),
    );
    expect(receipt).toEqual({ received: true, applied: 3 });
    for (const id of [a, owner, b]) {
      const row = await subscriptionRow(id);
      expect(row.status).toBe('suppressed');
      expect(row.status_reason).toMatch(/^Permanent bounce reported by resend: General: 550 5\.1\.1 user unknown/);
    }
    expect((await subscriptionRow(other)).status).toBe('active');

    // The API shows it, with the reason.
    const list = await callJson('GET', `/v2/handles/${h1.handle}/notifications/email-subscriptions`, {
      token: h1.token,
    });
    expect(list.status).toBe(200);
    expect(list.body.data).toContainEqual(
      expect.objectContaining({
        id: a,
        status: 'suppressed',
        statusReason: expect.stringContaining('550 5.1.1 user unknown'),
      }),
    );

    // Matching excludes it (rule `suppressed`) …
    const ev = await callJson('POST', `/v2/handles/${h1.handle}/notification-settings/evaluate`, {
      token: h1.token,
      body: { eventType: 'order.fulfilled' },
    });
    expect(ev.status).toBe(200);
    expect(ev.body.recipients).toContainEqual(
      expect.objectContaining({ subscriptionId: a, outcome: 'excluded', rule: 'suppressed' }),
    );
    // … a new event makes no delivery for it …
    const after = await ingestQuiet(h1.handle, { type: 'order.fulfilled', data: { orderId: unique('ord') } });
    expect(after.recipients.map((r) => r.subscriptionId)).not.toContain(a);
    expect(after.recipients.map((r) => r.subscriptionId)).toContain(other);
    // … and the delivery queued before the bounce is skipped without a request to Resend.
    const { report } = await runDeliveries([queuedForA], { env: resendEnv() });
    expect(report.attempts).toBe(0);
    expect(await deliveryRow(queuedForA)).toMatchObject({
      status: 'skipped',
      status_reason: 'subscription_suppressed',
    });
    expect(await sentTo(to)).toEqual([]);

    // Delivered again (Svix retries): nothing more changes.
    expect(await postOk(bounced(to, { type: 'Permanent', subType: 'General', message: '550' }))).toEqual({
      received: true,
      applied: 0,
    });
  });

  it('a bounce or complaint that suppresses an owner default email raises one critical email.owner_default_suppressed for its handle', async () => {
    const h = await setupHandle();
    const owner = address();
    const ownerDefault = await insertSubscription(h.handle, owner, 'owner_default');
    const standard = address();
    await insertSubscription(h.handle, standard);
    const alerts = async () =>
      (
        await anyShard
          .prepare(
            `SELECT severity, data FROM notifications WHERE handle = ?1 AND type = 'email.owner_default_suppressed'`,
          )
          .bind(h.handle)
          .all<{ severity: string; data: string }>()
      ).results;

    // A standard subscription suppressed: no owner alert.
    await postOk(complained(standard));
    expect(await alerts()).toEqual([]);

    await postOk(bounced(owner, { type: 'Permanent', subType: 'General', message: '550 5.1.1 user unknown' }));
    expect((await subscriptionRow(ownerDefault)).status).toBe('suppressed');
    const raised = await alerts();
    expect(raised).toHaveLength(1);
    expect(raised[0]!.severity).toBe('critical');
    expect(JSON.parse(raised[0]!.data)).toMatchObject({
      subscriptionId: ownerDefault,
      email: owner,
      provider: 'resend',
      reason: expect.stringContaining('550 5.1.1 user unknown'),
    });
    // Resend retries the webhook: nothing new is suppressed, so no second alert.
    await postOk(bounced(owner, { type: 'Permanent' }));
    expect(await alerts()).toHaveLength(1);
  });

  it('a bounce without bounce.type counts as permanent (Resend documents email.bounced as a permanent rejection); `hard` too', async () => {
    const h = await setupHandle();
    const to1 = address();
    const to2 = address();
    const s1 = await insertSubscription(h.handle, to1);
    const s2 = await insertSubscription(h.handle, to2);
    expect(await postOk(bounced(to1, undefined))).toEqual({ received: true, applied: 1 });
    expect(await postOk(bounced(to2, { type: 'hard', message: 'mailbox does not exist' }))).toEqual({
      received: true,
      applied: 1,
    });
    expect(await subscriptionRow(s1)).toMatchObject({ status: 'suppressed' });
    expect((await subscriptionRow(s2)).status_reason).toContain('mailbox does not exist');
  });

  it('a transient (soft) bounce changes nothing', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    const r1 = await postOk(bounced(to, { type: 'Transient', subType: 'MailboxFull', message: '452 mailbox full' }));
    expect(r1).toMatchObject({ received: true, applied: 0, ignored: expect.stringContaining('Transient') });
    const r2 = await postOk(bounced(to, { type: 'soft', message: 'try later' }));
    expect(r2).toMatchObject({ applied: 0 });
    expect(await subscriptionRow(s)).toMatchObject({ status: 'active', status_reason: null });
  });

  it('a complaint with a subscription_id tag suppresses only that subscription', async () => {
    const h1 = await setupHandle();
    const h2 = await setupHandle();
    const to = address();
    const a = await insertSubscription(h1.handle, to);
    const b = await insertSubscription(h2.handle, to);
    expect(await postOk(complained(to, { subscription_id: a, delivery_id: 'dlv_x' }))).toEqual({
      received: true,
      applied: 1,
    });
    const row = await subscriptionRow(a);
    expect(row.status).toBe('suppressed');
    expect(row.status_reason).toMatch(/^Spam complaint reported by resend: /);
    expect((await subscriptionRow(b)).status).toBe('active');

    // The `[{name, value}]` tag shape works the same.
    expect(await postOk(complained(to, [{ name: 'subscription_id', value: b }]))).toEqual({
      received: true,
      applied: 1,
    });
    expect((await subscriptionRow(b)).status).toBe('suppressed');
  });

  it('a complaint without a tag suppresses every subscription with the address', async () => {
    const h1 = await setupHandle();
    const h2 = await setupHandle();
    const to = address();
    const a = await insertSubscription(h1.handle, to);
    const b = await insertSubscription(h2.handle, to);
    expect(await postOk(complained(to))).toEqual({ received: true, applied: 2 });
    expect((await subscriptionRow(a)).status).toBe('suppressed');
    expect((await subscriptionRow(b)).status).toBe('suppressed');
  });

  it('other event types are acknowledged and ignored', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    for (const type of ['email.delivered', 'email.sent', 'email.opened', 'contact.created']) {
      const r = await postOk({ type, created_at: new Date().toISOString(), data: { email_id: 'x', to: [to] } });
      expect(r).toMatchObject({ received: true, applied: 0, ignored: expect.stringContaining(type) });
    }
    expect((await subscriptionRow(s)).status).toBe('active');
  });

  it('the webhook-* header names are accepted too, and a signature made by the standardwebhooks package verifies', async () => {
    const h = await setupHandle();
    const to1 = address();
    const to2 = address();
    await insertSubscription(h.handle, to1);
    await insertSubscription(h.handle, to2);
    expect(await postOk(complained(to1), { prefix: 'webhook' })).toEqual({ received: true, applied: 1 });

    const body = JSON.stringify(complained(to2));
    const msgId = `msg_${unique('sw')}`;
    const now = new Date();
    const signature = new Webhook(secret).sign(msgId, now, body);
    const res = await post(body, {
      headers: {
        'content-type': 'application/json',
        'svix-id': msgId,
        'svix-timestamp': String(Math.floor(now.getTime() / 1000)),
        'svix-signature': signature,
      },
    });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toEqual({ received: true, applied: 1 });
  });

  it('a signature during secret rotation (several v1 signatures) verifies when one matches', async () => {
    const h = await setupHandle();
    const to = address();
    await insertSubscription(h.handle, to);
    const body = JSON.stringify(complained(to));
    const headers = await signedHeaders(body);
    const other = await signPayload(newWebhookSecret(), headers['svix-id']!, Number(headers['svix-timestamp']), body);
    headers['svix-signature'] = `${other} ${headers['svix-signature']}`;
    const res = await post(body, { headers });
    expect(res.status).toBe(200);
  });

  it('a bad signature (wrong secret, altered body) → 401 problem and nothing changes', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    const event = bounced(to, { type: 'Permanent', message: '550' });

    await expectProblem(await post(event, { secret: newWebhookSecret() }), 401);

    const body = JSON.stringify(event);
    const headers = await signedHeaders(body);
    await expectProblem(await post(body.replace('550', '551'), { headers }), 401);
    await expectProblem(await post(body, { headers: { ...headers, 'svix-signature': 'v1,AAAA' } }), 401);
    await expectProblem(await post(body, { headers: { ...headers, 'svix-id': 'msg_other' } }), 401);

    expect(await subscriptionRow(s)).toMatchObject({ status: 'active', status_reason: null });
  });

  it('missing signature headers → 401', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    const event = bounced(to, { type: 'Permanent', message: '550' });
    const problem = await expectProblem(await post(event, { headers: { 'content-type': 'application/json' } }), 401);
    expect(problem.detail).toMatch(/svix-id/);
    const body = JSON.stringify(event);
    const headers = await signedHeaders(body);
    delete headers['svix-signature'];
    await expectProblem(await post(body, { headers }), 401);
    expect((await subscriptionRow(s)).status).toBe('active');
  });

  it('a stale (> 5 min old) or far-future timestamp → 401 even with a correct signature', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    const event = bounced(to, { type: 'Permanent', message: '550' });
    const now = Math.floor(Date.now() / 1000);
    const stale = await expectProblem(await post(event, { timestamp: now - 360 }), 401);
    expect(stale.detail).toMatch(/5 minutes/);
    await expectProblem(await post(event, { timestamp: now + 360 }), 401);
    await expectProblem(
      await post(event, {
        headers: { ...(await signedHeaders(JSON.stringify(event))), 'svix-timestamp': 'yesterday' },
      }),
      401,
    );
    expect((await subscriptionRow(s)).status).toBe('active');
    // Within the tolerance it is accepted.
    expect(await postOk(event, { timestamp: now - 240 })).toEqual({ received: true, applied: 1 });
  });

  it('the signature is checked before the body: an unsigned malformed body is 401, a signed one 400', async () => {
    await expectProblem(await post('{"type":', { headers: { 'content-type': 'application/json' } }), 401);
    await expectProblem(await post('{"type":'), 400);
    await expectProblem(await post({ data: {} }), 400);
  });

  it('non-JSON bodies are refused by the body guard (415)', async () => {
    const body = 'type=email.bounced';
    // content-length as a real client sends it (an in-process Request has none, and the guard keys on it).
    const headers = {
      ...(await signedHeaders(body)),
      'content-type': 'application/x-www-form-urlencoded',
      'content-length': String(body.length),
    };
    await expectProblem(await post(body, { headers }), 415);
  });

  it('without RESEND_WEBHOOK_SECRET the deployment cannot verify anything: 503, nothing changes', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    const res = await post(bounced(to, { type: 'Permanent', message: '550' }), {
      envVars: { RESEND_WEBHOOK_SECRET: '' },
    });
    const problem = await expectProblem(res, 503);
    expect(problem.detail).toMatch(/RESEND_WEBHOOK_SECRET/);
    expect((await subscriptionRow(s)).status).toBe('active');
  });
});
