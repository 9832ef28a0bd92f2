import { beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_JS } from '../../src/dashboard/assets.ts';
import { newId } from '../../src/lib/ids.ts';
import { Browser } from '../support/dashboard-browser.ts';
import { anyShard, callJson, createPat, provisionHandle, shardOf, unique } from '../support/helpers.ts';
import { receiverUrl } from '../support/receivers.ts';

describe('dashboard at a glance', () => {
  let owner: string;
  let handle: string;
  let pat: string;
  let webhookId: string;

  beforeAll(async () => {
    owner = unique('user');
    handle = await provisionHandle(owner);
    pat = (await createPat(owner)).token;
    const created = await callJson('POST', `/v2/handles/${handle}/webhooks`, {
      token: pat,
      body: { url: receiverUrl('ok', unique('glance')) },
    });
    webhookId = created.body.id;
    // One real test send through the production path: a succeeded delivery with one attempt.
    const test = await callJson('POST', `/v2/handles/${handle}/webhooks/${webhookId}/test`, { token: pat, body: {} });
    expect(test.status).toBe(200);
  });

  it('the overview and a webhook open on SVG charts by outcome, each with its numbers in a table behind a disclosure', async () => {
    const b = new Browser();
    await b.signIn(pat);
    const overview = await b.get(`/dashboard/h/${handle}`);
    expect(overview.res.status).toBe(200);
    const figures = overview.html.match(/<figure class="chart"[\s\S]*?<\/figure>/g) ?? [];
    expect(figures.map((f) => /<figcaption[^>]*>([^<]+)</.exec(f)?.[1])).toEqual([
      'Deliveries per hour, last 24 hours',
      'Deliveries per day, last 7 days',
    ]);
    for (const f of figures) {
      expect(f).toMatch(
        /<svg viewBox="0 0 640 180" role="img" aria-label="Deliveries per \w+, last [^"]*: 1 succeeded/,
      );
      expect(f).toContain('class="o-succeeded"');
      // The text alternative: a table in a disclosure, one row per bucket.
      expect(f).toMatch(/<details><summary>Numbers<\/summary>[\s\S]*<table/);
      expect(f).not.toContain(' style=');
    }
    expect((figures[0]!.match(/<tr>/g) ?? []).length).toBe(25);
    expect((figures[1]!.match(/<tr>/g) ?? []).length).toBe(8);

    const hook = await b.get(`/dashboard/h/${handle}/webhooks/${webhookId}`);
    const captions = [...hook.html.matchAll(/<figcaption[^>]*>([^<]+)</g)].map((m) => m[1]);
    expect(captions).toEqual([
      'Deliveries per hour, last 24 hours',
      'Deliveries per day, last 7 days',
      'Attempt latency per hour, last 24 hours',
      'Attempt latency per day, last 7 days',
      'Failed attempts by error class',
    ]);
    expect(hook.html).toMatch(
      /aria-label="Attempt latency per hour, last 24 hours: 1 attempts; the highest hourly p95/,
    );
    expect(hook.html).toContain('<polyline points="');
    expect(hook.html).toContain('No failed attempts in the last 7 days.');
  });

  it('a page with an open delivery marks it and names the URL it refreshes from; once terminal, nothing is open', async () => {
    const b = new Browser();
    await b.signIn(pat);
    const path = `/dashboard/h/${handle}/webhooks/${webhookId}`;
    const before = await b.get(path);
    expect(before.html).toContain(`<div id="delivery-log" data-live="${path}">`);
    expect(before.html).not.toContain('data-open');
    // A delivery the pipeline is still working on (retrying): the row is marked open.
    const id = newId('dlv');
    const now = new Date().toISOString();
    await (await shardOf(handle))
      .prepare(
        `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
         status, attempt_count, next_attempt_at, created_at, updated_at)
       VALUES (?1, ?2, NULL, 'test', 'webhook', 'webhook', ?3, 'https://example.com/hook', 'retrying', 1, ?4, ?4, ?4)`,
      )
      .bind(id, handle, webhookId, now)
      .run();
    const open = await b.get(path);
    expect(open.html).toMatch(new RegExp(`<tr data-delivery="${id}" data-status="retrying" data-open="">`));
    await anyShard.prepare(`UPDATE deliveries SET status = 'dead' WHERE id = ?1`).bind(id).run();
    const done = await b.get(path);
    expect(done.html).toContain(`<tr data-delivery="${id}" data-status="dead">`);
    expect(done.html).not.toContain('data-open');
    // The script polls only this origin's page named by the region, only while the tab is visible.
    expect(DASHBOARD_JS).toContain("window.fetch(first.getAttribute('data-live'), { credentials: 'same-origin'");
    expect(DASHBOARD_JS).toContain('document.hidden');
  });

  it('tables are marked to stack into cards, times are <time datetime> in UTC for the script to localise', async () => {
    const b = new Browser();
    await b.signIn(pat);
    const hook = await b.get(`/dashboard/h/${handle}/webhooks/${webhookId}`);
    expect(hook.html).toContain('<table class="stack">');
    expect(hook.html).toMatch(/<time datetime="\d{4}-\d\d-\d\dT[\d:.]+Z">\d{4}-\d\d-\d\d [\d:]+Z<\/time>/);
  });

  it('every next step names a control of the page; the raw API call is only inside a "Via the API" disclosure', async () => {
    // A failing webhook (its streak as the consumer records it), a handle without an owner default email, and a test
    // that fails: the overview and the test result both have next steps.
    const failing = await callJson('POST', `/v2/handles/${handle}/webhooks`, {
      token: pat,
      body: { url: receiverUrl('fail', unique('glance')) },
    });
    const now = new Date().toISOString();
    await anyShard
      .prepare(
        `UPDATE webhook_subscriptions SET consecutive_failures = 3, failing_since = ?2, last_failure_at = ?2,
         last_failure_class = 'http_5xx' WHERE id = ?1`,
      )
      .bind(failing.body.id, now)
      .run();
    const b = new Browser();
    await b.signIn(pat);
    const outsideApi = (html: string) =>
      html
        .replace(/<details class="via-api">[\s\S]*?<\/details>/g, '')
        .replace(/<script[\s\S]*?<\/script>/g, '')
        .match(/\b(GET|POST|PUT|PATCH|DELETE) (\/v2|…)\/[^<]*/g) ?? [];

    const overview = await b.get(`/dashboard/h/${handle}`);
    expect(overview.html).toContain('<summary>Via the API</summary>');
    expect(overview.html).toMatch(/<details class="via-api"><summary>Via the API<\/summary><p>Run POST \/v2\//);
    expect(overview.html).toMatch(/Press <strong>Send test<\/strong> and read the diagnosis/);
    expect(overview.html).toMatch(/<button type="submit">Send test<\/button>/);
    expect(outsideApi(overview.html)).toEqual([]);

    const page = await b.get(`/dashboard/h/${handle}/webhooks/${failing.body.id}`);
    const tested = await b.post(`/dashboard/h/${handle}/webhooks/${failing.body.id}/test`, page.html, {
      eventType: 'order.created',
    });
    expect(tested.res.status).toBe(200);
    expect(tested.html).toContain('<h3>Next steps</h3>');
    expect(tested.html).toMatch(/then press <strong>Send test<\/strong> again/);
    expect(outsideApi(tested.html)).toEqual([]);
  });

  it('the Archives tab lists the retention and the archives; the webhook page links the receiving guide', async () => {
    const b = new Browser();
    await b.signIn(pat);
    const archives = await b.get(`/dashboard/h/${handle}/archives`);
    expect(archives.res.status).toBe(200);
    expect(archives.html).toContain(`<a href="/dashboard/h/${handle}/archives" aria-current="page">Archives</a>`);
    expect(archives.html).toContain('<h2 id="retention-h">Retention and archives</h2>');
    expect(archives.html).toContain('No archive yet: nothing has passed the retention.');
    const hook = await b.get(`/dashboard/h/${handle}/webhooks/${webhookId}`);
    expect(hook.html).toContain('href="/docs#receiving-webhooks"');
  });
});
