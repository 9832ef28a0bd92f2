import { applyD1Migrations } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { upsertHandle } from '../../src/routes/internal/internal.repo.ts';
import {
  ALL_USER_SCOPES,
  anyShard,
  call,
  callJson,
  createPat,
  expectProblem,
  serviceJwt,
  signJwt,
  unique,
} from '../support/helpers.ts';

describe('internal provisioning', () => {
  it('PUT handle creates it with default settings and an owner (201), then updates it (200)', async () => {
    const handle = unique('prov');
    const token = await serviceJwt();
    const created = await callJson('PUT', `/v2/internal/handles/${handle}`, {
      token,
      body: { displayName: 'First', ownerUserId: 'owner-1' },
    });
    expect(created.status).toBe(201);
    expect(created.body.displayName).toBe('First');
    const settings = await anyShard
      .prepare('SELECT * FROM notification_settings WHERE handle = ?')
      .bind(handle)
      .first();
    expect(settings).toMatchObject({ owner_fallback: 'critical', email_enabled: 1, webhook_enabled: 1, version: 1 });
    const updated = await callJson('PUT', `/v2/internal/handles/${handle}`, {
      token,
      body: { displayName: 'Renamed' },
    });
    expect(updated.status).toBe(200);
    expect(updated.body.displayName).toBe('Renamed');
    expect(updated.body.createdAt).toBe(created.body.createdAt);
    const owner = await signJwt({ sub: 'owner-1', scope: ALL_USER_SCOPES });
    expect((await callJson('GET', `/v2/handles/${handle}`, { token: owner })).body.role).toBe('owner');
  });

  it('members: add (201), change role (200), remove (204); the last owner stays', async () => {
    const handle = unique('prov');
    const token = await serviceJwt();
    await call('PUT', `/v2/internal/handles/${handle}`, { token, body: { displayName: 'S', ownerUserId: 'o1' } });
    const base = `/v2/internal/handles/${handle}/members`;
    expect((await call('PUT', `${base}/u2`, { token, body: { role: 'viewer' } })).status).toBe(201);
    expect((await callJson('PUT', `${base}/u2`, { token, body: { role: 'owner' } })).body.role).toBe('owner');
    // Two owners: demoting one is fine; then the remaining one cannot go.
    expect((await call('PUT', `${base}/o1`, { token, body: { role: 'admin' } })).status).toBe(200);
    await expectProblem(await call('PUT', `${base}/u2`, { token, body: { role: 'viewer' } }), 409);
    await expectProblem(await call('DELETE', `${base}/u2`, { token }), 409);
    expect((await call('DELETE', `${base}/o1`, { token })).status).toBe(204);
    await expectProblem(await call('DELETE', `${base}/o1`, { token }), 404);
    await expectProblem(
      await call('PUT', `/v2/internal/handles/missing-${handle}/members/x`, { token, body: { role: 'viewer' } }),
      404,
    );
  });

  it('validates bodies: unknown role, unknown fields', async () => {
    const token = await serviceJwt();
    const handle = unique('prov');
    const bad = await expectProblem(
      await call('PUT', `/v2/internal/handles/${handle}`, { token, body: { displayName: 'x', plan: 'enterprise' } }),
      400,
    );
    expect(bad.errors[0].path).toBe('body.plan');
    await call('PUT', `/v2/internal/handles/${handle}`, { token, body: { displayName: 'x' } });
    const role = await expectProblem(
      await call('PUT', `/v2/internal/handles/${handle}/members/u`, { token, body: { role: 'superuser' } }),
      400,
    );
    expect(role.errors[0].path).toBe('body.role');
  });

  it('only service JWTs with internal:provision may provision', async () => {
    const handle = unique('prov');
    const body = { displayName: 'x', ownerUserId: 'me' };
    const user = await signJwt({ sub: 'me', scope: ALL_USER_SCOPES });
    await expectProblem(await call('PUT', `/v2/internal/handles/${handle}`, { token: user, body }), 403);
    const { token: pat } = await createPat(unique('u'));
    await expectProblem(await call('PUT', `/v2/internal/handles/${handle}`, { token: pat, body }), 403);
    const svcNoScope = await signJwt({ sub: 'svc:x', scope: 'events:publish', handles: '*' });
    const p = await expectProblem(
      await call('PUT', `/v2/internal/handles/${handle}`, { token: svcNoScope, body }),
      403,
    );
    expect(p.missingScopes).toEqual(['internal:provision']);
    const row = await env.DB.prepare('SELECT handle FROM handles WHERE handle = ?').bind(handle).first();
    expect(row).toBeNull();
  });
});

