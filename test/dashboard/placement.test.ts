/**
 * The dashboard's shard and database page (docs/design.md#shards): what `GET …/placement` answers, shown to owners
 * and admins, linked from the Usage page; a viewer gets the API's 403 as the page and a non-member its 404.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.ts';
import { Browser, decode } from '../support/dashboard-browser.ts';
import { addMember, callJson, createPat, provisionHandle, unique } from '../support/helpers.ts';
import { setupHandle } from '../support/pipeline-helpers.ts';
import { insertDeliveries, insertNotifications } from '../support/seed.ts';

async function signedIn(user: string): Promise<Browser> {
  const b = new Browser();
  await b.signIn((await createPat(user)).token);
  return b;
}

describe('dashboard: shard and database', () => {
  it("shows an owner the handle's shard, the database size, its own rows, retention and a move under way", async () => {
    const h = await setupHandle('SHARD_1');
    const now = new Date().toISOString();
    const ids = [newId('ntf'), newId('ntf')];
    await insertNotifications(
      h.handle,
      ids.map((id) => ({ id, type: 'order.paid', severity: 'info', status: 'delivered', createdAt: now })),
    );
    await insertDeliveries(h.handle, [
      {
        notificationId: ids[0]!,
        channel: 'webhook',
        subscriptionId: null,
        target: 'http://127.0.0.1:9/',
        status: 'dead',
      },
    ]);
    const b = await signedIn(h.owner);

    // Reached from the Usage page.
    const usage = await b.get(`/dashboard/h/${h.handle}/usage`);
    expect(usage.html).toContain(`href="/dashboard/h/${h.handle}/placement"`);

    const { res, html } = await b.get(`/dashboard/h/${h.handle}/placement`);
    expect(res.status).toBe(200);
    const text = decode(html);
    const api = await callJson('GET', `/v2/handles/${h.handle}/placement`, { token: h.token });
    expect(text).toContain('SHARD_1, one of 2 data shards');
    expect(text).toMatch(/Database size<\/dt><dd>[\d.]+ (KB|MB|GB) \([\d,]+ bytes\), [\d.]+ % of 10\.0 GB/);
    expect(text).toContain('<dt>Notifications</dt><dd>2</dd>');
    expect(text).toContain('<dt>Deliveries</dt><dd>1</dd>');
    expect(text).toContain('<dt>Delivery attempts</dt><dd>0</dd>');
    expect(text).toContain(`<dt>Retention</dt><dd>${api.body.retentionDays} days</dd>`);
    expect(text).toContain('<dt>Move</dt><dd>not moving</dd>');

    const since = new Date().toISOString();
    await env.DB.prepare('UPDATE handles SET moving_since = ?1 WHERE handle = ?2').bind(since, h.handle).run();
    try {
      const moving = decode((await b.get(`/dashboard/h/${h.handle}/placement`)).html);
      expect(moving).toContain(`moving since <time datetime="${since}"`);
      expect(moving).toContain('writes wait until the move is done');
    } finally {
      await env.DB.prepare('UPDATE handles SET moving_since = NULL WHERE handle = ?1').bind(h.handle).run();
      await callJson('GET', `/v2/handles/${h.handle}/placement`, { token: h.token });
    }
  });

  it("an admin sees it; a viewer gets the API's 403 naming the role and no link; a non-member the 404", async () => {
    const owner = unique('user');
    const handle = await provisionHandle(owner);
    const admin = unique('admin');
    await addMember(handle, admin, 'admin');
    expect((await (await signedIn(admin)).get(`/dashboard/h/${handle}/placement`)).res.status).toBe(200);

    const viewer = unique('viewer');
    await addMember(handle, viewer, 'viewer');
    const v = await signedIn(viewer);
    const usage = await v.get(`/dashboard/h/${handle}/usage`);
    expect(usage.res.status).toBe(200);
    expect(usage.html).not.toContain('/placement"');
    const refused = await v.get(`/dashboard/h/${handle}/placement`);
    expect(refused.res.status).toBe(403);
    expect(decode(refused.html)).toContain('needs the role owner or admin');
    expect(refused.html).not.toContain('SHARD_');
    expect(refused.html).toContain(refused.res.headers.get('x-request-id')!);

    const stranger = unique('user');
    await provisionHandle(stranger);
    const s = await signedIn(stranger);
    const hidden = await s.get(`/dashboard/h/${handle}/placement`);
    expect(hidden.res.status).toBe(404);
    expect(hidden.html).not.toContain('SHARD_');
    // The same page as for any other page of a handle the caller cannot see.
    expect((await s.get(`/dashboard/h/${handle}/usage`)).res.status).toBe(404);
  });
});
