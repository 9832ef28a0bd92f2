import { describe, expect, it } from 'vitest';
import { addMember, call, callJson, expectProblem, provisionHandle, shardOf, unique } from '../support/helpers.ts';
import { awaitFreshWindow, countRows, dailyCount, setDailyCount, userJwt } from '../support/seed.ts';

const subsPath = (h: string) => `/v2/handles/${h}/notifications/email-subscriptions`;
const hooksPath = (h: string) => `/v2/handles/${h}/webhooks`;
const email = () => `${unique('lim')}@example.com`;

async function setup() {
  const owner = unique('u');
  const handle = await provisionHandle(owner);
  return { owner, handle, token: await userJwt(owner) };
}

function nextUtcMidnight(now = new Date()): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
}

describe('write throttle (60 per minute per principal and handle)', () => {
  it('the 61st write → 429 with Retry-After, RateLimit-Policy and RateLimit; not written, not counted', async () => {
    const { owner, handle, token } = await setup();
    await awaitFreshWindow(20_000);
    for (let i = 0; i < 60; i++) {
      const res = await call('POST', subsPath(handle), { token, body: { email: email() } });
      expect(res.status, `write ${i + 1}: ${res.status === 201 ? '' : await res.text()}`).toBe(201);
      if (i === 0) expect(res.headers.get('ratelimit-policy')).toBe('"writes";q=60;w=60');
    }
    const res = await call('POST', subsPath(handle), { token, body: { email: email() } });
    const problem = await expectProblem(res, 429);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(res.headers.get('ratelimit-policy')).toBe('"writes";q=60;w=60');
    expect(res.headers.get('ratelimit')).toMatch(/^"writes";r=0;t=\d+$/);
    expect(problem.retryAfterSeconds).toBe(retryAfter);
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(60);
    expect(await dailyCount(handle)).toBe(60);

    // Other writes of the same principal on the same handle are throttled too (one class for all writes)…
    await expectProblem(
      await call('POST', hooksPath(handle), { token, body: { url: 'http://127.0.0.1:9/hook' } }),
      429,
    );
    // …reads are not (their own class)…
    expect((await call('GET', subsPath(handle), { token })).status).toBe(200);
    // …the same user on another handle is not…
    const other = await provisionHandle(owner);
    expect((await call('POST', subsPath(other), { token, body: { email: email() } })).status).toBe(201);
    // …and another member on the same handle is not.
    const admin = unique('admin');
    await addMember(handle, admin, 'admin');
    expect(
      (await call('POST', subsPath(handle), { token: await userJwt(admin), body: { email: email() } })).status,
    ).toBe(201);
  }, 60_000);
});