describe('the last owner under concurrent removals and demotions', () => {
  /** A handle with `n` owners, provisioned through the real internal API. */
  async function handleWithOwners(n: number) {
    const token = await serviceJwt();
    const handle = unique('owners');
    const owners = Array.from({ length: n }, (_, i) => `owner-${i}`);
    await call('PUT', `/v2/internal/handles/${handle}`, { token, body: { displayName: 'S', ownerUserId: owners[0] } });
    for (const o of owners.slice(1)) {
      const res = await call('PUT', `/v2/internal/handles/${handle}/members/${o}`, { token, body: { role: 'owner' } });
      expect(res.status).toBe(201);
    }
    return { token, handle, owners };
  }

  const ownersLeft = async (handle: string) =>
    (await env.DB.prepare(`SELECT count(*) AS n FROM memberships WHERE handle = ? AND role = 'owner'`)
      .bind(handle)
      .first<{ n: number }>())!.n;

  it('six concurrent DELETEs of six owners leave exactly one owner: five 204 and one 409, in every trial', async () => {
    for (let trial = 0; trial < 5; trial++) {
      const { token, handle, owners } = await handleWithOwners(6);
      const answers = await Promise.all(
        owners.map((o) => call('DELETE', `/v2/internal/handles/${handle}/members/${o}`, { token })),
      );
      const statuses = answers.map((r) => r.status);
      expect(
        statuses.filter((s) => s === 204),
        `trial ${trial}: ${statuses}`,
      ).toHaveLength(5);
      const losers = answers.filter((r) => r.status === 409);
      expect(losers, `trial ${trial}: ${statuses}`).toHaveLength(1);
      const problem = await expectProblem(losers[0]!, 409);
      expect(problem.detail).toMatch(/at least one owner/);
      expect(await ownersLeft(handle), `trial ${trial}`).toBe(1);
    }
  });

  it('six concurrent demotions of six owners leave exactly one owner: five 200 and one 409, in every trial', async () => {
    for (let trial = 0; trial < 5; trial++) {
      const { token, handle, owners } = await handleWithOwners(6);
      const answers = await Promise.all(
        owners.map((o, i) =>
          call('PUT', `/v2/internal/handles/${handle}/members/${o}`, {
            token,
            body: { role: i % 2 ? 'admin' : 'viewer' },
          }),
        ),
      );
      const statuses = answers.map((r) => r.status);
      expect(
        statuses.filter((s) => s === 200),
        `trial ${trial}: ${statuses}`,
      ).toHaveLength(5);
      const losers = answers.filter((r) => r.status === 409);
      expect(losers, `trial ${trial}: ${statuses}`).toHaveLength(1);
      await expectProblem(losers[0]!, 409);
      expect(await ownersLeft(handle), `trial ${trial}`).toBe(1);
    }
  });

  it('removals and demotions racing each other never leave a handle without an owner', async () => {
    for (let trial = 0; trial < 3; trial++) {
      const { token, handle, owners } = await handleWithOwners(4);
      const answers = await Promise.all(
        owners.flatMap((o) => [
          call('DELETE', `/v2/internal/handles/${handle}/members/${o}`, { token }),
          call('PUT', `/v2/internal/handles/${handle}/members/${o}`, { token, body: { role: 'viewer' } }),
        ]),
      );
      for (const r of answers) expect([200, 201, 204, 404, 409]).toContain(r.status);
      expect(await ownersLeft(handle), `trial ${trial}`).toBe(1);
    }
  });
});

describe('placement on the least-loaded shard (docs/design.md#shards)', () => {
  it('a new handle goes to the shard D1 reports smallest (meta.size_after); an existing one stays where it is', async () => {
    const [a, b] = [env.PLACEMENT_TEST_A, env.PLACEMENT_TEST_B];
    for (const d1 of [a, b]) await applyD1Migrations(d1, env.TEST_MIGRATIONS);
    const shards = { ...env, SHARD_0: a, SHARD_1: b } as Env;
    const size = async (d1: D1Database) => (await d1.prepare('SELECT 1').run()).meta.size_after ?? 0;
    /** Grows a database by about `kb` KB of rows (a handle of its own, with notifications of 1 KB each). */
    const grow = async (d1: D1Database, kb: number) => {
      const h = unique('ballast');
      const now = new Date().toISOString();
      await d1
        .prepare('INSERT INTO handles (handle, display_name, created_at, updated_at) VALUES (?1, ?1, ?2, ?2)')
        .bind(h, now)
        .run();
      await d1
        .prepare(
          `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
           INSERT INTO notifications (id, handle, type, severity, data, source, occurred_at, status, created_at,
             updated_at)
           SELECT 'ntf_' || ?1 || printf('%08d', i), ?1, 'order.paid', 'info', printf('%01000d', i), 't', ?3, 'delivered',
             ?3, ?3 FROM n`,
        )
        .bind(h, kb, now)
        .run();
    };
    const place = async () => {
      const handle = unique('placed');
      const { row } = await upsertHandle(shards, { handle, displayName: handle, ownerUserId: null, now: 'now' });
      return { handle, shard: row.shard };
    };

    await grow(a, 2000);
    expect(await size(a)).toBeGreaterThan(await size(b));
    const first = await place();
    expect(first.shard).toBe(1);
    // Its rows are on that shard: the copy of the handle row and its settings.
    expect(await b.prepare('SELECT shard FROM handles WHERE handle = ?').bind(first.handle).first()).toEqual({
      shard: 1,
    });
    expect(
      await b.prepare('SELECT 1 AS ok FROM notification_settings WHERE handle = ?').bind(first.handle).first(),
    ).toEqual({ ok: 1 });

    await grow(b, 4000);
    expect(await size(b)).toBeGreaterThan(await size(a));
    const second = await place();
    expect(second.shard).toBe(0);
    // Provisioned again (a rename), a handle keeps its shard whatever the sizes say now.
    const { row } = await upsertHandle(shards, {
      handle: first.handle,
      displayName: 'renamed',
      ownerUserId: null,
      now: 'x',
    });
    expect(row.shard).toBe(1);
  });
});
