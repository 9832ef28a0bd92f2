/**
 * `authorize()` rules — scopes, roles, JWT-only — on a small app with the same middleware and error handling as the
 * real one, against real D1 memberships.
 */

import { createExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { installProblemHandling } from '../../src/app.ts';
import { WRITER_ROLES } from '../../src/auth/scopes.ts';
import { createRouter } from '../../src/http/openapi.ts';
import { authorize } from '../../src/middleware/auth.ts';
import { requestContext } from '../../src/middleware/request-id.ts';
import { addMember, createPat, expectProblem, provisionHandle, signJwt, unique } from '../support/helpers.ts';

const app = createRouter();
app.use('*', requestContext());
app.post('/h/:handle/write', authorize({ handle: true, scopes: ['webhooks:write'], roles: WRITER_ROLES }), (c) =>
  c.json({ role: c.get('role') }),
);
app.put('/h/:handle/owner-only', authorize({ handle: true, scopes: ['notifications:write'], roles: ['owner'] }), (c) =>
  c.json({ ok: true }),
);
installProblemHandling(app);

const send = async (method: string, path: string, token: string) =>
  app.fetch(
    new Request(`https://notify.test${path}`, { method, headers: { authorization: `Bearer ${token}` } }),
    env,
    createExecutionContext(),
  );

describe('authorize', () => {
  it('missing scope → 403 naming the scope, for JWT and PAT', async () => {
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const jwt = await signJwt({ sub: owner, scope: 'webhooks:read' });
    const p1 = await expectProblem(await send('POST', `/h/${handle}/write`, jwt), 403);
    expect(p1.missingScopes).toEqual(['webhooks:write']);
    expect(p1.detail).toContain('webhooks:write');
    const { token } = await createPat(owner, { scopes: ['webhooks:read'] });
    const p2 = await expectProblem(await send('POST', `/h/${handle}/write`, token), 403);
    expect(p2.missingScopes).toEqual(['webhooks:write']);
  });

  it('a viewer cannot write: 403 naming the roles needed', async () => {
    const handle = await provisionHandle(unique('owner'));
    const viewer = unique('viewer');
    await addMember(handle, viewer, 'viewer');
    const problem = await expectProblem(
      await send('POST', `/h/${handle}/write`, await signJwt({ sub: viewer, scope: 'webhooks:write' })),
      403,
    );
    expect(problem.requiredRoles).toEqual(['owner', 'admin']);
  });

  it('an admin can write but cannot do what only the owner may', async () => {
    const handle = await provisionHandle(unique('owner'));
    const admin = unique('admin');
    await addMember(handle, admin, 'admin');
    const jwt = await signJwt({ sub: admin, scope: 'webhooks:write notifications:write' });
    expect((await send('POST', `/h/${handle}/write`, jwt)).status).toBe(200);
    await expectProblem(await send('PUT', `/h/${handle}/owner-only`, jwt), 403);
  });

  it('a service token acts like an admin, never like an owner', async () => {
    const handle = await provisionHandle(unique('owner'));
    const svc = await signJwt({ sub: 'svc:x', scope: 'webhooks:write notifications:write', handles: [handle] });
    const res = await send('POST', `/h/${handle}/write`, svc);
    expect(await res.json()).toEqual({ role: 'service' });
    await expectProblem(await send('PUT', `/h/${handle}/owner-only`, svc), 403);
  });

  it('scope is checked before membership, so a 403 does not reveal whether a handle exists', async () => {
    const jwt = await signJwt({ sub: unique('u'), scope: 'webhooks:read' });
    const a = await expectProblem(await send('POST', `/h/does-not-exist/write`, jwt), 403);
    const handle = await provisionHandle(unique('owner'));
    const b = await expectProblem(await send('POST', `/h/${handle}/write`, jwt), 403);
    expect(a.detail).toEqual(b.detail);
  });
});
