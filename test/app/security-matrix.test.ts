/**
 * Security matrix (docs/design.md#api-conventions, #identity-access-and-limits, #delivery): BOLA, mass assignment, scope and role escalation, token edge cases, SSRF at
 * registration and at send time, redirects, response size cap, mail header injection, idempotency scoping,
 * secrets in logs / responses / rows, where SNS feedback may come from (#email), and hostile JSON and header values.
 * Every row is its own test, through the real Worker and real local D1.
 */

import { env, exports } from 'cloudflare:workers';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { consumeEvents } from '../../src/delivery/events-consumer.ts';
import { unsubscribeToken } from '../../src/email/unsubscribe.ts';
import { sha256Hex } from '../../src/lib/crypto.ts';
import { newId } from '../../src/lib/ids.ts';
import { meterD1 } from '../support/d1-meter.ts';
import { dohQueries, dohUrl } from '../support/doh.ts';
import {
  ALL_USER_SCOPES,
  AUDIENCE,
  addMember,
  anyShard,
  call,
  callJson,
  callWithVars,
  catalogData,
  createPat,
  expectProblem,
  ISSUER,
  provisionHandle,
  serviceJwt,
  shardName,
  shardOf,
  signJwt,
  unique,
} from '../support/helpers.ts';
import {
  attemptsOf,
  createWebhook,
  deliveryRow,
  eventually,
  fakeBatch,
  ingestQuiet,
  recordingEmail,
  runDeliveries,
  setupHandle,
  type TestHandle,
} from '../support/pipeline-helpers.ts';
import { hits, receiverUrl, setMode, waitForHits } from '../support/receivers.ts';
import {
  handleWithSnsTopic,
  notifierRequests,
  postSns,
  sesBounce,
  signSns,
  snsConfirmation,
  snsDeployment,
  strangerTopics,
} from '../support/sns-messages.ts';

const PROD = { ALLOW_INSECURE_WEBHOOK_TARGETS: 'false' } as Partial<Env>;
const DEV = { ENVIRONMENT: 'development' } as Partial<Env>;
const hooks = (h: string) => `/v2/handles/${h}/webhooks`;
const subs = (h: string) => `/v2/handles/${h}/notifications/email-subscriptions`;

/** Every row of a handle in every table that holds tenant data (plus attempts of its deliveries). */
async function snapshot(handle: string): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  // The control plane's rows of the handle, then its shard's (docs/design.md#shards).
  for (const t of ['handles', 'memberships']) {
    out[t] = (await env.DB.prepare(`SELECT * FROM ${t} WHERE handle = ? ORDER BY 1, 2`).bind(handle).all()).results;
  }
  out['shard.handles'] = (
    await anyShard.prepare('SELECT * FROM handles WHERE handle = ? ORDER BY 1, 2').bind(handle).all()
  ).results;
  for (const t of [
    'webhook_subscriptions',
    'email_subscriptions',
    'notifications',
    'deliveries',
    'notification_settings',
  ]) {
    out[t] = (await anyShard.prepare(`SELECT * FROM ${t} WHERE handle = ? ORDER BY 1, 2`).bind(handle).all()).results;
  }
  out.delivery_attempts = (
    await anyShard
      .prepare(
        'SELECT a.* FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.handle = ? ORDER BY a.id',
      )
      .bind(handle)
      .all()
  ).results;
  return out;
}

/** A victim handle with one of everything: webhook, email sub, owner default, notification and delivery. */
async function victim(shard?: 'SHARD_0' | 'SHARD_1') {
  const h = await setupHandle(shard);
  const wh = await createWebhook(h, { url: 'http://127.0.0.1:9/victim-hook' });
  const sub = await callJson('POST', subs(h.handle), {
    token: h.token,
    body: { email: `${unique('victim')}@example.com` },
  });
  expect(sub.status).toBe(201);
  const od = await call('PUT', `/v2/handles/${h.handle}/notifications/owner-default-email`, {
    token: h.token,
    body: { email: `${unique('owner')}@example.com` },
  });
  expect(od.status).toBeLessThan(300);
  const ingest = await ingestQuiet(h.handle, { type: 'order.paid' });
  const deliveryId = ingest.deliveryIds[0]!;
  // A dead delivery is redrivable: the retry route must still refuse it to a stranger.
  await anyShard.prepare(`UPDATE deliveries SET status = 'dead' WHERE id = ?`).bind(deliveryId).run();
  return {
    ...h,
    webhookId: wh.id,
    webhookSecret: wh.secret,
    subId: sub.body.id as string,
    notificationId: ingest.notificationId,
    deliveryId,
  };
}

async function expect404(res: Response, what: string): Promise<Record<string, any>> {
  const text = await res.text();
  expect(res.status, `${what}: ${text}`).toBe(404);
  const body = JSON.parse(text);
  expect(body.status, what).toBe(404);
  return body;
}

// ---------------------------------------------------------------------------------------------------------------
// 1. BOLA

