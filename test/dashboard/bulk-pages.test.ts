/**
 * The dashboard's usage page and peak windows page (docs/design.md#usage, #peak-campaign-windows): what the usage call
 * and the doctor answer, shown to a signed-in member, reached from one "Usage" tab.
 */
import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { callJson, createPat } from '../support/helpers.ts';
import { setupHandle } from '../support/pipeline-helpers.ts';

const ORIGIN = 'https://notify.test';

/** Signs in with a PAT and returns a GET that carries the session cookie. */
async function signedIn(owner: string): Promise<(path: string) => Promise<{ status: number; html: string }>> {
  const jar = new Map<string, string>();
  const send = async (path: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await exports.default.fetch(new Request(`${ORIGIN}${path}`, { redirect: 'manual', ...init, headers }));
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const i = pair!.indexOf('=');
      jar.set(pair!.slice(0, i), pair!.slice(i + 1));
    }
    return res;
  };
  const login = await (await send('/dashboard/login')).text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(login)![1]!;
  await send('/dashboard/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN },
    body: new URLSearchParams({ _csrf: csrf, token: (await createPat(owner)).token }).toString(),
  });
  return async (path) => {
    const page = await send(path);
    return { status: page.status, html: await page.text() };
  };
}

describe('dashboard: usage and peak windows', () => {
  it('the usage page shows the daily limit with its reset, throttles, caps, events today and deferred deliveries', async () => {
    const h = await setupHandle();
    const end = new Date(Date.now() + 3_600_000).toISOString();
    const put = await callJson('PUT', `/v2/handles/${h.handle}/notification-settings`, {
      token: h.token,
      body: {
        channels: { email: { enabled: true }, webhook: { enabled: true } },
        eventFilter: null,
        ownerFallback: 'critical',
        peakWindows: {
          timeZone: 'Asia/Kolkata',
          weekly: [{ days: ['fri'], start: '18:00', end: '22:00' }],
          oneOff: [{ start: new Date(Date.now() - 60_000).toISOString(), end, label: 'Flash sale' }],
        },
      },
    });
    expect(put.status).toBe(200);
    const get = await signedIn(h.owner);
    const usage = await get(`/dashboard/h/${h.handle}/usage`);
    expect(usage.status).toBe(200);
    expect(usage.html).toContain('aria-current="page">Usage</a>');
    expect(usage.html).toContain('1 of 5000 used, 4999 left');
    expect(usage.html).toContain('60 per 60 s');
    expect(usage.html).toContain('0 of 50 used, 50 left');
    expect(usage.html).toContain(`/dashboard/h/${h.handle}/peak-windows`);

    const peak = await get(`/dashboard/h/${h.handle}/peak-windows`);
    expect(peak.status).toBe(200);
    expect(peak.html).toContain('Every fri 18:00–22:00 (Asia/Kolkata)');
    expect(peak.html).toContain('Flash sale');
    expect(peak.html).toContain('Deferred deliveries');
  });
});
