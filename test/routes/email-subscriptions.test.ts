/**
 * Email subscriptions and the owner default email (docs/design.md#identity-access-and-limits, #routes), through the real Worker with real local D1.
 */

import { describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.ts';
import {
  addMember,
  anyShard,
  call,
  callJson,
  createPat,
  expectProblem,
  provisionHandle,
  signJwt,
  unique,
} from '../support/helpers.ts';
import {
  insertDeliveries,
  insertEmailSubscriptions,
  insertNotifications,
  summaryById,
  userJwt,
} from '../support/seed.ts';

const subsPath = (h: string) => `/v2/handles/${h}/notifications/email-subscriptions`;
const ownerPath = (h: string) => `/v2/handles/${h}/notifications/owner-default-email`;

async function setup() {
  const owner = unique('u');
  const handle = await provisionHandle(owner);
  return { owner, handle, token: await userJwt(owner) };
}

const email = (label = 'ops') => `${label}-${unique('m')}@example.com`;

async function create(handle: string, token: string, body: Record<string, unknown>) {
  return callJson('POST', subsPath(handle), { token, body });
}

async function listAll(handle: string, token: string, limit = 200) {
  const { status, body } = await callJson('GET', `${subsPath(handle)}?limit=${limit}`, { token });
  expect(status).toBe(200);
  return body as { data: Array<Record<string, any>>; nextCursor: string | null };
}

async function row(id: string) {
  return anyShard.prepare('SELECT * FROM email_subscriptions WHERE id = ?').bind(id).first<Record<string, any>>();
}

describe('POST …/notifications/email-subscriptions', () => {
  it('creates a pending_confirmation subscription: trimmed, stored lower-cased, token hashed, 72 h to confirm', async () => {
    const { handle, token } = await setup();
    const local = unique('Ops.Team');
    const given = `  ${local}@Example.COM  `;
    const before = Date.now();
    const { res, status, body } = await create(handle, token, {
      email: given,
      eventTypes: ['order.*', 'payment.failed'],
      filterPolicy: { severity: ['critical', 'warning'] },
    });
    expect(status).toBe(201);
    expect(body.id).toMatch(/^esub_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(body.kind).toBe('standard');
    expect(body.status).toBe('pending_confirmation');
    expect(body.email).toBe(`${local}@Example.COM`);
    expect(body.eventTypes).toEqual(['order.*', 'payment.failed']);
    expect(body.filterPolicy).toEqual({ severity: ['critical', 'warning'] });
    expect(body.confirmedAt).toBeNull();
    expect(res.headers.get('location')).toBe(`${subsPath(handle)}/${body.id}`);
    // Nothing secret in the answer.
    for (const k of ['confirmToken', 'confirmTokenHash', 'confirmExpiresAt', 'emailNormalized', 'handle']) {
      expect(body).not.toHaveProperty(k);
    }

    const stored = await row(body.id);
    expect(stored).not.toBeNull();
    expect(stored!.handle).toBe(handle);
    expect(stored!.email).toBe(`${local}@Example.COM`);
    expect(stored!.email_normalized).toBe(`${local}@example.com`.toLowerCase());
    expect(stored!.status).toBe('pending_confirmation');
    expect(stored!.confirm_token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(body)).not.toContain(stored!.confirm_token_hash);
    const expires = Date.parse(stored!.confirm_expires_at);
    expect(expires).toBeGreaterThanOrEqual(before + 72 * 3600_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 72 * 3600_000 + 1000);
    expect(JSON.parse(stored!.event_types)).toEqual(['order.*', 'payment.failed']);
    expect(JSON.parse(stored!.filter_policy)).toEqual({ severity: ['critical', 'warning'] });
  });

  it('each subscription gets its own confirmation token', async () => {
    const { handle, token } = await setup();
    const a = await create(handle, token, { email: email('a') });
    const b = await create(handle, token, { email: email('b') });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect((await row(a.body.id))!.confirm_token_hash).not.toBe((await row(b.body.id))!.confirm_token_hash);
  });

  it('the same address in another case is a duplicate → 409, and no second row', async () => {
    const { handle, token } = await setup();
    const address = email('dup');
    expect((await create(handle, token, { email: address })).status).toBe(201);
    const problem = await expectProblem(
      await call('POST', subsPath(handle), { token, body: { email: address.toUpperCase() } }),
      409,
    );
    expect(problem.detail).toContain(address.toLowerCase());
    const n = await anyShard
      .prepare('SELECT count(*) AS n FROM email_subscriptions WHERE handle = ? AND email_normalized = ?')
      .bind(handle, address.toLowerCase())
      .first<{ n: number }>();
    expect(n!.n).toBe(1);
  });

  it("a duplicate's 409 names the existing subscription (existingId) and what to do with it", async () => {
    const { handle, token } = await setup();
    const address = email('dup-id');
    const first = await create(handle, token, { email: address });
    expect(first.status).toBe(201);
    const problem = await expectProblem(await call('POST', subsPath(handle), { token, body: { email: address } }), 409);
    expect(problem.existingId).toBe(first.body.id);
    expect(problem.existingStatus).toBe('pending_confirmation');
    expect(problem.detail).toContain(`as ${first.body.id} (pending_confirmation)`);
    expect(problem.detail).toContain(`${first.body.id}/resend-confirmation`);
  });

  it('the same address on another handle is not a duplicate', async () => {
    const { owner, handle, token } = await setup();
    const other = await provisionHandle(owner);
    const address = email('shared');
    expect((await create(handle, token, { email: address })).status).toBe(201);
    expect((await create(other, token, { email: address })).status).toBe(201);
  });

  it('validates each field → 400 naming it', async () => {
    const { handle, token } = await setup();
    const cases: Array<[unknown, string]> = [
      [{ email: 'not-an-email' }, 'body.email'],
      [{ email: '' }, 'body.email'],
      [{ email: `${'x'.repeat(250)}@example.com` }, 'body.email'],
      [{ email: 'a@b@example.com' }, 'body.email'],
      [{}, 'body.email'],
      [{ email: 42 }, 'body.email'],
      [{ email: email(), eventTypes: ['Order Paid'] }, 'body.eventTypes.0'],
      [{ email: email(), eventTypes: ['order.paid', 'order.*x'] }, 'body.eventTypes.1'],
      [{ email: email(), eventTypes: ['order.paid', 'order.paid'] }, 'body.eventTypes'],
      [{ email: email(), eventTypes: [] }, 'body.eventTypes'],
      [{ email: email(), eventTypes: 'order.paid' }, 'body.eventTypes'],
      [
        {
          email: email(),
          filterPolicy: {
            type: ['order.paid'],
            severity: ['critical'],
            source: ['orders'],
            'data.a': ['x'],
            'data.b': ['y'],
            'data.c': ['z'],
          },
        },
        'body.filterPolicy',
      ],
      [{ email: email(), filterPolicy: { type: 'order.paid' } }, 'body.filterPolicy.type'],
      [{ email: email(), status: 'active' }, 'body.status'],
      [{ email: email(), handle: 'someone-else' }, 'body.handle'],
    ];
    for (const [body, path] of cases) {
      const problem = await expectProblem(await call('POST', subsPath(handle), { token, body }), 400);
      const paths = (problem.errors as Array<{ path: string }>).map((e) => e.path);
      // The filter policy's own errors may be nested deeper (body.filterPolicy.<key>): accept the field or below it.
      expect(
        paths.some((p) => p === path || p.startsWith(`${path}.`)),
        `${JSON.stringify(body)} → ${JSON.stringify(paths)}`,
      ).toBe(true);
    }
    const n = await anyShard
      .prepare('SELECT count(*) AS n FROM email_subscriptions WHERE handle = ?')
      .bind(handle)
      .first<{ n: number }>();
    expect(n!.n).toBe(0);
  });

  it('an unknown field is reported at its own path', async () => {
    const { handle, token } = await setup();
    const problem = await expectProblem(
      await call('POST', subsPath(handle), { token, body: { email: email(), confirmedAt: '2026-01-01T00:00:00Z' } }),
      400,
    );
    expect(problem.errors).toEqual([{ path: 'body.confirmedAt', message: expect.any(String) }]);
  });

  it('allows 200 subscriptions per handle; the 201st → 422', async () => {
    const { handle, token } = await setup();
    await insertEmailSubscriptions(handle, 199);
    const ok = await create(handle, token, { email: email('200th') });
    expect(ok.status).toBe(201);
    const problem = await expectProblem(
      await call('POST', subsPath(handle), { token, body: { email: email('201st') } }),
      422,
    );
    expect(problem.limit).toBe(200);
    expect(problem.detail).toContain('200');
    const n = await anyShard
      .prepare(`SELECT count(*) AS n FROM email_subscriptions WHERE handle = ? AND kind = 'standard'`)
      .bind(handle)
      .first<{ n: number }>();
    expect(n!.n).toBe(200);
  });

  it('concurrent creates at 199 cannot exceed 200 subscriptions', async () => {
    const { handle } = await setup();
    await insertEmailSubscriptions(handle, 199);
    // Ten admins at once (one request each, so no throttle or idempotency plays a part).
    const tokens: string[] = [];
    for (let i = 0; i < 10; i++) {
      const admin = unique('admin');
      await addMember(handle, admin, 'admin');
      tokens.push(await userJwt(admin));
    }
    const results = await Promise.all(
      tokens.map((token) => call('POST', subsPath(handle), { token, body: { email: email('race') } })),
    );
    const statuses = results.map((r) => r.status);
    expect(
      statuses.filter((s) => s === 201),
      statuses.join(','),
    ).toHaveLength(1);
    expect(statuses.filter((s) => s === 422)).toHaveLength(9);
    const n = await anyShard
      .prepare(`SELECT count(*) AS n FROM email_subscriptions WHERE handle = ? AND kind = 'standard'`)
      .bind(handle)
      .first<{ n: number }>();
    expect(n!.n).toBe(200);
  });

  it('the owner default email does not count towards the 200', async () => {
    const { handle, token } = await setup();
    expect((await callJson('PUT', ownerPath(handle), { token, body: { email: email('owner') } })).status).toBe(200);
    await insertEmailSubscriptions(handle, 199);
    expect((await create(handle, token, { email: email('200th') })).status).toBe(201);
  });
});

describe('GET …/notifications/email-subscriptions', () => {
  it('starts with the owner default: unset when none, active with the address once set', async () => {
    const { handle, token } = await setup();
    const empty = await listAll(handle, token);
    expect(empty.data).toHaveLength(1);
    expect(empty.data[0]).toMatchObject({ id: 'owner-default', kind: 'owner_default', status: 'unset', email: null });
    expect(empty.nextCursor).toBeNull();

    const address = email('Owner');
    const put = await callJson('PUT', ownerPath(handle), { token, body: { email: address } });
    expect(put.status).toBe(200);
    const sub = await create(handle, token, { email: email('sub') });
    const listed = await listAll(handle, token);
    expect(listed.data.map((s) => s.id)).toEqual(['owner-default', sub.body.id]);
    expect(listed.data[0]).toMatchObject({
      id: 'owner-default',
      kind: 'owner_default',
      status: 'active',
      email: address,
    });
  });

  it('pages over 7 subscriptions with limit=3: each exactly once, newest first; owner default only on page one', async () => {
    const { handle, token } = await setup();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const { status, body } = await create(handle, token, { email: email(`p${i}`) });
      expect(status).toBe(201);
      ids.push(body.id);
    }
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const { status, body } = await callJson('GET', `${subsPath(handle)}?limit=3${q}`, { token });
      expect(status).toBe(200);
      pages.push(body.data.map((s: { id: string }) => s.id));
      cursor = body.nextCursor;
      expect(pages.length).toBeLessThan(10);
    } while (cursor);
    expect(pages[0]![0]).toBe('owner-default');
    for (const page of pages.slice(1)) expect(page).not.toContain('owner-default');
    const standard = pages.flat().filter((id) => id !== 'owner-default');
    for (const page of pages) expect(page.filter((id) => id !== 'owner-default').length).toBeLessThanOrEqual(3);
    expect(standard).toEqual([...ids].reverse());
    expect(pages).toHaveLength(3);
  });

  it('a bad cursor → 400 naming query.cursor; a bad limit → 400 naming query.limit', async () => {
    const { handle, token } = await setup();
    const p1 = await expectProblem(await call('GET', `${subsPath(handle)}?cursor=nonsense`, { token }), 400);
    expect(p1.errors[0].path).toBe('query.cursor');
    const p2 = await expectProblem(await call('GET', `${subsPath(handle)}?limit=201`, { token }), 400);
    expect(p2.errors[0].path).toBe('query.limit');
  });

  it('a viewer may list (read), and a PAT with notifications:read may too', async () => {
    const { handle, token } = await setup();
    await create(handle, token, { email: email() });
    const viewer = unique('viewer');
    await addMember(handle, viewer, 'viewer');
    const list = await listAll(handle, await userJwt(viewer));
    expect(list.data).toHaveLength(2);
    const pat = await createPat(viewer, { scopes: ['notifications:read'] });
    expect((await call('GET', subsPath(handle), { token: pat.token })).status).toBe(200);
  });
});

