/**
 * The dashboard at a glance (docs/design.md#dashboard): charts with their numbers behind a disclosure, live status of
 * open deliveries, times the browser localises, tables that stack into cards, and hints that name the page's controls.
 * The browser-level checks (script, 375 px, axe) are test/e2e/dashboard.e2e.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../support/dashboard-browser.ts';
import { callJson, createPat, provisionHandle, unique } from '../support/helpers.ts';
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
});
