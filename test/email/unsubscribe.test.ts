/** One-click unsubscribe (RFC 8058): links in mails, GET never unsubscribes, POST needs no auth, tokens can't be forged. */

import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { unsubscribeToken } from '../../src/email/unsubscribe.ts';
import {
  ALL_USER_SCOPES,
  anyShard,
  call,
  callJson,
  callWithVars,
  expectProblem,
  provisionHandle,
  signJwt,
  unique,
} from '../support/helpers.ts';
import { eventually } from '../support/pipeline-helpers.ts';

async function activeSubscription() {
  const owner = unique('owner');
  const handle = await provisionHandle(owner);
  const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
  const email = `${unique('ops')}@example.com`;
  const { body } = await callJson('POST', `/v2/handles/${handle}/notifications/email-subscriptions`, {
    token,
    body: { email },
  });
  await anyShard.prepare(`UPDATE email_subscriptions SET status = 'active' WHERE id = ?`).bind(body.id).run();
  return { id: body.id as string, handle, token, email };
}

const status = async (id: string) =>
  (await anyShard.prepare('SELECT status FROM email_subscriptions WHERE id = ?').bind(id).first<{ status: string }>())
    ?.status;

describe('one-click unsubscribe', () => {
  it('GET shows a page with a button and changes nothing; POST (form, no auth) unsubscribes', async () => {
    const { id, email } = await activeSubscription();
    const link = `/v2/email/unsubscribe?token=${encodeURIComponent(await unsubscribeToken(env.ENCRYPTION_KEY, id, email))}`;
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
    const good = await unsubscribeToken(env.ENCRYPTION_KEY, a.id, a.email);
    const tag = good.split('.')[1]!;
    const forged = [`${b.id}.${tag}`, `${a.id}.${tag.slice(0, -2)}xx`, 'garbage', `${a.id}.`];
    for (const t of forged) {
      await expectProblem(await call('POST', `/v2/email/unsubscribe?token=${encodeURIComponent(t)}`), 404);
    }
    expect(await status(a.id)).toBe('active');
    expect(await status(b.id)).toBe('active');
  });

  it('an unsubscribed address receives nothing more, and the mail it got carried the headers', async () => {
    const { id, handle, token, email } = await activeSubscription();
    await call(
      'POST',
      `/v2/email/unsubscribe?token=${encodeURIComponent(await unsubscribeToken(env.ENCRYPTION_KEY, id, email))}`,
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

describe('an unsubscribe link is bound to the address it was mailed to', () => {
  const DEV = { ENVIRONMENT: 'development' } as Partial<Env>;
  const putOwner = (handle: string, token: string, email: string) =>
    callWithVars(DEV, 'PUT', `/v2/handles/${handle}/notifications/owner-default-email`, { token, body: { email } });

  /** The unsubscribe link of the (first) mail the local mailbox holds for `to`, once it arrived. */
  async function unsubscribeLinkMailedTo(to: string): Promise<string> {
    const mails = await eventually(
      async () => {
        const res = await callWithVars(DEV, 'GET', `/dev/mailbox?format=json&to=${encodeURIComponent(to)}`);
        return ((await res.json()) as { data: Array<{ text: string }> }).data;
      },
      (data) => data.length > 0,
      15_000,
      `a mail to ${to}`,
    );
    const m = /https?:\/\/\S+(\/v2\/email\/unsubscribe\?token=[^\s]+)/.exec(mails[0]!.text);
    if (!m) throw new Error(`no unsubscribe link in: ${mails[0]!.text}`);
    return m[1]!;
  }

  it("an old link to the owner's previous default address does not work on the new address, and does not reveal it", async () => {
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
    const oldAddress = `${unique('old-owner')}@example.com`;
    const newAddress = `${unique('new-owner')}@example.com`;
    expect((await putOwner(handle, token, oldAddress)).status).toBe(200);
    const oldLink = await unsubscribeLinkMailedTo(oldAddress);
    expect((await putOwner(handle, token, newAddress)).status).toBe(200);
    const row = await anyShard
      .prepare(
        "SELECT id, email_normalized, status FROM email_subscriptions WHERE handle = ? AND kind = 'owner_default'",
      )
      .bind(handle)
      .first<{ id: string; email_normalized: string; status: string }>();
    expect(row).toMatchObject({ email_normalized: newAddress.toLowerCase(), status: 'active' });

    // The holder of an old mail learns nothing about the new address and cannot turn the critical fallback off.
    const page = await call('GET', oldLink, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(404);
    expect((await page.text()).toLowerCase()).not.toContain(newAddress.toLowerCase());
    const unknown = await call('GET', `/v2/email/unsubscribe?token=${encodeURIComponent(`${row!.id}.forged`)}`);
    const problem = await expectProblem(await call('GET', oldLink), 404);
    expect(problem.detail).toBe((await expectProblem(unknown, 404)).detail);
    expect(JSON.stringify(problem).toLowerCase()).not.toContain(newAddress.toLowerCase());
    const post = await call('POST', oldLink, {
      rawBody: 'List-Unsubscribe=One-Click',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    await expectProblem(post, 404);
    expect(await status(row!.id)).toBe('active');

    // The link in the mail to the new address works on it.
    const newLink = await unsubscribeLinkMailedTo(newAddress);
    const newPage = await call('GET', newLink, { headers: { accept: 'text/html' } });
    expect(newPage.status).toBe(200);
    expect((await newPage.text()).toLowerCase()).toContain(newAddress.toLowerCase());
  });

  /** A link as mailed before tokens named the address: the tag over the subscription id alone. */
  async function legacyToken(id: string): Promise<string> {
    const raw = Uint8Array.from(atob(env.ENCRYPTION_KEY), (ch) => ch.charCodeAt(0));
    const key = await crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(`unsubscribe:${id}`)));
    const b64 = btoa(String.fromCharCode(...mac));
    return `${id}.${b64.replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')}`;
  }

  it('a link mailed before tokens named the address still works for a standard subscription, never for the owner default', async () => {
    const { id } = await activeSubscription();
    const legacy = `/v2/email/unsubscribe?token=${encodeURIComponent(await legacyToken(id))}`;
    expect((await call('GET', legacy)).status).toBe(200);
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
    expect((await putOwner(handle, token, `${unique('owner')}@example.com`)).status).toBe(200);
    const ownerRow = await anyShard
      .prepare("SELECT id FROM email_subscriptions WHERE handle = ? AND kind = 'owner_default'")
      .bind(handle)
      .first<{ id: string }>();
    const legacyOwner = `/v2/email/unsubscribe?token=${encodeURIComponent(await legacyToken(ownerRow!.id))}`;
    await expectProblem(await call('POST', legacyOwner), 404);
    expect(await status(ownerRow!.id)).toBe('active');
  });
});