describe('DELETE …/notifications/email-subscriptions/{id}', () => {
  it('→ 204 and it is gone from the list and from D1', async () => {
    const { handle, token } = await setup();
    const keep = await create(handle, token, { email: email('keep') });
    const gone = await create(handle, token, { email: email('gone') });
    const res = await call('DELETE', `${subsPath(handle)}/${gone.body.id}`, { token });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    const list = await listAll(handle, token);
    expect(list.data.map((s) => s.id)).toEqual(['owner-default', keep.body.id]);
    expect(await row(gone.body.id)).toBeNull();
    // A second delete finds nothing.
    await expectProblem(await call('DELETE', `${subsPath(handle)}/${gone.body.id}`, { token }), 404);
  });

  it('owner-default cannot be deleted here → 422, and it stays', async () => {
    const { handle, token } = await setup();
    const address = email('owner');
    await callJson('PUT', ownerPath(handle), { token, body: { email: address } });
    const problem = await expectProblem(await call('DELETE', `${subsPath(handle)}/owner-default`, { token }), 422);
    expect(problem.detail).toMatch(/owner-default-email/);
    const list = await listAll(handle, token);
    expect(list.data[0]).toMatchObject({ id: 'owner-default', status: 'active', email: address });
  });

  it('the owner default row cannot be deleted by its internal esub_ id either', async () => {
    const { handle, token } = await setup();
    await callJson('PUT', ownerPath(handle), { token, body: { email: email('owner') } });
    const internal = await anyShard
      .prepare(`SELECT id FROM email_subscriptions WHERE handle = ? AND kind = 'owner_default'`)
      .bind(handle)
      .first<{ id: string }>();
    await expectProblem(await call('DELETE', `${subsPath(handle)}/${internal!.id}`, { token }), 404);
    expect(await row(internal!.id)).not.toBeNull();
  });

  it('an unknown id → 404; a malformed id → 404', async () => {
    const { handle, token } = await setup();
    await expectProblem(await call('DELETE', `${subsPath(handle)}/${newId('esub')}`, { token }), 404);
    for (const bad of [
      'esub_123',
      'whk_01JD3Q7X9T0000000000000000',
      'esub_01JD3Q7X9T000000000000000u',
      "1'%20OR%201=1",
    ]) {
      await expectProblem(await call('DELETE', `${subsPath(handle)}/${bad}`, { token }), 404);
    }
  });

  it('cancels the open deliveries of the subscription, visibly, and recomputes the notification status', async () => {
    const { owner, handle, token } = await setup();
    const sub = await create(handle, token, { email: email('deliv') });
    const subId = sub.body.id as string;
    const other = await create(handle, token, { email: email('other') });
    const notificationId = newId('ntf');
    const { ids, recipients } = await insertDeliveries(handle, [
      { notificationId, channel: 'email', subscriptionId: subId, target: sub.body.email, status: 'queued' },
      {
        notificationId,
        channel: 'email',
        subscriptionId: subId,
        target: sub.body.email,
        status: 'succeeded',
        attempts: 1,
      },
    ]);
    const [queuedId, succeededId] = ids as [string, string];
    // A second notification with an open delivery of *another* subscription: must stay untouched.
    const otherNotification = newId('ntf');
    const otherDeliveries = await insertDeliveries(handle, [
      {
        notificationId: otherNotification,
        channel: 'email',
        subscriptionId: other.body.id,
        target: other.body.email,
        status: 'retrying',
      },
    ]);
    const now = new Date().toISOString();
    await insertNotifications(handle, [
      { id: notificationId, type: 'order.paid', severity: 'info', status: 'delivering', createdAt: now, recipients },
      {
        id: otherNotification,
        type: 'order.paid',
        severity: 'info',
        status: 'delivering',
        createdAt: now,
        recipients: otherDeliveries.recipients,
      },
    ]);

    // Another handle's path (the caller owns both): 404 and nothing changes.
    const otherHandle = await provisionHandle(owner);
    await expectProblem(await call('DELETE', `${subsPath(otherHandle)}/${subId}`, { token }), 404);
    const untouched = await anyShard
      .prepare('SELECT status FROM deliveries WHERE id = ?')
      .bind(queuedId)
      .first<{ status: string }>();
    expect(untouched!.status).toBe('queued');
    expect(await row(subId)).not.toBeNull();

    expect((await call('DELETE', `${subsPath(handle)}/${subId}`, { token })).status).toBe(204);

    const deliveries = await anyShard
      .prepare('SELECT id, status, status_reason FROM deliveries WHERE notification_id = ? ORDER BY id')
      .bind(notificationId)
      .all<{ id: string; status: string; status_reason: string | null }>();
    const byId = Object.fromEntries(deliveries.results.map((d) => [d.id, d]));
    expect(byId[queuedId]).toMatchObject({ status: 'cancelled', status_reason: 'subscription_deleted' });
    expect(byId[succeededId]).toMatchObject({ status: 'succeeded', status_reason: null });

    const n = await anyShard
      .prepare('SELECT status, recipients FROM notifications WHERE id = ?')
      .bind(notificationId)
      .first<{ status: string; recipients: string }>();
    // Each stored entry is still an array (not a JSON string); decoded, it has the new status.
    for (const entry of Object.values(JSON.parse(n!.recipients))) expect(Array.isArray(entry)).toBe(true);
    const summary = summaryById(n!.recipients);
    expect(Object.keys(summary).sort()).toEqual([queuedId, succeededId].sort());
    expect(summary[queuedId]).toMatchObject({
      deliveryId: queuedId,
      status: 'cancelled',
      statusReason: 'subscription_deleted',
    });
    expect(summary[succeededId]).toMatchObject({
      deliveryId: succeededId,
      status: 'succeeded',
      statusReason: null,
      attempts: 1,
    });
    expect(n!.status).toBe('delivered');

    // The feed shows the same.
    const detail = await callJson('GET', `/v2/handles/${handle}/notifications/${notificationId}`, { token });
    expect(detail.status).toBe(200);
    expect(detail.body.status).toBe('delivered');
    expect(detail.body.deliveries.find((d: { deliveryId: string }) => d.deliveryId === queuedId)).toMatchObject({
      status: 'cancelled',
      statusReason: 'subscription_deleted',
    });

    // The other subscription's open delivery and notification are unchanged.
    const otherRow = await anyShard
      .prepare('SELECT status FROM deliveries WHERE id = ?')
      .bind(otherDeliveries.ids[0])
      .first<{ status: string }>();
    expect(otherRow!.status).toBe('retrying');
    const otherN = await anyShard
      .prepare('SELECT status, recipients FROM notifications WHERE id = ?')
      .bind(otherNotification)
      .first<{ status: string; recipients: string }>();
    expect(otherN!.status).toBe('delivering');
    expect(summaryById(otherN!.recipients)).toEqual(otherDeliveries.recipients);
  });

  it('a notification whose only delivery is cancelled becomes no_recipients', async () => {
    const { handle, token } = await setup();
    const sub = await create(handle, token, { email: email('only') });
    const notificationId = newId('ntf');
    const { ids, recipients } = await insertDeliveries(handle, [
      { notificationId, channel: 'email', subscriptionId: sub.body.id, target: sub.body.email, status: 'pending' },
    ]);
    await insertNotifications(handle, [
      {
        id: notificationId,
        type: 'order.paid',
        severity: 'info',
        status: 'delivering',
        createdAt: new Date().toISOString(),
        recipients,
      },
    ]);
    expect((await call('DELETE', `${subsPath(handle)}/${sub.body.id}`, { token })).status).toBe(204);
    const n = await anyShard
      .prepare('SELECT status, recipients FROM notifications WHERE id = ?')
      .bind(notificationId)
      .first<{ status: string; recipients: string }>();
    expect(n!.status).toBe('no_recipients');
    expect(summaryById(n!.recipients)[ids[0]!]!.status).toBe('cancelled');
  });
});

