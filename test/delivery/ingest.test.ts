/**
 * Ingest and matching (docs/design.md#routes `POST …/events`, #events-settings-and-matching, #outbox): what an accepted event writes, who it goes to,
 * what is refused and why, and the `notify-events` queue consumer.
 *
 * Events are published through the API (the real local queue then delivers in the background; assertions here are
 * on what ingest wrote, which the background consumer cannot change except moving deliveries forward) or through
 * the queue entry point with a fake batch that records acks and retries.
 */

import { createExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { publishEvents } from '../../src/delivery/enqueue.ts';
import { config } from '../../src/env.ts';
import worker from '../../src/index.ts';
import { sweepOutbox } from '../../src/jobs/sweeper.ts';
import { wrapD1 } from '../support/d1-wrap.ts';
import {
  ALL_USER_SCOPES,
  addMember,
  anyShard,
  call,
  callJson,
  callWithVars,
  catalogData,
  createPat,
  expectProblem,
  shardName,
  shardOf,
  signJwt,
  unique,
} from '../support/helpers.ts';
import {
  allDeliveryQueues,
  captureQueue,
  countingD1,
  createWebhook,
  d1FailingBatchesMatching,
  deliveriesOf,
  deliveryRow,
  eventually,
  fakeBatch,
  ingestQuiet,
  notificationRow,
  quietEnv,
  setupHandle,
  type TestHandle,
} from '../support/pipeline-helpers.ts';
import { hits, receiverUrl } from '../support/receivers.ts';
import { summaryById } from '../support/seed.ts';

const eventsPath = (handle: string) => `/v2/handles/${handle}/events`;

async function publish(h: TestHandle, body: Record<string, unknown>, token = h.token) {
  const res = await callJson('POST', eventsPath(h.handle), { token, body });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body as {
    notificationId: string;
    status: string;
    duplicate: boolean;
    recipients: Array<{
      deliveryId: string;
      status: string;
      statusReason: string | null;
      recipientType: string;
      channel: string;
      target: string;
      subscriptionId: string | null;
    }>;
  };
}

async function counts(handle: string) {
  const n = await anyShard
    .prepare('SELECT count(*) AS n FROM notifications WHERE handle = ?')
    .bind(handle)
    .first<{ n: number }>();
  const d = await anyShard
    .prepare('SELECT count(*) AS n FROM deliveries WHERE handle = ?')
    .bind(handle)
    .first<{ n: number }>();
  return { notifications: n!.n, deliveries: d!.n };
}

async function setOwnerEmail(h: TestHandle): Promise<string> {
  const address = `${unique('owner')}@example.com`;
  const res = await callJson('PUT', `/v2/handles/${h.handle}/notifications/owner-default-email`, {
    token: h.token,
    body: { email: address },
  });
  expect(res.status).toBe(200);
  return address.toLowerCase();
}

describe('POST …/events: what is written', () => {
  it('202 with the notification, its recipients queued, a Location header; rows match the answer', async () => {
    const h = await setupHandle();
    const wh = await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const res = await callJson('POST', eventsPath(h.handle), {
      token: h.token,
      body: { type: 'order.paid', data: { orderId: 'o-1' } },
    });
    expect(res.status).toBe(202);
    expect(res.res.headers.get('location')).toBe(`/v2/handles/${h.handle}/notifications/${res.body.notificationId}`);
    expect(res.body).toMatchObject({ status: 'delivering', duplicate: false });
    expect(res.body.recipients).toEqual([
      expect.objectContaining({
        channel: 'webhook',
        recipientType: 'webhook',
        subscriptionId: wh.id,
        status: 'queued',
        attempts: 0,
      }),
    ]);
    const n = await notificationRow(res.body.notificationId);
    expect(n).toMatchObject({
      handle: h.handle,
      type: 'order.paid',
      severity: 'info',
      source: `user:${h.owner}`,
      recipient_count: 1,
    });
    expect(JSON.parse(n.data)).toEqual({ orderId: 'o-1' });
    expect((await deliveriesOf(res.body.notificationId)).map((d) => d.id)).toEqual([res.body.recipients[0].deliveryId]);
  });

  it('a repeated sourceEventId → the same notificationId, duplicate: true, nothing new written', async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const sourceEventId = unique('oms-evt');
    const first = await publish(h, { type: 'order.paid', data: { orderId: 'o-1' }, sourceEventId });
    expect(first.duplicate).toBe(false);
    const before = await counts(h.handle);
    expect(before).toEqual({ notifications: 1, deliveries: 1 });
    const again = await publish(h, { type: 'order.paid', data: { orderId: 'o-1' }, sourceEventId });
    expect(again).toMatchObject({ notificationId: first.notificationId, duplicate: true });
    expect(again.recipients.map((r) => r.deliveryId)).toEqual(first.recipients.map((r) => r.deliveryId));
    // Even with another payload: the id names the event.
    const changed = await publish(h, { type: 'order.refunded', data: { orderId: 'o-2' }, sourceEventId });
    expect(changed).toMatchObject({ notificationId: first.notificationId, duplicate: true });
    expect(await counts(h.handle)).toEqual(before);

    // Unique per handle: another handle may use the same id.
    const other = await setupHandle();
    const elsewhere = await publish(other, { type: 'order.paid', data: catalogData('order.paid'), sourceEventId });
    expect(elsewhere.duplicate).toBe(false);
    expect(elsewhere.notificationId).not.toBe(first.notificationId);
  });

  it('D1 round trips of a publish with a sourceEventId: the duplicate check rides in the context batch (2 in all; a duplicate costs 1)', async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const sourceEventId = unique('oms-evt');
    const d1 = countingD1(await shardOf(h.handle));
    // Context + duplicate check, then the notification and its deliveries (written `queued`: no mark after the send).
    const first = await ingestQuiet(h.handle, { sourceEventId }, { [await shardName(h.handle)]: d1.db });
    expect(first.duplicate).toBe(false);
    expect(d1.count()).toBe(2);
    d1.reset();
    const again = await ingestQuiet(h.handle, { sourceEventId }, { [await shardName(h.handle)]: d1.db });
    expect(again).toMatchObject({ notificationId: first.notificationId, duplicate: true });
    expect(d1.count()).toBe(1);
  });

  it('POST …/events through the API: access check, duplicate check and match context share one round trip (2 in all, with a PAT)', async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const pat = await createPat(h.owner, { handle: h.handle, scopes: ['events:publish', 'notifications:read'] });
    const d1 = countingD1(await shardOf(h.handle));
    const { capture } = quietEnv();
    const vars = { [await shardName(h.handle)]: d1.db, ...allDeliveryQueues(capture.queue) } as Partial<Env>;
    const body = { type: 'order.paid', data: { orderId: unique('o') }, sourceEventId: unique('src') };
    // The PAT's first use records last_used_at (a write, at most once a minute): not part of a publish's cost.
    await callWithVars(vars, 'GET', `/v2/handles/${h.handle}`, { token: pat.token });
    await new Promise((r) => setTimeout(r, 50));
    d1.reset();
    const res = await callWithVars(vars, 'POST', `/v2/handles/${h.handle}/events`, { token: pat.token, body });
    expect(res.status, await res.clone().text()).toBe(202);
    // [token + membership, duplicate check, settings, webhooks, emails] → [notification + deliveries, written queued]
    expect(d1.count()).toBe(2);
    expect(((await res.json()) as { recipients: unknown[] }).recipients).toHaveLength(1);
    const stored = await anyShard
      .prepare('SELECT source FROM notifications WHERE handle = ?')
      .bind(h.handle)
      .first<{ source: string }>();
    expect(stored?.source).toBe(`user:${h.owner}`);
    // A non-member gets the 404 from that same batch, and nothing is written.
    const stranger = await signJwt({ sub: unique('stranger'), scope: 'events:publish' });
    d1.reset();
    await expectProblem(
      await callWithVars(vars, 'POST', `/v2/handles/${h.handle}/events`, {
        token: stranger,
        body: { ...body, sourceEventId: unique('src') },
      }),
      404,
    );
    expect(d1.count()).toBe(1);
    expect(
      (
        await anyShard
          .prepare('SELECT count(*) AS n FROM notifications WHERE handle = ?')
          .bind(h.handle)
          .first<{ n: number }>()
      )?.n,
    ).toBe(1);
  });

  it('two publishes racing with one sourceEventId → one notification, both answered with it', async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const sourceEventId = unique('race');
    const body = { type: 'order.paid', data: { orderId: 'o-race' }, sourceEventId };
    const [a, b] = await Promise.all([
      call('POST', eventsPath(h.handle), { token: h.token, body }),
      call('POST', eventsPath(h.handle), { token: h.token, body }),
    ]);
    expect([a.status, b.status]).toEqual([202, 202]);
    const [ja, jb] = [await a.json<any>(), await b.json<any>()];
    expect(ja.notificationId).toBe(jb.notificationId);
    expect([ja.duplicate, jb.duplicate].sort()).toEqual([false, true]);
    expect(await counts(h.handle)).toEqual({ notifications: 1, deliveries: 1 });
  });

  it('a disabled matching webhook → a skipped delivery (subscription_disabled), nothing sent', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('ok', key), enabled: false });
    const pub = await publish(h, { type: 'order.paid', data: { orderId: 'o-1' } });
    expect(pub.recipients).toEqual([
      expect.objectContaining({
        subscriptionId: wh.id,
        status: 'skipped',
        statusReason: 'subscription_disabled',
        recipientType: 'webhook',
      }),
    ]);
    expect(await deliveryRow(pub.recipients[0]!.deliveryId)).toMatchObject({
      status: 'skipped',
      status_reason: 'subscription_disabled',
    });
    expect(pub.status).not.toBe('delivering');
    await new Promise((r) => setTimeout(r, 300));
    expect(await hits(key)).toEqual([]);
    // A disabled webhook that would NOT match gets nothing recorded.
    const narrow = await createWebhook(h, {
      url: receiverUrl('ok', unique('k')),
      enabled: false,
      eventTypes: ['campaign.*'],
    });
    const second = await publish(h, { type: 'order.paid', data: catalogData('order.paid') });
    expect(second.recipients.map((r) => r.subscriptionId)).not.toContain(narrow.id);
  });

  it('a critical event reaches the owner default email even when every filter excludes it', async () => {
    const h = await setupHandle();
    const owner = await setOwnerEmail(h);
    await createWebhook(h, { url: receiverUrl('ok', unique('k')), eventTypes: ['order.*'] });
    const put = await callJson('PUT', `/v2/handles/${h.handle}/notification-settings`, {
      token: h.token,
      body: {
        channels: { email: { enabled: true }, webhook: { enabled: true } },
        eventFilter: { type: ['order.created'] },
        ownerFallback: 'critical',
      },
    });
    expect(put.status).toBe(200);
    const pub = await publish(h, { type: 'payment.failed', data: { orderId: 'o-9', reason: 'card_declined' } });
    expect(pub.status).toBe('delivering');
    expect(pub.recipients).toEqual([
      expect.objectContaining({ recipientType: 'owner_default', channel: 'email', target: owner, status: 'queued' }),
    ]);
    expect((await notificationRow(pub.notificationId)).severity).toBe('critical');
    // The same event at info severity is filtered out for everyone.
    const quiet = await publish(h, { type: 'payment.failed', severity: 'info', data: catalogData('payment.failed') });
    expect(quiet).toMatchObject({ status: 'no_recipients', recipients: [] });
  });

  it('a critical event nobody can receive → undeliverable; with PLATFORM_ALERT_EMAIL a platform_alert mail is sent', async () => {
    const h = await setupHandle();
    const pub = await publish(h, { type: 'payment.failed', data: { orderId: 'o-1' } });
    expect(pub).toMatchObject({ status: 'undeliverable', recipients: [] });
    expect((await notificationRow(pub.notificationId)).status).toBe('undeliverable');
    const feed = await callJson('GET', `/v2/handles/${h.handle}/notifications/${pub.notificationId}`, {
      token: h.token,
    });
    expect(feed.body.status).toBe('undeliverable');

    // Only a disabled webhook: still nobody reachable.
    await createWebhook(h, { url: receiverUrl('ok', unique('k')), enabled: false });
    const skippedOnly = await publish(h, { type: 'payment.failed', data: { orderId: 'o-2' } });
    expect(skippedOnly.status).toBe('undeliverable');

    const alert = `${unique('platform')}@gharart.test`;
    const res = await callWithVars({ PLATFORM_ALERT_EMAIL: alert }, 'POST', eventsPath(h.handle), {
      token: h.token,
      body: { type: 'payment.failed', data: { orderId: 'o-3' } },
    });
    expect(res.status).toBe(202);
    const body = await res.json<any>();
    expect(body.status).toBe('undeliverable');
    const platform = body.recipients.find((r: any) => r.recipientType === 'platform_alert');
    expect(platform).toMatchObject({ channel: 'email', target: alert, subscriptionId: null, status: 'queued' });
    // Sent by the real consumer; the notification stays undeliverable (the handle's own people never got it).
    await eventually(
      () => deliveryRow(platform.deliveryId),
      (d) => d.status === 'succeeded',
      15_000,
      'platform alert sent',
    );
    expect((await notificationRow(body.notificationId)).status).toBe('undeliverable');
  });

  it('a non-critical event matching nothing → no_recipients', async () => {
    const h = await setupHandle();
    await setOwnerEmail(h);
    await createWebhook(h, { url: receiverUrl('ok', unique('k')), eventTypes: ['campaign.*'] });
    const pub = await publish(h, { type: 'order.paid', data: catalogData('order.paid') });
    expect(pub).toMatchObject({ status: 'no_recipients', recipients: [] });
    expect((await notificationRow(pub.notificationId)).status).toBe('no_recipients');
    expect(await deliveriesOf(pub.notificationId)).toEqual([]);
  });

  it('a service token whose handles claim names the handle can publish (source = its subject)', async () => {
    const h = await setupHandle();
    const sub = unique('svc:oms');
    const token = await signJwt({ sub, scope: 'events:publish', handles: ['some-other-handle', h.handle] });
    const pub = await publish(h, { type: 'order.created', data: { orderId: 'o-1' } }, token);
    expect((await notificationRow(pub.notificationId)).source).toBe(sub);
    const star = await signJwt({ sub, scope: 'events:publish', handles: '*' });
    await publish(h, { type: 'order.created', data: { orderId: 'o-2' } }, star);
    // A service token for other handles sees nothing here.
    const elsewhere = await signJwt({ sub, scope: 'events:publish', handles: ['some-other-handle'] });
    await expectProblem(
      await call('POST', eventsPath(h.handle), {
        token: elsewhere,
        body: { type: 'order.created', data: catalogData('order.created') },
      }),
      404,
    );
  });
});

