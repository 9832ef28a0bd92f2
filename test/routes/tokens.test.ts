import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import {
  ALL_USER_SCOPES,
  call,
  callJson,
  callWithVars,
  expectProblem,
  provisionHandle,
  signJwt,
  unique,
} from '../support/helpers.ts';

describe('POST /v2/tokens', () => {
  it('mints a PAT shown once, stores only its hash, and the PAT works', async () => {
    const user = unique('u');
    const jwt = await signJwt({ sub: user, scope: 'notifications:read webhooks:read' });
    const { status, body } = await callJson('POST', '/v2/tokens', {
      token: jwt,
      body: { name: 'CRM sync', scopes: ['webhooks:read'], expiresInDays: 30 },
    });
    expect(status).toBe(201);
    expect(body.token).toMatch(/^grt_[0-9A-Za-z]{36}$/);
    expect(body.token.startsWith(body.tokenPrefix)).toBe(true);
    expect(body.scopes).toEqual(['webhooks:read']);
    const days = (Date.parse(body.expiresAt) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);
    const row = await env.DB.prepare('SELECT * FROM access_tokens WHERE id = ?').bind(body.id).first();
    expect(JSON.stringify(row)).not.toContain(body.token);
    expect(row?.token_hash).toMatch(/^[0-9a-f]{64}$/);
    const listed = await callJson('GET', '/v2/tokens', { token: body.token });
    expect(listed.status).toBe(200);
    expect(listed.body.data[0]).not.toHaveProperty('token');
  });

  it('refuses scopes the creator lacks (no escalation)', async () => {
    const jwt = await signJwt({ sub: unique('u'), scope: 'notifications:read' });
    const problem = await expectProblem(
      await call('POST', '/v2/tokens', {
        token: jwt,
        body: { name: 'x', scopes: ['notifications:read', 'webhooks:write'] },
      }),
      403,
    );
    expect(problem.detail).toContain('webhooks:write');
  });

  it('support:write is held by every user, so it may be granted', async () => {
    const jwt = await signJwt({ sub: unique('u'), scope: 'notifications:read' });
    const res = await call('POST', '/v2/tokens', { token: jwt, body: { name: 'x', scopes: ['support:write'] } });
    expect(res.status).toBe(201);
  });

  it('a handle-bound token needs membership of that handle (else 404)', async () => {
    const user = unique('u');
    const handle = await provisionHandle(user);
    const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    const ok = await callJson('POST', '/v2/tokens', {
      token: jwt,
      body: { name: 'x', scopes: ['webhooks:read'], handle },
    });
    expect(ok.status).toBe(201);
    expect(ok.body.handle).toBe(handle);
    const outsider = await signJwt({ sub: unique('other'), scope: ALL_USER_SCOPES });
    await expectProblem(
      await call('POST', '/v2/tokens', { token: outsider, body: { name: 'x', scopes: ['webhooks:read'], handle } }),
      404,
    );
  });

  it('validates each field', async () => {
    const jwt = await signJwt({ scope: ALL_USER_SCOPES });
    const cases: Array<[unknown, string]> = [
      [{ name: 'x'.repeat(101), scopes: ['webhooks:read'] }, 'body.name'],
      [{ name: 'x', scopes: [] }, 'body.scopes'],
      [{ name: 'x', scopes: ['webhooks:read', 'webhooks:read'] }, 'body.scopes'],
      [{ name: 'x', scopes: ['internal:provision'] }, 'body.scopes.0'],
      [{ name: 'x', scopes: ['webhooks:read'], expiresInDays: 366 }, 'body.expiresInDays'],
      [{ name: 'x', scopes: ['webhooks:read'], expiresInDays: 1.5 }, 'body.expiresInDays'],
      [{ name: 'x', scopes: ['webhooks:read'], handle: 'Not A Handle' }, 'body.handle'],
      [{ name: 'x', scopes: ['webhooks:read'], userId: 'someone-else' }, 'body.userId'],
    ];
    for (const [body, path] of cases) {
      const problem = await expectProblem(await call('POST', '/v2/tokens', { token: jwt, body }), 400);
      expect(
        problem.errors.map((e: { path: string }) => e.path),
        JSON.stringify(body),
      ).toContain(path);
    }
  });
});

