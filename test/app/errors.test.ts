/**
 * Every error the API produces is application/problem+json with `status` equal to the HTTP status and the request id.
 */

import { createExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { wrapD1 } from '../support/d1-wrap.ts';
import { call, callJson, expectProblem, provisionHandle, serviceJwt, signJwt, unique } from '../support/helpers.ts';

describe('problem responses', () => {
  it('malformed JSON → 400 malformed_json', async () => {
    const res = await call('POST', '/v2/tokens', {
      token: await signJwt(),
      rawBody: '{"name": "x", ',
      headers: { 'content-type': 'application/json' },
    });
    const problem = await expectProblem(res, 400);
    expect(problem.type).toBe('/docs#problem-malformed_json');
  });

  it('validation → 400 with errors[] naming each field, unknown fields included', async () => {
    const res = await call('POST', '/v2/tokens', {
      token: await signJwt(),
      body: { name: '', scopes: ['webhooks:read', 'root'], isAdmin: true },
    });
    const problem = await expectProblem(res, 400);
    const paths = problem.errors.map((e: { path: string }) => e.path);
    expect(paths).toContain('body.name');
    expect(paths).toContain('body.scopes.1');
    expect(paths).toContain('body.isAdmin');
  });

  it("validation messages name the field, what was expected and an example, never zod's wording", async () => {
    const missing = await expectProblem(
      await call('POST', '/v2/tokens', { token: await signJwt(), body: { scopes: ['webhooks:read'] } }),
      400,
    );
    const name = missing.errors.find((e: { path: string }) => e.path === 'body.name');
    expect(name.message).toBe('body.name is required: a string, for example "name": "…".');

    const wrong = await expectProblem(
      await call('POST', '/v2/tokens', {
        token: await signJwt(),
        body: { name: 42, scopes: ['webhooks:read', 'root'], expiresInDays: 'soon', isAdmin: true },
      }),
      400,
    );
    const byPath = Object.fromEntries(
      wrong.errors.map((e: { path: string; message: string }) => [e.path, e.message]),
    ) as Record<string, string>;
    expect(byPath['body.name']).toBe('body.name must be a string, not a number, for example "name": "…".');
    expect(byPath['body.scopes.1']).toMatch(/^body\.scopes\.1 must be one of "[a-z:]+", /);
    expect(byPath['body.expiresInDays']).toMatch(/^body\.expiresInDays must be a number, not a string, for example/);
    expect(byPath['body.isAdmin']).toMatch(/^body\.isAdmin is not a known field: remove it/);
    for (const message of Object.values(byPath)) {
      expect(message).not.toMatch(/Invalid input|Invalid option|received undefined|Unrecognized key/);
    }
  });

  it('wrong content type → 415', async () => {
    const res = await call('POST', '/v2/tokens', {
      token: await signJwt(),
      rawBody: 'name=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const problem = await expectProblem(res, 415);
    expect(problem.detail).toContain('application/x-www-form-urlencoded');
  });

  it('a required body that is missing → 400 naming each required field', async () => {
    const problem = await expectProblem(await call('POST', '/v2/tokens', { token: await signJwt() }), 400);
    expect(problem.errors.map((e: { path: string }) => e.path)).toEqual(['body.name', 'body.scopes']);
  });

  it('oversize body → 413, by Content-Length and by streamed length', async () => {
    const big = JSON.stringify({ name: 'x'.repeat(300 * 1024), scopes: ['webhooks:read'] });
    await expectProblem(
      await call('POST', '/v2/tokens', {
        token: await signJwt(),
        rawBody: big,
        headers: { 'content-type': 'application/json' },
      }),
      413,
    );
    const chunks = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 300; i++) controller.enqueue(new TextEncoder().encode('x'.repeat(1024)));
        controller.close();
      },
    });
    const streamed = await call('POST', '/v2/tokens', {
      token: await signJwt(),
      rawBody: chunks,
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    });
    await expectProblem(streamed, 413);
  });

  it('unknown route → 404', async () => {
    const problem = await expectProblem(await call('GET', '/v2/nope'), 404);
    expect(problem.detail).toContain('/v2/nope');
  });

  it('wrong method → 405 with Allow', async () => {
    const res = await call('PATCH', '/v2/tokens', { token: await signJwt() });
    await expectProblem(res, 405);
    expect(res.headers.get('allow')).toBe('GET, POST');
    const one = await call('PUT', '/v2/tokens/tok_01JD3Q7X9T0000000000000000');
    await expectProblem(one, 405);
    expect(one.headers.get('allow')).toBe('DELETE');
  });

  it('conflict → 409 (removing the last owner)', async () => {
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const res = await call('DELETE', `/v2/internal/handles/${handle}/members/${owner}`, { token: await serviceJwt() });
    const problem = await expectProblem(res, 409);
    expect(problem.detail).toMatch(/owner/);
  });

  /** `GET /v2/tokens` with a D1 binding whose prepare() throws `error`. */
  async function withFailingDb(error: Error) {
    const broken = wrapD1(env.DB, {
      prepare: () => {
        throw error;
      },
    });
    const res = await buildApp().fetch(
      new Request('https://notify.test/v2/tokens', { headers: { authorization: `Bearer ${await signJwt()}` } }),
      { ...env, DB: broken },
      createExecutionContext(),
    );
    const text = await res.clone().text();
    expect(text).not.toContain('secret internal detail');
    expect(text).not.toContain('at ');
    return res;
  }

  it.each([
    ['a TypeError', new TypeError('secret internal detail')],
    // D1 reports our own SQL mistakes under D1_ERROR too: a bug, not a reason to retry.
    [
      'a D1 constraint error',
      new Error('D1_ERROR: UNIQUE constraint failed: webhooks.id: SQLITE_CONSTRAINT (secret internal detail)'),
    ],
  ])('an unexpected failure (%s) → 500 problem without stack or message, logged server-side', async (_name, error) => {
    const problem = await expectProblem(await withFailingDb(error), 500);
    expect(problem.detail).toMatch(/requestId/);
  });

  it.each([
    'D1_ERROR: Network connection lost. (secret internal detail)',
    'D1 DB is overloaded. Too many requests queued. (secret internal detail)',
    'D1_ERROR: D1 DB storage operation exceeded timeout which caused object to be reset. (secret internal detail)',
  ])('D1 failing transiently (%s) → 503 with Retry-After, without its message: a retry, not a bug', async (message) => {
    const res = await withFailingDb(new Error(message));
    expect(res.headers.get('retry-after')).toBe('5');
    const problem = await expectProblem(res, 503);
    expect(problem.detail).toMatch(/Retry the request/);
  });

  it('every response carries X-Request-Id (echoed when valid) and X-Deployment-Id', async () => {
    const echoed = await call('GET', '/v2/health', { headers: { 'x-request-id': 'client-trace-12345' } });
    expect(echoed.headers.get('x-request-id')).toBe('client-trace-12345');
    expect(echoed.headers.get('x-deployment-id')).toBeTruthy();
    const replaced = await call('GET', '/v2/health', { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(replaced.headers.get('x-request-id')).toMatch(/^req_/);
    const err = await call('GET', '/v2/nope');
    expect(err.headers.get('x-request-id')).toMatch(/^req_/);
    expect(err.headers.get('x-deployment-id')).toBeTruthy();
  });

  it('a malformed path id answers 404, never 500', async () => {
    await expectProblem(await call('DELETE', '/v2/tokens/not-an-id', { token: await signJwt() }), 404);
    await expectProblem(await call('GET', '/v2/handles/UPPER_case!', { token: await signJwt() }), 404);
  });

  it('a bad cursor → 400 naming query.cursor', async () => {
    const { body, status } = await callJson('GET', '/v2/tokens?cursor=garbage', { token: await signJwt() });
    expect(status).toBe(400);
    expect(body.errors[0].path).toBe('query.cursor');
  });
});