describe('POST …/events: what is refused', () => {
  it('system types are refused with 422 and nothing is written', async () => {
    const h = await setupHandle();
    for (const type of ['webhook.endpoint_disabled', 'email.subscription_stale']) {
      const p = await expectProblem(
        await call('POST', eventsPath(h.handle), { token: h.token, body: { type, data: {} } }),
        422,
      );
      expect(p.detail).toContain(type);
    }
    expect(await counts(h.handle)).toEqual({ notifications: 0, deliveries: 0 });
  });

  it('data over 64 KB → 413; just under is accepted', async () => {
    const h = await setupHandle();
    const big = catalogData('order.paid', { blob: 'x'.repeat(65 * 1024) });
    const p = await expectProblem(
      await call('POST', eventsPath(h.handle), { token: h.token, body: { type: 'order.paid', data: big } }),
      413,
    );
    expect(p.limitBytes).toBe(65536);
    expect(await counts(h.handle)).toEqual({ notifications: 0, deliveries: 0 });
    await publish(h, { type: 'order.paid', data: catalogData('order.paid', { blob: 'x'.repeat(60 * 1024) }) });
  });

  it('body validation errors → 400 with errors[] (type pattern, unknown field, missing data, bad severity, bad occurredAt)', async () => {
    const h = await setupHandle();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ type: 'Order.Paid', data: {} }, 'body.type'],
      [{ type: 'orderpaid', data: {} }, 'body.type'],
      [{ type: 'order.paid', data: {}, status: 'delivered' }, 'body'],
      [{ type: 'order.paid' }, 'body.data'],
      [{ type: 'order.paid', data: {}, severity: 'urgent' }, 'body.severity'],
      [{ type: 'order.paid', data: {}, occurredAt: 'yesterday' }, 'body.occurredAt'],
      [{ type: 'order.paid', data: [] }, 'body.data'],
    ];
    for (const [body, path] of cases) {
      const p = await expectProblem(await call('POST', eventsPath(h.handle), { token: h.token, body }), 400);
      expect(Array.isArray(p.errors), JSON.stringify(body)).toBe(true);
      expect(
        p.errors.map((e: { path: string }) => e.path).some((x: string) => x.startsWith(path)),
        `${JSON.stringify(body)} → ${JSON.stringify(p.errors)}`,
      ).toBe(true);
    }
    expect(await counts(h.handle)).toEqual({ notifications: 0, deliveries: 0 });
  });

  it('a sourceEventId in the system: namespace → 400 naming it: no client can pre-empt a system alert (endpoint_disabled)', async () => {
    const h = await setupHandle();
    const body = {
      type: 'order.paid',
      data: catalogData('order.paid'),
      sourceEventId: 'system:webhook.endpoint_disabled:wh_x:2026-01-01',
    };
    const p = await expectProblem(await call('POST', eventsPath(h.handle), { token: h.token, body }), 400);
    expect(p.errors.map((e: { path: string }) => e.path)).toContain('body.sourceEventId');
    expect(await counts(h.handle)).toEqual({ notifications: 0, deliveries: 0 });
    // An ordinary id with the same words but not the prefix is still the client's own.
    const ok = await call('POST', eventsPath(h.handle), {
      token: h.token,
      body: { ...body, sourceEventId: 'webhook.endpoint_disabled:wh_x:2026-01-01' },
    });
    expect(ok.status).toBe(202);
  });

  it('a viewer → 403; a token without events:publish → 403 naming it; a non-member → 404', async () => {
    const h = await setupHandle();
    const viewer = unique('viewer');
    await addMember(h.handle, viewer, 'viewer');
    const body = { type: 'order.paid', data: catalogData('order.paid') };
    const p1 = await expectProblem(
      await call('POST', eventsPath(h.handle), { token: await signJwt({ sub: viewer, scope: ALL_USER_SCOPES }), body }),
      403,
    );
    expect(p1.role).toBe('viewer');
    const noScope = ALL_USER_SCOPES.split(' ')
      .filter((s) => s !== 'events:publish')
      .join(' ');
    const p2 = await expectProblem(
      await call('POST', eventsPath(h.handle), { token: await signJwt({ sub: h.owner, scope: noScope }), body }),
      403,
    );
    expect(p2.missingScopes).toEqual(['events:publish']);
    await expectProblem(
      await call('POST', eventsPath(h.handle), {
        token: await signJwt({ sub: unique('stranger'), scope: ALL_USER_SCOPES }),
        body,
      }),
      404,
    );
    expect(await counts(h.handle)).toEqual({ notifications: 0, deliveries: 0 });
  });
});