describe('1. BOLA', () => {
  it('BOLA: every resource of another tenant (webhook, deliveries log, rotate, test, recover, email sub delete/test/resend, notification, delivery retry, settings, owner default, health, events) → 404, nothing leaked, rows unchanged', async () => {
    const a = await victim();
    const b = await setupHandle();
    // b also gets a webhook and email sub of its own, so its routes are real and populated.
    await createWebhook(b, { url: 'http://127.0.0.1:9/attacker-hook' });
    const before = await snapshot(a.handle);
    const since = new Date(Date.now() - 3600_000).toISOString();

    const requests: Array<[string, string, unknown?]> = [];
    // Through the attacker's own handle, with the victim's ids …
    for (const base of [`/v2/handles/${b.handle}`, `/v2/handles/${a.handle}`]) {
      requests.push(
        ['GET', `${base}/webhooks/${a.webhookId}`],
        ['PATCH', `${base}/webhooks/${a.webhookId}`, { url: 'http://127.0.0.1:9/stolen', enabled: false }],
        ['DELETE', `${base}/webhooks/${a.webhookId}`],
        ['GET', `${base}/webhooks/${a.webhookId}/deliveries`],
        ['POST', `${base}/webhooks/${a.webhookId}/rotate-secret`, { graceHours: 0 }],
        ['POST', `${base}/webhooks/${a.webhookId}/test`, {}],
        ['POST', `${base}/webhooks/${a.webhookId}/recover`, { since }],
        ['DELETE', `${base}/notifications/email-subscriptions/${a.subId}`],
        ['POST', `${base}/notifications/email-subscriptions/${a.subId}/test`, {}],
        ['POST', `${base}/notifications/email-subscriptions/${a.subId}/resend-confirmation`],
        ['GET', `${base}/notifications/${a.notificationId}`],
        ['POST', `${base}/deliveries/${a.deliveryId}/retry`],
      );
    }
    // … and the victim's handle-level resources directly.
    const av = `/v2/handles/${a.handle}`;
    requests.push(
      ['GET', `${av}/webhooks`],
      ['POST', `${av}/webhooks`, { url: 'http://127.0.0.1:9/injected' }],
      ['GET', `${av}/notifications`],
      ['GET', `${av}/notifications/email-subscriptions`],
      ['POST', `${av}/notifications/email-subscriptions`, { email: 'attacker@example.com' }],
      ['GET', `${av}/notification-settings`],
      [
        'PUT',
        `${av}/notification-settings`,
        {
          channels: { email: { enabled: false }, webhook: { enabled: false } },
          eventFilter: null,
          ownerFallback: 'none',
        },
      ],
      ['POST', `${av}/notification-settings/evaluate`, { eventType: 'order.paid' }],
      ['GET', `${av}/notifications/owner-default-email`],
      ['PUT', `${av}/notifications/owner-default-email`, { email: 'attacker@example.com' }],
      ['POST', `${av}/notifications/email-subscriptions/owner-default/test`, {}],
      ['GET', `${av}/health`],
      ['POST', `${av}/events`, { type: 'order.paid', data: { orderId: 'forged' } }],
      ['GET', av],
    );

    const failures: string[] = [];
    for (const [method, path, body] of requests) {
      const res = await call(method, path, { token: b.token, ...(body !== undefined ? { body } : {}) });
      const text = await res.text();
      if (res.status !== 404) failures.push(`${method} ${path} → ${res.status} ${text.slice(0, 200)}`);
      // The answer never carries the victim's data (the path itself is not echoed either: detail is generic).
      for (const s of [a.webhookSecret, `Store ${a.handle}`, a.owner]) {
        if (text.includes(s)) failures.push(`${method} ${path} leaked ${s}`);
      }
    }
    expect(failures).toEqual([]);
    expect(await snapshot(a.handle)).toEqual(before);
  });

  it('BOLA: a PAT of the attacker (all scopes) and a stranger service token see nothing of another tenant either', async () => {
    const a = await victim();
    const attacker = unique('attacker');
    await provisionHandle(attacker);
    const { token: pat } = await createPat(attacker);
    const svc = await signJwt({
      sub: 'svc:other',
      scope: 'events:publish webhooks:write notifications:write webhooks:read notifications:read',
      handles: ['some-other-handle'],
    });
    const before = await snapshot(a.handle);
    for (const token of [pat, svc]) {
      await expect404(await call('GET', `${hooks(a.handle)}/${a.webhookId}`, { token }), 'get webhook');
      await expect404(await call('DELETE', `${hooks(a.handle)}/${a.webhookId}`, { token }), 'delete webhook');
      await expect404(
        await call('POST', `/v2/handles/${a.handle}/deliveries/${a.deliveryId}/retry`, { token }),
        'retry',
      );
      await expect404(
        await call('POST', `/v2/handles/${a.handle}/events`, {
          token,
          body: { type: 'order.paid', data: catalogData('order.paid') },
        }),
        'events',
      );
      await expect404(
        await call('GET', `/v2/handles/${a.handle}/notifications/${a.notificationId}`, { token }),
        'notification',
      );
    }
    expect(await snapshot(a.handle)).toEqual(before);
  });

  it("BOLA: a test send on one's own webhook cannot replay another tenant's notification (notificationId) to one's receiver", async () => {
    const a = await victim();
    const b = await setupHandle();
    const key = unique('bola-replay');
    const wh = await createWebhook(b, { url: receiverUrl('ok', key) });
    const marker = unique('secret-order');
    const ingested = await ingestQuiet(a.handle, { type: 'order.paid', data: { orderId: marker } });
    const res = await call('POST', `${hooks(b.handle)}/${wh.id}/test`, {
      token: b.token,
      body: { notificationId: ingested.notificationId },
    });
    const text = await res.text();
    expect([404, 422], text).toContain(res.status);
    expect(text).not.toContain(marker);
    await new Promise((r) => setTimeout(r, 200));
    const got = await hits(key);
    expect(got.filter((h) => h.body.includes(marker))).toEqual([]);
    expect(got).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 2. Mass assignment

describe('2. Mass assignment', () => {
  it('Mass assignment: extra fields on every writable body → 400 naming the field, nothing written', async () => {
    const h = await setupHandle();
    const wh = await createWebhook(h, { url: 'http://127.0.0.1:9/mass' });
    const before = await snapshot(h.handle);
    const tokensBefore = (await env.DB.prepare('SELECT COUNT(*) AS n FROM access_tokens WHERE user_id = ?')
      .bind(h.owner)
      .first<{ n: number }>())!.n;
    const url = 'http://127.0.0.1:9/mass-2';
    const settings = {
      channels: { email: { enabled: true }, webhook: { enabled: true } },
      eventFilter: null,
      ownerFallback: 'critical',
    };
    const cases: Array<[string, string, Record<string, unknown>, string]> = [
      ['POST', hooks(h.handle), { url, id: 'whk_01JD3Q7X9T0000000000000000' }, 'body.id'],
      ['POST', hooks(h.handle), { url, handle: 'someone-else' }, 'body.handle'],
      ['POST', hooks(h.handle), { url, secret: 'whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=' }, 'body.secret'],
      ['POST', hooks(h.handle), { url, secretEncrypted: 'x' }, 'body.secretEncrypted'],
      ['POST', hooks(h.handle), { url, status: 'active' }, 'body.status'],
      ['POST', hooks(h.handle), { url, consecutiveFailures: -100 }, 'body.consecutiveFailures'],
      ['PATCH', `${hooks(h.handle)}/${wh.id}`, { handle: 'someone-else' }, 'body.handle'],
      ['PATCH', `${hooks(h.handle)}/${wh.id}`, { secret: 'whsec_x' }, 'body.secret'],
      ['PATCH', `${hooks(h.handle)}/${wh.id}`, { consecutiveFailures: 0, enabled: true }, 'body.consecutiveFailures'],
      ['PATCH', `${hooks(h.handle)}/${wh.id}`, { status: 'active' }, 'body.status'],
      ['PATCH', `${hooks(h.handle)}/${wh.id}`, { id: 'whk_other' }, 'body.id'],
      ['POST', subs(h.handle), { email: 'a@example.com', enabled: true }, 'body.enabled'],
      ['POST', subs(h.handle), { email: 'a@example.com', status: 'active' }, 'body.status'],
      ['POST', subs(h.handle), { email: 'a@example.com', kind: 'owner_default' }, 'body.kind'],
      ['POST', subs(h.handle), { email: 'a@example.com', handle: 'someone-else' }, 'body.handle'],
      ['POST', subs(h.handle), { email: 'a@example.com', id: 'esub_01JD3Q7X9T0000000000000000' }, 'body.id'],
      [
        'PUT',
        `/v2/handles/${h.handle}/notifications/owner-default-email`,
        { email: 'a@example.com', kind: 'owner_default' },
        'body.kind',
      ],
      [
        'PUT',
        `/v2/handles/${h.handle}/notifications/owner-default-email`,
        { email: 'a@example.com', status: 'active' },
        'body.status',
      ],
      ['PUT', `/v2/handles/${h.handle}/notification-settings`, { ...settings, version: 999 }, 'body.version'],
      ['PUT', `/v2/handles/${h.handle}/notification-settings`, { ...settings, handle: 'x' }, 'body.handle'],
      ['POST', '/v2/tokens', { name: 'x', scopes: ['webhooks:read'], userId: 'someone-else' }, 'body.userId'],
      ['POST', '/v2/tokens', { name: 'x', scopes: ['webhooks:read'], role: 'owner' }, 'body.role'],
      ['POST', '/v2/tokens', { name: 'x', scopes: ['webhooks:read'], id: 'tok_x' }, 'body.id'],
      ['POST', `${hooks(h.handle)}/${wh.id}/rotate-secret`, { graceHours: 1, secret: 'whsec_mine' }, 'body.secret'],
    ];
    const failures: string[] = [];
    for (const [method, path, body, field] of cases) {
      const res = await call(method, path, { token: h.token, body });
      const text = await res.text();
      if (res.status !== 400) {
        failures.push(`${method} ${path} ${JSON.stringify(body)} → ${res.status} ${text.slice(0, 160)}`);
        continue;
      }
      const paths = (JSON.parse(text).errors ?? []).map((e: { path: string }) => e.path);
      if (!paths.includes(field))
        failures.push(`${method} ${path}: errors ${JSON.stringify(paths)} do not name ${field}`);
    }
    expect(failures).toEqual([]);
    expect(await snapshot(h.handle)).toEqual(before);
    const tokensAfter = (await env.DB.prepare('SELECT COUNT(*) AS n FROM access_tokens WHERE user_id = ?')
      .bind(h.owner)
      .first<{ n: number }>())!.n;
    expect(tokensAfter).toBe(tokensBefore);
  });

  it('Mass assignment: the control plane cannot smuggle a role into a handle body, nor unknown fields into a membership', async () => {
    const svc = await serviceJwt();
    const handle = unique('h');
    const p = await expectProblem(
      await call('PUT', `/v2/internal/handles/${handle}`, {
        token: svc,
        body: { displayName: 'x', ownerUserId: 'u1', role: 'owner' },
      }),
      400,
    );
    expect(p.errors.map((e: { path: string }) => e.path)).toContain('body.role');
    expect(await env.DB.prepare('SELECT * FROM handles WHERE handle = ?').bind(handle).first()).toBeNull();
    const owned = await provisionHandle(unique('o'));
    const m = await expectProblem(
      await call('PUT', `/v2/internal/handles/${owned}/members/u2`, {
        token: svc,
        body: { role: 'viewer', userId: 'u3' },
      }),
      400,
    );
    expect(m.errors.map((e: { path: string }) => e.path)).toContain('body.userId');
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM memberships WHERE handle = ?').bind(owned).first('n')).toBe(
      1,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 3. Scope escalation

describe('3. Scope escalation', () => {
  it('Scope escalation: a PAT cannot be minted with scopes its creator lacks', async () => {
    const user = unique('u');
    const jwt = await signJwt({ sub: user, scope: 'notifications:read webhooks:read' });
    const p = await expectProblem(
      await call('POST', '/v2/tokens', { token: jwt, body: { name: 'x', scopes: ['webhooks:write'] } }),
      403,
    );
    expect(p.detail).toContain('webhooks:write');
    await expectProblem(
      await call('POST', '/v2/tokens', {
        token: jwt,
        body: { name: 'x', scopes: ['notifications:read', 'events:publish'] },
      }),
      403,
    );
    // What it holds is fine.
    expect(
      (await call('POST', '/v2/tokens', { token: jwt, body: { name: 'ok', scopes: ['webhooks:read'] } })).status,
    ).toBe(201);
    const rows = await env.DB.prepare('SELECT scopes FROM access_tokens WHERE user_id = ?')
      .bind(user)
      .all<{ scopes: string }>();
    expect(rows.results.map((r) => r.scopes)).toEqual(['webhooks:read']);
  });

  it('Scope escalation: a PAT cannot mint PATs, not even narrower ones, nor for another handle', async () => {
    const user = unique('u');
    const handle = await provisionHandle(user);
    const { token } = await createPat(user, { handle });
    for (const body of [
      { name: 'narrower', scopes: ['webhooks:read'] },
      { name: 'wider', scopes: ALL_USER_SCOPES.split(' ') },
      { name: 'other-handle', scopes: ['webhooks:read'], handle: 'some-other' },
    ]) {
      await expectProblem(await call('POST', '/v2/tokens', { token, body }), 403);
    }
    const n = await env.DB.prepare('SELECT COUNT(*) AS n FROM access_tokens WHERE user_id = ?').bind(user).first('n');
    expect(n).toBe(1);
  });

  it('Scope escalation: a PAT can never carry internal:provision (nor any non-user scope), and a PAT never reaches /v2/internal', async () => {
    const user = unique('u');
    const jwt = await signJwt({ sub: user, scope: `${ALL_USER_SCOPES} internal:provision` });
    // A JWT carrying internal:provision is a service token: it cannot mint PATs at all.
    await expectProblem(
      await call('POST', '/v2/tokens', { token: jwt, body: { name: 'x', scopes: ['internal:provision'] } }),
      400,
    );
    const userJwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    for (const scopes of [['internal:provision'], ['webhooks:read', 'internal:provision'], ['admin'], ['*']]) {
      const res = await call('POST', '/v2/tokens', { token: userJwt, body: { name: 'x', scopes } });
      expect([400, 403], `${scopes}`).toContain(res.status);
    }
    // Even a row forged with that scope in D1 gives a PAT no way into the control plane.
    const { token, id } = await createPat(user, { scopes: ['webhooks:read'] });
    await env.DB.prepare(`UPDATE access_tokens SET scopes = 'internal:provision' WHERE id = ?`).bind(id).run();
    await expectProblem(
      await call('PUT', `/v2/internal/handles/${unique('h')}`, {
        token,
        body: { displayName: 'x', ownerUserId: user },
      }),
      403,
    );
    expect(
      await env.DB.prepare('SELECT COUNT(*) AS n FROM access_tokens WHERE user_id = ?').bind(user).first('n'),
    ).toBe(1);
  });

  it('Scope escalation: a service token (handles claim), even with every user scope, cannot mint PATs', async () => {
    const handle = await provisionHandle(unique('owner'));
    const svc = await signJwt({ sub: 'svc:orders', scope: ALL_USER_SCOPES, handles: [handle] });
    for (const body of [
      { name: 'x', scopes: ['events:publish'] },
      { name: 'y', scopes: ['webhooks:read'], handle },
    ]) {
      await expectProblem(await call('POST', '/v2/tokens', { token: svc, body }), 403);
    }
    expect(
      await env.DB.prepare(`SELECT COUNT(*) AS n FROM access_tokens WHERE user_id = 'svc:orders'`).first('n'),
    ).toBe(0);
  });

  it('Scope escalation: a token with only *:read scopes cannot write anything (every write route → 403), JWT and PAT', async () => {
    const a = await victim();
    const readScopes = 'notifications:read webhooks:read';
    const jwt = await signJwt({ sub: a.owner, scope: readScopes });
    const { token: pat } = await createPat(a.owner, { scopes: readScopes.split(' ') });
    const base = `/v2/handles/${a.handle}`;
    const since = new Date(Date.now() - 3600_000).toISOString();
    const writes: Array<[string, string, unknown?]> = [
      ['POST', `${base}/webhooks`, { url: 'http://127.0.0.1:9/ro' }],
      ['PATCH', `${base}/webhooks/${a.webhookId}`, { enabled: false }],
      ['DELETE', `${base}/webhooks/${a.webhookId}`],
      ['POST', `${base}/webhooks/${a.webhookId}/test`, {}],
      ['POST', `${base}/webhooks/${a.webhookId}/rotate-secret`, {}],
      ['POST', `${base}/webhooks/${a.webhookId}/recover`, { since }],
      ['POST', `${base}/deliveries/${a.deliveryId}/retry`],
      ['POST', `${base}/notifications/email-subscriptions`, { email: 'ro@example.com' }],
      ['DELETE', `${base}/notifications/email-subscriptions/${a.subId}`],
      ['POST', `${base}/notifications/email-subscriptions/${a.subId}/test`, {}],
      ['POST', `${base}/notifications/email-subscriptions/${a.subId}/resend-confirmation`],
      ['PUT', `${base}/notifications/owner-default-email`, { email: 'ro@example.com' }],
      [
        'PUT',
        `${base}/notification-settings`,
        {
          channels: { email: { enabled: false }, webhook: { enabled: false } },
          eventFilter: null,
          ownerFallback: 'none',
        },
      ],
      ['POST', `${base}/events`, { type: 'order.paid', data: catalogData('order.paid') }],
    ];
    const before = await snapshot(a.handle);
    const failures: string[] = [];
    for (const token of [jwt, pat]) {
      for (const [method, path, body] of writes) {
        const res = await call(method, path, { token, ...(body !== undefined ? { body } : {}) });
        const text = await res.text();
        if (res.status !== 403)
          failures.push(`${token === pat ? 'PAT' : 'JWT'} ${method} ${path} → ${res.status} ${text.slice(0, 160)}`);
      }
    }
    // A read-only JWT can mint only a read-only PAT (checked above); the PAT cannot mint at all.
    const p = await call('POST', '/v2/tokens', { token: pat, body: { name: 'x', scopes: ['webhooks:read'] } });
    if (p.status !== 403) failures.push(`PAT POST /v2/tokens → ${p.status}`);
    expect(failures).toEqual([]);
    expect(await snapshot(a.handle)).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 4. Role escalation

describe('4. Role escalation', () => {
  it('Role escalation: a viewer with every scope cannot write anything', async () => {
    const a = await victim();
    const viewer = unique('viewer');
    await addMember(a.handle, viewer, 'viewer');
    const jwt = await signJwt({ sub: viewer, scope: ALL_USER_SCOPES });
    const { token: pat } = await createPat(viewer, { handle: a.handle });
    const base = `/v2/handles/${a.handle}`;
    const before = await snapshot(a.handle);
    const writes: Array<[string, string, unknown?]> = [
      ['POST', `${base}/webhooks`, { url: 'http://127.0.0.1:9/viewer' }],
      ['PATCH', `${base}/webhooks/${a.webhookId}`, { enabled: false }],
      ['DELETE', `${base}/webhooks/${a.webhookId}`],
      ['POST', `${base}/webhooks/${a.webhookId}/rotate-secret`, {}],
      ['POST', `${base}/webhooks/${a.webhookId}/test`, {}],
      ['POST', `${base}/deliveries/${a.deliveryId}/retry`],
      ['POST', `${base}/notifications/email-subscriptions`, { email: 'viewer@example.com' }],
      ['DELETE', `${base}/notifications/email-subscriptions/${a.subId}`],
      ['PUT', `${base}/notifications/owner-default-email`, { email: 'viewer@example.com' }],
      [
        'PUT',
        `${base}/notification-settings`,
        {
          channels: { email: { enabled: false }, webhook: { enabled: false } },
          eventFilter: null,
          ownerFallback: 'none',
        },
      ],
    ];
    const failures: string[] = [];
    for (const token of [jwt, pat]) {
      for (const [method, path, body] of writes) {
        const res = await call(method, path, { token, ...(body !== undefined ? { body } : {}) });
        if (res.status !== 403) failures.push(`${method} ${path} → ${res.status} ${(await res.text()).slice(0, 160)}`);
      }
    }
    expect(failures).toEqual([]);
    expect(await snapshot(a.handle)).toEqual(before);
  });

  it('Role escalation: a viewer with every scope cannot read where the handle lives (its shard, database size, rows)', async () => {
    const h = await setupHandle();
    const viewer = unique('viewer');
    await addMember(h.handle, viewer, 'viewer');
    const path = `/v2/handles/${h.handle}/placement`;
    for (const token of [await signJwt({ sub: viewer, scope: ALL_USER_SCOPES }), (await createPat(viewer)).token]) {
      const meter = meterD1();
      const problem = await expectProblem(await callWithVars(meter.vars, 'GET', path, { token }), 403);
      expect(problem.detail).toContain('owner or admin');
      expect(JSON.stringify(problem)).not.toMatch(/SHARD_|sizeBytes/);
      // Refused on the control plane: neither shard is asked anything.
      expect(meter.counts.SHARD_0 + meter.counts.SHARD_1, 'shard queries').toBe(0);
    }
  });

  it('Role escalation: an admin cannot set (or unset) the owner default email', async () => {
    const a = await victim();
    const admin = unique('admin');
    await addMember(a.handle, admin, 'admin');
    const jwt = await signJwt({ sub: admin, scope: ALL_USER_SCOPES });
    const { token: pat } = await createPat(admin);
    const before = await snapshot(a.handle);
    for (const token of [jwt, pat]) {
      for (const email of ['admin@example.com', null]) {
        const p = await expectProblem(
          await call('PUT', `/v2/handles/${a.handle}/notifications/owner-default-email`, { token, body: { email } }),
          403,
        );
        expect(p.requiredRoles).toEqual(['owner']);
      }
    }
    expect(await snapshot(a.handle)).toEqual(before);
  });

  it('Role escalation: a member (even an owner) cannot provision handles or memberships (/v2/internal/* with a user JWT or PAT → 403)', async () => {
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const jwt = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
    const { token: pat } = await createPat(owner);
    const before = await snapshot(handle);
    const fresh = unique('h');
    for (const token of [jwt, pat]) {
      await expectProblem(
        await call('PUT', `/v2/internal/handles/${handle}/members/${owner}-friend`, { token, body: { role: 'owner' } }),
        403,
      );
      await expectProblem(
        await call('PUT', `/v2/internal/handles/${handle}/members/${owner}`, { token, body: { role: 'owner' } }),
        403,
      );
      await expectProblem(await call('DELETE', `/v2/internal/handles/${handle}/members/${owner}`, { token }), 403);
      await expectProblem(
        await call('PUT', `/v2/internal/handles/${fresh}`, {
          token,
          body: { displayName: 'mine', ownerUserId: owner },
        }),
        403,
      );
    }
    // A viewer promoting themselves.
    const viewer = unique('viewer');
    await addMember(handle, viewer, 'viewer');
    const vjwt = await signJwt({ sub: viewer, scope: ALL_USER_SCOPES });
    await expectProblem(
      await call('PUT', `/v2/internal/handles/${handle}/members/${viewer}`, { token: vjwt, body: { role: 'owner' } }),
      403,
    );
    const after = await snapshot(handle);
    expect(after.handles).toEqual(before.handles);
    expect(after.memberships).toEqual([
      ...(before.memberships ?? []),
      expect.objectContaining({ user_id: viewer, role: 'viewer' }),
    ]);
    expect(await env.DB.prepare('SELECT * FROM handles WHERE handle = ?').bind(fresh).first()).toBeNull();
  });

  it('Role escalation: only a service token with internal:provision moves a handle between shards (an owner JWT or PAT, a publishing service token → 403; no token → 401; nothing moves)', async () => {
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const from = await shardName(handle);
    const toShard = from === 'SHARD_0' ? 1 : 0;
    const jwt = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
    const { token: pat } = await createPat(owner);
    const publisher = await signJwt({ sub: 'svc:orders', scope: 'events:publish', handles: [handle] });
    const everything = await signJwt({ sub: 'svc:all', scope: 'events:publish webhooks:write', handles: '*' });
    const path = `/v2/internal/handles/${handle}/move`;
    for (const token of [jwt, pat, publisher, everything]) {
      await expectProblem(await call('POST', path, { token, body: { toShard } }), 403);
      await expectProblem(await call('GET', path, { token }), 403);
    }
    await expectProblem(await call('POST', path, { body: { toShard } }), 401);
    expect(await shardName(handle)).toBe(from);
    expect(await env.DB.prepare('SELECT * FROM handle_moves WHERE handle = ?1').bind(handle).first()).toBeNull();
  });

  it('Role escalation: a service token for handle A cannot touch handle B', async () => {
    const a = await setupHandle();
    const b = await victim();
    const svc = await signJwt({
      sub: 'svc:orders',
      scope: 'events:publish webhooks:write webhooks:read notifications:write notifications:read',
      handles: [a.handle],
    });
    // It does work on A.
    expect(
      (
        await call('POST', `/v2/handles/${a.handle}/events`, {
          token: svc,
          body: { type: 'order.paid', data: { orderId: 'x' } },
        })
      ).status,
    ).toBe(202);
    const before = await snapshot(b.handle);
    const base = `/v2/handles/${b.handle}`;
    for (const [method, path, body] of [
      ['POST', `${base}/events`, { type: 'order.paid', data: catalogData('order.paid') }],
      ['GET', `${base}/webhooks`],
      ['POST', `${base}/webhooks`, { url: 'http://127.0.0.1:9/svc' }],
      ['DELETE', `${base}/webhooks/${b.webhookId}`],
      ['GET', `${base}/notifications/${b.notificationId}`],
      ['POST', `${base}/deliveries/${b.deliveryId}/retry`],
      [
        'PUT',
        `${base}/notification-settings`,
        {
          channels: { email: { enabled: false }, webhook: { enabled: false } },
          eventFilter: null,
          ownerFallback: 'none',
        },
      ],
      // With A's path but B's ids.
      ['GET', `/v2/handles/${a.handle}/webhooks/${b.webhookId}`],
      ['POST', `/v2/handles/${a.handle}/deliveries/${b.deliveryId}/retry`],
    ] as Array<[string, string, unknown?]>) {
      await expect404(
        await call(method, path, { token: svc, ...(body !== undefined ? { body } : {}) }),
        `${method} ${path}`,
      );
    }
    expect(await snapshot(b.handle)).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 5. JWT and PAT edge cases

function b64url(obj: unknown): string {
  return btoa(JSON.stringify(obj)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

describe('5. Tokens', () => {
  it('JWT: signed with the PAT hash (or the PAT itself) as HMAC secret → 401', async () => {
    const user = unique('u');
    const { token: pat } = await createPat(user);
    const hash = await sha256Hex(pat);
    for (const secret of [hash, pat]) {
      const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES, secret });
      const p = await expectProblem(await call('GET', '/v2/tokens', { token: jwt }), 401);
      expect(p.detail).toMatch(/signature/);
    }
  });

  it('JWT: alg HS256 with a JWKS-style kid/jku header → 401 under JWKS config, and the jku is never fetched', async () => {
    const key = unique('jwks');
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: unique('u'), scope: ALL_USER_SCOPES };
    const sign = (secret: string, header: Record<string, unknown>) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', ...header })
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .sign(new TextEncoder().encode(secret));
    const jku = receiverUrl('ok', key);
    // Production-like: a JWKS URL is configured → only RS256/ES256; an HS256 token (alg confusion) is refused before any key lookup.
    const jwksVars = { JWT_JWKS_URL: receiverUrl('ok', `${key}-jwks`), JWT_ALGORITHMS: '' } as Partial<Env>;
    const confused = await sign(env.JWT_SECRET!, { kid: 'prod-key-1', jku, typ: 'JWT' });
    const p = await expectProblem(await callWithVars(jwksVars, 'GET', '/v2/tokens', { token: confused }), 401);
    expect(p.detail).toMatch(/algorithm/);
    // Local HS256 mode: a kid/jku pointing at an attacker's key set never changes which key verifies.
    const attackerSigned = await sign('attacker-secret-attacker-secret-attacker-secret', { kid: 'attacker', jku });
    await expectProblem(await call('GET', '/v2/tokens', { token: attackerSigned }), 401);
    await new Promise((r) => setTimeout(r, 100));
    expect(await hits(key)).toEqual([]);
    expect(await hits(`${key}-jwks`)).toEqual([]);
  });

  it('Tokens in the query string (?access_token=, ?token=) are ignored → 401', async () => {
    const user = unique('u');
    const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    const { token: pat } = await createPat(user);
    for (const t of [jwt, pat]) {
      for (const q of ['access_token', 'token', 'bearer', 'authorization']) {
        const res = await call('GET', `/v2/tokens?${q}=${encodeURIComponent(t)}`);
        await expectProblem(res, 401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      }
    }
    // Nor in a form body or a cookie.
    await expectProblem(await call('GET', '/v2/tokens', { headers: { cookie: `access_token=${jwt}` } }), 401);
  });

  it('Bearer with two tokens (space, comma, two headers) → 401', async () => {
    const user = unique('u');
    const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    const { token: pat } = await createPat(user);
    for (const header of [
      `Bearer ${jwt} ${pat}`,
      `Bearer ${pat} ${jwt}`,
      `Bearer ${jwt}, Bearer ${pat}`,
      `Bearer ${jwt},${pat}`,
      `Bearer ${jwt} Bearer ${jwt}`,
    ]) {
      await expectProblem(await call('GET', '/v2/tokens', { headers: { authorization: header } }), 401);
    }
    const h = new Headers();
    h.append('authorization', `Bearer ${jwt}`);
    h.append('authorization', `Bearer ${pat}`);
    await expectProblem(
      await call('GET', '/v2/tokens', { headers: Object.fromEntries([['authorization', h.get('authorization')!]]) }),
      401,
    );
  });

  it('A revoked PAT used concurrently with its revocation ends in 401 afterwards, for reads and writes', async () => {
    const user = unique('u');
    const handle = await provisionHandle(user);
    const { token: pat, id } = await createPat(user, { handle });
    const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    const racing = Array.from({ length: 8 }, (_, i) =>
      i % 2
        ? call('GET', `/v2/handles/${handle}/webhooks`, { token: pat })
        : call('POST', `/v2/handles/${handle}/notifications/email-subscriptions`, {
            token: pat,
            body: { email: `${unique('race')}@example.com` },
          }),
    );
    const [revoke, ...during] = await Promise.all([call('DELETE', `/v2/tokens/${id}`, { token: jwt }), ...racing]);
    expect(revoke.status).toBe(204);
    for (const r of during) expect([200, 201, 401]).toContain(r.status);
    for (let i = 0; i < 3; i++) {
      const p = await expectProblem(await call('GET', `/v2/handles/${handle}/webhooks`, { token: pat }), 401);
      expect(p.detail).toMatch(/revoked/);
      await expectProblem(
        await call('POST', `/v2/handles/${handle}/webhooks`, { token: pat, body: { url: 'http://127.0.0.1:9/late' } }),
        401,
      );
    }
    const row = await env.DB.prepare('SELECT revoked_at FROM access_tokens WHERE id = ?')
      .bind(id)
      .first<{ revoked_at: string | null }>();
    expect(row?.revoked_at).toEqual(expect.any(String));
    // Revoking again, or revoking with the PAT itself, does not un-revoke.
    await call('DELETE', `/v2/tokens/${id}`, { token: jwt });
    expect(
      (await env.DB.prepare('SELECT revoked_at FROM access_tokens WHERE id = ?')
        .bind(id)
        .first<{ revoked_at: string }>())!.revoked_at,
    ).toBe(row!.revoked_at);
  });

  it('A forged unsigned token with a PAT-like prefix or a JWT header with alg none in mixed case → 401', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const alg of ['None', 'NONE', 'nOnE']) {
      const token = `${b64url({ alg, typ: 'JWT' })}.${b64url({ sub: 'x', scope: ALL_USER_SCOPES, exp: now + 600, iss: ISSUER, aud: AUDIENCE })}.`;
      await expectProblem(await call('GET', '/v2/tokens', { token }), 401);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 6. SSRF

describe('6. SSRF', () => {
  it('SSRF at registration: metadata IPs in every notation → 422, nothing created', async () => {
    const h = await setupHandle();
    const urls = [
      'https://169.254.169.254/latest/meta-data/',
      'https://169.254.169.254./latest',
      'https://2852039166/latest',
      'https://0xa9fea9fe/latest',
      'https://0xA9.0xFE.0xA9.0xFE/latest',
      'https://0251.0376.0251.0376/latest',
      'https://0251.254.169.254/latest',
      'https://169.254.43518/latest',
      'https://169.16689662/latest',
      'https://%31%36%39.254.169.254/latest',
      'https://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/latest',
      'https://[::ffff:169.254.169.254]/latest',
      'https://[::ffff:a9fe:a9fe]/latest',
      'https://[0:0:0:0:0:ffff:a9fe:a9fe]/latest',
      'https://[64:ff9b::a9fe:a9fe]/latest',
      'https://[fd00:ec2::254]/latest',
      'https://[fe80::a9fe:a9fe]/latest',
      'https://100.100.100.200/latest', // Alibaba metadata (CGNAT range)
      'https://[::]/latest',
      'https://0/latest',
      'https://127.1/',
      'https://0x7f000001/',
      'https://[::1]/',
      'https://[::ffff:127.0.0.1]/',
      'https://[2002:a9fe:a9fe::]/',
    ];
    const failures: string[] = [];
    for (const url of urls) {
      const res = await callWithVars(PROD, 'POST', hooks(h.handle), { token: h.token, body: { url } });
      const text = await res.text();
      if (res.status !== 422) failures.push(`${url} → ${res.status} ${text.slice(0, 160)}`);
    }
    expect(failures).toEqual([]);
    expect((await callJson('GET', hooks(h.handle), { token: h.token })).body.data).toEqual([]);
  });

  it('SSRF at registration: IP-ish and private DNS names, userinfo and parser tricks → 422, nothing created', async () => {
    const h = await setupHandle();
    const urls = [
      'https://metadata/computeMetadata/v1/',
      'https://metadata.google.internal/computeMetadata/v1/',
      'https://metadata.google.internal./computeMetadata/v1/',
      'https://instance-data/latest',
      'https://METADATA.GOOGLE.INTERNAL/x',
      'https://localhost/x',
      'https://localhost./x',
      'https://api.localhost/x',
      'https://printer.local/x',
      'https://router.home.arpa/x',
      'https://a.0x10/x',
      'https://hooks.example.123/x',
      'https://example.com@169.254.169.254/latest',
      'https://user:pass@example.com/x',
      'https://:@169.254.169.254/latest',
      'https://example.com%40169.254.169.254/latest',
      'https://169.254.169.254\\@example.com/latest',
      'https://169.254.169.254#@example.com/',
      'https://example.com#@169.254.169.254/',
      'https://example.com:80/x',
      'https://example.com:0/x',
      'http://example.com/x',
      'https:/\\169.254.169.254/latest',
      'https://169.254.169.254%2f@example.com/',
      ' https://169.254.169.254/',
      'https://exa\tmple.com/x',
      'https://exa\r\nmple.com/x',
    ];
    const failures: string[] = [];
    for (const url of urls) {
      const res = await callWithVars(PROD, 'POST', hooks(h.handle), { token: h.token, body: { url } });
      const text = await res.text();
      if (res.status !== 422 && res.status !== 400)
        failures.push(`${JSON.stringify(url)} → ${res.status} ${text.slice(0, 160)}`);
    }
    expect(failures).toEqual([]);
    expect((await callJson('GET', hooks(h.handle), { token: h.token })).body.data).toEqual([]);
    // PATCH cannot smuggle one in either.
    const wh = await createWebhook(h, { url: 'https://hooks.example.com/ok' });
    for (const url of ['https://169.254.169.254/latest', 'https://0xa9fea9fe/', 'https://metadata.google.internal/']) {
      const res = await callWithVars(PROD, 'PATCH', `${hooks(h.handle)}/${wh.id}`, { token: h.token, body: { url } });
      expect(res.status, url).toBe(422);
    }
    expect(await anyShard.prepare('SELECT url FROM webhook_subscriptions WHERE id = ?').bind(wh.id).first('url')).toBe(
      'https://hooks.example.com/ok',
    );
  });

  it('SSRF at send time: a webhook URL edited in D1 to a metadata/private/loopback address → blocked_destination, never fetched', async () => {
    const h = await setupHandle();
    const key = unique('ssrf');
    const wh = await createWebhook(h, { url: receiverUrl('ok', key) });
    const { deliveryIds } = await ingestQuiet(h.handle, { type: 'order.paid' });
    expect(deliveryIds).toHaveLength(1);
    const prodEnv = { ...env, ...PROD } as Env;
    // 1) Still the receiver URL (loopback http), but production rules: never fetched.
    const r1 = await runDeliveries(deliveryIds, { env: prodEnv });
    expect(r1.fb.outcomes[0]!.calls).toHaveLength(1);
    const a1 = await attemptsOf(deliveryIds[0]!);
    expect(a1.at(-1)?.error_class).toBe('blocked_destination');
    // 2) Edited directly to the metadata service and to other private targets (https, so only the host rule decides).
    const targets = [
      'http://169.254.169.254/latest',
      'https://169.254.169.254/latest/meta-data/iam/security-credentials/',
      'https://0xa9fea9fe/latest',
      'https://[::ffff:a9fe:a9fe]/latest',
      'https://10.0.0.1/',
      'https://metadata.google.internal/computeMetadata/v1/',
      `https://127.0.0.1:${new URL(receiverUrl('ok', key)).port}/r/ok/${key}`,
    ];
    for (const target of targets) {
      await anyShard.prepare('UPDATE webhook_subscriptions SET url = ? WHERE id = ?').bind(target, wh.id).run();
      await anyShard
        .prepare(`UPDATE deliveries SET target = ?, status = 'queued' WHERE id = ?`)
        .bind(target, deliveryIds[0])
        .run();
      const before = (await attemptsOf(deliveryIds[0]!)).length;
      await runDeliveries(deliveryIds, { env: prodEnv, attempts: 2 });
      const attempts = await attemptsOf(deliveryIds[0]!);
      expect(attempts.length, target).toBe(before + 1);
      expect(attempts.at(-1)!.error_class, target).toBe('blocked_destination');
      expect(attempts.at(-1)!.http_status, target).toBeNull();
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(await hits(key)).toEqual([]);
    const row = await deliveryRow(deliveryIds[0]!);
    expect(row.last_error_class).toBe('blocked_destination');
  });

  it('SSRF at send time over DNS: a name that resolves (DoH, stubbed) to a private address → blocked_destination, target never hit', async () => {
    const h = await setupHandle();
    const doh = dohUrl();
    const port = new URL(receiverUrl('ok', 'x')).port;
    const cases = [
      // Production rules: an https URL with a public-looking name passes registration; only DNS can tell.
      { vars: { ...PROD, DNS_OVER_HTTPS_URL: doh }, url: (k: string) => `https://${k}.a-169-254-169-254.test/latest` },
      { vars: { ...PROD, DNS_OVER_HTTPS_URL: doh }, url: (k: string) => `https://${k}.cname-a-10-0-0-7.test/hook` },
      { vars: { ...PROD, DNS_OVER_HTTPS_URL: doh }, url: (k: string) => `https://${k}.aaaa-fd00--2.test/hook` },
      // Even with insecure targets allowed (which lets a developer type 127.0.0.1), a NAME resolving to loopback is refused.
      { vars: { DNS_OVER_HTTPS_URL: doh }, url: (k: string) => `http://${k}.a-127-0-0-1.test:${port}/r/ok/${k}` },
    ];
    for (const c of cases) {
      const key = unique('dns');
      const url = c.url(key);
      const created = await callWithVars(c.vars, 'POST', hooks(h.handle), { token: h.token, body: { url } });
      expect(created.status, `${url}: ${await created.clone().text()}`).toBe(201);
      const id = ((await created.json()) as { id: string }).id;
      const { deliveryIds } = await ingestQuiet(h.handle, { type: 'order.paid' });
      const mine = [];
      for (const d of deliveryIds) if ((await deliveryRow(d)).subscription_id === id) mine.push(d);
      expect(mine, url).toHaveLength(1);
      const { fb } = await runDeliveries(mine, { env: { ...env, ...c.vars } as Env });
      // Terminal at once: a private answer is a verdict, not a transient failure.
      expect(fb.outcomes[0]!.acked, url).toBe(true);
      const attempt = (await attemptsOf(mine[0]!)).at(-1)!;
      expect(attempt.error_class, url).toBe('blocked_destination');
      expect(attempt.http_status, url).toBeNull();
      expect((await deliveryRow(mine[0]!)).status, url).toBe('dead');
      const host = new URL(url).hostname;
      expect((await dohQueries(host)).length, url).toBeGreaterThanOrEqual(2);
      await callWithVars(c.vars, 'DELETE', `${hooks(h.handle)}/${id}`, { token: h.token });
      expect(await hits(key)).toEqual([]);
    }
    // The test-send route runs the same check and says why.
    const key = unique('dns-test');
    const vars = { ...PROD, DNS_OVER_HTTPS_URL: doh };
    const created = await callWithVars(vars, 'POST', hooks(h.handle), {
      token: h.token,
      body: { url: `https://${key}.a-10-9-8-7.test/x` },
    });
    const id = ((await created.json()) as { id: string }).id;
    const t = await callWithVars(vars, 'POST', `${hooks(h.handle)}/${id}/test`, { token: h.token, body: {} });
    const text = await t.text();
    expect(t.status, text).toBe(200);
    expect(text).toContain('blocked_destination');
    expect(text).toContain('10.9.8.7');
  });

  it('SSRF at send time over DNS: a failed lookup (NXDOMAIN, resolver down) is retried as a network error, not blocked', async () => {
    const h = await setupHandle();
    const doh = dohUrl();
    for (const [vars, url] of [
      [{ ...PROD, DNS_OVER_HTTPS_URL: doh }, `https://${unique('nx')}.nx.test/hook`],
      [
        { ...PROD, DNS_OVER_HTTPS_URL: 'http://127.0.0.1:1/dns-query' },
        `https://${unique('down')}.a-8-8-8-8.test/hook`,
      ],
    ] as const) {
      const created = await callWithVars(vars, 'POST', hooks(h.handle), { token: h.token, body: { url } });
      const id = ((await created.json()) as { id: string }).id;
      const { deliveryIds } = await ingestQuiet(h.handle, { type: 'order.paid' });
      const mine = [];
      for (const d of deliveryIds) if ((await deliveryRow(d)).subscription_id === id) mine.push(d);
      const { fb } = await runDeliveries(mine, { env: { ...env, ...vars } as Env });
      expect(fb.outcomes[0]!.retried, url).toBe(true);
      const attempt = (await attemptsOf(mine[0]!)).at(-1)!;
      expect(attempt.error_class, url).toBe('network');
      expect(attempt.error_message, url).toMatch(/NXDOMAIN|DNS lookup/);
      await callWithVars(vars, 'DELETE', `${hooks(h.handle)}/${id}`, { token: h.token });
    }
  });

  it('SSRF at send time: a test send (…/test) to a webhook whose URL breaks production rules → blocked_destination, never fetched', async () => {
    const h = await setupHandle();
    const key = unique('ssrf-test');
    const wh = await createWebhook(h, { url: receiverUrl('ok', key) });
    const res = await callWithVars(PROD, 'POST', `${hooks(h.handle)}/${wh.id}/test`, { token: h.token, body: {} });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(text).toContain('blocked_destination');
    await anyShard
      .prepare('UPDATE webhook_subscriptions SET url = ? WHERE id = ?')
      .bind('https://169.254.169.254/latest', wh.id)
      .run();
    const meta = await callWithVars(PROD, 'POST', `${hooks(h.handle)}/${wh.id}/test`, { token: h.token, body: {} });
    const metaText = await meta.text();
    expect(meta.status, metaText).toBe(200);
    expect(metaText).toContain('blocked_destination');
    await new Promise((r) => setTimeout(r, 200));
    expect(await hits(key)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 7, 8. Redirects and response size

describe('7–8. Responses', () => {
  it('Redirects never followed: a 302 to another receiver path → that path is never hit, class http_3xx', async () => {
    const h = await setupHandle();
    const key = unique('redir');
    await createWebhook(h, { url: receiverUrl('redirect', key) });
    const { deliveryIds } = await ingestQuiet(h.handle, { type: 'order.paid' });
    const { fb } = await runDeliveries(deliveryIds);
    expect(fb.outcomes[0]!.retried).toBe(true);
    const [hit] = await waitForHits(key, 1);
    expect(hit!.response!.status).toBe(302);
    const attempt = (await attemptsOf(deliveryIds[0]!)).at(-1)!;
    expect(attempt.error_class).toBe('http_3xx');
    expect(attempt.http_status).toBe(302);
    await new Promise((r) => setTimeout(r, 200));
    expect(await hits(`${key}-redirected`)).toEqual([]);
    expect(await hits(key)).toHaveLength(1);
    // The test-send path uses the same client: no redirect there either.
    const wh = (await callJson('GET', hooks(h.handle), { token: h.token })).body.data[0];
    const t = await callJson('POST', `${hooks(h.handle)}/${wh.id}/test`, { token: h.token, body: {} });
    expect(t.status).toBe(200);
    await waitForHits(key, 2);
    expect(await hits(`${key}-redirected`)).toEqual([]);
  });

  it('Response size cap: a 50 MB answer → stored snippet ≤ 4096 bytes, the attempt finishes quickly', async () => {
    const h = await setupHandle();
    const key = unique('huge');
    await createWebhook(h, { url: receiverUrl('huge', key) });
    const { deliveryIds } = await ingestQuiet(h.handle, { type: 'order.paid' });
    const started = Date.now();
    const { fb } = await runDeliveries(deliveryIds);
    const elapsed = Date.now() - started;
    expect(fb.outcomes[0]!.acked).toBe(true);
    expect(elapsed).toBeLessThan(10_000);
    const attempt = (await attemptsOf(deliveryIds[0]!)).at(-1)!;
    expect(attempt.outcome).toBe('succeeded');
    expect(attempt.http_status).toBe(200);
    expect(new TextEncoder().encode(attempt.response_snippet ?? '').byteLength).toBeLessThanOrEqual(4096);
    expect((attempt.response_snippet ?? '').length).toBeGreaterThan(0);
    // The API's delivery log shows no more than that either.
    const wh = (await callJson('GET', hooks(h.handle), { token: h.token })).body.data[0];
    const log = await call('GET', `${hooks(h.handle)}/${wh.id}/deliveries`, { token: h.token });
    expect(log.status).toBe(200);
    expect((await log.text()).length).toBeLessThan(64 * 1024);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 9. Mail header injection

describe('9. Mail header injection', () => {
  it('Header injection in mail: CR/LF in a subscription address or event data cannot add headers', async () => {
    const h = await setupHandle();
    const devEnv = { ...env, ...DEV } as Env;
    // The address: refused, or stored without any line break.
    for (const email of [
      'ops@example.com\r\nBcc: evil@evil.example',
      'ops@example.com\nBcc: evil@evil.example',
      'ops\r\n@example.com',
      '"a\r\nBcc: x"@example.com',
    ]) {
      const res = await callWithVars(DEV, 'POST', subs(h.handle), { token: h.token, body: { email } });
      expect([400, 422], JSON.stringify(email)).toContain(res.status);
    }
    const trailing = await callWithVars(DEV, 'POST', subs(h.handle), {
      token: h.token,
      body: { email: `${unique('trail')}@example.com\r\n` },
    });
    if (trailing.status === 201) expect(((await trailing.json()) as { email: string }).email).not.toMatch(/[\r\n]/);
    const rows = await anyShard
      .prepare('SELECT email, email_normalized FROM email_subscriptions WHERE handle = ?')
      .bind(h.handle)
      .all<{ email: string }>();
    for (const r of rows.results) expect(JSON.stringify(r)).not.toMatch(/\\r|\\n|bcc/i);

    // An active subscriber, and an event whose data is full of header-looking lines.
    const email = `${unique('inj')}@example.com`;
    const created = await callWithVars(DEV, 'POST', subs(h.handle), { token: h.token, body: { email } });
    expect(created.status).toBe(201);
    const subId = ((await created.json()) as { id: string }).id;
    await anyShard
      .prepare(`UPDATE email_subscriptions SET status = 'active', confirmed_at = ? WHERE id = ?`)
      .bind(new Date().toISOString(), subId)
      .run();
    const evil = 'x\r\nBcc: evil@evil.example\r\nX-Injected: 1\r\n\r\n<html>body</html>';
    const { deliveryIds } = await ingestQuiet(
      h.handle,
      {
        type: 'order.paid',
        data: { orderId: evil, customerName: 'Jane\nSubject: hacked', 'X-Key\r\nBcc': 'evil@evil.example' },
        source: 'orders\r\nBcc: evil@evil.example',
      },
      DEV,
    );
    const mailIds: string[] = [];
    for (const id of deliveryIds) {
      const row = await deliveryRow(id);
      if (row.channel === 'email' && row.target.includes(email.split('@')[0]!)) mailIds.push(id);
    }
    expect(mailIds).toHaveLength(1);
    const rec = recordingEmail();
    const { fb } = await runDeliveries(mailIds, { env: { ...devEnv, EMAIL: rec.binding } as Env });
    expect(fb.outcomes[0]!.acked).toBe(true);
    const mine = rec.sent.filter((m) => m.to === email);
    expect(mine).toHaveLength(1);
    // The structured message the binding writes the MIME from (docs/design.md#email): one recipient, no cc/bcc, and
    // no line break in the subject or any header value, so nothing in the data can start a header of its own.
    const sent = mine[0]!;
    expect(sent.fields).toEqual(['from', 'headers', 'html', 'subject', 'text', 'to']);
    const names = Object.keys(sent.headers).map((n) => n.toLowerCase());
    expect(names).not.toContain('bcc');
    expect(names).not.toContain('x-injected');
    for (const value of [sent.subject, ...Object.values(sent.headers)]) expect(value).not.toMatch(/[\r\n]/);
    expect(new Set(names)).toEqual(
      new Set(['list-unsubscribe', 'list-unsubscribe-post', ...names.filter((n) => n.startsWith('x-gharart-'))]),
    );

    // The local mailbox records exactly the expected extra headers.
    const box = await callWithVars(DEV, 'GET', `/dev/mailbox?format=json&to=${encodeURIComponent(email)}`);
    const mails = ((await box.json()) as { data: Array<{ subject: string; headers: Record<string, string> }> }).data;
    const notif = mails.filter((m) => !/confirm/i.test(m.subject));
    expect(notif).toHaveLength(1);
    const extra = Object.keys(notif[0]!.headers).map((k) => k.toLowerCase());
    expect(new Set(extra.filter((k) => !k.startsWith('x-gharart-')))).toEqual(
      new Set(['list-unsubscribe', 'list-unsubscribe-post']),
    );
    for (const v of Object.values(notif[0]!.headers)) expect(v).not.toMatch(/[\r\n]/);
    expect(notif[0]!.subject).not.toMatch(/[\r\n]/);
  });

  it('Header injection in webhook custom headers: CR/LF/NUL in values, bad names, reserved names in any case → 400, nothing written', async () => {
    const h = await setupHandle();
    const url = 'http://127.0.0.1:9/hdr';
    const cases: Array<Record<string, string>> = [
      { 'X-A': 'v\r\nX-Injected: 1' },
      { 'X-A': 'v\nX-Injected: 1' },
      { 'X-A': 'v\rX-Injected: 1' },
      { 'X-A': 'v\u0000x' },
      { 'X-A\r\nX-Injected': '1' },
      { 'X A': '1' },
      { 'X-A:': '1' },
      { HOST: 'metadata.google.internal' },
      { 'Webhook-Signature': 'v1,forged' },
      { 'WEBHOOK-ID': 'msg_forged' },
      { 'Content-Type': 'text/plain' },
      { 'Transfer-Encoding': 'chunked' },
    ];
    const failures: string[] = [];
    for (const headers of cases) {
      const res = await call('POST', hooks(h.handle), { token: h.token, body: { url, headers } });
      if (res.status !== 400)
        failures.push(`${JSON.stringify(headers)} → ${res.status} ${(await res.text()).slice(0, 160)}`);
    }
    const wh = await createWebhook(h, { url });
    for (const headers of cases.slice(0, 3)) {
      const res = await call('PATCH', `${hooks(h.handle)}/${wh.id}`, { token: h.token, body: { headers } });
      if (res.status !== 400) failures.push(`PATCH ${JSON.stringify(headers)} → ${res.status}`);
    }
    expect(failures).toEqual([]);
    const rows = (
      await anyShard
        .prepare('SELECT headers FROM webhook_subscriptions WHERE handle = ?')
        .bind(h.handle)
        .all<{ headers: string | null }>()
    ).results;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.headers ?? '').not.toMatch(/injected|forged/i);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 10. Idempotency scoping

describe('10. Idempotency-Key scoping', () => {
  it('Idempotency-key reuse across tenants: the same key by two tenants creates two independent resources', async () => {
    const a = await setupHandle();
    const b = await setupHandle();
    const k = crypto.randomUUID();
    const body = { url: 'http://127.0.0.1:9/same-body' };
    const ra = await call('POST', hooks(a.handle), { token: a.token, body, headers: { 'idempotency-key': k } });
    const rb = await call('POST', hooks(b.handle), { token: b.token, body, headers: { 'idempotency-key': k } });
    expect(ra.status).toBe(201);
    expect(rb.status).toBe(201);
    expect(rb.headers.get('idempotent-replayed')).toBeNull();
    const ja = (await ra.json()) as { id: string; secret: string };
    const jb = (await rb.json()) as { id: string; secret: string };
    expect(jb.id).not.toBe(ja.id);
    expect(jb.secret).not.toBe(ja.secret);
    expect(
      await anyShard.prepare('SELECT handle FROM webhook_subscriptions WHERE id = ?').bind(jb.id).first('handle'),
    ).toBe(b.handle);
    // Each tenant's replay returns its own resource, never the other's.
    const replayB = await call('POST', hooks(b.handle), { token: b.token, body, headers: { 'idempotency-key': k } });
    expect(replayB.headers.get('idempotent-replayed')).toBe('true');
    expect(((await replayB.json()) as { id: string }).id).toBe(jb.id);
    // Email subscriptions and PATs too.
    const e = { email: 'same@example.com' };
    const k2 = crypto.randomUUID();
    const ea = await callJson('POST', subs(a.handle), { token: a.token, body: e, headers: { 'idempotency-key': k2 } });
    const eb = await callJson('POST', subs(b.handle), { token: b.token, body: e, headers: { 'idempotency-key': k2 } });
    expect([ea.status, eb.status]).toEqual([201, 201]);
    expect(eb.body.id).not.toBe(ea.body.id);
    const k3 = crypto.randomUUID();
    const ta = await callJson('POST', '/v2/tokens', {
      token: a.token,
      body: { name: 'same', scopes: ['webhooks:read'] },
      headers: { 'idempotency-key': k3 },
    });
    const tb = await callJson('POST', '/v2/tokens', {
      token: b.token,
      body: { name: 'same', scopes: ['webhooks:read'] },
      headers: { 'idempotency-key': k3 },
    });
    expect([ta.status, tb.status]).toEqual([201, 201]);
    expect(tb.body.token).not.toBe(ta.body.token);
    expect(tb.res.headers.get('idempotent-replayed')).toBeNull();
  });

  it('Idempotency-key reuse across principals on one handle: owner and admin with the same key → independent resources', async () => {
    const a = await setupHandle();
    const admin = unique('admin');
    await addMember(a.handle, admin, 'admin');
    const adminJwt = await signJwt({ sub: admin, scope: ALL_USER_SCOPES });
    const k = crypto.randomUUID();
    const body = { url: 'http://127.0.0.1:9/same-handle' };
    const r1 = await call('POST', hooks(a.handle), { token: a.token, body, headers: { 'idempotency-key': k } });
    const r2 = await call('POST', hooks(a.handle), { token: adminJwt, body, headers: { 'idempotency-key': k } });
    expect([r1.status, r2.status]).toEqual([201, 201]);
    expect(r2.headers.get('idempotent-replayed')).toBeNull();
    const j1 = (await r1.json()) as { id: string; secret: string };
    const j2 = (await r2.json()) as { id: string; secret: string };
    expect(j2.id).not.toBe(j1.id);
    // The admin never receives the owner's one-time secret through a replay.
    expect(j2.secret).not.toBe(j1.secret);
  });

  it('Idempotency-key reuse across handles: the same key by the same user on two handles → independent resources', async () => {
    const user = unique('u');
    const h1 = await provisionHandle(user);
    const h2 = await provisionHandle(user);
    const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    const { token: pat } = await createPat(user);
    for (const token of [jwt, pat]) {
      const k = crypto.randomUUID();
      const body = { url: 'http://127.0.0.1:9/two-handles' };
      const r1 = await call('POST', hooks(h1), { token, body, headers: { 'idempotency-key': k } });
      const r2 = await call('POST', hooks(h2), { token, body, headers: { 'idempotency-key': k } });
      expect([r1.status, r2.status]).toEqual([201, 201]);
      expect(r2.headers.get('idempotent-replayed')).toBeNull();
      const j1 = (await r1.json()) as { id: string };
      const j2 = (await r2.json()) as { id: string };
      expect(j2.id).not.toBe(j1.id);
      expect(
        await anyShard.prepare('SELECT handle FROM webhook_subscriptions WHERE id = ?').bind(j1.id).first('handle'),
      ).toBe(h1);
      expect(
        await anyShard.prepare('SELECT handle FROM webhook_subscriptions WHERE id = ?').bind(j2.id).first('handle'),
      ).toBe(h2);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 11. Secrets

describe('11. Secrets', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('Secrets never in logs or responses after creation, nor in clear in D1', async () => {
    const lines: string[] = [];
    for (const m of ['log', 'info', 'warn', 'error', 'debug'] as const) {
      vi.spyOn(console, m).mockImplementation((...args: unknown[]) => {
        lines.push(args.map((a) => (typeof a === 'string' ? a : (JSON.stringify(a) ?? String(a)))).join(' '));
      });
    }
    const h: TestHandle = await setupHandle();
    const k = crypto.randomUUID();
    // Webhook (secret), with an Idempotency-Key so the stored response is checked too.
    const created = await call('POST', hooks(h.handle), {
      token: h.token,
      body: { url: 'http://127.0.0.1:9/secrets', headers: { Authorization: 'Bearer crm-credential-abcdef123456' } },
      headers: { 'idempotency-key': k },
    });
    expect(created.status).toBe(201);
    const wh = (await created.json()) as { id: string; secret: string };
    // PAT (token), also with an Idempotency-Key.
    const patRes = await callJson('POST', '/v2/tokens', {
      token: h.token,
      body: { name: 'ci', scopes: ['webhooks:read'] },
      headers: { 'idempotency-key': k },
    });
    expect(patRes.status).toBe(201);
    const pat = patRes.body.token as string;
    // Rotation.
    const rot = await callJson('POST', `${hooks(h.handle)}/${wh.id}/rotate-secret`, {
      token: h.token,
      body: { graceHours: 1 },
      headers: { 'idempotency-key': crypto.randomUUID() },
    });
    expect(rot.status).toBe(200);
    const rotated = rot.body.secret as string;
    expect(rotated).not.toBe(wh.secret);
    // Email: subscribe in development, read the confirm link from the local mailbox, confirm, then unsubscribe.
    const email = `${unique('sec')}@example.com`;
    const sub = await callWithVars(DEV, 'POST', subs(h.handle), { token: h.token, body: { email } });
    expect(sub.status).toBe(201);
    const subId = ((await sub.json()) as { id: string }).id;
    const box = await callWithVars(DEV, 'GET', `/dev/mailbox?format=json&to=${encodeURIComponent(email)}`);
    const text = ((await box.json()) as { data: Array<{ text: string }> }).data[0]!.text;
    const confirmToken = decodeURIComponent(/\/v2\/email\/confirm\?token=([^\s]+)/.exec(text)![1]!);
    const confirmed = await callWithVars(DEV, 'POST', `/v2/email/confirm?token=${encodeURIComponent(confirmToken)}`);
    expect(confirmed.status).toBe(200);
    const unsub = await unsubscribeToken(env.ENCRYPTION_KEY, subId, email);
    const u = await callWithVars(DEV, 'POST', `/v2/email/unsubscribe?token=${encodeURIComponent(unsub)}`, {
      rawBody: 'List-Unsubscribe=One-Click',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(u.status).toBeLessThan(300);
    expect(
      await anyShard.prepare('SELECT status FROM email_subscriptions WHERE id = ?').bind(subId).first('status'),
    ).toBe('unsubscribed');
    // A failing request with a token in the query string, too.
    await call('GET', `/v2/tokens?access_token=${encodeURIComponent(pat)}`);

    // Reads and lists.
    const reads = [
      await call('GET', hooks(h.handle), { token: h.token }),
      await call('GET', `${hooks(h.handle)}/${wh.id}`, { token: h.token }),
      await call('GET', `${hooks(h.handle)}/${wh.id}/deliveries`, { token: h.token }),
      await call('PATCH', `${hooks(h.handle)}/${wh.id}`, { token: h.token, body: { description: 'after rotation' } }),
      await call('GET', '/v2/tokens', { token: h.token }),
      await call('GET', '/v2/tokens', { token: pat }),
      await call('GET', subs(h.handle), { token: h.token }),
      await call('GET', `/v2/handles/${h.handle}/health`, { token: h.token }),
    ];
    const secrets = {
      webhookSecret: wh.secret,
      webhookSecretRaw: wh.secret.slice(6),
      rotatedSecret: rotated,
      rotatedSecretRaw: rotated.slice(6),
      pat,
      confirmToken,
      unsubscribeToken: unsub,
      unsubscribeTag: unsub.slice(unsub.indexOf('.') + 1),
    };
    // A custom header's credential is masked in every response and log line (it is stored as given: see the report).
    const inResponsesAndLogs = { ...secrets, crmCredential: 'crm-credential-abcdef123456' };
    const leaks: string[] = [];
    for (const r of reads) {
      const body = await r.text();
      expect(r.status, body).toBeLessThan(300);
      for (const [name, s] of Object.entries(inResponsesAndLogs))
        if (body.includes(s)) leaks.push(`response ${r.url} contains ${name}`);
    }
    vi.restoreAllMocks();
    // The spies did see the Worker's request log lines.
    expect(lines.some((l) => l.includes('"level"'))).toBe(true);
    for (const l of lines) {
      for (const [name, s] of Object.entries(inResponsesAndLogs))
        if (l.includes(s)) leaks.push(`log line contains ${name}: ${l.slice(0, 200)}`);
      if (l.includes(encodeURIComponent(confirmToken)) || l.includes(encodeURIComponent(unsub)))
        leaks.push(`log line contains an encoded token: ${l.slice(0, 200)}`);
    }
    // D1 rows.
    const tables: Array<[string, string, unknown[]]> = [
      ['access_tokens', 'SELECT * FROM access_tokens WHERE user_id = ?', [h.owner]],
      ['webhook_subscriptions', 'SELECT * FROM webhook_subscriptions WHERE handle = ?', [h.handle]],
      ['idempotency_keys', 'SELECT * FROM idempotency_keys WHERE principal = ?', [`user:${h.owner}`]],
      ['email_subscriptions', 'SELECT * FROM email_subscriptions WHERE handle = ?', [h.handle]],
    ];
    for (const [table, sql, params] of tables) {
      // Every database: the control plane's tables and the handle's shard's (docs/design.md#shards).
      const rows = [
        ...(
          await env.DB.prepare(sql)
            .bind(...params)
            .all()
        ).results,
        ...(
          await anyShard
            .prepare(sql)
            .bind(...params)
            .all()
        ).results,
      ];
      expect(rows.length, table).toBeGreaterThan(0);
      const dump = JSON.stringify(rows);
      for (const [name, s] of Object.entries(secrets))
        if (dump.includes(s)) leaks.push(`${table} row contains ${name} in clear`);
    }
    expect(leaks).toEqual([]);
  });
});

describe('12. Unsubscribe links', () => {
  it("Unsubscribe: a link mailed to the owner's previous default address → 404 on the new address, which it never shows; nothing changed", async () => {
    const h = await setupHandle();
    const ownerPath = `/v2/handles/${h.handle}/notifications/owner-default-email`;
    const before = `${unique('before')}@example.com`;
    const after = `${unique('after')}@example.com`;
    expect((await callWithVars(DEV, 'PUT', ownerPath, { token: h.token, body: { email: before } })).status).toBe(200);
    // The owner's test mail to the old address, as its holder has it.
    const mailed = await eventually(
      async () => {
        const res = await callWithVars(DEV, 'GET', `/dev/mailbox?format=json&to=${encodeURIComponent(before)}`);
        return ((await res.json()) as { data: Array<{ text: string }> }).data;
      },
      (data) => data.length > 0,
      15_000,
      'the test mail to the old address',
    );
    const link = /https?:\/\/\S+(\/v2\/email\/unsubscribe\?token=[^\s]+)/.exec(mailed[0]!.text)![1]!;
    expect((await callWithVars(DEV, 'PUT', ownerPath, { token: h.token, body: { email: after } })).status).toBe(200);
    for (const [method, accept] of [
      ['GET', 'text/html'],
      ['GET', 'application/json'],
      ['POST', 'text/html'],
      ['POST', 'application/json'],
    ] as const) {
      const res = await call(method, link, { headers: { accept } });
      expect(res.status, `${method} ${accept}`).toBe(404);
      expect((await res.text()).toLowerCase(), `${method} ${accept}`).not.toContain(after.toLowerCase());
    }
    const row = await anyShard
      .prepare("SELECT email_normalized, status FROM email_subscriptions WHERE handle = ? AND kind = 'owner_default'")
      .bind(h.handle)
      .first();
    expect(row).toEqual({ email_normalized: after.toLowerCase(), status: 'active' });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 13. Owners, JWTs, sessions, token caps, pages with a token in the URL, confirmation mail

describe('13. Owners, JWTs, sessions, token caps, token pages, confirmation mail', () => {
  /** The CSP's hashes of every inline <style> of a page must be listed, and nothing inline allowed otherwise. */
  async function expectPageHeaders(res: Response, what: string) {
    const html = await res.text();
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp, what).toContain("default-src 'none'");
    expect(csp, what).toContain("frame-ancestors 'none'");
    expect(csp, what).toContain("base-uri 'none'");
    expect(csp, what).not.toContain('unsafe-inline');
    expect(res.headers.get('referrer-policy'), what).toBe('no-referrer');
    expect(res.headers.get('x-frame-options'), what).toBe('DENY');
    expect(res.headers.get('x-content-type-options'), what).toBe('nosniff');
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)];
    if (res.headers.get('content-type')?.startsWith('text/html')) expect(styles.length, what).toBeGreaterThan(0);
    for (const [, css] of styles) {
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(css)));
      const hash = btoa(String.fromCharCode(...digest));
      expect(csp, `${what}: the inline style's hash`).toContain(`'sha256-${hash}'`);
    }
  }

  it('Pages with a token in the URL (/docs, confirm, unsubscribe, their refusals) send a CSP with frame-ancestors none and Referrer-Policy no-referrer', async () => {
    const h = await setupHandle();
    const email = `${unique('p')}@example.com`;
    const sub = await callJson('POST', subs(h.handle), { token: h.token, body: { email } });
    expect(sub.status).toBe(201);
    const unsub = encodeURIComponent(await unsubscribeToken(env.ENCRYPTION_KEY, sub.body.id, email));
    const html = { accept: 'text/html' };
    const pages: Array<[string, string, number]> = [
      ['GET', '/docs', 200],
      ['GET', '/v2/email/confirm?token=some-token', 200],
      ['POST', '/v2/email/confirm?token=not-a-real-token', 404],
      ['GET', `/v2/email/unsubscribe?token=${unsub}`, 200],
      ['GET', '/v2/email/unsubscribe?token=forged.token', 404],
      ['POST', `/v2/email/unsubscribe?token=${unsub}`, 200],
    ];
    for (const [method, path, status] of pages) {
      const res = await call(method, path, { headers: html });
      expect(res.status, `${method} ${path}`).toBe(status);
      if (status === 200) expect(res.headers.get('content-type')).toMatch(/text\/html/);
      await expectPageHeaders(res, `${method} ${path}`);
    }
    // The dashboard keeps its own (stricter: its stylesheet and script are files of this origin).
    const login = await call('GET', '/dashboard/login');
    expect(login.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(login.headers.get('referrer-policy')).toBe('no-referrer');
  });

  it("Six concurrent removals of a handle's six owners leave one owner (five 204, one 409), in each of three trials", async () => {
    const token = await serviceJwt();
    for (let trial = 0; trial < 3; trial++) {
      const owners = Array.from({ length: 6 }, () => unique('o'));
      const handle = await provisionHandle(owners[0]!);
      for (const o of owners.slice(1)) await addMember(handle, o, 'owner');
      const answers = await Promise.all(
        owners.map((o) => call('DELETE', `/v2/internal/handles/${handle}/members/${o}`, { token })),
      );
      expect(answers.map((r) => r.status).sort(), `trial ${trial}`).toEqual([204, 204, 204, 204, 204, 409]);
      const left = await env.DB.prepare(`SELECT count(*) AS n FROM memberships WHERE handle = ? AND role = 'owner'`)
        .bind(handle)
        .first<{ n: number }>();
      expect(left!.n, `trial ${trial}`).toBe(1);
    }
  });

  it('JWT: an empty sub, a token living longer than JWT_MAX_LIFETIME_SECONDS, and under a JWKS a token without iss/aud or a deployment without JWT_ISSUER/JWT_AUDIENCE → 401 naming why', async () => {
    const now = Math.floor(Date.now() / 1000);
    const empty = await signJwt({ sub: '', scope: ALL_USER_SCOPES });
    expect((await expectProblem(await call('GET', '/v2/tokens', { token: empty }), 401)).detail).toMatch(/"sub"/);
    const year = await signJwt({ sub: unique('u'), scope: ALL_USER_SCOPES, exp: now + 365 * 86_400 });
    expect((await expectProblem(await call('GET', '/v2/tokens', { token: year }), 401)).detail).toMatch(/lifetime/);
    // A key set shared with other applications: their tokens (any iss/aud, or none) must not get in.
    const key = unique('jwks');
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    await setMode(key, {
      status: 200,
      body: JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: key }] }),
    });
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT({ sub: unique('u'), scope: ALL_USER_SCOPES, iat: now, exp: now + 600, ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: key })
        .sign(privateKey);
    const jwks = { JWT_JWKS_URL: receiverUrl('mode', key), JWT_ALGORITHMS: '' } as Partial<Env>;
    const named = { ...jwks, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE } as Partial<Env>;
    const unnamed = { ...jwks, JWT_ISSUER: '', JWT_AUDIENCE: '' } as Partial<Env>;
    const cases: Array<[Partial<Env>, Record<string, unknown>, RegExp]> = [
      [named, { aud: AUDIENCE }, /"iss"/],
      [named, { iss: ISSUER }, /"aud"/],
      [named, { iss: 'https://other-app.example', aud: 'other-app' }, /issuer/],
      [unnamed, { iss: 'https://other-app.example', aud: 'other-app' }, /JWT_ISSUER/],
    ];
    for (const [vars, claims, reason] of cases) {
      const res = await callWithVars(vars, 'GET', '/v2/tokens', { token: await sign(claims) });
      expect((await expectProblem(res, 401)).detail, JSON.stringify(claims)).toMatch(reason);
    }
    const ok = await callWithVars(named, 'GET', '/v2/tokens', { token: await sign({ iss: ISSUER, aud: AUDIENCE }) });
    expect(ok.status).toBe(200);
  });

  it('Dashboard: a session cookie replayed after sign-out goes back to sign-in, and its form posts write nothing', async () => {
    const h = await setupHandle();
    const origin = 'https://notify.test';
    // Redirects are answers to look at, not to follow.
    const dash = (method: string, path: string, cookie: string, form?: Record<string, string>) => {
      const headers: Record<string, string> = { cookie };
      if (form) Object.assign(headers, { 'content-type': 'application/x-www-form-urlencoded', origin });
      const body = form ? new URLSearchParams(form).toString() : undefined;
      return exports.default.fetch(new Request(`${origin}${path}`, { method, headers, body, redirect: 'manual' }));
    };
    const cookieOf = (res: Response, name: string) =>
      res.headers
        .getSetCookie()
        .find((l) => l.startsWith(`${name}=`))!
        .split(';')[0]!;
    const login = await dash('GET', '/dashboard/login', '');
    const loginCookie = cookieOf(login, 'gn_login_csrf');
    const loginCsrf = /name="_csrf" value="([^"]+)"/.exec(await login.text())![1]!;
    const signedIn = await dash('POST', '/dashboard/login', loginCookie, { _csrf: loginCsrf, token: h.token });
    expect(signedIn.status, 'sign-in').toBe(303);
    const session = cookieOf(signedIn, 'gn_session');
    const page = await dash('GET', `/dashboard/h/${h.handle}/webhooks`, session);
    expect(page.status, 'page').toBe(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
    expect((await dash('POST', '/dashboard/logout', session, { _csrf: csrf })).status, 'sign-out').toBe(303);

    const replayed = await dash('GET', `/dashboard/h/${h.handle}/webhooks`, session);
    expect(replayed.status, 'replayed').toBe(303);
    expect(replayed.headers.get('location')).toMatch(/^\/dashboard\/login/);
    const before = await snapshot(h.handle);
    const post = await dash('POST', `/dashboard/h/${h.handle}/webhooks`, session, {
      _csrf: csrf,
      _idem: crypto.randomUUID(),
      url: 'http://127.0.0.1:9/after-sign-out',
    });
    expect(post.status).toBe(303);
    expect(await snapshot(h.handle)).toEqual(before);
  });

  it('PATs: twelve concurrent creates under MAX_PATS_PER_USER=5 mint exactly five (422 for the rest)', async () => {
    const user = unique('u');
    const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    const vars = { MAX_PATS_PER_USER: '5' } as Partial<Env>;
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        callWithVars(vars, 'POST', '/v2/tokens', { token: jwt, body: { name: `p${i}`, scopes: ['webhooks:read'] } }),
      ),
    );
    expect(answers.filter((r) => r.status === 201)).toHaveLength(5);
    for (const r of answers.filter((a) => a.status !== 201)) expect((await expectProblem(r, 422)).limit).toBe(5);
    const n = await env.DB.prepare('SELECT count(*) AS n FROM access_tokens WHERE user_id = ?')
      .bind(user)
      .first<{ n: number }>();
    expect(n!.n).toBe(5);
  });

  it("resend-confirmation: six concurrent resends put one mail in a stranger's inbox (429 with Retry-After for the rest)", async () => {
    const h = await setupHandle();
    const email = `${unique('stranger')}@example.com`;
    const created = await callWithVars(DEV, 'POST', subs(h.handle), { token: h.token, body: { email } });
    expect(created.status).toBe(201);
    const id = ((await created.json()) as { id: string }).id;
    await anyShard
      .prepare('UPDATE email_subscriptions SET confirm_sent_at = ?2 WHERE id = ?1')
      .bind(id, new Date(Date.now() - 120_000).toISOString())
      .run();
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        callWithVars(DEV, 'POST', `${subs(h.handle)}/${id}/resend-confirmation`, { token: h.token }),
      ),
    );
    expect(answers.map((r) => r.status).sort()).toEqual([202, 429, 429, 429, 429, 429]);
    for (const r of answers.filter((a) => a.status === 429)) {
      await expectProblem(r, 429);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    const box = await callWithVars(DEV, 'GET', `/dev/mailbox?format=json&to=${encodeURIComponent(email)}`);
    expect(((await box.json()) as { data: unknown[] }).data).toHaveLength(2);
  });

  it("new subscriptions: twelve handles subscribing one stranger's address at once mail it at most 10 times a day", async () => {
    const email = `${unique('stranger')}@example.com`;
    const handles = await Promise.all(Array.from({ length: 12 }, () => setupHandle()));
    const answers = await Promise.all(
      handles.map((h) => callWithVars(DEV, 'POST', subs(h.handle), { token: h.token, body: { email } })),
    );
    // Every subscription is created (the owner's intent is kept); the mails beyond the cap are not sent.
    expect(answers.map((r) => r.status)).toEqual(Array(12).fill(201));
    const reasons = await Promise.all(answers.map(async (r) => (await r.json()) as { statusReason: string }));
    expect(reasons.filter((r) => /^No confirmation mail was sent/.test(r.statusReason))).toHaveLength(2);
    const box = await callWithVars(DEV, 'GET', `/dev/mailbox?format=json&to=${encodeURIComponent(email)}`);
    expect(((await box.json()) as { data: unknown[] }).data).toHaveLength(10);
  });
});

describe('14. Provider feedback (SNS)', () => {
  const prefix = 'gn-matrix-';
  const vars = snsDeployment(prefix);
  const suppressible = async (handle: string) => {
    const email = `${unique('feedback')}@example.com`;
    const id = newId('esub');
    const now = new Date().toISOString();
    await (await shardOf(handle))
      .prepare(
        `INSERT INTO email_subscriptions
         (id, handle, kind, email, email_normalized, status, confirmed_at, provider, created_at, updated_at)
       VALUES (?1, ?2, 'owner_default', ?3, ?3, 'active', ?4, 'sns', ?4, ?4)`,
      )
      .bind(id, handle, email, now)
      .run();
    const status = async () =>
      (
        await anyShard
          .prepare('SELECT status FROM email_subscriptions WHERE id = ?1')
          .bind(id)
          .first<{ status: string }>()
      )?.status;
    return { email, status };
  };

  it("SNS feedback validly signed for a stranger's topic, account or region → 403, nothing suppressed", async () => {
    const h = await handleWithSnsTopic(vars);
    const target = await suppressible(h.handle);
    for (const topicArn of strangerTopics(h.topicArn, prefix)) {
      await expectProblem(await postSns(await signSns(sesBounce(topicArn, [target.email])), vars), 403);
    }
    expect(await target.status()).toBe('active');
  });

  it('SNS SubscriptionConfirmation for a topic this deployment did not create → 403, SubscribeURL never fetched', async () => {
    const h = await handleWithSnsTopic(vars);
    for (const topicArn of strangerTopics(h.topicArn, prefix)) {
      const token = unique('matrix-tok');
      await expectProblem(await postSns(await signSns(snsConfirmation(topicArn, token)), vars), 403);
      expect((await notifierRequests('/confirm')).filter((r) => r.query.includes(token))).toEqual([]);
    }
  });

  it('SNS feedback route without EMAIL_PROVIDER=sns → 404, nothing read or changed', async () => {
    const h = await handleWithSnsTopic(vars);
    const target = await suppressible(h.handle);
    const signed = await signSns(sesBounce(h.topicArn, [target.email]));
    await expectProblem(await postSns(signed, { ...vars, EMAIL_PROVIDER: 'cloudflare' }), 404);
    expect(await target.status()).toBe('active');
  });

  it('SNS feedback: a subscribed and an unknown address get the same status and body', async () => {
    const h = await handleWithSnsTopic(vars);
    const target = await suppressible(h.handle);
    const answer = async (email: string) => {
      const res = await postSns(await signSns(sesBounce(h.topicArn, [email])), vars);
      return { status: res.status, body: await res.text() };
    };
    const known = await answer(target.email);
    expect(known.status).toBe(200);
    expect(await answer(`${unique('nobody')}@example.com`)).toEqual(known);
    expect(await target.status()).toBe('suppressed');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 15. Hostile JSON and header values

/** `depth` arrays around `inner`, as raw JSON text (JSON.stringify would itself recurse that deep). */
const nestedArrays = (depth: number, inner = '1') => `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;

/** A dashboard request as a browser sends it (redirects not followed), with `cookie`. */
function browse(method: string, path: string, cookie: string, form?: Record<string, string>): Promise<Response> {
  const headers = new Headers({ cookie });
  if (form) {
    headers.set('content-type', 'application/x-www-form-urlencoded');
    headers.set('origin', 'https://notify.test');
  }
  const body = form ? new URLSearchParams(form).toString() : undefined;
  return exports.default.fetch(
    new Request(`https://notify.test${path}`, { method, headers, body, redirect: 'manual' }),
  );
}

/** Signs a browser into the dashboard with `token`; returns the Cookie header to send. */
async function dashboardCookie(token: string): Promise<string> {
  const login = await browse('GET', '/dashboard/login', '');
  const jar = login.headers.getSetCookie().map((l) => l.split(';')[0]!);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await login.text())![1]!;
  const signedIn = await browse('POST', '/dashboard/login', jar.join('; '), { _csrf: csrf, token });
  expect(signedIn.status).toBe(303);
  return [...jar, ...signedIn.headers.getSetCookie().map((l) => l.split(';')[0]!)].join('; ');
}

describe('15. Hostile JSON and header values', () => {
  it('Deep JSON: a body nested thousands of levels deep (event data, sample event, filter policies, settings, headers, any JSON body) → 400 naming the path, nothing written', async () => {
    const h = await setupHandle();
    const wh = await createWebhook(h, { url: 'http://127.0.0.1:9/deep' });
    const deep = nestedArrays(5000);
    const cases: Array<[string, string, string, string]> = [
      ['POST', `/v2/handles/${h.handle}/events`, `{"type":"order.paid","data":{"a":${deep}}}`, 'body.data.a.0.0'],
      [
        'POST',
        `/v2/handles/${h.handle}/notification-settings/evaluate`,
        `{"event":{"type":"order.paid","data":{"a":${deep}}}}`,
        'body.event.data.a.0',
      ],
      [
        'POST',
        hooks(h.handle),
        `{"url":"http://127.0.0.1:9/x","filterPolicy":{"data.a":[{"anything-but":${deep}}]}}`,
        'body.filterPolicy.data.a.0.anything-but.0',
      ],
      ['PATCH', `${hooks(h.handle)}/${wh.id}`, `{"headers":{"X-A":${deep}}}`, 'body.headers.X-A.0'],
      [
        'PUT',
        `/v2/handles/${h.handle}/notification-settings`,
        `{"channels":{"email":{"enabled":true},"webhook":{"enabled":true}},"ownerFallback":"critical",` +
          `"eventFilter":{"data.a":[{"anything-but":${deep}}]}}`,
        'body.eventFilter.data.a.0.anything-but.0',
      ],
      [
        'POST',
        subs(h.handle),
        `{"email":"${unique('deep')}@example.com","filterPolicy":{"data.a":${deep}}}`,
        'body.filterPolicy.data.a.0',
      ],
      ['POST', '/v2/support/report', `{"summary":"s","details":"d","reproArtifact":${deep}}`, 'body.reproArtifact.0'],
    ];
    const before = await snapshot(h.handle);
    const failures: string[] = [];
    for (const [method, path, rawBody, prefix] of cases) {
      const res = await call(method, path, {
        token: h.token,
        rawBody,
        headers: { 'content-type': 'application/json' },
      });
      const text = await res.text();
      if (res.status !== 400) {
        failures.push(`${method} ${path} → ${res.status} ${text.slice(0, 160)}`);
        continue;
      }
      const problem = JSON.parse(text) as { errors?: Array<{ path: string; message: string }> };
      const error = problem.errors?.[0];
      if (!error?.path.startsWith(prefix) || !/32 levels/.test(error.message))
        failures.push(`${method} ${path}: error ${JSON.stringify(error)?.slice(0, 200)} does not name ${prefix}…`);
    }
    expect(failures).toEqual([]);
    expect(await snapshot(h.handle)).toEqual(before);
    // Within the bound, nesting is fine.
    const ok = await call('POST', `/v2/handles/${h.handle}/events`, {
      token: h.token,
      rawBody: `{"type":"order.paid","data":{"orderId":"ord_deep","a":${nestedArrays(25)}}}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(ok.status, await ok.text()).toBe(202);
  });

  it('Deep JSON stored before the bound existed: the notification API and the dashboard page answer 200 (deeper levels elided), never 500', async () => {
    const h = await setupHandle();
    const id = `ntf_${crypto.randomUUID().replace(/-/g, '').slice(0, 26).toUpperCase()}`;
    const at = new Date().toISOString();
    await (await shardOf(h.handle))
      .prepare(
        `INSERT INTO notifications (id, handle, type, severity, data, source, occurred_at, status, created_at, updated_at)
       VALUES (?1, ?2, 'order.paid', 'info', ?3, 'test', ?4, 'no_recipients', ?4, ?4)`,
      )
      .bind(id, h.handle, `{"orderId":"o-1","a":${nestedArrays(30_000)}}`, at)
      .run();
    const api = await call('GET', `/v2/handles/${h.handle}/notifications/${id}`, { token: h.token });
    const text = await api.text();
    expect(api.status, text.slice(0, 300)).toBe(200);
    const data = (JSON.parse(text) as { data: Record<string, unknown> }).data;
    expect(data.orderId).toBe('o-1');
    expect(text.length).toBeLessThan(10_000);
    const pat = (await createPat(h.owner, { handle: h.handle })).token;
    const page = await browse('GET', `/dashboard/h/${h.handle}/notifications/${id}`, await dashboardCookie(pat));
    const html = await page.text();
    expect(page.status, html.slice(0, 300)).toBe(200);
    expect(html).toContain('o-1');
  });

  it('Prototype keys: __proto__, constructor or prototype inside filter policies, headers, settings and event data → 400 naming the key, nothing written (HTTP and the events queue)', async () => {
    const h = await setupHandle();
    const url = 'http://127.0.0.1:9/proto';
    const cases: Array<[string, string, string, string]> = [
      ['POST', hooks(h.handle), `{"url":"${url}","filterPolicy":{"__proto__":["x"]}}`, 'body.filterPolicy.__proto__'],
      ['POST', hooks(h.handle), `{"url":"${url}","filterPolicy":{"__proto__":{"x":1}}}`, 'body.filterPolicy.__proto__'],
      [
        'POST',
        hooks(h.handle),
        `{"url":"${url}","filterPolicy":{"data.a":[{"anything-but":{"prototype":"x"}}]}}`,
        'body.filterPolicy.data.a.0.anything-but.prototype',
      ],
      ['POST', hooks(h.handle), `{"url":"${url}","headers":{"__proto__":"x"}}`, 'body.headers.__proto__'],
      ['POST', hooks(h.handle), `{"url":"${url}","headers":{"constructor":"x"}}`, 'body.headers.constructor'],
      ['POST', hooks(h.handle), `{"url":"${url}","__proto__":{"enabled":false}}`, 'body.__proto__'],
      [
        'POST',
        `/v2/handles/${h.handle}/events`,
        '{"type":"order.paid","data":{"__proto__":{"x":1}}}',
        'body.data.__proto__',
      ],
      [
        'POST',
        `/v2/handles/${h.handle}/events`,
        '{"type":"order.paid","data":{"items":[{"constructor":"x"}]}}',
        'body.data.items.0.constructor',
      ],
      [
        'PUT',
        `/v2/handles/${h.handle}/notification-settings`,
        '{"channels":{"email":{"enabled":true},"webhook":{"enabled":true}},"ownerFallback":"critical",' +
          '"eventFilter":{"__proto__":["x"]}}',
        'body.eventFilter.__proto__',
      ],
      [
        'POST',
        subs(h.handle),
        `{"email":"${unique('proto')}@example.com","filterPolicy":{"__proto__":["x"]}}`,
        'body.filterPolicy.__proto__',
      ],
    ];
    const before = await snapshot(h.handle);
    const failures: string[] = [];
    for (const [method, path, rawBody, expected] of cases) {
      const res = await call(method, path, {
        token: h.token,
        rawBody,
        headers: { 'content-type': 'application/json' },
      });
      const text = await res.text();
      const error = res.status === 400 ? (JSON.parse(text).errors?.[0] as { path: string } | undefined) : undefined;
      if (error?.path !== expected) failures.push(`${rawBody} → ${res.status} ${text.slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
    expect(await snapshot(h.handle)).toEqual(before);
    // A data path through such a key can never match anything any more: refused too.
    const viaPath = await call('POST', hooks(h.handle), {
      token: h.token,
      body: { url, filterPolicy: { 'data.constructor.name': ['Object'] } },
    });
    expect((await expectProblem(viaPath, 400)).errors[0].path).toBe('body.filterPolicy.data.constructor.name');
    // The events queue takes the same rule: the message is recorded as rejected, naming the key.
    const messageId = unique('msg');
    const fb = fakeBatch('notify-events', [
      { id: messageId, body: JSON.parse(`{"handle":"${h.handle}","type":"order.paid","data":{"__proto__":{"x":1}}}`) },
    ]);
    await consumeEvents(fb.batch as MessageBatch<unknown>, env);
    expect(fb.outcome(messageId).acked).toBe(true);
    const rejection = await env.DB.prepare('SELECT reason FROM event_rejections WHERE message_id = ?')
      .bind(messageId)
      .first<{ reason: string }>();
    expect(rejection?.reason).toMatch(/data\.__proto__/);
    expect(await snapshot(h.handle)).toEqual(before);
  });

  it('Custom header values: control or non-ASCII characters → 422 naming the header, nothing written; visible ASCII, spaces and tabs are fine', async () => {
    const h = await setupHandle();
    const url = 'http://127.0.0.1:9/values';
    const bad: Array<Record<string, string>> = [
      { 'X-Tenant': 'café' },
      { 'X-Tenant': 'a\u0001b' },
      { 'X-Tenant': 'a\u007fb' },
      { 'X-Tenant': 'a\u0085b' },
      { 'X-Tenant': '\u2028' },
      { 'X-Ok': 'fine', 'X-Tenant': 'emoji 🚀' },
    ];
    const failures: string[] = [];
    for (const headers of bad) {
      const res = await call('POST', hooks(h.handle), { token: h.token, body: { url, headers } });
      const text = await res.text();
      if (res.status !== 422 || !text.includes('X-Tenant'))
        failures.push(`${JSON.stringify(headers)} → ${res.status} ${text.slice(0, 160)}`);
    }
    const wh = await createWebhook(h, { url, headers: { 'X-Tenant': 'acme\tprod  (eu) "quoted" ~!' } });
    for (const headers of bad) {
      const res = await call('PATCH', `${hooks(h.handle)}/${wh.id}`, { token: h.token, body: { headers } });
      const text = await res.text();
      if (res.status !== 422 || !text.includes('X-Tenant'))
        failures.push(`PATCH ${JSON.stringify(headers)} → ${res.status} ${text.slice(0, 160)}`);
    }
    expect(failures).toEqual([]);
    const rows = (
      await anyShard
        .prepare('SELECT headers FROM webhook_subscriptions WHERE handle = ?')
        .bind(h.handle)
        .all<{ headers: string }>()
    ).results;
    expect(rows.map((r) => JSON.parse(r.headers))).toEqual([{ 'X-Tenant': 'acme\tprod  (eu) "quoted" ~!' }]);
  });

  it('Custom header values to readers: without webhooks:write (or as a viewer) only the names are shown; a short credential never shows a suffix', async () => {
    const h = await setupHandle();
    const headers = {
      Authorization: 'Bearer abcdefg',
      'X-Api-Key': 'k-live-0123456789abcdefghijklmnopqrstuv',
      'X-Tenant': 'acme-tenant',
    };
    const wh = await createWebhook(h, { url: 'http://127.0.0.1:9/masked', headers });
    const viewer = unique('viewer');
    await addMember(h.handle, viewer, 'viewer');
    const readers = [
      await signJwt({ sub: h.owner, scope: 'webhooks:read' }),
      await signJwt({ sub: viewer, scope: ALL_USER_SCOPES }),
    ];
    const leaks: string[] = [];
    for (const token of readers) {
      const one = await callJson('GET', `${hooks(h.handle)}/${wh.id}`, { token });
      const list = await callJson('GET', hooks(h.handle), { token });
      expect(one.status).toBe(200);
      for (const shown of [one.body.headers, list.body.data[0].headers] as Array<Record<string, string>>) {
        expect(Object.keys(shown).sort()).toEqual(Object.keys(headers).sort());
        for (const [name, value] of Object.entries(shown)) {
          const real = headers[name as keyof typeof headers];
          for (let i = 0; i + 3 <= real.length; i++)
            if (value.includes(real.slice(i, i + 3))) leaks.push(`reader sees part of ${name}: ${value}`);
        }
      }
    }
    // A writer sees plain headers in clear and credentials masked; a short credential shows no suffix at all.
    const writer = await callJson('GET', `${hooks(h.handle)}/${wh.id}`, { token: h.token });
    expect(writer.body.headers['X-Tenant']).toBe('acme-tenant');
    expect(writer.body.headers['X-Api-Key']).not.toContain('0123456789');
    const auth = writer.body.headers.Authorization as string;
    for (let i = 0; i + 3 <= 'abcdefg'.length; i++)
      if (auth.includes('abcdefg'.slice(i, i + 3))) leaks.push(`writer sees part of the short credential: ${auth}`);
    expect(leaks).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// 16. Shards (docs/design.md#shards)

/** A victim on each shard (placed there: which shard is the least loaded depends on every other test). */
async function handlesOnBothShards(): Promise<Record<'SHARD_0' | 'SHARD_1', Awaited<ReturnType<typeof victim>>>> {
  const both = { SHARD_0: await victim('SHARD_0'), SHARD_1: await victim('SHARD_1') };
  expect([await shardName(both.SHARD_0.handle), await shardName(both.SHARD_1.handle)]).toEqual(['SHARD_0', 'SHARD_1']);
  return both;
}

describe('16. Shards', () => {
  it("Shards: a token for a handle on one shard never reaches another shard's rows (every id of the other shard → 404, that shard never queried, its rows unchanged)", async () => {
    const both = await handlesOnBothShards();
    for (const [mine, theirs] of [
      ['SHARD_0', 'SHARD_1'],
      ['SHARD_1', 'SHARD_0'],
    ] as const) {
      const a = both[mine];
      const b = both[theirs];
      const before = await snapshot(b.handle);
      const pat = await createPat(a.owner, { handle: a.handle });
      for (const token of [a.token, pat.token]) {
        // A warm-up request caches the attacker's own placement, as any isolate has it after a first request.
        expect((await callWithVars(meterD1().vars, 'GET', `/v2/handles/${a.handle}/webhooks`, { token })).status).toBe(
          200,
        );
        const base = `/v2/handles/${a.handle}`;
        const requests: Array<[string, string, unknown?]> = [
          ['GET', `${base}/webhooks/${b.webhookId}`],
          ['PATCH', `${base}/webhooks/${b.webhookId}`, { enabled: false }],
          ['DELETE', `${base}/webhooks/${b.webhookId}`],
          ['GET', `${base}/webhooks/${b.webhookId}/deliveries`],
          ['POST', `${base}/webhooks/${b.webhookId}/rotate-secret`, { graceHours: 0 }],
          ['DELETE', `${base}/notifications/email-subscriptions/${b.subId}`],
          ['GET', `${base}/notifications/${b.notificationId}`],
          ['POST', `${base}/deliveries/${b.deliveryId}/retry`],
          ['GET', `${base}/webhooks/${b.webhookId}/delivery-stats`],
          [
            'POST',
            `${base}/webhooks/${b.webhookId}/replay`,
            { from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z' },
          ],
        ];
        for (const [method, path, body] of requests) {
          const meter = meterD1();
          await expect404(await callWithVars(meter.vars, method, path, { token, body }), `${method} ${path}`);
          expect(meter.counts[theirs], `${method} ${path} queried ${theirs}`).toBe(0);
        }
        // The other handle's own paths: 404, nothing of its rows in the answer. (A feed read whose handle's placement
        // is cached sends its page query beside the access lookup — one round trip — and drops the rows unless the
        // lookup passes every check; a write or any other read is refused on the control plane before its shard.)
        for (const path of [`/v2/handles/${b.handle}/notifications`, `/v2/handles/${b.handle}/webhooks`]) {
          const meter = meterD1();
          const body = await expect404(await callWithVars(meter.vars, 'GET', path, { token }), path);
          expect(JSON.stringify(body)).not.toContain(b.notificationId);
          expect(JSON.stringify(body)).not.toContain(b.webhookId);
          if (path.endsWith('/webhooks')) expect(meter.counts[theirs], `${path} queried ${theirs}`).toBe(0);
        }
        // Reads whose access is checked on the control plane first: the other shard is never queried.
        for (const path of [
          `/v2/handles/${b.handle}/usage`,
          `/v2/handles/${b.handle}/delivery-stats`,
          `/v2/handles/${b.handle}/placement`,
        ]) {
          const meter = meterD1();
          await expect404(await callWithVars(meter.vars, 'GET', path, { token }), path);
          expect(meter.counts[theirs], `${path} queried ${theirs}`).toBe(0);
        }
        // Publishing to the other handle, one event or a batch: 404, nothing written (the snapshot below).
        for (const [path, body] of [
          [`/v2/handles/${b.handle}/events`, { type: 'order.paid', data: { orderId: 'x' } }],
          [`/v2/handles/${b.handle}/events/batch`, { events: [{ type: 'order.paid', data: { orderId: 'x' } }] }],
        ] as const) {
          await expect404(await callWithVars(meterD1().vars, 'POST', path, { token, body }), path);
        }
        const write = meterD1();
        await expect404(
          await callWithVars(write.vars, 'POST', `/v2/handles/${b.handle}/webhooks`, {
            token,
            body: { url: 'http://127.0.0.1:9/injected' },
          }),
          'a write on the other handle',
        );
        expect(write.counts[theirs], `a write queried ${theirs}`).toBe(0);
      }
      expect(await snapshot(b.handle)).toEqual(before);
    }
  });
});
