import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { decryptSecret, importEncryptionKey } from '../../src/lib/crypto.ts';
import {
  ALL_USER_SCOPES,
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

async function setup() {
  const owner = unique('owner');
  const handle = await provisionHandle(owner);
  const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
  return { owner, handle, token, base: `/v2/handles/${handle}/webhooks` };
}

const HOOK = 'https://crm.example.com/hooks/gharart';
/** Tests relax the URL rules for loopback receivers; these checks run with production's. */
const PRODUCTION_URL_RULES = { ALLOW_INSECURE_WEBHOOK_TARGETS: 'false' };

describe('POST …/webhooks', () => {
  it('creates a subscription, returns the whsec_ secret once, stores it encrypted', async () => {
    const { token, base } = await setup();
    const { status, body, res } = await callJson('POST', base, {
      token,
      body: {
        url: HOOK,
        description: 'CRM',
        eventTypes: ['order.*', 'payment.failed'],
        filterPolicy: { 'data.total': [{ numeric: ['>=', 100] }] },
        headers: { 'X-Crm-Tenant': 'acme', Authorization: 'Bearer crm-token-123456' },
      },
    });
    expect(status).toBe(201);
    expect(res.headers.get('location')).toBe(`${base}/${body.id}`);
    expect(body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const raw = atob(body.secret.slice(6));
    expect(raw.length).toBeGreaterThanOrEqual(24);
    expect(raw.length).toBeLessThanOrEqual(64);
    expect(body).toMatchObject({
      url: HOOK,
      enabled: true,
      status: 'active',
      eventTypes: ['order.*', 'payment.failed'],
    });
    // Credential-like header values are masked in responses.
    expect(body.headers).toEqual({ 'X-Crm-Tenant': 'acme', Authorization: '••••3456' });

    const row = await anyShard
      .prepare('SELECT * FROM webhook_subscriptions WHERE id = ?')
      .bind(body.id)
      .first<Record<string, string>>();
    expect(JSON.stringify(row)).not.toContain(body.secret.slice(6));
    expect(await decryptSecret(row!.secret_encrypted!, await importEncryptionKey(env.ENCRYPTION_KEY))).toBe(
      body.secret,
    );

    const got = await callJson('GET', `${base}/${body.id}`, { token });
    expect(got.body).not.toHaveProperty('secret');
    expect(JSON.stringify(got.body)).not.toContain(body.secret);
  });

  it('refuses URLs that break the SSRF rules with a 422 naming the rule', async () => {
    const { token, base } = await setup();
    const cases: Array<[string, string]> = [
      ['https://169.254.169.254/latest/meta-data', 'ip_literal_not_allowed'],
      ['https://10.0.0.5/hook', 'ip_literal_not_allowed'],
      ['https://metadata.google.internal/x', 'hostname_not_public'],
      ['https://user:pw@example.com/x', 'userinfo_not_allowed'],
      ['ftp://example.com/x', 'scheme_not_allowed'],
      ['https://example.com:22/x', 'port_not_allowed'],
      ['https://intranet/x', 'hostname_not_public'],
    ];
    for (const [url, rule] of cases) {
      const res = await callWithVars(PRODUCTION_URL_RULES, 'POST', base, { token, body: { url } });
      const problem = await expectProblem(res, 422);
      expect(problem.rule, url).toBe(rule);
      expect(problem.detail.length).toBeGreaterThan(10);
    }
    const { body } = await callJson('GET', base, { token });
    expect(body.data).toEqual([]);
  });

  it('validates each field and refuses reserved headers and unknown fields', async () => {
    const { token, base } = await setup();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{}, 'body.url'],
      [{ url: 42 }, 'body.url'],
      [{ url: HOOK, description: 'x'.repeat(501) }, 'body.description'],
      [{ url: HOOK, eventTypes: [] }, 'body.eventTypes'],
      [{ url: HOOK, eventTypes: ['Order Paid'] }, 'body.eventTypes.0'],
      [{ url: HOOK, filterPolicy: { a: [1], b: [1], c: [1], d: [1], e: [1], f: [1] } }, 'body.filterPolicy'],
      [{ url: HOOK, filterPolicy: { type: 'order.paid' } }, 'body.filterPolicy.type'],
      [{ url: HOOK, headers: { 'webhook-signature': 'v1,forged' } }, 'body.headers.webhook-signature'],
      [{ url: HOOK, headers: { 'Content-Type': 'text/plain' } }, 'body.headers.Content-Type'],
      [{ url: HOOK, headers: { Host: 'evil.example' } }, 'body.headers.Host'],
      [{ url: HOOK, headers: { 'Transfer-Encoding': 'chunked' } }, 'body.headers.Transfer-Encoding'],
      [{ url: HOOK, headers: { 'X-Ok': 'a\r\nInjected: yes' } }, 'body.headers.X-Ok'],
      [{ url: HOOK, enabled: 'yes' }, 'body.enabled'],
      [{ url: HOOK, secret: 'whsec_mine' }, 'body.secret'],
      [{ url: HOOK, id: 'whk_01JD3Q7X9T0000000000000000' }, 'body.id'],
    ];
    for (const [body, path] of cases) {
      const problem = await expectProblem(await call('POST', base, { token, body }), 400);
      const paths = problem.errors.map((e: { path: string }) => e.path);
      expect(
        paths.some((p: string) => p.startsWith(path)),
        `${JSON.stringify(body)} → ${paths}`,
      ).toBe(true);
    }
  });

  it('enforces the per-handle limit with 422', async () => {
    const { handle, token, base } = await setup();
    const now = new Date().toISOString();
    const d1 = await shardOf(handle);
    const insert = d1.prepare(
      `INSERT INTO webhook_subscriptions (id, handle, url, secret_encrypted, created_at, updated_at) VALUES (?, ?, ?, 'x', ?, ?)`,
    );
    await d1.batch(
      Array.from({ length: 50 }, (_, i) => insert.bind(`whk_${String(i).padStart(26, '0')}`, handle, HOOK, now, now)),
    );
    const problem = await expectProblem(await call('POST', base, { token, body: { url: HOOK } }), 422);
    expect(problem.detail).toContain('50');
  });
});

