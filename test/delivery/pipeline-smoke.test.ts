import { describe, expect, it } from 'vitest';
import { ALL_USER_SCOPES, callJson, provisionHandle, shardOf, signJwt, unique } from '../support/helpers.ts';
import { receiverUrl, waitForHits } from '../support/receivers.ts';

describe('pipeline smoke', () => {
  it('an event reaches a webhook through the real local queue', async () => {
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
    const key = unique('k');
    const wh = await callJson('POST', `/v2/handles/${handle}/webhooks`, {
      token,
      body: { url: receiverUrl('ok', key) },
    });
    expect(wh.status).toBe(201);
    const pub = await callJson('POST', `/v2/handles/${handle}/events`, {
      token,
      body: { type: 'order.paid', data: { orderId: 'o1' } },
    });
    expect(pub.status).toBe(202);
    const got = await waitForHits(key, 1, 15_000);
    expect(got.length).toBe(1);
    for (let i = 0; i < 50; i++) {
      const row = await (await shardOf(handle))
        .prepare('SELECT status FROM deliveries WHERE notification_id = ?')
        .bind(pub.body.notificationId)
        .first();
      if (row?.status === 'succeeded') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const n = await callJson('GET', `/v2/handles/${handle}/notifications/${pub.body.notificationId}`, { token });
    expect(n.body.status).toBe('delivered');
  });
});