describe('PUT …/notifications/owner-default-email', () => {
  it('the owner sets it; null unsets it (list shows unset again)', async () => {
    const { handle, token } = await setup();
    const address = `  ${email('Boss')}  `;
    const set = await callJson('PUT', ownerPath(handle), { token, body: { email: address } });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({
      id: 'owner-default',
      kind: 'owner_default',
      status: 'active',
      email: address.trim(),
    });
    const stored = await anyShard
      .prepare(`SELECT * FROM email_subscriptions WHERE handle = ? AND kind = 'owner_default'`)
      .bind(handle)
      .first<Record<string, any>>();
    expect(stored!.email_normalized).toBe(address.trim().toLowerCase());

    const unset = await callJson('PUT', ownerPath(handle), { token, body: { email: null } });
    expect(unset.status).toBe(200);
    expect(unset.body).toMatchObject({ id: 'owner-default', status: 'unset', email: null });
    const list = await listAll(handle, token);
    expect(list.data[0]).toMatchObject({ id: 'owner-default', status: 'unset', email: null });
    const n = await anyShard
      .prepare(`SELECT count(*) AS n FROM email_subscriptions WHERE handle = ? AND kind = 'owner_default'`)
      .bind(handle)
      .first<{ n: number }>();
    expect(n!.n).toBe(0);
  });

  it('setting again an address that unsubscribed answers 409 with why and how to fix it, not a silent 200', async () => {
    const { handle, token } = await setup();
    const address = email('gone');
    expect((await callJson('PUT', ownerPath(handle), { token, body: { email: address } })).status).toBe(200);
    await anyShard
      .prepare(
        `UPDATE email_subscriptions SET status = 'unsubscribed', status_reason = 'Unsubscribed by link.'
       WHERE handle = ? AND kind = 'owner_default'`,
      )
      .bind(handle)
      .run();
    const problem = await expectProblem(
      await call('PUT', ownerPath(handle), { token, body: { email: address.toUpperCase() } }),
      409,
    );
    expect(problem.subscriptionStatus).toBe('unsubscribed');
    expect(problem.detail).toContain(`${address} unsubscribed with the link`);
    expect(problem.detail).toContain('{"email": null}');
    // Nothing changed: still unsubscribed, as the answer says.
    const after = await callJson('GET', ownerPath(handle), { token });
    expect(after.body).toMatchObject({ email: address, status: 'unsubscribed' });
    // The fix the answer gives works: unset, set again → active.
    expect((await callJson('PUT', ownerPath(handle), { token, body: { email: null } })).status).toBe(200);
    const again = await callJson('PUT', ownerPath(handle), { token, body: { email: address } });
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('active');
  });

  it('unsetting it cancels its open deliveries, visibly', async () => {
    const { handle, token } = await setup();
    const address = email('owner');
    await callJson('PUT', ownerPath(handle), { token, body: { email: address } });
    const internal = await anyShard
      .prepare(`SELECT id FROM email_subscriptions WHERE handle = ? AND kind = 'owner_default'`)
      .bind(handle)
      .first<{ id: string }>();
    const notificationId = newId('ntf');
    const { ids, recipients } = await insertDeliveries(
      handle,
      [
        {
          notificationId,
          channel: 'email',
          subscriptionId: internal!.id,
          target: address.toLowerCase(),
          status: 'retrying',
          attempts: 2,
        },
      ],
      'owner_default',
    );
    await insertNotifications(handle, [
      {
        id: notificationId,
        type: 'payment.failed',
        severity: 'critical',
        status: 'delivering',
        createdAt: new Date().toISOString(),
        recipients,
      },
    ]);
    expect((await callJson('PUT', ownerPath(handle), { token, body: { email: null } })).status).toBe(200);
    const d = await anyShard.prepare('SELECT status, status_reason FROM deliveries WHERE id = ?').bind(ids[0]).first();
    expect(d).toEqual({ status: 'cancelled', status_reason: 'subscription_deleted' });
    const detail = await callJson('GET', `/v2/handles/${handle}/notifications/${notificationId}`, { token });
    // A critical event left with nobody to receive it says so: undeliverable, not no_recipients.
    expect(detail.body.status).toBe('undeliverable');
    expect(detail.body.deliveries).toEqual([
      expect.objectContaining({ deliveryId: ids[0], status: 'cancelled', recipientType: 'owner_default' }),
    ]);
  });

  it('changing the address replaces it: still one owner_default row', async () => {
    const { handle, token } = await setup();
    const first = email('first');
    const second = email('second');
    expect((await callJson('PUT', ownerPath(handle), { token, body: { email: first } })).status).toBe(200);
    const changed = await callJson('PUT', ownerPath(handle), { token, body: { email: second } });
    expect(changed.status).toBe(200);
    expect(changed.body.email).toBe(second);
    const rows = await anyShard
      .prepare(`SELECT email, email_normalized FROM email_subscriptions WHERE handle = ? AND kind = 'owner_default'`)
      .bind(handle)
      .all<{ email: string; email_normalized: string }>();
    expect(rows.results).toEqual([{ email: second, email_normalized: second.toLowerCase() }]);
    const list = await listAll(handle, token);
    expect(list.data.filter((s) => s.kind === 'owner_default')).toHaveLength(1);
    expect(list.data[0]!.email).toBe(second);
  });

  it('the owner default address may equal a standard subscription on the same handle', async () => {
    const { handle, token } = await setup();
    const address = email('both');
    expect((await create(handle, token, { email: address })).status).toBe(201);
    expect((await callJson('PUT', ownerPath(handle), { token, body: { email: address } })).status).toBe(200);
  });

  it('only the owner: an admin → 403 naming the role, a viewer → 403; nothing changes', async () => {
    const { handle, token } = await setup();
    const original = email('orig');
    await callJson('PUT', ownerPath(handle), { token, body: { email: original } });
    const admin = unique('admin');
    const viewer = unique('viewer');
    await addMember(handle, admin, 'admin');
    await addMember(handle, viewer, 'viewer');
    const p1 = await expectProblem(
      await call('PUT', ownerPath(handle), { token: await userJwt(admin), body: { email: email('evil') } }),
      403,
    );
    expect(p1.detail).toMatch(/owner/);
    expect(p1.requiredRoles).toEqual(['owner']);
    expect(p1.role).toBe('admin');
    const p2 = await expectProblem(
      await call('PUT', ownerPath(handle), { token: await userJwt(viewer), body: { email: null } }),
      403,
    );
    expect(p2.requiredRoles).toEqual(['owner']);
    const list = await listAll(handle, token);
    expect(list.data[0]).toMatchObject({ status: 'active', email: original });
  });

  it('GET on owner-default-email shows its state (unset, then the address), not a 404', async () => {
    const { handle, token } = await setup();
    const unset = await callJson('GET', ownerPath(handle), { token });
    expect(unset.body).toMatchObject({ id: 'owner-default', status: 'unset', email: null });
    await call('PUT', ownerPath(handle), { token, body: { email: 'Boss@Example.com' } });
    const set = await callJson('GET', ownerPath(handle), { token });
    expect(set.body).toMatchObject({ id: 'owner-default', status: 'active', email: 'Boss@Example.com' });
    const res = await call('DELETE', ownerPath(handle), { token });
    await expectProblem(res, 405);
    expect(res.headers.get('allow')).toBe('GET, PUT');
  });

  it('validates the body', async () => {
    const { handle, token } = await setup();
    const cases: Array<[unknown, string]> = [
      [{ email: 'nope' }, 'body.email'],
      [{}, 'body.email'],
      [{ email: email(), eventTypes: ['order.paid'] }, 'body.eventTypes'],
    ];
    for (const [body, path] of cases) {
      const problem = await expectProblem(await call('PUT', ownerPath(handle), { token, body }), 400);
      expect(
        problem.errors.map((e: { path: string }) => e.path),
        JSON.stringify(body),
      ).toContain(path);
    }
  });
});