describe('GET/PATCH/DELETE …/webhooks/{id}', () => {
  it('lists newest first with keyset pages and health fields', async () => {
    const { token, base } = await setup();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await callJson('POST', base, { token, body: { url: `${HOOK}/${i}` } })).body.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const { body }: { body: any } = await callJson('GET', `${base}?limit=2${cursor ? `&cursor=${cursor}` : ''}`, {
        token,
      });
      seen.push(...body.data.map((w: { id: string }) => w.id));
      expect(body.data[0].health).toEqual({
        consecutiveFailures: 0,
        failingSince: null,
        lastSuccessAt: null,
        lastFailureAt: null,
        lastFailureClass: null,
      });
      cursor = body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
  });

  it('PATCH changes only the fields sent; re-enabling clears the failure streak', async () => {
    const { token, base } = await setup();
    const created = (
      await callJson('POST', base, { token, body: { url: HOOK, description: 'a', eventTypes: ['order.*'] } })
    ).body;
    const patched = await callJson('PATCH', `${base}/${created.id}`, {
      token,
      body: { description: 'b', enabled: false },
    });
    expect(patched.body).toMatchObject({
      description: 'b',
      eventTypes: ['order.*'],
      enabled: false,
      status: 'disabled',
      disabledReason: 'disabled_by_user',
    });
    await anyShard
      .prepare(
        `UPDATE webhook_subscriptions SET consecutive_failures = 12, failing_since = '2026-01-01T00:00:00.000Z' WHERE id = ?`,
      )
      .bind(created.id)
      .run();
    const enabled = await callJson('PATCH', `${base}/${created.id}`, { token, body: { enabled: true } });
    expect(enabled.body).toMatchObject({ enabled: true, status: 'active', disabledReason: null });
    expect(enabled.body.health).toMatchObject({ consecutiveFailures: 0, failingSince: null });
    const cleared = await callJson('PATCH', `${base}/${created.id}`, { token, body: { eventTypes: null } });
    expect(cleared.body.eventTypes).toBeNull();
    await expectProblem(await call('PATCH', `${base}/${created.id}`, { token, body: {} }), 400);
    const ssrf = await expectProblem(
      await callWithVars(PRODUCTION_URL_RULES, 'PATCH', `${base}/${created.id}`, {
        token,
        body: { url: 'https://127.0.0.1/x' },
      }),
      422,
    );
    expect(ssrf.rule).toBe('ip_literal_not_allowed');
    const unchanged = await callJson('GET', `${base}/${created.id}`, { token });
    expect(unchanged.body.url).toBe(HOOK);
  });

  it('DELETE removes it (204, then 404)', async () => {
    const { token, base } = await setup();
    const { id } = (await callJson('POST', base, { token, body: { url: HOOK } })).body;
    expect((await call('DELETE', `${base}/${id}`, { token })).status).toBe(204);
    await expectProblem(await call('GET', `${base}/${id}`, { token }), 404);
    await expectProblem(await call('DELETE', `${base}/${id}`, { token }), 404);
  });
});

describe('webhook access control', () => {
  it("cross-tenant read/update/delete → 404 and the other tenant's row is unchanged", async () => {
    const a = await setup();
    const b = await setup();
    const { id } = (await callJson('POST', b.base, { token: b.token, body: { url: HOOK, description: 'mine' } })).body;
    // A's owner aims at B's webhook through A's handle and through B's handle.
    await expectProblem(await call('GET', `${a.base}/${id}`, { token: a.token }), 404);
    await expectProblem(
      await call('PATCH', `${a.base}/${id}`, { token: a.token, body: { description: 'pwned' } }),
      404,
    );
    await expectProblem(await call('DELETE', `${a.base}/${id}`, { token: a.token }), 404);
    await expectProblem(await call('GET', `${b.base}/${id}`, { token: a.token }), 404);
    await expectProblem(
      await call('PATCH', `${b.base}/${id}`, { token: a.token, body: { description: 'pwned' } }),
      404,
    );
    await expectProblem(await call('DELETE', `${b.base}/${id}`, { token: a.token }), 404);
    const row = await anyShard
      .prepare('SELECT description, handle FROM webhook_subscriptions WHERE id = ?')
      .bind(id)
      .first();
    expect(row).toEqual({ description: 'mine', handle: b.handle });
  });

  it('missing scope → 403; a viewer reads but cannot write', async () => {
    const { handle, base, token } = await setup();
    const { id } = (await callJson('POST', base, { token, body: { url: HOOK } })).body;
    const viewer = unique('viewer');
    await addMember(handle, viewer, 'viewer');
    const viewerJwt = await signJwt({ sub: viewer, scope: ALL_USER_SCOPES });
    expect((await call('GET', `${base}/${id}`, { token: viewerJwt })).status).toBe(200);
    await expectProblem(await call('POST', base, { token: viewerJwt, body: { url: HOOK } }), 403);
    await expectProblem(await call('DELETE', `${base}/${id}`, { token: viewerJwt }), 403);
    const noScope = await signJwt({ sub: viewer, scope: 'notifications:read' });
    const p = await expectProblem(await call('GET', base, { token: noScope }), 403);
    expect(p.missingScopes).toEqual(['webhooks:read']);
  });
});
