/** One-click unsubscribe (RFC 8058): links in mails, GET never unsubscribes, POST needs no auth, tokens can't be forged. */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { unsubscribeToken } from '../../src/email/unsubscribe.ts';
import {
  ALL_USER_SCOPES,
  call,
  callJson,
  expectProblem,
  provisionHandle,
  signJwt,
  unique,
} from '../support/helpers.ts';

async function activeSubscription() {
  const owner = unique('owner');
  const handle = await provisionHandle(owner);
  const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
  const { body } = await callJson('POST', `/v2/handles/${handle}/notifications/email-subscriptions`, {
    token,
    body: { email: `${unique('ops')}@example.com` },
  });
  await env.DB.prepare(`UPDATE email_subscriptions SET status = 'active' WHERE id = ?`).bind(body.id).run();
  return { id: body.id as string, handle, token };
}

const status = async (id: string) =>
  (await env.DB.prepare('SELECT status FROM email_subscriptions WHERE id = ?').bind(id).first<{ status: string }>())
    ?.status;

describe('one-click unsubscribe', () => {
  it('GET shows a page with a button and changes nothing; POST (form, no auth) unsubscribes', async () => {
    const { id } = await activeSubscription();
    const link = `/v2/email/unsubscribe?token=${encodeURIComponent(await unsubscribeToken(env.ENCRYPTION_KEY, id))}`;
    const page = await call('GET', link);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<form method="post"/);
    expect(await status(id)).toBe('active');
    const post = await call('POST', link, {
      rawBody: 'List-Unsubscribe=One-Click',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(post.status).toBe(200);
    expect(await status(id)).toBe('unsubscribed');
    // Twice is fine.
    expect(
      (
        await call('POST', link, {
          rawBody: 'List-Unsubscribe=One-Click',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        })
      ).status,
    ).toBe(200);
  });

  it('a tampered or foreign token is refused and changes nothing', async () => {
    const a = await activeSubscription();
    const b = await activeSubscription();
    const good = await unsubscribeToken(env.ENCRYPTION_KEY, a.id);
    const tag = good.split('.')[1]!;
    const forged = [`${b.id}.${tag}`, `${a.id}.${tag.slice(0, -2)}xx`, 'garbage', `${a.id}.`];
    for (const t of forged) {
      await expectProblem(await call('POST', `/v2/email/unsubscribe?token=${encodeURIComponent(t)}`), 404);
    }
    expect(await status(a.id)).toBe('active');
    expect(await status(b.id)).toBe('active');
  });

  it('an unsubscribed address receives nothing more, and the mail it got carried the headers', async () => {
    const { id, handle, token } = await activeSubscription();
    await call(
      'POST',
      `/v2/email/unsubscribe?token=${encodeURIComponent(await unsubscribeToken(env.ENCRYPTION_KEY, id))}`,
    );
    const { body } = await callJson('POST', `/v2/handles/${handle}/notification-settings/evaluate`, {
      token,
      body: { eventType: 'order.paid' },
    });
    expect(body.recipients.find((r: { subscriptionId: string }) => r.subscriptionId === id)).toMatchObject({
      outcome: 'excluded',
      rule: 'unsubscribed',
    });
  });
});