describe('tenancy and permissions', () => {
  it('a member of handle A cannot list, create or delete on handle B (404), and B is unchanged', async () => {
    const a = await setup();
    const b = await setup();
    const bSub = await create(b.handle, b.token, { email: email('b') });
    expect(bSub.status).toBe(201);
    await expectProblem(await call('GET', subsPath(b.handle), { token: a.token }), 404);
    await expectProblem(
      await call('POST', subsPath(b.handle), { token: a.token, body: { email: email('intruder') } }),
      404,
    );
    await expectProblem(await call('DELETE', `${subsPath(b.handle)}/${bSub.body.id}`, { token: a.token }), 404);
    await expectProblem(
      await call('PUT', ownerPath(b.handle), { token: a.token, body: { email: email('intruder') } }),
      404,
    );
    // A's own path with B's id: 404 too.
    await expectProblem(await call('DELETE', `${subsPath(a.handle)}/${bSub.body.id}`, { token: a.token }), 404);
    const bList = await listAll(b.handle, b.token);
    expect(bList.data.map((s) => s.id)).toEqual(['owner-default', bSub.body.id]);
    expect(bList.data[0]!.status).toBe('unset');
    expect((await row(bSub.body.id))!.handle).toBe(b.handle);
  });

  it('a PAT bound to handle A cannot reach handle B even though its user is a member of both', async () => {
    const { owner, handle } = await setup();
    const other = await provisionHandle(owner);
    const pat = await createPat(owner, { handle, scopes: ['notifications:read', 'notifications:write'] });
    expect((await call('GET', subsPath(handle), { token: pat.token })).status).toBe(200);
    await expectProblem(await call('GET', subsPath(other), { token: pat.token }), 404);
    await expectProblem(await call('POST', subsPath(other), { token: pat.token, body: { email: email() } }), 404);
  });

  it('without notifications:write → 403 naming the scope; without notifications:read the list → 403', async () => {
    const { owner, handle } = await setup();
    const readOnly = await signJwt({ sub: owner, scope: 'notifications:read webhooks:write' });
    const p = await expectProblem(
      await call('POST', subsPath(handle), { token: readOnly, body: { email: email() } }),
      403,
    );
    expect(p.missingScopes).toEqual(['notifications:write']);
    const ownerPut = await expectProblem(
      await call('PUT', ownerPath(handle), { token: readOnly, body: { email: email() } }),
      403,
    );
    expect(ownerPut.missingScopes).toEqual(['notifications:write']);
    const writeOnly = await signJwt({ sub: owner, scope: 'notifications:write' });
    const p2 = await expectProblem(await call('GET', subsPath(handle), { token: writeOnly }), 403);
    expect(p2.missingScopes).toEqual(['notifications:read']);
    const pat = await createPat(owner, { scopes: ['notifications:read'] });
    await expectProblem(await call('POST', subsPath(handle), { token: pat.token, body: { email: email() } }), 403);
    const n = await anyShard
      .prepare('SELECT count(*) AS n FROM email_subscriptions WHERE handle = ?')
      .bind(handle)
      .first<{ n: number }>();
    expect(n!.n).toBe(0);
  });

  it('a viewer cannot create or delete (403); an admin can', async () => {
    const { handle, token } = await setup();
    const sub = await create(handle, token, { email: email() });
    const viewer = unique('viewer');
    const admin = unique('admin');
    await addMember(handle, viewer, 'viewer');
    await addMember(handle, admin, 'admin');
    const vt = await userJwt(viewer);
    const p = await expectProblem(await call('POST', subsPath(handle), { token: vt, body: { email: email() } }), 403);
    expect(p.role).toBe('viewer');
    await expectProblem(await call('DELETE', `${subsPath(handle)}/${sub.body.id}`, { token: vt }), 403);
    expect(await row(sub.body.id)).not.toBeNull();
    const at = await userJwt(admin);
    expect((await create(handle, at, { email: email('by-admin') })).status).toBe(201);
    expect((await call('DELETE', `${subsPath(handle)}/${sub.body.id}`, { token: at })).status).toBe(204);
  });
});