describe('the notify-events consumer', () => {
  it('a valid message is ingested like POST …/events and acked', async () => {
    const h = await setupHandle();
    const wh = await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const sourceEventId = unique('q');
    const fb = fakeBatch('notify-events', [
      { body: { handle: h.handle, type: 'order.fulfilled', data: { orderId: 'o-q' }, sourceEventId, source: 'oms' } },
    ]);
    await worker.queue(fb.batch, env, createExecutionContext());
    expect(fb.outcomes[0]!.calls).toEqual(['ack']);
    const n = await anyShard
      .prepare('SELECT * FROM notifications WHERE handle = ? AND source_event_id = ?')
      .bind(h.handle, sourceEventId)
      .first<Record<string, any>>();
    expect(n).toMatchObject({ type: 'order.fulfilled', source: 'oms', status: 'delivering' });
    expect((await deliveriesOf(n!.id)).map((d) => d.subscription_id)).toEqual([wh.id]);

    // Redelivered (at-least-once): the sourceEventId makes it a no-op.
    const again = fakeBatch('notify-events', [
      { body: { handle: h.handle, type: 'order.fulfilled', data: { orderId: 'o-q' }, sourceEventId } },
    ]);
    await worker.queue(again.batch, env, createExecutionContext());
    expect(again.outcomes[0]!.calls).toEqual(['ack']);
    expect(await counts(h.handle)).toEqual({ notifications: 1, deliveries: 1 });
  });

  it('through the real queue: publishEvents → the notification appears', async () => {
    const h = await setupHandle();
    const sourceEventId = unique('real-q');
    await publishEvents(env, [{ handle: h.handle, type: 'order.created', data: { orderId: 'o-real' }, sourceEventId }]);
    const n = await eventually(
      () =>
        anyShard
          .prepare('SELECT * FROM notifications WHERE handle = ? AND source_event_id = ?')
          .bind(h.handle, sourceEventId)
          .first<Record<string, any>>(),
      (row) => row !== null,
      15_000,
      'notification from the queue',
    );
    expect(n).toMatchObject({ type: 'order.created', source: 'queue:notify-events' });
  });

  it('invalid messages, an unknown handle and a system type are recorded in event_rejections with a reason, and acked', async () => {
    const h = await setupHandle();
    const missing = unique('nohandle');
    const ids = { invalid: unique('inv'), unknown: unique('unk'), system: unique('sys'), ok: unique('ok') };
    const fb = fakeBatch('notify-events', [
      { id: ids.invalid, body: { handle: h.handle, type: 'Order.Paid', data: {} } },
      { id: ids.unknown, body: { handle: missing, type: 'order.paid', data: catalogData('order.paid') } },
      { id: ids.system, body: { handle: h.handle, type: 'webhook.endpoint_disabled', data: {} } },
      { id: ids.ok, body: { handle: h.handle, type: 'order.paid', data: catalogData('order.paid') } },
    ]);
    await worker.queue(fb.batch, env, createExecutionContext());
    for (const o of fb.outcomes) expect(o.calls, o.id).toEqual(['ack']);
    const { results } = await env.DB.prepare('SELECT * FROM event_rejections WHERE message_id IN (?, ?, ?, ?)')
      .bind(ids.invalid, ids.unknown, ids.system, ids.ok)
      .all<Record<string, any>>();
    const byId = new Map(results.map((r) => [r.message_id, r]));
    expect(byId.has(ids.ok)).toBe(false);
    expect(byId.get(ids.invalid)).toMatchObject({ queue: 'notify-events', handle: h.handle });
    expect(byId.get(ids.invalid)!.reason).toMatch(/invalid event.*type/);
    expect(byId.get(ids.unknown)).toMatchObject({ handle: missing });
    expect(byId.get(ids.unknown)!.reason).toMatch(/unknown_handle/);
    expect(byId.get(ids.system)!.reason).toMatch(/system_event_type/);
    expect(JSON.parse(byId.get(ids.unknown)!.body)).toMatchObject({ handle: missing, type: 'order.paid' });
    expect((await counts(h.handle)).notifications).toBe(1);
  });

  it('a transient failure (D1 unavailable) is retried, not recorded as a rejection', async () => {
    const h = await setupHandle();
    const id = unique('transient');
    const unavailable = () => {
      throw new Error('D1_ERROR: database unavailable (test)');
    };
    const failing = (d1: D1Database) => wrapD1(d1, { batch: unavailable, prepare: unavailable });
    const fb = fakeBatch('notify-events', [
      { id, body: { handle: h.handle, type: 'order.paid', data: catalogData('order.paid') } },
    ]);
    const down = { DB: failing(env.DB), SHARD_0: failing(env.SHARD_0), SHARD_1: failing(env.SHARD_1) };
    await worker.queue(fb.batch, { ...env, ...down }, createExecutionContext());
    expect(fb.outcomes[0]!.retried).toBe(true);
    expect(fb.outcomes[0]!.acked).toBe(false);
    const rej = await env.DB.prepare('SELECT count(*) AS n FROM event_rejections WHERE message_id = ?')
      .bind(id)
      .first<{ n: number }>();
    expect(rej!.n).toBe(0);
  });
});