describe('GET /v2/tokens', () => {
  it("pages through every token exactly once, newest first, and only the caller's", async () => {
    const user = unique('u');
    const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const { body } = await callJson('POST', '/v2/tokens', {
        token: jwt,
        body: { name: `t${i}`, scopes: ['webhooks:read'] },
      });
      ids.push(body.id);
    }
    await callJson('POST', '/v2/tokens', {
      token: await signJwt({ sub: unique('other'), scope: ALL_USER_SCOPES }),
      body: { name: 'not mine', scopes: ['webhooks:read'] },
    });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${cursor}` : '';
      const { body } = await callJson('GET', `/v2/tokens?limit=3${q}`, { token: jwt });
      expect(body.data.length).toBeLessThanOrEqual(3);
      seen.push(...body.data.map((t: { id: string }) => t.id));
      cursor = body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
  });

  it('rejects limits outside 1–200', async () => {
    const jwt = await signJwt();
    for (const limit of ['0', '201', 'abc', '-1']) {
      const problem = await expectProblem(await call('GET', `/v2/tokens?limit=${limit}`, { token: jwt }), 400);
      expect(problem.errors[0].path).toBe('query.limit');
    }
  });
});

describe('DELETE /v2/tokens/{id}', () => {
  it("revokes only the caller's own tokens; another user's → 404 and unchanged", async () => {
    const owner = unique('u');
    const jwt = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
    const { body } = await callJson('POST', '/v2/tokens', {
      token: jwt,
      body: { name: 'x', scopes: ['webhooks:read'] },
    });
    const thief = await signJwt({ sub: unique('thief'), scope: ALL_USER_SCOPES });
    await expectProblem(await call('DELETE', `/v2/tokens/${body.id}`, { token: thief }), 404);
    const row = await env.DB.prepare('SELECT revoked_at FROM access_tokens WHERE id = ?').bind(body.id).first();
    expect(row?.revoked_at).toBeNull();
    expect((await call('DELETE', `/v2/tokens/${body.id}`, { token: jwt })).status).toBe(204);
    expect((await call('DELETE', `/v2/tokens/${body.id}`, { token: jwt })).status).toBe(204);
    const { body: list } = await callJson('GET', '/v2/tokens', { token: jwt });
    expect(list.data[0].revokedAt).toEqual(expect.any(String));
  });
});

describe('at most MAX_PATS_PER_USER live tokens per user', () => {
  const CAP = { MAX_PATS_PER_USER: '3' } as Partial<Env>;

  it('concurrent creates beyond the cap → exactly the cap minted, the rest 422 naming the limit; revoking frees a slot', async () => {
    const user = unique('u');
    const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    const create = (i: number) =>
      callWithVars(CAP, 'POST', '/v2/tokens', { token: jwt, body: { name: `t${i}`, scopes: ['webhooks:read'] } });
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => create(i)));
    const statuses = answers.map((r) => r.status);
    expect(
      statuses.filter((s) => s === 201),
      String(statuses),
    ).toHaveLength(3);
    for (const r of answers.filter((a) => a.status !== 201)) {
      const p = await expectProblem(r, 422);
      expect(p.detail).toMatch(/at most 3/);
      expect(p.limit).toBe(3);
    }
    const live = await env.DB.prepare('SELECT id FROM access_tokens WHERE user_id = ?')
      .bind(user)
      .all<{ id: string }>();
    expect(live.results).toHaveLength(3);
    // A revoked (or expired) token no longer counts.
    expect((await call('DELETE', `/v2/tokens/${live.results[0]!.id}`, { token: jwt })).status).toBe(204);
    expect((await create(9)).status).toBe(201);
    await expectProblem(await create(10), 422);
    await env.DB.prepare(`UPDATE access_tokens SET expires_at = '2020-01-01T00:00:00.000Z' WHERE id = ?`)
      .bind(live.results[1]!.id)
      .run();
    expect((await create(11)).status).toBe(201);
  });

  it('the default cap is 50', async () => {
    const user = unique('u');
    const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    const now = new Date().toISOString();
    const later = new Date(Date.now() + 86_400_000).toISOString();
    const rows = Array.from({ length: 50 }, (_, i) =>
      env.DB.prepare(
        `INSERT INTO access_tokens (id, user_id, name, token_hash, token_prefix, scopes, expires_at, created_at)
         VALUES (?1, ?2, 'seeded', ?3, 'grt_xx', 'webhooks:read', ?4, ?5)`,
      ).bind(`tok_${unique('seed')}`, user, `${user}-${i}`, later, now),
    );
    await env.DB.batch(rows);
    const res = await call('POST', '/v2/tokens', { token: jwt, body: { name: 'one more', scopes: ['webhooks:read'] } });
    expect((await expectProblem(res, 422)).limit).toBe(50);
  });
});