describe('daily write limit (5,000 per handle per UTC day)', () => {
  it('at 4,999 one more write succeeds; the next → 429 with resetAt (next UTC midnight) and Retry-After', async () => {
    const { handle, token } = await setup();
    await setDailyCount(handle, 4999);
    const ok = await call('POST', subsPath(handle), { token, body: { email: email() } });
    expect(ok.status).toBe(201);
    expect(await dailyCount(handle)).toBe(5000);

    const res = await call('POST', subsPath(handle), { token, body: { email: email() } });
    const problem = await expectProblem(res, 429);
    const reset = nextUtcMidnight();
    expect(problem.resetAt).toBe(reset.toISOString());
    expect(problem.limit).toBe(5000);
    expect(problem.detail).toContain(reset.toISOString());
    const retryAfter = Number(res.headers.get('retry-after'));
    const expected = (reset.getTime() - Date.now()) / 1000;
    expect(retryAfter).toBeGreaterThan(0);
    expect(Math.abs(retryAfter - expected)).toBeLessThanOrEqual(5);
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(1);
    expect(await dailyCount(handle)).toBe(5000);
  });

  it("the limit is the handle's: another member is refused too, every kind of write is, reads are not, other handles are not", async () => {
    const { owner, handle, token } = await setup();
    const sub = await callJson('POST', subsPath(handle), { token, body: { email: email() } });
    expect(sub.status).toBe(201);
    await setDailyCount(handle, 5000);
    const admin = unique('admin');
    await addMember(handle, admin, 'admin');
    await expectProblem(
      await call('POST', subsPath(handle), { token: await userJwt(admin), body: { email: email() } }),
      429,
    );
    await expectProblem(await call('DELETE', `${subsPath(handle)}/${sub.body.id}`, { token }), 429);
    await expectProblem(
      await call('POST', hooksPath(handle), { token, body: { url: 'http://127.0.0.1:9/hook' } }),
      429,
    );
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(1);
    expect(await countRows('webhook_subscriptions', 'handle', handle)).toBe(0);
    expect((await call('GET', subsPath(handle), { token })).status).toBe(200);
    const other = await provisionHandle(owner);
    expect((await call('POST', subsPath(other), { token, body: { email: email() } })).status).toBe(201);
    expect(await dailyCount(handle)).toBe(5000);
  });

  it('only successful writes count: 4xx answers leave the counter alone', async () => {
    const { handle, token } = await setup();
    const address = email();
    // 400 validation, 400 unknown field, 404 unknown id, 404 malformed id, 403 role.
    await expectProblem(await call('POST', subsPath(handle), { token, body: { email: 'nope' } }), 400);
    await expectProblem(await call('POST', subsPath(handle), { token, body: { email: address, extra: 1 } }), 400);
    await expectProblem(await call('DELETE', `${subsPath(handle)}/esub_01JD3Q7X9T0000000000000000`, { token }), 404);
    await expectProblem(await call('DELETE', `${subsPath(handle)}/not-an-id`, { token }), 404);
    const viewer = unique('viewer');
    await addMember(handle, viewer, 'viewer');
    await expectProblem(
      await call('POST', subsPath(handle), { token: await userJwt(viewer), body: { email: address } }),
      403,
    );
    expect(await dailyCount(handle)).toBe(0);

    // A 201 counts…
    const created = await callJson('POST', subsPath(handle), { token, body: { email: address } });
    expect(created.status).toBe(201);
    expect(await dailyCount(handle)).toBe(1);
    // …a 409 duplicate and a 422 (delete owner-default) do not…
    await expectProblem(await call('POST', subsPath(handle), { token, body: { email: address.toUpperCase() } }), 409);
    await expectProblem(await call('DELETE', `${subsPath(handle)}/owner-default`, { token }), 422);
    expect(await dailyCount(handle)).toBe(1);
    // …a 200 (owner default email) and a 204 (delete) do.
    expect(
      (
        await call('PUT', `/v2/handles/${handle}/notifications/owner-default-email`, {
          token,
          body: { email: email() },
        })
      ).status,
    ).toBe(200);
    expect((await call('DELETE', `${subsPath(handle)}/${created.body.id}`, { token })).status).toBe(204);
    expect(await dailyCount(handle)).toBe(3);
  });

  it('a failed write at 4,999 does not use up the last write', async () => {
    const { handle, token } = await setup();
    await setDailyCount(handle, 4999);
    await expectProblem(await call('POST', subsPath(handle), { token, body: { email: 'bad' } }), 400);
    expect(await dailyCount(handle)).toBe(4999);
    expect((await call('POST', subsPath(handle), { token, body: { email: email() } })).status).toBe(201);
    await expectProblem(await call('POST', subsPath(handle), { token, body: { email: email() } }), 429);
  });

  it('concurrent writes at 4,999: exactly one succeeds, the count never passes the limit', async () => {
    const { handle } = await setup();
    await setDailyCount(handle, 4999);
    // Ten members writing at once (one each, so the per-principal throttle plays no part).
    const tokens: string[] = [];
    for (let i = 0; i < 10; i++) {
      const user = unique('w');
      await addMember(handle, user, 'admin');
      tokens.push(await userJwt(user));
    }
    const results = await Promise.all(
      tokens.map((token) => call('POST', subsPath(handle), { token, body: { email: email() } })),
    );
    const statuses = results.map((r) => r.status);
    expect(
      statuses.filter((s) => s === 201),
      statuses.join(','),
    ).toHaveLength(1);
    expect(statuses.filter((s) => s === 429)).toHaveLength(9);
    expect(await countRows('email_subscriptions', 'handle', handle)).toBe(1);
    expect(await dailyCount(handle)).toBe(5000);
  });

  it("yesterday's count does not apply today", async () => {
    const { handle, token } = await setup();
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    await (await shardOf(handle))
      .prepare('INSERT INTO daily_write_counters (handle, day, count) VALUES (?, ?, 5000)')
      .bind(handle, yesterday)
      .run();
    expect((await call('POST', subsPath(handle), { token, body: { email: email() } })).status).toBe(201);
    expect(await dailyCount(handle)).toBe(1);
  });
});
