/** Double opt-in (docs/design.md#email) and the local mailbox: the confirmation mail is the only mail a pending address gets. */

import { describe, expect, it } from 'vitest';
import {
  ALL_USER_SCOPES,
  anyShard,
  callWithVars,
  expectProblem,
  provisionHandle,
  signJwt,
  unique,
} from '../support/helpers.ts';

const DEV = { ENVIRONMENT: 'development' };
const devCall = (method: string, path: string, opts: Parameters<typeof callWithVars>[3] = {}) =>
  callWithVars(DEV, method, path, opts);

async function mailbox(to: string): Promise<Array<{ subject: string; text: string; headers: Record<string, string> }>> {
  const res = await devCall('GET', `/dev/mailbox?format=json&to=${encodeURIComponent(to)}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: Array<{ subject: string; text: string; headers: Record<string, string> }> })
    .data;
}

function confirmLink(text: string): string {
  const m = /https?:\/\/\S+\/v2\/email\/confirm\?token=([^\s]+)/.exec(text);
  if (!m) throw new Error(`no confirm link in: ${text}`);
  return `/v2/email/confirm?token=${m[1]}`;
}

async function subscribe() {
  const owner = unique('owner');
  const handle = await provisionHandle(owner);
  const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
  const email = `${unique('ops')}@example.com`;
  const res = await devCall('POST', `/v2/handles/${handle}/notifications/email-subscriptions`, {
    token,
    body: { email },
  });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { id: string; status: string; statusReason: string };
  return { handle, token, email, id: body.id, created: body };
}

/** Moves the last confirmation mail of a subscription back past the resend cooldown (60 s). */
const pastCooldown = (id: string) =>
  anyShard
    .prepare('UPDATE email_subscriptions SET confirm_sent_at = ?2 WHERE id = ?1')
    .bind(id, new Date(Date.now() - 61_000).toISOString())
    .run();

const resend = (handle: string, id: string, token: string) =>
  devCall('POST', `/v2/handles/${handle}/notifications/email-subscriptions/${id}/resend-confirmation`, { token });

const statusOf = async (id: string) =>
  (await anyShard
    .prepare('SELECT status, confirm_token_hash FROM email_subscriptions WHERE id = ?')
    .bind(id)
    .first<{ status: string; confirm_token_hash: string | null }>())!;

describe('double opt-in', () => {
  it('a new subscription gets exactly one mail, with a link; GET shows a button, POST confirms once', async () => {
    const { email, id, created } = await subscribe();
    expect(created.status).toBe('pending_confirmation');
    expect(created.statusReason).toMatch(/Confirmation mail sent/);
    const mails = await mailbox(email);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toMatch(/confirm/i);
    const link = confirmLink(mails[0]!.text);
    // The mail holds the token; the database only its hash.
    const token = decodeURIComponent(link.split('token=')[1]!);
    expect(JSON.stringify(await statusOf(id))).not.toContain(token);

    const page = await devCall('GET', link, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    const pageHtml = await page.text();
    expect(pageHtml.startsWith('<!doctype html><html lang="en">')).toBe(true);
    expect(pageHtml).toContain('<form method="post"');
    expect((await statusOf(id)).status).toBe('pending_confirmation');

    const confirmed = await devCall('POST', link, { headers: { accept: 'text/html' } });
    expect(confirmed.status).toBe(200);
    expect(await statusOf(id)).toEqual({ status: 'active', confirm_token_hash: null });

    // Single use: the same link again is a clear page (for a person) or a problem (for a client), and changes nothing.
    const again = await devCall('POST', link, { headers: { accept: 'text/html' } });
    expect(again.status).toBe(404);
    expect(again.headers.get('content-type')).toMatch(/text\/html/);
    await expectProblem(await devCall('POST', link), 404);
    expect((await statusOf(id)).status).toBe('active');
  });

  it('an expired link is refused with 410 and changes nothing', async () => {
    const { email, id } = await subscribe();
    const link = confirmLink((await mailbox(email))[0]!.text);
    await anyShard
      .prepare(`UPDATE email_subscriptions SET confirm_expires_at = '2020-01-01T00:00:00.000Z' WHERE id = ?`)
      .bind(id)
      .run();
    await expectProblem(await devCall('POST', link), 410);
    expect((await statusOf(id)).status).toBe('pending_confirmation');
  });

  it('resending makes a new link and kills the old one; a confirmed subscription cannot be resent', async () => {
    const { handle, token, email, id } = await subscribe();
    const oldLink = confirmLink((await mailbox(email))[0]!.text);
    // The first mail went out just now: a resend waits out the cooldown (see the test below).
    await pastCooldown(id);
    const resent = await devCall(
      'POST',
      `/v2/handles/${handle}/notifications/email-subscriptions/${id}/resend-confirmation`,
      { token },
    );
    expect(resent.status).toBe(202);
    const mails = await mailbox(email);
    expect(mails).toHaveLength(2);
    const newLink = confirmLink(mails[0]!.text);
    expect(newLink).not.toBe(oldLink);
    await expectProblem(await devCall('POST', oldLink), 404);
    expect((await devCall('POST', newLink)).status).toBe(200);
    await expectProblem(
      await devCall('POST', `/v2/handles/${handle}/notifications/email-subscriptions/${id}/resend-confirmation`, {
        token,
      }),
      409,
    );
  });

  it('a pending address receives nothing but its confirmation', async () => {
    const { handle, token, email } = await subscribe();
    const pub = await devCall('POST', `/v2/handles/${handle}/events`, {
      token,
      body: { type: 'order.paid', data: { orderId: 'o-1' } },
    });
    expect(pub.status).toBe(202);
    const body = (await pub.json()) as { recipients: Array<{ target: string }> };
    expect(body.recipients.map((r) => r.target)).not.toContain(email);
    expect(await mailbox(email)).toHaveLength(1);
  });

  it('the mailbox exists only in development', async () => {
    await expectProblem(await callWithVars({ ENVIRONMENT: 'production' }, 'GET', '/dev/mailbox'), 404);
    const html = await devCall('GET', '/dev/mailbox');
    expect(html.headers.get('content-type')).toMatch(/text\/html/);
  });

  it('resend-confirmation: one mail a minute per subscription (429 with Retry-After), even when resent concurrently', async () => {
    const { handle, token, email, id } = await subscribe();
    // Right after the subscription's own mail.
    const early = await resend(handle, id, token);
    const problem = await expectProblem(early, 429);
    const retryAfter = Number(early.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(problem.detail).toMatch(/confirmation mail/);
    expect(await mailbox(email)).toHaveLength(1);
    // Past the cooldown, four at once: exactly one mail.
    await pastCooldown(id);
    const answers = await Promise.all(Array.from({ length: 4 }, () => resend(handle, id, token)));
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([202, 429, 429, 429]);
    for (const r of answers.filter((a) => a.status === 429)) {
      await expectProblem(r, 429);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    expect(await mailbox(email)).toHaveLength(2);
  });

  it('resend-confirmation: at most 5 resent mails a UTC day per address across all handles, even concurrently', async () => {
    const email = `${unique('victim')}@example.com`;
    const subs = [];
    for (let i = 0; i < 7; i++) {
      const owner = unique('owner');
      const handle = await provisionHandle(owner);
      const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
      // The same address in another case: one address all the same.
      const body = { email: i % 2 ? email.toUpperCase() : email };
      const res = await devCall('POST', `/v2/handles/${handle}/notifications/email-subscriptions`, { token, body });
      expect(res.status).toBe(201);
      const id = ((await res.json()) as { id: string }).id;
      await pastCooldown(id);
      subs.push({ handle, token, id });
    }
    expect(await mailbox(email)).toHaveLength(7);
    const answers = await Promise.all(subs.map((s) => resend(s.handle, s.id, s.token)));
    const statuses = answers.map((r) => r.status);
    expect(
      statuses.filter((s) => s === 202),
      String(statuses),
    ).toHaveLength(5);
    const refused = answers.filter((r) => r.status === 429);
    expect(refused, String(statuses)).toHaveLength(2);
    const untilMidnight =
      (Date.parse(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`) + 86_400_000 - Date.now()) / 1000;
    for (const r of refused) {
      const p = await expectProblem(r, 429);
      expect(p.detail).toMatch(/today/);
      expect(Math.abs(Number(r.headers.get('retry-after')) - untilMidnight)).toBeLessThan(60);
    }
    expect(await mailbox(email)).toHaveLength(12);
  });

  it("creating and deleting subscriptions cannot fill a stranger's inbox: at most 10 first confirmation mails a UTC day per address", async () => {
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
    const email = `${unique('victim')}@example.com`;
    const path = `/v2/handles/${handle}/notifications/email-subscriptions`;
    // Subscribe, delete, subscribe again: each new subscription would have mailed the address.
    let last: { id: string; status: string; statusReason: string } | undefined;
    for (let i = 0; i < 12; i++) {
      if (last) expect((await devCall('DELETE', `${path}/${last.id}`, { token })).status).toBe(204);
      const res = await devCall('POST', path, { token, body: { email } });
      expect(res.status).toBe(201);
      last = (await res.json()) as { id: string; status: string; statusReason: string };
    }
    expect(await mailbox(email)).toHaveLength(10);
    // The subscription beyond the cap exists, says why it got no mail, and its mail can be resent (under the resend
    // cap, without waiting out a cooldown: nothing was sent).
    expect(last!.status).toBe('pending_confirmation');
    expect(last!.statusReason).toMatch(/No confirmation mail was sent.*10 confirmation mails of new subscriptions/);
    expect((await resend(handle, last!.id, token)).status).toBe(202);
    expect(await mailbox(email)).toHaveLength(11);
  });
});
