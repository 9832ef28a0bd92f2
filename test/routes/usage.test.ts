import { describe, expect, it } from 'vitest';
import { readUsage } from '../../src/routes/usage/usage.repo.ts';
import { call, callJson, expectProblem, shardOf, unique } from '../support/helpers.ts';
import { assertMatchesDocument } from '../support/openapi-check.ts';
import { createWebhook, setupHandle } from '../support/pipeline-helpers.ts';
import { receiverUrl } from '../support/receivers.ts';
import { setDailyCount } from '../support/seed.ts';

const publish = (handle: string, token: string, body: Record<string, unknown>) =>
  callJson('POST', `/v2/handles/${handle}/events`, { token, body });

describe('GET /v2/handles/{handle}/usage', () => {
  it("reports today's writes against the daily limit, throttles, subscription caps, events today and storage", async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('ok', unique('u')) });
    const sub = await callJson('POST', `/v2/handles/${h.handle}/notifications/email-subscriptions`, {
      token: h.token,
      body: { email: `${unique('u')}@example.com` },
    });
    expect(sub.status).toBe(201);
    for (const n of [1, 2, 3]) {
      const r = await publish(h.handle, h.token, {
        type: 'order.paid',
        data: { orderId: `o${n}` },
        sourceEventId: `s${n}`,
      });
      expect(r.status).toBe(202);
    }
    // A repeat stores nothing and is not counted.
    expect(
      (await publish(h.handle, h.token, { type: 'order.paid', data: { orderId: 'o1' }, sourceEventId: 's1' })).body
        .duplicate,
    ).toBe(true);

    const res = await call('GET', `/v2/handles/${h.handle}/usage`, { token: h.token });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, any>;
    assertMatchesDocument('get', '/v2/handles/{handle}/usage', 200, body);
    expect(body.dailyWrites).toMatchObject({ used: 2, limit: 5000, remaining: 4998, policy: '"daily";q=5000;w=86400' });
    const midnight = new Date();
    midnight.setUTCHours(24, 0, 0, 0);
    expect(body.dailyWrites.resetAt).toBe(midnight.toISOString());
    const reads = body.throttles.find((t: any) => t.class === 'reads');
    expect(reads).toMatchObject({ policy: '"reads";q=300;w=60', limit: 300, windowSeconds: 60 });
    expect(reads.remaining).toBeLessThan(300);
    expect(body.throttles.map((t: any) => t.class).sort()).toEqual([
      'events',
      'reads',
      'support',
      'test_sends',
      'writes',
    ]);
    expect(body.subscriptions.webhooks).toEqual({ used: 1, limit: 50, remaining: 49 });
    expect(body.subscriptions.emailSubscriptions).toEqual({ used: 1, limit: 200, remaining: 199 });
    expect(body.events.publishedToday).toBe(3);
    expect(body.storage.retentionDays).toBe(30);
    expect(body.storage.oldestNotificationAt).not.toBeNull();
    expect(body.storage.database.sizeBytes).toBeGreaterThan(0);
    // A successful answer says what remains of its own class, too.
    expect(res.headers.get('ratelimit')).toMatch(/^"reads";r=\d+;t=\d+$/);
  });

  it('reads a bounded number of D1 rows in one batch, however many events the handle has', async () => {
    const h = await setupHandle();
    await publish(h.handle, h.token, { type: 'order.paid', data: { orderId: 'first' } });
    const before = await readUsage(await shardOf(h.handle), h.handle, new Date());
    for (let i = 0; i < 30; i++) await publish(h.handle, h.token, { type: 'order.paid', data: { orderId: `o${i}` } });
    const after = await readUsage(await shardOf(h.handle), h.handle, new Date());
    expect(after.events).toBe(31);
    expect(after.rowsRead).toBe(before.rowsRead);
    expect(after.rowsRead).toBeLessThanOrEqual(12);
  });
});

describe('throttle and quota answers name the limit, what remains and when it resets', () => {
  it('the daily limit: a 429 with RateLimit-Policy and RateLimit headers and the same budget in the problem body', async () => {
    const h = await setupHandle();
    await setDailyCount(h.handle, 5000);
    const res = await call('POST', `/v2/handles/${h.handle}/webhooks`, {
      token: h.token,
      body: { url: receiverUrl('ok', unique('u')) },
    });
    const problem = await expectProblem(res, 429);
    const seconds = Number(res.headers.get('retry-after'));
    expect(res.headers.get('ratelimit-policy')).toContain('"daily";q=5000;w=86400');
    expect(res.headers.get('ratelimit')).toBe(`"daily";r=0;t=${seconds}`);
    expect(problem).toMatchObject({ policy: 'daily', limit: 5000, remaining: 0, retryAfterSeconds: seconds });
    expect(Date.parse(problem.resetAt)).toBeGreaterThan(Date.now());
  });
});
