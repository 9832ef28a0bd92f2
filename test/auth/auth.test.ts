/**
 * The auth matrix (docs/design.md#identity-access-and-limits), through the real Worker with real local D1.
 */

import { createExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { mintPat, patDisplayPrefix } from '../../src/auth/pat.ts';
import { sha256Hex } from '../../src/lib/crypto.ts';
import { wrapD1 } from '../support/d1-wrap.ts';
import {
  ALL_USER_SCOPES,
  AUDIENCE,
  addMember,
  call,
  callJson,
  callWithVars,
  createPat,
  expectProblem,
  ISSUER,
  provisionHandle,
  signJwt,
  unique,
} from '../support/helpers.ts';
import { receiverUrl, setMode } from '../support/receivers.ts';

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
    // Any query on any database, its D1 sessions included (API requests run the shards' queries in sessions).
    const trap = (d1: D1Database) =>
      wrapD1(d1, {
        prepare: (target, query) => {
          d1Touched = true;
          return target.prepare(query);
        },
        batch: (target, statements) => {
          d1Touched = true;
          return target.batch(statements);
        },
        exec: (target, query) => {
          d1Touched = true;
          return target.exec(query);
        },
      });
    const app = buildApp();
    const res = await app.fetch(
      new Request('https://notify.test/v2/tokens', { headers: { authorization: `Bearer ${typo}` } }),
      { ...env, DB: trap(env.DB), SHARD_0: trap(env.SHARD_0), SHARD_1: trap(env.SHARD_1) },
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

describe('JWT: a subject, a named issuer and audience, a bounded lifetime', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const HOUR = 3600;

  /** An HS256 token with exactly these claims (nothing added: no iat unless given). */
  const rawJwt = (claims: Record<string, unknown>, secret = env.JWT_SECRET!) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));

  it('an empty "sub" → 401 naming it, and no PAT is minted for user ""', async () => {
    const token = await signJwt({ sub: '', scope: ALL_USER_SCOPES });
    const problem = await expectProblem(await call('GET', '/v2/tokens', { token }), 401);
    expect(problem.detail).toMatch(/"sub"/);
    const mint = await call('POST', '/v2/tokens', { token, body: { name: 'x', scopes: ['webhooks:read'] } });
    await expectProblem(mint, 401);
    const rows = await env.DB.prepare(`SELECT count(*) AS n FROM access_tokens WHERE user_id = ''`).first<{
      n: number;
    }>();
    expect(rows!.n).toBe(0);
  });

  it('a lifetime (exp − iat) above JWT_MAX_LIFETIME_SECONDS (24 h by default) → 401 naming it; 24 h is fine', async () => {
    const iat = now();
    const tooLong = await signJwt({ exp: iat + 24 * HOUR + 120 });
    const problem = await expectProblem(await call('GET', '/v2/tokens', { token: tooLong }), 401);
    expect(problem.detail).toMatch(/lifetime/);
    expect(problem.detail).toMatch(/86400/);
    expect((await call('GET', '/v2/tokens', { token: await signJwt({ exp: iat + 24 * HOUR }) })).status).toBe(200);
    // The cap is a var: 10 minutes refuses the usual 1 h token.
    const oneHour = await signJwt({});
    const capped = await callWithVars({ JWT_MAX_LIFETIME_SECONDS: '600' }, 'GET', '/v2/tokens', { token: oneHour });
    expect((await expectProblem(capped, 401)).detail).toMatch(/lifetime/);
  });

  it('without "iat", exp more than the maximum from now → 401; an "iat" in the future does not stretch it', async () => {
    const base = { sub: unique('u'), iss: ISSUER, aud: AUDIENCE };
    const noIat = await rawJwt({ ...base, exp: now() + 48 * HOUR });
    expect((await expectProblem(await call('GET', '/v2/tokens', { token: noIat }), 401)).detail).toMatch(/lifetime/);
    expect((await call('GET', '/v2/tokens', { token: await rawJwt({ ...base, exp: now() + HOUR }) })).status).toBe(200);
    // exp − iat is 20 h, but the token is valid for 30 h from now.
    const future = await rawJwt({ ...base, iat: now() + 10 * HOUR, exp: now() + 30 * HOUR });
    expect((await expectProblem(await call('GET', '/v2/tokens', { token: future }), 401)).detail).toMatch(
      /lifetime|issued in the future/,
    );
  });

  describe('with a JWKS (production)', () => {
    /** A JWKS served by a real receiver on 127.0.0.1, and a signer with its private key. */
    async function jwks() {
      const key = unique('jwks');
      const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
      const jwk = { ...(await exportJWK(publicKey)), kid: key, alg: 'ES256', use: 'sig' };
      await setMode(key, { status: 200, body: JSON.stringify({ keys: [jwk] }) });
      const url = receiverUrl('mode', key);
      const sign = (claims: Record<string, unknown>) =>
        new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: key }).sign(privateKey);
      return { url, sign };
    }
    const full = () => ({ sub: unique('u'), iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + HOUR });

    it('a token without "iss" or without "aud" → 401 naming the claim; with both it is accepted', async () => {
      const { url, sign } = await jwks();
      const vars = { JWT_JWKS_URL: url, JWT_ALGORITHMS: '', JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE };
      expect((await callWithVars(vars, 'GET', '/v2/tokens', { token: await sign(full()) })).status).toBe(200);
      const { iss: _iss, ...noIss } = full();
      const { aud: _aud, ...noAud } = full();
      const p1 = await expectProblem(await callWithVars(vars, 'GET', '/v2/tokens', { token: await sign(noIss) }), 401);
      expect(p1.detail).toMatch(/"iss"/);
      const p2 = await expectProblem(await callWithVars(vars, 'GET', '/v2/tokens', { token: await sign(noAud) }), 401);
      expect(p2.detail).toMatch(/"aud"/);
    });

    it('JWT_ISSUER or JWT_AUDIENCE unset → every JWT is refused with a 401 naming the missing setting', async () => {
      const { url, sign } = await jwks();
      for (const vars of [
        { JWT_JWKS_URL: url, JWT_ALGORITHMS: '', JWT_ISSUER: '', JWT_AUDIENCE: AUDIENCE },
        { JWT_JWKS_URL: url, JWT_ALGORITHMS: '', JWT_ISSUER: ISSUER, JWT_AUDIENCE: '' },
        { JWT_JWKS_URL: url, JWT_ALGORITHMS: '', JWT_ISSUER: '', JWT_AUDIENCE: '' },
      ]) {
        const res = await callWithVars(vars, 'GET', '/v2/tokens', { token: await sign(full()) });
        const p = await expectProblem(res, 401);
        expect(p.detail).toMatch(/JWT_ISSUER|JWT_AUDIENCE/);
      }
    });
  });
});