describe('a failed send after the rows are stored (they were written queued)', () => {
  const MARK_PENDING = /SET status = 'pending'/;

  it('POST …/events still answers 202; the rows go back to pending and the sweeper sends them within a minute', async () => {
    const h = await setupHandle();
    const wh = await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const broken = captureQueue({ fail: true });
    const quiet = { ...env, ...allDeliveryQueues(broken.queue) } as Env;
    const res = await callWithVars(quiet, 'POST', eventsPath(h.handle), {
      token: h.token,
      body: { type: 'order.paid', data: { orderId: 'o-send' } },
    });
    const body = await res.json<any>();
    expect(res.status, JSON.stringify(body)).toBe(202);
    expect(broken.batches.flat()).toHaveLength(1);
    // The answer, the row and the feed's summary say the same: waiting for the sweeper.
    expect(body.recipients).toEqual([expect.objectContaining({ subscriptionId: wh.id, status: 'pending' })]);
    const [d] = await deliveriesOf(body.notificationId);
    expect(d).toMatchObject({ subscription_id: wh.id, status: 'pending' });
    const summary = summaryById((await notificationRow(body.notificationId)).recipients);
    expect(summary[d!.id]!.status).toBe('pending');
    const swept = await sweepOutbox(env, new Date(Date.now() + 2 * 60_000));
    expect(swept.requeued).toBeGreaterThanOrEqual(1);
    await eventually(
      () => deliveryRow(d!.id),
      (r) => r.status === 'succeeded',
      15_000,
      'delivery sent by the sweeper',
    );
  });

  it('when the rows cannot be put back either: still 202, they stay queued and the overdue sweep sends them', async () => {
    const h = await setupHandle();
    const wh = await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const failing = d1FailingBatchesMatching(await shardOf(h.handle), MARK_PENDING);
    const broken = captureQueue({ fail: true });
    const quiet = { ...env, ...allDeliveryQueues(broken.queue), [await shardName(h.handle)]: failing.db } as Env;
    const res = await callWithVars(quiet, 'POST', eventsPath(h.handle), {
      token: h.token,
      body: { type: 'order.paid', data: { orderId: 'o-mp' } },
    });
    const body = await res.json<any>();
    expect(res.status, JSON.stringify(body)).toBe(202);
    // Tried twice, failed twice.
    expect(failing.failures()).toBe(2);
    // The answer says what the rows say.
    expect(body.recipients).toEqual([expect.objectContaining({ subscriptionId: wh.id, status: 'queued' })]);
    const [d] = await deliveriesOf(body.notificationId);
    expect(d).toMatchObject({ subscription_id: wh.id, status: 'queued' });
    // Not a pending row: the overdue sweep covers it once its grace is over (docs/design.md#overdue-deliveries).
    const grace = config(env).overdueAfterSeconds * 1000;
    const swept = await sweepOutbox(env, new Date(Date.now() + grace + 60_000));
    expect(swept.overdue).toBeGreaterThanOrEqual(1);
    await eventually(
      () => deliveryRow(d!.id),
      (r) => r.status === 'succeeded',
      15_000,
      'delivery sent by the overdue sweep',
    );
  });

  it('the notify-events consumer acks the message: a retry would store the event a second time', async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const failing = d1FailingBatchesMatching(await shardOf(h.handle), MARK_PENDING);
    const broken = captureQueue({ fail: true });
    const quiet = { ...env, ...allDeliveryQueues(broken.queue), [await shardName(h.handle)]: failing.db } as Env;
    // No sourceEventId: nothing would catch a second ingest of this message.
    const fb = fakeBatch('notify-events', [{ body: { handle: h.handle, type: 'order.paid', data: { orderId: 'o' } } }]);
    await worker.queue(fb.batch, quiet, createExecutionContext());
    expect(failing.failures()).toBe(2);
    expect(fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(await counts(h.handle)).toEqual({ notifications: 1, deliveries: 1 });
  });
});
