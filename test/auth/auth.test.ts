/**
 * The auth matrix (docs/design.md#identity-access-and-limits), through the real Worker with real local D1.
 */

import { createExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { mintPat, patDisplayPrefix } from '../../src/auth/pat.ts';
import { sha256Hex } from '../../src/lib/crypto.ts';
import {
  ALL_USER_SCOPES,
  addMember,
  call,
  callJson,
  createPat,
  expectProblem,
  provisionHandle,
  signJwt,
  unique,
} from '../support/helpers.ts';

function b64url(obj: unknown): string {
  return btoa(JSON.stringify(obj)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

describe('JWT', () => {
  it('a valid JWT is accepted', async () => {
    const res = await call('GET', '/v2/tokens', { token: await signJwt({ sub: unique('u') }) });
    expect(res.status).toBe(200);
  });

  it('an expired JWT → 401 saying so', async () => {
    const token = await signJwt({ exp: Math.floor(Date.now() / 1000) - 3600 });
    const problem = await expectProblem(await call('GET', '/v2/tokens', { token }), 401);
    expect(problem.detail).toMatch(/expired/);
  });

  it('a JWT without exp → 401', async () => {
    const token = await signJwt({ exp: null });
    const problem = await expectProblem(await call('GET', '/v2/tokens', { token }), 401);
    expect(problem.detail).toMatch(/"exp"/);
  });

  it('alg: none → 401', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({
      sub: 'attacker',
      scope: ALL_USER_SCOPES,
      exp: now + 3600,
      iss: 'https://auth.gharart.test',
      aud: 'gharart-notify',
    })}.`;
    await expectProblem(await call('GET', '/v2/tokens', { token }), 401);
  });

  it('an algorithm outside the allow-list (HS512 with the right secret) → 401', async () => {
    const token = await signJwt({ alg: 'HS512' });
    const problem = await expectProblem(await call('GET', '/v2/tokens', { token }), 401);
    expect(problem.detail).toMatch(/algorithm/);
  });

  it('wrong issuer → 401', async () => {
    const problem = await expectProblem(
      await call('GET', '/v2/tokens', { token: await signJwt({ iss: 'https://evil.example' }) }),
      401,
    );
    expect(problem.detail).toMatch(/issuer/);
  });

  it('wrong audience → 401', async () => {
    const problem = await expectProblem(
      await call('GET', '/v2/tokens', { token: await signJwt({ aud: 'another-service' }) }),
      401,
    );
    expect(problem.detail).toMatch(/audience/);
  });

  it('bad signature → 401', async () => {
    const token = await signJwt({ secret: 'a-different-secret-of-sufficient-length-000000' });
    const problem = await expectProblem(await call('GET', '/v2/tokens', { token }), 401);
    expect(problem.detail).toMatch(/signature/);
  });

  it('a token in a non-Bearer scheme or no token → 401 with WWW-Authenticate', async () => {
    const none = await call('GET', '/v2/tokens');
    await expectProblem(none, 401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer /);
    const basic = await call('GET', '/v2/tokens', { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    await expectProblem(basic, 401);
  });
});

describe('personal access tokens', () => {
  it('a valid PAT is accepted and its last use is recorded', async () => {
    const user = unique('u');
    const { token, id } = await createPat(user);
    const { status, body } = await callJson('GET', '/v2/tokens', { token });
    expect(status).toBe(200);
    expect(body.data.map((t: { id: string }) => t.id)).toContain(id);
    expect(JSON.stringify(body)).not.toContain(token);
    const row = await env.DB.prepare('SELECT last_used_at FROM access_tokens WHERE id = ?').bind(id).first();
    expect(row?.last_used_at).toEqual(expect.any(String));
  });

  it('a PAT with a typo is rejected without touching D1', async () => {
    const { token } = await createPat(unique('u'));
    // Change one character of the body: the checksum no longer matches.
    const i = 10;
    const typo = token.slice(0, i) + (token[i] === 'a' ? 'b' : 'a') + token.slice(i + 1);
    let d1Touched = false;
    const trap = new Proxy(env.DB, {
      get(target, prop) {
        d1Touched = true;
        return Reflect.get(target, prop);
      },
    });
    const app = buildApp();
    const res = await app.fetch(
      new Request('https://notify.test/v2/tokens', { headers: { authorization: `Bearer ${typo}` } }),
      { ...env, DB: trap },
      createExecutionContext(),
    );
    const problem = await expectProblem(res, 401);
    expect(problem.detail).toMatch(/checksum/);
    expect(d1Touched).toBe(false);
  });

  it('a revoked PAT → 401', async () => {
    const user = unique('u');
    const { token, id } = await createPat(user);
    const jwt = await signJwt({ sub: user, scope: ALL_USER_SCOPES });
    expect((await call('DELETE', `/v2/tokens/${id}`, { token: jwt })).status).toBe(204);
    const problem = await expectProblem(await call('GET', '/v2/tokens', { token }), 401);
    expect(problem.detail).toMatch(/revoked/);
  });

  it('an expired PAT → 401', async () => {
    const user = unique('u');
    const token = mintPat();
    const past = new Date(Date.now() - 1000).toISOString();
    await env.DB.prepare(
      `INSERT INTO access_tokens (id, user_id, name, token_hash, token_prefix, scopes, handle, expires_at, created_at)
       VALUES (?, ?, 'old', ?, ?, 'notifications:read', NULL, ?, ?)`,
    )
      .bind(
        `tok_${'0'.repeat(20)}EXP${Math.floor(Math.random() * 900 + 100)}`,
        user,
        await sha256Hex(token),
        patDisplayPrefix(token),
        past,
        past,
      )
      .run();
    const problem = await expectProblem(await call('GET', '/v2/tokens', { token }), 401);
    expect(problem.detail).toMatch(/expired/);
  });

  it('an unknown but well-formed PAT → 401', async () => {
    await expectProblem(await call('GET', '/v2/tokens', { token: mintPat() }), 401);
  });

  it('a PAT bound to another handle → 404 on this one, 200 on its own', async () => {
    const user = unique('u');
    const mine = await provisionHandle(user);
    const other = await provisionHandle(user);
    const { token } = await createPat(user, { handle: mine });
    expect((await call('GET', `/v2/handles/${mine}`, { token })).status).toBe(200);
    await expectProblem(await call('GET', `/v2/handles/${other}`, { token }), 404);
  });

  it('a PAT cannot mint or revoke tokens (JWT only)', async () => {
    const user = unique('u');
    const { token, id } = await createPat(user);
    await expectProblem(
      await call('POST', '/v2/tokens', { token, body: { name: 'x', scopes: ['webhooks:read'] } }),
      403,
    );
    await expectProblem(await call('DELETE', `/v2/tokens/${id}`, { token }), 403);
  });
});

describe('handle access', () => {
  it('a non-member gets a 404 identical to a handle that does not exist, except the request id', async () => {
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const stranger = await signJwt({ sub: unique('stranger'), scope: ALL_USER_SCOPES });
    const a = await expectProblem(await call('GET', `/v2/handles/${handle}`, { token: stranger }), 404);
    const b = await expectProblem(await call('GET', `/v2/handles/no-such-${handle}`, { token: stranger }), 404);
    const strip = (p: Record<string, unknown>) => ({ ...p, requestId: undefined, instance: undefined });
    expect(strip(a)).toEqual(strip(b));
    expect(a.requestId).not.toEqual(b.requestId);
    expect(a.instance).toBe(`urn:gharart-notify:request:${a.requestId}`);
  });

  it("members see their role; a stranger's PAT sees nothing", async () => {
    const owner = unique('owner');
    const viewer = unique('viewer');
    const handle = await provisionHandle(owner);
    await addMember(handle, viewer, 'viewer');
    const { body } = await callJson('GET', `/v2/handles/${handle}`, {
      token: await signJwt({ sub: viewer, scope: 'notifications:read' }),
    });
    expect(body.role).toBe('viewer');
    expect(body.scopes).toEqual(['notifications:read', 'support:write']);
    const { token } = await createPat(unique('stranger'));
    await expectProblem(await call('GET', `/v2/handles/${handle}`, { token }), 404);
  });

  it('a service token reaches only the handles it is granted', async () => {
    const handle = await provisionHandle(unique('owner'));
    const granted = await signJwt({ sub: 'svc:orders', scope: 'events:publish', handles: [handle] });
    const other = await signJwt({ sub: 'svc:orders', scope: 'events:publish', handles: ['someone-else'] });
    const all = await signJwt({ sub: 'svc:orders', scope: 'events:publish', handles: '*' });
    expect((await callJson('GET', `/v2/handles/${handle}`, { token: granted })).body.role).toBe('service');
    await expectProblem(await call('GET', `/v2/handles/${handle}`, { token: other }), 404);
    expect((await call('GET', `/v2/handles/${handle}`, { token: all })).status).toBe(200);
    await expectProblem(await call('GET', `/v2/handles/missing-${handle}`, { token: all }), 404);
  });
});
