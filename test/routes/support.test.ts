/**
 * `POST /v2/support/report` (docs/design.md#identity-access-and-limits, #routes): stored with every id support needs, open to every authenticated user,
 * no membership oracle, throttled at 5 a minute.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it, vi } from 'vitest';
import {
  addMember,
  call,
  callJson,
  callWithVars,
  createPat,
  expectProblem,
  provisionHandle,
  signJwt,
  unique,
} from '../support/helpers.ts';
import { awaitFreshWindow, userJwt } from '../support/seed.ts';

const PATH = '/v2/support/report';

async function stored(id: string) {
  return env.DB.prepare('SELECT * FROM support_reports WHERE id = ?').bind(id).first<Record<string, any>>();
}

describe('POST /v2/support/report', () => {
  it("→ 201 with the report id and this call's request id; every field is stored", async () => {
    const user = unique('u');
    const handle = await provisionHandle(user);
    const reportedRequestId = 'req_01JD3Q7X9T0000000000000000';
    const artifact = {
      curl: 'curl -X POST https://notify.gharart.com/v2/…',
      ids: ['dlv_1', 'dlv_2'],
      nested: { n: 1 },
    };
    const ownRequestId = `client-${unique('rid')}`;
    const { res, status, body } = await callJson('POST', PATH, {
      token: await userJwt(user),
      headers: { 'x-request-id': ownRequestId },
      body: {
        summary: '  Webhook test passes but production goes to the DLQ  ',
        details: 'Every order.paid since 10:00 is dead; the test send succeeds.',
        handle,
        sessionId: 'sess-42',
        requestId: reportedRequestId,
        reproArtifact: artifact,
      },
    });
    expect(status).toBe(201);
    expect(body.reportId).toMatch(/^rpt_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(res.headers.get('x-request-id')).toBe(ownRequestId);
    expect(body.requestId).toBe(ownRequestId);
    expect(body.requestId).not.toBe(reportedRequestId);
    expect(body.handle).toBe(handle);
    expect(body.handleVerified).toBe(true);

    const row = await stored(body.reportId);
    expect(row).toMatchObject({
      id: body.reportId,
      principal_id: user,
      auth_method: 'jwt',
      handle,
      handle_verified: 1,
      summary: 'Webhook test passes but production goes to the DLQ',
      details: 'Every order.paid since 10:00 is dead; the test send succeeds.',
      session_id: 'sess-42',
      reported_request_id: reportedRequestId,
      request_id: ownRequestId,
      deployment_id: res.headers.get('x-deployment-id'),
    });
    expect(row!.deployment_id).toEqual(expect.any(String));
    expect(JSON.parse(row!.repro_artifact)).toEqual(artifact);
    expect(Math.abs(Date.parse(row!.created_at) - Date.now())).toBeLessThan(60_000);
  });

  it('a generated request id is returned in the body and the header alike; optional fields are stored as null', async () => {
    const user = unique('u');
    const { res, status, body } = await callJson('POST', PATH, {
      token: await userJwt(user),
      body: { summary: 'Emails stopped', details: 'No mails since Monday.' },
    });
    expect(status).toBe(201);
    expect(body.requestId).toBe(res.headers.get('x-request-id'));
    expect(body.handle).toBeNull();
    expect(body.handleVerified).toBe(false);
    const row = await stored(body.reportId);
    expect(row).toMatchObject({
      principal_id: user,
      handle: null,
      handle_verified: 0,
      session_id: null,
      reported_request_id: null,
      repro_artifact: null,
      request_id: body.requestId,
    });
  });

  it('a string artifact is stored as JSON too', async () => {
    const { status, body } = await callJson('POST', PATH, {
      token: await userJwt(unique('u')),
      body: { summary: 's', details: 'd', reproArtifact: 'curl -H "x: y" https://example.com' },
    });
    expect(status).toBe(201);
    expect(JSON.parse((await stored(body.reportId))!.repro_artifact)).toBe('curl -H "x: y" https://example.com');
  });

  it('a handle the caller is not a member of (or that does not exist) → the same 201 shape, handleVerified false', async () => {
    const member = unique('u');
    const handle = await provisionHandle(member);
    const stranger = unique('stranger');
    const token = await userJwt(stranger);
    const mine = await callJson('POST', PATH, {
      token: await userJwt(member),
      body: { summary: 's', details: 'd', handle },
    });
    const notMine = await callJson('POST', PATH, { token, body: { summary: 's', details: 'd', handle } });
    const missing = await callJson('POST', PATH, {
      token,
      body: { summary: 's', details: 'd', handle: unique('nosuch') },
    });
    for (const r of [mine, notMine, missing]) {
      expect(r.status).toBe(201);
      expect(Object.keys(r.body).sort()).toEqual(Object.keys(mine.body).sort());
      expect(r.res.headers.get('content-type')).toBe(mine.res.headers.get('content-type'));
    }
    expect(mine.body.handleVerified).toBe(true);
    expect(notMine.body.handleVerified).toBe(false);
    expect(missing.body.handleVerified).toBe(false);
    expect((await stored(notMine.body.reportId))!).toMatchObject({
      handle,
      handle_verified: 0,
      principal_id: stranger,
    });
    expect((await stored(missing.body.reportId))!.handle_verified).toBe(0);
  });

  it('a viewer of the handle is verified too', async () => {
    const handle = await provisionHandle(unique('u'));
    const viewer = unique('viewer');
    await addMember(handle, viewer, 'viewer');
    const { status, body } = await callJson('POST', PATH, {
      token: await userJwt(viewer),
      body: { summary: 's', details: 'd', handle },
    });
    expect(status).toBe(201);
    expect(body.handleVerified).toBe(true);
  });

  it('a PAT without support:write can file (support:write is implicit); stored with auth_method pat', async () => {
    const user = unique('u');
    const handle = await provisionHandle(user);
    const pat = await createPat(user, { scopes: ['webhooks:read'] });
    const { status, body } = await callJson('POST', PATH, {
      token: pat.token,
      body: { summary: 's', details: 'd', handle },
    });
    expect(status).toBe(201);
    expect(body.handleVerified).toBe(true);
    expect((await stored(body.reportId))!).toMatchObject({
      principal_id: user,
      auth_method: 'pat',
      handle_verified: 1,
    });
    // And a JWT with no scope at all.
    const bare = await callJson('POST', PATH, {
      token: await signJwt({ sub: unique('u') }),
      body: { summary: 's', details: 'd' },
    });
    expect(bare.status).toBe(201);
  });

  it('a PAT bound to another handle does not verify this one', async () => {
    const user = unique('u');
    const a = await provisionHandle(user);
    const b = await provisionHandle(user);
    const pat = await createPat(user, { scopes: ['notifications:read'], handle: a });
    const { status, body } = await callJson('POST', PATH, {
      token: pat.token,
      body: { summary: 's', details: 'd', handle: b },
    });
    expect(status).toBe(201);
    expect(body.handleVerified).toBe(false);
  });

  it('no credential → 401; nothing stored', async () => {
    const before = await env.DB.prepare('SELECT count(*) AS n FROM support_reports').first<{ n: number }>();
    await expectProblem(await call('POST', PATH, { body: { summary: 's', details: 'd' } }), 401);
    const after = await env.DB.prepare('SELECT count(*) AS n FROM support_reports').first<{ n: number }>();
    expect(after!.n).toBe(before!.n);
  });

  it('validates each field → 400 naming it; nothing stored', async () => {
    const cases: Array<[unknown, string]> = [
      [{ details: 'd' }, 'body.summary'],
      [{ summary: '   ', details: 'd' }, 'body.summary'],
      [{ summary: 'x'.repeat(201), details: 'd' }, 'body.summary'],
      [{ summary: 's' }, 'body.details'],
      [{ summary: 's', details: '' }, 'body.details'],
      [{ summary: 's', details: 'x'.repeat(10_001) }, 'body.details'],
      [{ summary: 's', details: 'd', handle: 'Not A Handle' }, 'body.handle'],
      [{ summary: 's', details: 'd', sessionId: '' }, 'body.sessionId'],
      [{ summary: 's', details: 'd', sessionId: 'x'.repeat(201) }, 'body.sessionId'],
      [{ summary: 's', details: 'd', requestId: 'x'.repeat(129) }, 'body.requestId'],
      [{ summary: 's', details: 'd', reproArtifact: 42 }, 'body.reproArtifact'],
      [{ summary: 's', details: 'd', reproArtifact: 'x'.repeat(70 * 1024) }, 'body.reproArtifact'],
      [{ summary: 's', details: 'd', principalId: 'someone-else' }, 'body.principalId'],
      [{ summary: 's', details: 'd', handleVerified: true }, 'body.handleVerified'],
    ];
    for (const [body, path] of cases) {
      // A fresh user per case: the support throttle (5/min) counts rejected reports too.
      const user = unique('u');
      const problem = await expectProblem(await call('POST', PATH, { token: await userJwt(user), body }), 400);
      expect(
        problem.errors.map((e: { path: string }) => e.path),
        JSON.stringify(body).slice(0, 200),
      ).toContain(path);
      const n = await env.DB.prepare('SELECT count(*) AS n FROM support_reports WHERE principal_id = ?')
        .bind(user)
        .first<{ n: number }>();
      expect(n!.n).toBe(0);
    }
  });

  it('the 6th report within a minute by the same principal → 429 with Retry-After and RateLimit headers', async () => {
    const user = unique('u');
    const token = await userJwt(user);
    await awaitFreshWindow(10_000);
    for (let i = 0; i < 5; i++) {
      const res = await call('POST', PATH, { token, body: { summary: `s${i}`, details: 'd' } });
      expect(res.status, `report ${i + 1}`).toBe(201);
      expect(res.headers.get('ratelimit-policy')).toBe('"support";q=5;w=60');
    }
    const res = await call('POST', PATH, { token, body: { summary: 's6', details: 'd' } });
    const problem = await expectProblem(res, 429);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.headers.get('ratelimit-policy')).toBe('"support";q=5;w=60');
    expect(res.headers.get('ratelimit')).toMatch(/^"support";r=0;t=\d+$/);
    expect(problem.retryAfterSeconds).toBe(retryAfter);
    const n = await env.DB.prepare('SELECT count(*) AS n FROM support_reports WHERE principal_id = ?')
      .bind(user)
      .first<{ n: number }>();
    expect(n!.n).toBe(5);
    // Another user is not affected, nor is the same user's PAT counted separately from their JWT (same principal).
    expect(
      (await call('POST', PATH, { token: await userJwt(unique('u')), body: { summary: 's', details: 'd' } })).status,
    ).toBe(201);
    const pat = await createPat(user, { scopes: ['webhooks:read'] });
    await expectProblem(await call('POST', PATH, { token: pat.token, body: { summary: 's', details: 'd' } }), 429);
  }, 30_000);
});

describe('support report mail', () => {
  it('a report is mailed to SUPPORT_EMAIL with its ids (seen in the development mailbox)', async () => {
    const to = `${unique('support')}@example.com`;
    const vars = { ENVIRONMENT: 'development', SUPPORT_EMAIL: to };
    const token = await signJwt({ sub: unique('u'), scope: 'notifications:read' });
    const res = await callWithVars(vars, 'POST', '/v2/support/report', {
      token,
      body: { summary: 'Webhook <test> passes', details: 'Production goes to the DLQ', requestId: 'req-abc-123456' },
    });
    expect(res.status).toBe(201);
    const { reportId } = (await res.json()) as { reportId: string };
    type Mail = { subject: string; text: string; html: string; headers: Record<string, string> };
    let data: Mail[] = [];
    // The mail goes out after the response (waitUntil): wait for it to land.
    await vi.waitFor(async () => {
      const box = await callWithVars(vars, 'GET', `/dev/mailbox?format=json&to=${encodeURIComponent(to)}`);
      data = ((await box.json()) as { data: Mail[] }).data;
      expect(data).toHaveLength(1);
    });
    expect(data[0]!.subject).toContain(reportId);
    expect(data[0]!.text).toContain('req-abc-123456');
    expect(data[0]!.headers['X-Gharart-Report-Id']).toBe(reportId);
    expect(data[0]!.html).not.toContain('<test>');
  });
});

describe('GET /v2/support/reports, …/{id}: the reporter reads their reports back', () => {
  const file = async (token: string, body: Record<string, unknown>) => {
    const { status, body: created } = await callJson('POST', PATH, { token, body });
    expect(status).toBe(201);
    return created.reportId as string;
  };

  it("lists the caller's own reports newest first with every field, pages, and answers 404 for anyone else's", async () => {
    const user = unique('u');
    const handle = await provisionHandle(user);
    const token = await userJwt(user);
    const first = await file(token, { summary: 'First', details: 'one', handle, reproArtifact: { ids: ['dlv_1'] } });
    const second = await file(token, { summary: 'Second', details: 'two', requestId: 'req-seen-by-user' });
    const other = unique('u');
    const othersReport = await file(await userJwt(other), { summary: 'Not yours', details: 'x' });

    const list = await callJson('GET', '/v2/support/reports', { token });
    expect(list.status).toBe(200);
    expect(list.body.data.map((r: { reportId: string }) => r.reportId)).toEqual([second, first]);
    expect(list.body.data[1]).toMatchObject({
      reportId: first,
      summary: 'First',
      details: 'one',
      handle,
      handleVerified: true,
      reproArtifact: { ids: ['dlv_1'] },
    });
    expect(list.body.data[0].reportedRequestId).toBe('req-seen-by-user');

    const page1 = await callJson('GET', '/v2/support/reports?limit=1', { token });
    expect(page1.body.data.map((r: { reportId: string }) => r.reportId)).toEqual([second]);
    const page2 = await callJson('GET', `/v2/support/reports?limit=1&cursor=${page1.body.nextCursor}`, { token });
    expect(page2.body.data.map((r: { reportId: string }) => r.reportId)).toEqual([first]);

    const one = await callJson('GET', `/v2/support/reports/${first}`, { token });
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ reportId: first, summary: 'First', details: 'one' });

    await expectProblem(await call('GET', `/v2/support/reports/${othersReport}`, { token }), 404);
    await expectProblem(await call('GET', '/v2/support/reports/not-an-id', { token }), 404);
    await expectProblem(await call('GET', '/v2/support/reports'), 401);
  });

  it('a PAT restricted to a handle sees only the reports about that handle', async () => {
    const user = unique('u');
    const handle = await provisionHandle(user);
    const token = await userJwt(user);
    const about = await file(token, { summary: 'About the handle', details: 'x', handle });
    const elsewhere = await file(token, { summary: 'No handle', details: 'y' });
    const pat = await createPat(user, { handle });
    const list = await callJson('GET', '/v2/support/reports', { token: pat.token });
    expect(list.body.data.map((r: { reportId: string }) => r.reportId)).toEqual([about]);
    await expectProblem(await call('GET', `/v2/support/reports/${elsewhere}`, { token: pat.token }), 404);
  });
});
