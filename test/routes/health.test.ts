/**
 * `GET /v2/handles/{handle}/health`, the delivery doctor (docs/design.md#routes, #debug-playbooks (playbook 3)): owner default email state,
 * critical coverage, failing webhooks with their projected auto-disable, dead deliveries of the last 24 h by class,
 * pending/stale/suppressed email subscriptions. Real Worker, real local D1; states the API cannot reach quickly
 * (a five-day failure streak, dead deliveries) are written to D1 as the service would write them.
 */

import { describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.ts';
import {
  addMember,
  anyShard,
  call,
  callJson,
  callWithVars,
  expectProblem,
  provisionHandle,
  shardOf,
  signJwt,
  unique,
} from '../support/helpers.ts';
import { assertMatchesDocument } from '../support/openapi-check.ts';
import { receiverUrl } from '../support/receivers.ts';
import { insertEmailSubscriptions, userJwt } from '../support/seed.ts';

type Row = Record<string, any>;

async function setup() {
  const owner = unique('hl-owner');
  const handle = await provisionHandle(owner);
  const token = await userJwt(owner);
  return { owner, handle, token, path: `/v2/handles/${handle}/health` };
}

async function health(path: string, token: string): Promise<Row> {
  const r = await callJson('GET', path, { token });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

async function setOwnerEmail(handle: string, token: string, email: string | null) {
  const r = await callJson('PUT', `/v2/handles/${handle}/notifications/owner-default-email`, {
    token,
    body: { email },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
}

async function createWebhook(handle: string, token: string, extra: Record<string, unknown> = {}) {
  const r = await callJson('POST', `/v2/handles/${handle}/webhooks`, {
    token,
    body: { url: receiverUrl('ok', unique('k')), ...extra },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body as { id: string; url: string };
}

/** A dead delivery whose terminal update happened at `updatedAt`. */
async function insertDeadDelivery(
  handle: string,
  d: {
    subscriptionId: string | null;
    target: string;
    errorClass: string | null;
    updatedAt: string;
    status?: string;
    kind?: 'event' | 'test';
  },
): Promise<string> {
  const id = newId('dlv', Date.parse(d.updatedAt) - 60_000);
  await (await shardOf(handle))
    .prepare(
      `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target, status,
       status_reason, attempt_count, last_error_class, created_at, updated_at)
     VALUES (?1, ?2, NULL, ?3, 'webhook', 'webhook', ?4, ?5, ?6, 'retries_exhausted', 8, ?7, ?8, ?9)`,
    )
    .bind(
      id,
      handle,
      d.kind ?? 'event',
      d.subscriptionId,
      d.target,
      d.status ?? 'dead',
      d.errorClass,
      new Date(Date.parse(d.updatedAt) - 60_000).toISOString(),
      d.updatedAt,
    )
    .run();
  return id;
}

/** A queued or retrying delivery as a crash leaves it: no message in any queue, its due time in the past. */
async function insertOpenDelivery(
  handle: string,
  d: { subscriptionId: string | null; target: string; status: string; updatedAt: string; nextAttemptAt: string | null },
): Promise<string> {
  const id = newId('dlv', Date.parse(d.updatedAt) - 60_000);
  await (await shardOf(handle))
    .prepare(
      `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target, status,
       status_reason, attempt_count, next_attempt_at, created_at, updated_at)
     VALUES (?1, ?2, NULL, 'event', 'webhook', 'webhook', ?3, ?4, ?5, NULL, ?6, ?7, ?8, ?8)`,
    )
    .bind(
      id,
      handle,
      d.subscriptionId,
      d.target,
      d.status,
      d.status === 'retrying' ? 1 : 0,
      d.nextAttemptAt,
      d.updatedAt,
    )
    .run();
  return id;
}

const CRITICAL_TYPES = ['fulfillment.failed', 'payment.failed', 'campaign.failed'];

describe('GET …/health', () => {
  it('a fresh handle: owner default unset, critical events not covered, status critical, warning owner_default_email_unset', async () => {
    const s = await setup();
    const h = await health(s.path, s.token);
    expect(h.handle).toBe(s.handle);
    expect(Math.abs(Date.parse(h.generatedAt) - Date.now())).toBeLessThan(10_000);
    expect(h.status).toBe('critical');
    expect(h.ownerDefaultEmail).toMatchObject({ state: 'unset', email: null });
    expect(h.ownerDefaultEmail.action).toMatch(/owner-default-email/);
    expect(h.criticalCoverage.covered).toBe(false);
    expect(h.criticalCoverage.action).not.toBeNull();
    const byType = Object.fromEntries(h.criticalCoverage.types.map((t: Row) => [t.type, t]));
    expect(Object.keys(byType).sort()).toEqual([...CRITICAL_TYPES].sort());
    for (const t of CRITICAL_TYPES) expect(byType[t]).toMatchObject({ recipients: 0, undeliverable: true });
    expect(h.warnings.map((w: Row) => w.code)).toContain('owner_default_email_unset');
    expect(h.webhooks).toEqual({ total: 0, enabled: 0, failing: [], disabled: [], paced: [] });
    expect(h.deadDeliveries24h).toMatchObject({ count: 0, byErrorClass: {}, recent: [], action: null });
    expect(h.emailSubscriptions).toMatchObject({ pendingConfirmation: [], stale: [], suppressed: [], action: null });
  });

  it('after the owner email is set: state set, every critical type covered, no warning, healthy', async () => {
    const s = await setup();
    const email = `owner-${unique('m')}@example.com`;
    await setOwnerEmail(s.handle, s.token, email);
    const h = await health(s.path, s.token);
    expect(h.ownerDefaultEmail).toMatchObject({ state: 'set', email, action: null });
    expect(h.criticalCoverage.covered).toBe(true);
    expect(h.criticalCoverage.action).toBeNull();
    for (const t of h.criticalCoverage.types) expect(t).toMatchObject({ recipients: 1, undeliverable: false });
    expect(h.warnings.map((w: Row) => w.code)).not.toContain('owner_default_email_unset');
    expect(h.status).toBe('healthy');

    // A suppressed owner address is set but not deliverable: coverage is lost again.
    await anyShard
      .prepare(`UPDATE email_subscriptions SET status = 'suppressed' WHERE handle = ? AND kind = 'owner_default'`)
      .bind(s.handle)
      .run();
    const again = await health(s.path, s.token);
    expect(again.ownerDefaultEmail.state).toBe('not_deliverable');
    // The action fits the state: the address is set, so "set an owner default email" would be wrong.
    expect(again.ownerDefaultEmail.action).toMatch(new RegExp(`^${email.replace(/[.]/g, '\\.')} is suppressed, so`));
    expect(again.ownerDefaultEmail.action).toContain('{"email": null}');
    expect(again.criticalCoverage.covered).toBe(false);
    expect(again.status).toBe('critical');
  });

  it('a failing webhook is listed with projectedAutoDisableAt = failing_since + 5 days; healthy and disabled ones are not', async () => {
    const s = await setup();
    await setOwnerEmail(s.handle, s.token, `owner-${unique('m')}@example.com`);
    const failing = await createWebhook(s.handle, s.token);
    const healthy = await createWebhook(s.handle, s.token);
    const disabled = await createWebhook(s.handle, s.token, { enabled: false });
    const failingSince = new Date(Date.now() - 2 * 86_400_000 - 12_345).toISOString();
    const lastSuccess = new Date(Date.now() - 3 * 86_400_000).toISOString();
    await anyShard
      .prepare(
        `UPDATE webhook_subscriptions SET consecutive_failures = 12, failing_since = ?2, last_failure_class = 'timeout',
         last_failure_at = ?3, last_success_at = ?4 WHERE id = ?1`,
      )
      .bind(failing.id, failingSince, new Date().toISOString(), lastSuccess)
      .run();

    const h = await health(s.path, s.token);
    expect(h.webhooks.total).toBe(3);
    expect(h.webhooks.enabled).toBe(2);
    expect(h.webhooks.failing).toHaveLength(1);
    expect(h.webhooks.failing[0]).toMatchObject({
      id: failing.id,
      url: failing.url,
      consecutiveFailures: 12,
      failingSince,
      lastFailureClass: 'timeout',
      lastSuccessAt: lastSuccess,
      projectedAutoDisableAt: new Date(Date.parse(failingSince) + 5 * 86_400_000).toISOString(),
    });
    expect(h.webhooks.failing[0].action).toContain(`/webhooks/${failing.id}/test`);
    expect(h.webhooks.failing.map((w: Row) => w.id)).not.toContain(healthy.id);
    expect(h.webhooks.disabled.map((w: Row) => w.id)).toEqual([disabled.id]);
    expect(h.status).toBe('degraded');
  });

  it('dead deliveries of the last 24 h are counted by error class; older and non-dead ones are not', async () => {
    const s = await setup();
    await setOwnerEmail(s.handle, s.token, `owner-${unique('m')}@example.com`);
    const wh = await createWebhook(s.handle, s.token);
    const now = Date.now();
    const recent = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString();
    const ids = [
      await insertDeadDelivery(s.handle, {
        subscriptionId: wh.id,
        target: wh.url,
        errorClass: 'timeout',
        updatedAt: recent(1),
      }),
      await insertDeadDelivery(s.handle, {
        subscriptionId: wh.id,
        target: wh.url,
        errorClass: 'timeout',
        updatedAt: recent(60),
      }),
      await insertDeadDelivery(s.handle, {
        subscriptionId: wh.id,
        target: wh.url,
        errorClass: 'http_5xx',
        updatedAt: recent(23 * 60),
      }),
    ];
    const old = await insertDeadDelivery(s.handle, {
      subscriptionId: wh.id,
      target: wh.url,
      errorClass: 'http_4xx',
      updatedAt: new Date(now - 2 * 86_400_000).toISOString(),
    });
    const retrying = await insertDeadDelivery(s.handle, {
      subscriptionId: wh.id,
      target: wh.url,
      errorClass: 'network',
      updatedAt: recent(2),
      status: 'retrying',
    });
    // Another handle's dead delivery never shows here.
    const other = await setup();
    const foreign = await insertDeadDelivery(other.handle, {
      subscriptionId: null,
      target: 'https://x.example.com',
      errorClass: 'tls',
      updatedAt: recent(1),
    });

    const h = await health(s.path, s.token);
    expect(h.deadDeliveries24h.count).toBe(3);
    expect(h.deadDeliveries24h.byErrorClass).toEqual({ timeout: 2, http_5xx: 1 });
    expect(h.deadDeliveries24h.recent.map((d: Row) => d.deliveryId)).toEqual(ids);
    expect(h.deadDeliveries24h.recent[0]).toMatchObject({
      subscriptionId: wh.id,
      target: wh.url,
      errorClass: 'timeout',
      at: recent(1),
    });
    const listed = h.deadDeliveries24h.recent.map((d: Row) => d.deliveryId);
    for (const id of [old, retrying, foreign]) expect(listed).not.toContain(id);
    expect(h.deadDeliveries24h.action).toMatch(/retry|recover/);
    expect(h.status).toBe('degraded');
  });

  it('a failed test send is not a dead production delivery: it does not count in deadDeliveries24h nor degrade the status', async () => {
    const s = await setup();
    await setOwnerEmail(s.handle, s.token, `owner-${unique('m')}@example.com`);
    const r = await callJson('POST', `/v2/handles/${s.handle}/webhooks`, {
      token: s.token,
      body: { url: receiverUrl('fail', unique('k')) },
    });
    expect(r.status).toBe(201);
    const t = await callJson('POST', `/v2/handles/${s.handle}/webhooks/${r.body.id}/test`, { token: s.token });
    expect(t.body.attempt.outcome).toBe('failed');
    const h = await health(s.path, s.token);
    // The test send is recorded as a dead delivery of kind `test`; it is not lost production work and cannot be
    // retried (POST …/deliveries/{id}/retry answers 422 for it), so the doctor must not report it.
    expect(h.deadDeliveries24h.recent.map((d: Row) => d.deliveryId)).not.toContain(t.body.deliveryId);
    expect(h.deadDeliveries24h.count).toBe(0);
    expect(h.status).toBe('healthy');
  });

  it('lists pending email subscriptions (and stale and suppressed ones) with what to do', async () => {
    const s = await setup();
    await setOwnerEmail(s.handle, s.token, `owner-${unique('m')}@example.com`);
    const email = `ops-${unique('m')}@example.com`;
    const created = await callJson('POST', `/v2/handles/${s.handle}/notifications/email-subscriptions`, {
      token: s.token,
      body: { email },
    });
    expect(created.status).toBe(201);
    const [staleId, suppressedId, activeId] = await insertEmailSubscriptions(s.handle, 3);
    await (await shardOf(s.handle)).batch([
      (await shardOf(s.handle))
        .prepare(
          `UPDATE email_subscriptions SET status = 'stale', status_reason = 'SNS subscription not found' WHERE id = ?`,
        )
        .bind(staleId),
      (await shardOf(s.handle))
        .prepare(`UPDATE email_subscriptions SET status = 'suppressed', status_reason = 'hard bounce' WHERE id = ?`)
        .bind(suppressedId),
    ]);
    const h = await health(s.path, s.token);
    expect(h.emailSubscriptions.pendingConfirmation).toEqual([
      { id: created.body.id, email, since: created.body.createdAt },
    ]);
    expect(h.emailSubscriptions.stale).toEqual([
      expect.objectContaining({ id: staleId, reason: 'SNS subscription not found' }),
    ]);
    expect(h.emailSubscriptions.suppressed).toEqual([
      expect.objectContaining({ id: suppressedId, reason: 'hard bounce' }),
    ]);
    const all = [
      ...h.emailSubscriptions.pendingConfirmation,
      ...h.emailSubscriptions.stale,
      ...h.emailSubscriptions.suppressed,
    ].map((e: Row) => e.id);
    expect(all).not.toContain(activeId);
    expect(h.emailSubscriptions.action).toMatch(/confirm/);
  });

  it('an undeliverable critical event of the last 24 h is counted and keeps the status critical', async () => {
    const s = await setup();
    const pub = await callJson('POST', `/v2/handles/${s.handle}/events`, {
      token: s.token,
      body: { type: 'payment.failed', data: { orderId: 'o1' } },
    });
    expect(pub.status).toBe(202);
    expect(pub.body.status).toBe('undeliverable');
    const h = await health(s.path, s.token);
    expect(h.criticalCoverage.undeliverable24h).toBe(1);
    expect(h.status).toBe('critical');
  });

  it('overdue deliveries: the count, the one due longest ago and what happens next; the status is degraded', async () => {
    const s = await setup();
    await setOwnerEmail(s.handle, s.token, `owner-${unique('m')}@example.com`);
    const wh = await createWebhook(s.handle, s.token);
    const quiet = await health(s.path, s.token);
    expect(quiet.overdueDeliveries).toEqual({ count: 0, oldest: null, next: null });
    expect(quiet.status).toBe('healthy');

    // Deliveries a crash left behind (no message in any queue), read with a one-minute grace. Due at most 2.5 min ago,
    // so the other tests' sweeps (5 min grace, a clock 2 min ahead) never take them first.
    const now = Date.now();
    const ago = (seconds: number) => new Date(now - seconds * 1000).toISOString();
    const open = (status: string, updatedAt: string, nextAttemptAt: string | null) =>
      insertOpenDelivery(s.handle, { subscriptionId: wh.id, target: wh.url, status, updatedAt, nextAttemptAt });
    const oldest = await open('queued', ago(150), null);
    await open('retrying', ago(20 * 60), ago(90));
    await open('queued', ago(20), null);
    // Its last attempt was long ago, but its next one is not due yet.
    await open('retrying', ago(20 * 60), new Date(now + 30_000).toISOString());
    const other = await setup();
    await insertOpenDelivery(other.handle, {
      subscriptionId: null,
      target: 'https://x.example.com',
      status: 'queued',
      updatedAt: ago(150),
      nextAttemptAt: null,
    });

    const res = await callWithVars({ OVERDUE_AFTER_SECONDS: '60' }, 'GET', s.path, { token: s.token });
    expect(res.status).toBe(200);
    const h = (await res.json()) as Row;
    await assertMatchesDocument('GET', s.path, 200, h);
    expect(h.overdueDeliveries).toMatchObject({
      count: 2,
      oldest: { deliveryId: oldest, status: 'queued', target: wh.url, dueAt: ago(150) },
    });
    expect(h.overdueDeliveries.next).toMatch(/2 deliveries are more than 1 min past the next attempt/);
    expect(h.overdueDeliveries.next).toMatch(/sweeper sends them again/);
    expect(h.status).toBe('degraded');

    // Under the default grace (5 min) none of them is overdue yet.
    expect((await health(s.path, s.token)).overdueDeliveries.count).toBe(0);
  });

  it('any member may read (viewer, notifications:read PAT scope); without notifications:read → 403; a non-member → 404', async () => {
    const s = await setup();
    const viewer = unique('viewer');
    await addMember(s.handle, viewer, 'viewer');
    expect(
      (await callJson('GET', s.path, { token: await signJwt({ sub: viewer, scope: 'notifications:read' }) })).status,
    ).toBe(200);
    await expectProblem(
      await call('GET', s.path, { token: await signJwt({ sub: s.owner, scope: 'webhooks:read' }) }),
      403,
    );
    const stranger = await setup();
    await expectProblem(await call('GET', s.path, { token: stranger.token }), 404);
    await expectProblem(await call('GET', s.path), 401);
  });
});
