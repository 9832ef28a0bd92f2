/**
 * The dashboard inside workerd, through the Worker's real entry point: the session cookie's flags and sealing, CSRF
 * refusals (token and Origin), the API's own 404/403 as pages, and the pages that drive the debug playbooks
 * (docs/design.md#debug-playbooks).
 * The browser-level journey is test/e2e/dashboard.e2e.ts.
 */

import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { purgeHandle } from '../../src/jobs/purge-expired.ts';
import { newId } from '../../src/lib/ids.ts';
import { Browser, decode } from '../support/dashboard-browser.ts';
import {
  ALL_USER_SCOPES,
  addMember,
  anyShard,
  call,
  callJson,
  createPat,
  provisionHandle,
  signJwt,
  unique,
} from '../support/helpers.ts';
import { receiverUrl } from '../support/receivers.ts';
import { insertNotifications } from '../support/seed.ts';

describe('dashboard', () => {
  let owner: string;
  let handle: string;
  let other: string;
  let pat: string;

  beforeAll(async () => {
    owner = unique('user');
    handle = await provisionHandle(owner);
    other = await provisionHandle(owner);
    pat = (await createPat(owner)).token;
  });

  it('signs in with a PAT into an HttpOnly, Secure, SameSite=Strict cookie that does not carry the token in clear', async () => {
    const b = new Browser();
    const login = await b.get('/dashboard/login');
    expect(login.res.status).toBe(200);
    expect(login.html.startsWith('<!doctype html><html lang="en">')).toBe(true);
    expect(login.res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const { res } = await b.signIn(pat);
    expect(res.status).toBe(303);
    const cookie = res.headers.getSetCookie().find((l) => l.startsWith('gn_session='))!;
    expect(cookie).toMatch(/; HttpOnly/i);
    expect(cookie).toMatch(/; Secure/i);
    expect(cookie).toMatch(/; SameSite=Strict/i);
    expect(cookie).toMatch(/; Path=\/dashboard/i);
    expect(cookie).not.toContain(pat);
    // Two handles: the dashboard offers the switcher instead of picking one.
    const home = await b.get('/dashboard');
    expect(home.res.status).toBe(200);
    expect(home.html).toContain(`<option value="${handle}"`);
    expect(home.html).toContain(`<option value="${other}"`);
  });

  it("refuses a wrong token with the API's own 401 words, and a tampered cookie sends back to sign-in", async () => {
    const b = new Browser();
    const { res, html } = await b.signIn('grt_notavalidtoken');
    expect(res.status).toBe(401);
    expect(html).toContain('checksum does not match');
    expect(b.jar.has('gn_session')).toBe(false);

    await b.signIn(pat);
    const sealed = b.jar.get('gn_session')!;
    b.jar.set('gn_session', sealed.slice(0, -4) + (sealed.endsWith('AAAA') ? 'BBBB' : 'AAAA'));
    const page = await b.fetch('GET', `/dashboard/h/${handle}`);
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toMatch(/^\/dashboard\/login\?/);
  });

  it('a session never outlives its token: revoking the PAT ends it at the next page', async () => {
    const created = await createPat(owner);
    const b = new Browser();
    await b.signIn(created.token);
    expect((await b.get(`/dashboard/h/${handle}`)).res.status).toBe(200);
    const revoked = await call('DELETE', `/v2/tokens/${created.id}`, {
      token: await signJwt({ sub: owner, scope: ALL_USER_SCOPES }),
    });
    expect(revoked.status).toBe(204);
    const page = await b.fetch('GET', `/dashboard/h/${handle}`);
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toContain('m=expired');
    expect(b.jar.has('gn_session')).toBe(false);
  });

  it('signs in with a JWT; the cookie expires with the JWT; signing out needs the CSRF token and clears the cookie', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const b = new Browser();
    const { res } = await b.signIn(await signJwt({ sub: owner, scope: ALL_USER_SCOPES, exp }));
    expect(res.status).toBe(303);
    const maxAge = Number(
      /Max-Age=(\d+)/i.exec(res.headers.getSetCookie().find((l) => l.startsWith('gn_session='))!)![1],
    );
    expect(maxAge).toBeGreaterThan(500);
    expect(maxAge).toBeLessThanOrEqual(600);
    const page = await b.get(`/dashboard/h/${handle}`);
    expect(page.res.status).toBe(200);
    // A cross-site "sign out" without the token does nothing.
    await b.fetch('POST', '/dashboard/logout', { _csrf: 'wrong' });
    expect(b.jar.has('gn_session')).toBe(true);
    const out = await b.post('/dashboard/logout', page.html);
    expect(out.res.status).toBe(303);
    expect(b.jar.has('gn_session')).toBe(false);
    expect((await b.fetch('GET', `/dashboard/h/${handle}`)).status).toBe(303);
  });

  it('signing out ends the session server-side: the same cookie replayed afterwards is refused, other sessions live on', async () => {
    const b = new Browser();
    await b.signIn(pat);
    const elsewhere = new Browser();
    await elsewhere.signIn(pat);
    const page = await b.get(`/dashboard/h/${handle}/webhooks`);
    expect(page.res.status).toBe(200);
    const stolen = b.jar.get('gn_session')!;
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!;

    const out = await b.post('/dashboard/logout', page.html);
    expect(out.res.status).toBe(303);
    // A copy of the cookie taken before sign-out (another tab, a proxy log, a stolen jar) is dead: GETs and POSTs.
    const replay = new Browser();
    replay.jar.set('gn_session', stolen);
    const get = await replay.fetch('GET', `/dashboard/h/${handle}/webhooks`);
    expect(get.status).toBe(303);
    expect(get.headers.get('location')).toMatch(/^\/dashboard\/login\?/);
    replay.jar.set('gn_session', stolen);
    const post = await replay.fetch('POST', `/dashboard/h/${handle}/webhooks`, {
      _csrf: csrf,
      _idem: crypto.randomUUID(),
      url: receiverUrl('ok', unique('replay')),
    });
    expect(post.status).toBe(303);
    expect(post.headers.get('location')).toMatch(/^\/dashboard\/login\?/);
    const hooks = await callJson('GET', `/v2/handles/${handle}/webhooks`, { token: pat });
    expect(JSON.stringify(hooks.body)).not.toContain('replay');
    replay.jar.set('gn_session', stolen);
    expect((await replay.fetch('GET', '/dashboard')).status).toBe(303);
    // The session row records the sign-out.
    const row = await env.DB.prepare(
      'SELECT count(*) AS n FROM dashboard_sessions WHERE revoked_at IS NOT NULL AND created_at >= ?',
    )
      .bind(new Date(Date.now() - 60_000).toISOString())
      .first<{ n: number }>();
    expect(row!.n).toBeGreaterThan(0);
    // Signing out of one browser leaves another session of the same token alone.
    expect((await elsewhere.get(`/dashboard/h/${handle}/webhooks`)).res.status).toBe(200);
  });

  it("shows the API's 404 for a handle the caller is not a member of, with the request id", async () => {
    const stranger = unique('user');
    await provisionHandle(stranger);
    const b = new Browser();
    await b.signIn((await createPat(stranger)).token);
    const { res, html } = await b.get(`/dashboard/h/${handle}/webhooks`);
    expect(res.status).toBe(404);
    const api = await callJson('GET', `/v2/handles/${handle}`, { token: (await createPat(stranger)).token });
    expect(api.status).toBe(404);
    expect(decode(html)).toContain(api.body.detail);
    expect(html).toContain(res.headers.get('x-request-id')!);
    // Same page for a handle that does not exist at all.
    expect((await b.get('/dashboard/h/no-such-handle-anywhere')).res.status).toBe(404);
  });

  it("a viewer gets the API's 403 naming the role, and nothing is created", async () => {
    const viewer = unique('user');
    await addMember(handle, viewer, 'viewer');
    const b = new Browser();
    await b.signIn((await createPat(viewer)).token);
    const page = await b.get(`/dashboard/h/${handle}/webhooks`);
    expect(page.res.status).toBe(200);
    const { res, html } = await b.post(`/dashboard/h/${handle}/webhooks`, page.html, {
      url: receiverUrl('ok', unique('k')),
      enabled: 'true',
    });
    expect(res.status).toBe(403);
    expect(decode(html)).toContain('needs the role owner or admin');
    const list = await callJson('GET', `/v2/handles/${handle}/webhooks`, { token: pat });
    expect(list.body.data).toHaveLength(0);
  });

  it("refuses a form without the session's CSRF token, and one from another origin", async () => {
    const b = new Browser();
    await b.signIn(pat);
    const page = await b.get(`/dashboard/h/${handle}/webhooks`);
    const forged = await b.fetch('POST', `/dashboard/h/${handle}/webhooks`, {
      _csrf: 'forged',
      url: receiverUrl('ok', 'x'),
    });
    expect(forged.status).toBe(403);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.html)![1]!;
    const crossSite = await b.fetch(
      'POST',
      `/dashboard/h/${handle}/webhooks`,
      { _csrf: csrf, url: receiverUrl('ok', 'x') },
      { origin: 'https://evil.example' },
    );
    expect(crossSite.status).toBe(403);
    const list = await callJson('GET', `/v2/handles/${handle}/webhooks`, { token: pat });
    expect(list.body.data).toHaveLength(0);
  });

  it("words its own refusals like the API's problems: a field that is not JSON, the CSRF and Origin checks, an unknown page", async () => {
    const b = new Browser();
    await b.signIn(pat);
    const page = await b.get(`/dashboard/h/${handle}/webhooks`);
    const badJson = await b.post(`/dashboard/h/${handle}/webhooks`, page.html, {
      url: receiverUrl('ok', 'x'),
      filterPolicy: '{not json',
    });
    expect(badJson.res.status).toBe(400);
    expect(decode(badJson.html)).toContain('Not created: Your request is not valid (400)');
    expect(badJson.html).toContain('<code>body.filterPolicy</code>: filterPolicy is not valid JSON.');
    const badHeader = await b.post(`/dashboard/h/${handle}/webhooks`, page.html, {
      url: receiverUrl('ok', 'x'),
      headers: 'no colon',
    });
    expect(badHeader.res.status).toBe(400);
    expect(decode(badHeader.html)).toContain('Header line "no colon" is not "Name: value".');

    const forged = await b.fetch('POST', `/dashboard/h/${handle}/webhooks`, { _csrf: 'forged' });
    expect(forged.status).toBe(403);
    const forgedHtml = decode(await forged.text());
    expect(forgedHtml).toContain('<title>Not allowed · gharart-notify</title>');
    expect(forgedHtml).toContain('CSRF check failed');
    expect(forgedHtml).toContain(forged.headers.get('x-request-id')!);

    const crossSite = await b.fetch(
      'POST',
      `/dashboard/h/${handle}/webhooks`,
      { _csrf: 'x' },
      { origin: 'https://evil.example' },
    );
    expect(crossSite.status).toBe(403);
    expect(decode(await crossSite.text())).toContain('(Origin check failed)');

    const missing = await b.get('/dashboard/no/such/page');
    expect(missing.res.status).toBe(404);
    expect(missing.html).toContain('No dashboard page at /dashboard/no/such/page.');
    expect((await callJson('GET', `/v2/handles/${handle}/webhooks`, { token: pat })).body.data).toHaveLength(0);
  });

  it('creates a webhook, shows its secret once, sends a test with the diagnosis, and shows the attempt in the log', async () => {
    const b = new Browser();
    await b.signIn(pat);
    const page = await b.get(`/dashboard/h/${handle}/webhooks`);
    const url = receiverUrl('ok', unique('dash'));
    const created = await b.post(`/dashboard/h/${handle}/webhooks`, page.html, {
      url,
      description: 'CRM',
      eventTypes: 'order.*',
      filterPolicy: '',
      headers: 'X-Crm-Tenant: acme',
      enabled: 'true',
    });
    expect(created.res.status).toBe(201);
    const secret = /whsec_[A-Za-z0-9+/=]+/.exec(created.html)?.[0];
    expect(secret).toBeDefined();
    const list = await callJson('GET', `/v2/handles/${handle}/webhooks`, { token: pat });
    const webhook = list.body.data.find((w: any) => w.url === url);
    expect(webhook.eventTypes).toEqual(['order.*']);
    expect(webhook.headers).toEqual({ 'X-Crm-Tenant': 'acme' });

    const detail = await b.get(`/dashboard/h/${handle}/webhooks/${webhook.id}`);
    expect(detail.html).not.toContain(secret!);
    const tested = await b.post(`/dashboard/h/${handle}/webhooks/${webhook.id}/test`, detail.html, {
      eventType: 'order.created',
    });
    expect(tested.res.status).toBe(200);
    expect(tested.html).toContain('id="diagnosis-summary"');
    const testId = /Test delivery id[\s\S]*?(dlv_[0-9A-Z]+)/.exec(tested.html)?.[1];
    expect(testId).toBeDefined();
    expect(tested.html).toContain(`data-delivery="${testId}" data-status="succeeded"`);

    // Disable through the page: the API sees it.
    const disabled = await b.post(`/dashboard/h/${handle}/webhooks/${webhook.id}/disable`, detail.html);
    expect(disabled.res.status).toBe(303);
    const after = await callJson('GET', `/v2/handles/${handle}/webhooks/${webhook.id}`, { token: pat });
    expect(after.body.enabled).toBe(false);
  });

  it('the webhook page preselects a test type the webhook receives and links the receiving guide', async () => {
    const b = new Browser();
    await b.signIn(pat);
    const created = await callJson('POST', `/v2/handles/${handle}/webhooks`, {
      token: pat,
      body: { url: receiverUrl('ok', unique('dash')), eventTypes: ['payment.failed'] },
    });
    expect(created.status).toBe(201);
    const detail = await b.get(`/dashboard/h/${handle}/webhooks/${created.body.id}`);
    const select = /<select id="test-type"[\s\S]*?<\/select>/.exec(detail.html)?.[0] ?? '';
    expect([...select.matchAll(/<option value="([^"]+)" selected/g)].map((m) => m[1])).toEqual(['payment.failed']);
    expect(detail.html).toContain('href="/docs#receiving-webhooks"');
    const docs = await (await call('GET', '/docs')).text();
    expect(docs).toContain('id="receiving-webhooks"');
    expect(docs).toContain('docs/receiving-webhooks.md');
  });

  it('editing a webhook keeps a masked credential header unless the user changes it', async () => {
    const created = await callJson('POST', `/v2/handles/${other}/webhooks`, {
      token: pat,
      body: {
        url: receiverUrl('ok', unique('edit')),
        headers: { Authorization: 'Bearer crm-credential-1234', 'X-Tenant': 'acme' },
      },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const stored = async () =>
      JSON.parse(
        (await anyShard
          .prepare('SELECT headers FROM webhook_subscriptions WHERE id = ?')
          .bind(id)
          .first<{ headers: string }>())!.headers,
      );
    const b = new Browser();
    await b.signIn(pat);
    const page = await b.get(`/dashboard/h/${other}/webhooks/${id}`);
    // The form shows the API's masked value, never the credential.
    expect(page.html).not.toContain('crm-credential-1234');
    const headersText = decode(
      /<textarea id="edit-headers" name="headers">([\s\S]*?)<\/textarea>/.exec(page.html)![1]!,
    );
    const original = decode(/name="headersOriginal" value="([^"]*)"/.exec(page.html)![1]!);
    expect(headersText.trim()).toBe(original.trim());
    const saved = await b.post(`/dashboard/h/${other}/webhooks/${id}`, page.html, {
      url: created.body.url,
      description: 'renamed',
      eventTypes: '',
      filterPolicy: '',
      headers: headersText,
      headersOriginal: original,
    });
    expect(saved.res.status).toBe(303);
    expect((await callJson('GET', `/v2/handles/${other}/webhooks/${id}`, { token: pat })).body.description).toBe(
      'renamed',
    );
    expect(await stored()).toEqual({ Authorization: 'Bearer crm-credential-1234', 'X-Tenant': 'acme' });
    // Changed headers are sent as typed.
    const again = await b.get(`/dashboard/h/${other}/webhooks/${id}`);
    await b.post(`/dashboard/h/${other}/webhooks/${id}`, again.html, {
      url: created.body.url,
      headers: 'X-Tenant: globex',
      headersOriginal: original,
    });
    expect(await stored()).toEqual({ 'X-Tenant': 'globex' });
    await call('DELETE', `/v2/handles/${other}/webhooks/${id}`, { token: pat });
  });

  it("shows the API's validation errors for a bad webhook URL without creating anything", async () => {
    const b = new Browser();
    await b.signIn(pat);
    const page = await b.get(`/dashboard/h/${other}/webhooks`);
    const { res, html } = await b.post(`/dashboard/h/${other}/webhooks`, page.html, {
      url: 'ftp://example.com/x',
      enabled: 'true',
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(html).toContain('role="alert"');
    // The rejected URL stays in the form.
    expect(html).toContain('value="ftp://example.com/x"');
    expect((await callJson('GET', `/v2/handles/${other}/webhooks`, { token: pat })).body.data).toHaveLength(0);
  });

  it('warns when the owner default email is unset, and an added address is pending confirmation', async () => {
    const b = new Browser();
    await b.signIn(pat);
    const page = await b.get(`/dashboard/h/${other}/email`);
    expect(page.html).toContain('No owner default email');
    const email = `${unique('ops')}@example.com`;
    const added = await b.post(`/dashboard/h/${other}/email`, page.html, { email, eventTypes: '', filterPolicy: '' });
    expect(added.res.status).toBe(303);
    const list = await b.get(added.res.headers.get('location')!);
    expect(list.html).toContain(email);
    expect(list.html).toMatch(/data-status="pending_confirmation"/);
    // Setting the owner email removes the warning.
    const set = await b.post(`/dashboard/h/${other}/email/owner-default`, list.html, {
      email: 'owner@example.com',
      action: 'set',
    });
    expect(set.res.status).toBe(303);
    expect((await b.get(`/dashboard/h/${other}/email`)).html).not.toContain('No owner default email');
  });

  it('shows a flash only for the outcomes it knows: `?ok=` of a built-in property name shows nothing', async () => {
    const b = new Browser();
    await b.signIn(pat);
    const known = await b.get(`/dashboard/h/${handle}/email?ok=email_deleted`);
    expect(known.html).toContain('class="notice ok"');
    for (const name of ['constructor', 'toString', '__proto__', 'not_a_flash']) {
      const page = await b.get(`/dashboard/h/${handle}/email?ok=${name}`);
      expect(page.res.status).toBe(200);
      expect(page.html, name).not.toContain('class="notice ok"');
    }
  });

  it("evaluates a sample event against the settings and shows each recipient's verdict", async () => {
    const b = new Browser();
    await b.signIn(pat);
    const page = await b.get(`/dashboard/h/${other}/settings`);
    expect(page.res.status).toBe(200);
    const { res, html } = await b.post(`/dashboard/h/${other}/settings`, page.html, {
      action: 'evaluate-form',
      webhook: 'true',
      email: 'true',
      ownerFallback: 'critical',
      eventFilter: '{"type":[{"prefix":"payment."}]}',
      source: 'sample',
      eventType: 'order.created',
    });
    expect(res.status).toBe(200);
    expect(html).toContain('id="evaluation"');
    expect(html).toContain('request settings');
    // The dry run did not save anything.
    const saved = await callJson('GET', `/v2/handles/${other}/notification-settings`, { token: pat });
    expect(saved.body.eventFilter).toBeNull();
  });

  it("files a support report with the page's request id", async () => {
    const b = new Browser();
    await b.signIn(pat);
    const page = await b.get(`/dashboard/h/${handle}`);
    const requestId = page.res.headers.get('x-request-id')!;
    expect(page.html).toContain(requestId);
    const { res, html } = await b.post('/dashboard/report', page.html, {
      summary: 'Deliveries stuck',
      details: 'They retry forever',
      handle,
      requestId,
      page: `/dashboard/h/${handle}`,
      ids: `Request id: ${requestId}`,
    });
    expect(res.status).toBe(201);
    const reportId = /rpt_[0-9A-Z]+/.exec(html)?.[0];
    expect(reportId).toBeDefined();
    const row = await env.DB.prepare(
      'SELECT handle, handle_verified, summary, reported_request_id FROM support_reports WHERE id = ?',
    )
      .bind(reportId)
      .first<Record<string, unknown>>();
    expect(row).toMatchObject({
      handle,
      handle_verified: 1,
      summary: 'Deliveries stuck',
      reported_request_id: requestId,
    });
  });
});

describe('GET /v2/handles (the handle switcher)', () => {
  it("lists the caller's handles with the role; a handle-restricted PAT sees only its handle; a non-member sees none of them", async () => {
    const user = unique('user');
    const a = await provisionHandle(user);
    const b = await provisionHandle(unique('user'));
    await addMember(b, user, 'viewer');
    const all = await callJson('GET', '/v2/handles', { token: (await createPat(user)).token });
    expect(all.status).toBe(200);
    expect(all.body.data.map((h: any) => [h.handle, h.role])).toEqual(
      [
        [a, 'owner'],
        [b, 'viewer'],
      ].sort((x, y) => x[0]!.localeCompare(y[0]!)),
    );
    const restricted = await callJson('GET', '/v2/handles', { token: (await createPat(user, { handle: b })).token });
    expect(restricted.body.data.map((h: any) => h.handle)).toEqual([b]);
    const stranger = await callJson('GET', '/v2/handles', { token: (await createPat(unique('user'))).token });
    expect(stranger.body.data).toEqual([]);
    expect((await callJson('GET', '/v2/handles')).status).toBe(401);
  });
});

describe('GET …/webhooks?include=activity (the sparkline)', () => {
  it("counts each subscription's attempts per hour over 24 h, newest hour last; absent without include", async () => {
    const user = unique('user');
    const h = await provisionHandle(user);
    const token = (await createPat(user)).token;
    const ok = await callJson('POST', `/v2/handles/${h}/webhooks`, {
      token,
      body: { url: receiverUrl('ok', unique('act')) },
    });
    const bad = await callJson('POST', `/v2/handles/${h}/webhooks`, {
      token,
      body: { url: receiverUrl('fail', unique('act')) },
    });
    for (const id of [ok.body.id, ok.body.id, bad.body.id]) {
      expect((await call('POST', `/v2/handles/${h}/webhooks/${id}/test`, { token })).status).toBe(200);
    }
    const list = await callJson('GET', `/v2/handles/${h}/webhooks?include=activity`, { token });
    expect(list.status).toBe(200);
    const byId = new Map(list.body.data.map((w: any) => [w.id, w.activity24h]));
    const zeros = Array(23).fill(0);
    expect(byId.get(ok.body.id)).toEqual({ succeeded: [...zeros, 2], failed: [...zeros, 0] });
    expect(byId.get(bad.body.id)).toEqual({ succeeded: [...zeros, 0], failed: [...zeros, 1] });
    const plain = await callJson('GET', `/v2/handles/${h}/webhooks`, { token });
    expect(plain.body.data[0]).not.toHaveProperty('activity24h');
    // The dashboard draws it.
    const b = new Browser();
    await b.signIn(token);
    const page = await b.get(`/dashboard/h/${h}/webhooks`);
    expect(page.html).toContain('Last 24 hours: 2 attempts succeeded, 0 failed');
    expect(page.html).toContain('Last 24 hours: 0 attempts succeeded, 1 failed');
  });
});

describe('settings page: retention and archives', () => {
  it('shows the retention and lists the archives, each downloadable through the dashboard (gzip NDJSON)', async () => {
    const user = unique('user');
    const h = await provisionHandle(user);
    const token = (await createPat(user)).token;
    // Two notifications long past the 30 days, purged by the real job function (archive to R2, then delete).
    const base = Date.parse('2026-07-04T09:00:00Z');
    const ids = [newId('ntf', base), newId('ntf', base + 1000)];
    await insertNotifications(
      h,
      ids.map((id, i) => ({
        id,
        type: 'order.paid',
        severity: 'info' as const,
        status: 'no_recipients' as const,
        createdAt: new Date(base + i * 1000).toISOString(),
      })),
    );
    const b = new Browser();
    await b.signIn(token);
    const before = await b.get(`/dashboard/h/${h}/settings`);
    expect(before.html).toContain('Notifications stay <strong>30 days</strong>');
    expect(before.html).toContain('No archive yet');

    expect((await purgeHandle(env, h, 30, new Date())).archives).toBe(1);
    const page = await b.get(`/dashboard/h/${h}/settings`);
    const link = new RegExp(`href="(/dashboard/h/${h}/archives/arc_[0-9A-Z]{26})"`).exec(page.html)?.[1];
    expect(link, 'a download link').toBeTruthy();
    expect(page.html).toContain('2026-07-04');
    const download = await b.fetch('GET', link!);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe('application/gzip');
    const text = await new Response(download.body!.pipeThrough(new DecompressionStream('gzip'))).text();
    expect(
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).notification.id),
    ).toEqual(ids);
    // Another handle's page for the same archive id: the API's 404, as a page.
    const stranger = new Browser();
    await stranger.signIn((await createPat(unique('stranger'))).token);
    expect((await stranger.fetch('GET', link!)).status).toBe(404);
  });

  it('shows an endpoint being paced on the overview, and its retry policy and rate on its page', async () => {
    const user = unique('user');
    const paced = await provisionHandle(user);
    const pat = (await createPat(user)).token;
    const created = await callJson('POST', `/v2/handles/${paced}/webhooks`, {
      token: pat,
      body: { url: receiverUrl('ok', unique('k')), rateLimit: 1, retryPolicy: { name: 'short' } },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    // Six deliveries asked its pacer for slots: four go within 3 s, two wait.
    await env.PACER.get(env.PACER.idFromName(id)).admit(1, ['dlv_a', 'dlv_b', 'dlv_c', 'dlv_d', 'dlv_e', 'dlv_f']);
    const b = new Browser();
    await b.signIn(pat);
    const overview = await b.get(`/dashboard/h/${paced}`);
    expect(overview.html).toContain('data-paced="yes"');
    expect(decode(overview.html)).toMatch(/Being paced: 2 deliveries wait for their slot at 1 per second/);
    const page = decode((await b.get(`/dashboard/h/${paced}/webhooks/${id}`)).html);
    expect(page).toContain('short: 5 s, 30 s, 120 s; 4 attempts');
    expect(page).toContain('1 per second');
  });
});
