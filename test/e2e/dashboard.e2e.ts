/**
 * The dashboard end to end in a real browser: Debian's Chromium (/usr/bin/chromium, installed by
 * scripts/ensure-chromium.sh) driven by playwright-core, against the Worker started from wrangler.toml the way
 * `npm run dev` runs it (development mode, demo data seeded by scripts/dev-seed.ts, real local D1 and queues, short
 * retry delays) and a real webhook receiver on 127.0.0.1. Every step of the debug playbooks (docs/design.md#debug-playbooks) is done by
 * clicking, never by calling the API; a screenshot of each page is written to test/e2e/screenshots/ (not tracked; docs/screenshots/ keeps a curated set).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO, demoCredentials, seedSql } from '../../scripts/dev-seed.ts';
import { freePort, type LocalWorker, startLocalWorker } from '../support/node/local-worker.ts';
import { type Hit, type Receivers, startReceivers } from '../support/node/receivers.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOTS = fileURLToPath(new URL('./screenshots/', import.meta.url));
const JWT_SECRET = 'e2e-dashboard-secret-long-enough-for-hs256-0123456789';
const ENCRYPTION_KEY = Buffer.alloc(32, 9).toString('base64');
/** axe-core, run in the page through the DevTools protocol (the pages' CSP rightly refuses injected scripts). */
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let worker: LocalWorker | undefined;
let receivers: Receivers | undefined;
let browser: Browser | undefined;
let page: Page;
let base: string;
let pat: string;
const external: string[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Screenshots the page, and checks it against WCAG 2 A/AA with axe-core: every page shot is also a page audited. */
async function shot(name: string) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  await page.evaluate(AXE_SOURCE);
  const violations = (await page.evaluate(
    `axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
       .then((r) => r.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(' | ')))`,
  )) as string[];
  expect(violations, `accessibility of ${name}`).toEqual([]);
}

/** Reloads `url` until `check` passes (the pipeline is asynchronous: queues, retries). */
async function reloadUntil(what: string, url: string, check: () => Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await page.goto(url);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(1000);
  }
}

async function receiverHits(key: string): Promise<Hit[]> {
  const res = await fetch(`http://127.0.0.1:${receivers!.port}/_hits/${encodeURIComponent(key)}`);
  return (await res.json()) as Hit[];
}

async function setReceiverMode(key: string, mode: { status: number } | null) {
  await fetch(`http://127.0.0.1:${receivers!.port}/_mode/${encodeURIComponent(key)}`, {
    method: mode ? 'PUT' : 'DELETE',
    headers: { 'content-type': 'application/json' },
    body: mode ? JSON.stringify(mode) : undefined,
  });
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}. Install Debian's package: bash scripts/ensure-chromium.sh (apt-get install -y chromium).`,
    );
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  pat = (await demoCredentials(JWT_SECRET)).pat;
  const port = await freePort();
  base = `http://localhost:${port}`;
  receivers = await startReceivers();
  worker = await startLocalWorker({
    port,
    seedSql: seedSql(pat),
    // What `npm run dev` sets (scripts/dev.ts), plus retries of 1 s so the dead state arrives within the test.
    vars: {
      ENVIRONMENT: 'development',
      ALLOW_INSECURE_WEBHOOK_TARGETS: 'true',
      PUBLIC_BASE_URL: base,
      RETRY_DELAYS_SECONDS: '1,1,1,1,1,1,1',
      JWT_ISSUER: '',
      JWT_AUDIENCE: '',
    },
    secrets: { JWT_SECRET, ENCRYPTION_KEY },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  // A time zone far from UTC (+05:45), so local times visibly differ from the UTC the server renders.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'Asia/Kathmandu' });
  page = await context.newPage();
  page.on('dialog', (d) => void d.accept());
  // No page may reach anything but this origin (no CDN fonts or scripts).
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith(base) && !url.startsWith('data:')) external.push(url);
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await worker?.dispose();
  await receivers?.close();
}, 60_000);

describe('dashboard in Chromium', () => {
  const key = `e2e-${Date.now().toString(36)}`;
  let webhookUrl: string;
  let secret: string;
  let webhookPath: string;
  const handlePath = () => `${base}/dashboard/h/${DEMO.handle}`;

  it('signs in with the dev PAT and shows the delivery doctor', async () => {
    await page.goto(`${base}/dashboard`);
    await expect.poll(() => page.url()).toContain('/dashboard/login');
    await shot('01-sign-in');
    await page.getByLabel('Token').fill(pat);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${handlePath()}`);
    await expect(page.getByRole('heading', { name: /Delivery doctor/ }).textContent()).resolves.toContain(
      'Delivery doctor',
    );
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'gn_session')!;
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/dashboard' });
    expect(await page.locator('#support-ids').textContent()).toMatch(/Request id\s*req_/);
    // Times: the browser's zone, relative when recent, the UTC value in the title.
    const time = page.locator('time[datetime]').first();
    const utc = (await time.getAttribute('datetime'))!;
    expect(await time.getAttribute('title')).toContain(`${utc.slice(0, 10)} ${utc.slice(11, 19)} UTC`);
    expect(await time.textContent()).not.toContain(utc.slice(11, 19));
    await shot('02-overview');
  });

  it('creates a webhook to a local receiver and shows the secret once, with a copy button', async () => {
    webhookUrl = `http://127.0.0.1:${receivers!.port}/r/mode/${key}`;
    await page.goto(`${handlePath()}/webhooks`);
    await page.getByLabel('URL').fill(webhookUrl);
    await page.getByLabel('Description').fill('CRM (e2e)');
    await page.getByRole('button', { name: 'Create webhook' }).click();
    const secretText = await page.locator('.secret code').textContent();
    expect(secretText).toMatch(/^whsec_/);
    secret = secretText!;
    await expect(page.getByRole('button', { name: 'Copy signing secret' }).count()).resolves.toBe(1);
    await shot('03-webhook-created');
    const id = /whk_[0-9A-Z]{26}/.exec((await page.locator('#support-ids').textContent()) ?? '')![0];
    webhookPath = `${handlePath()}/webhooks/${id}`;
    // Reloading the webhook's page never shows the secret again.
    await page.goto(webhookPath);
    expect(await page.content()).not.toContain(secret);
  });

  it('sends a test and reads the diagnosis; the receiver got a valid Standard Webhooks signature', async () => {
    await page.goto(webhookPath);
    await page.getByRole('button', { name: 'Send test' }).click();
    await expect(page.locator('#test-h').textContent()).resolves.toContain('succeeded');
    expect(await page.locator('#diagnosis-summary').textContent()).toBeTruthy();
    await shot('04-webhook-test-diagnosis');
    const hits = await receiverHits(key);
    expect(hits.length).toBe(1);
    const verified = new Webhook(secret).verify(hits[0]!.body, hits[0]!.headers) as { type: string };
    expect(verified.type).toBe('order.created');
  });

  it('publishes an event and sees it delivered in the feed and the notification detail', async () => {
    await page.goto(`${handlePath()}/notifications`);
    await page.getByLabel('Event type').selectOption('order.created');
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.waitForURL(/\/notifications\/ntf_/);
    const detailUrl = page.url();
    await reloadUntil(
      'the webhook delivery to succeed',
      detailUrl,
      async () => (await page.locator(`tr[data-status="succeeded"]`).count()) > 0,
    );
    await shot('06-notification-detail');
    await page.goto(`${handlePath()}/notifications`);
    const row = page.locator('tr[data-notification]').first();
    expect(await row.textContent()).toContain('order.created');
    expect(await row.textContent()).toContain(webhookUrl);
    await shot('05-feed');
  });

  it('breaks the receiver: the delivery retries, then is dead; the overview counts it', async () => {
    await setReceiverMode(key, { status: 500 });
    await page.goto(`${handlePath()}/notifications`);
    await page.getByLabel('Event type').selectOption('order.created');
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.waitForURL(/\/notifications\/ntf_/);
    await reloadUntil(
      'a retrying delivery',
      webhookPath,
      async () => (await page.locator('tr[data-status="retrying"]').count()) > 0,
      60_000,
    );
    expect(await page.locator('tr[data-status="retrying"]').first().textContent()).toContain('http_5xx');
    await shot('07-webhook-retrying');
    // Live status: no reload from here on. The page refreshes its delivery log in place while a delivery is open, and
    // stops once everything is terminal.
    await page.evaluate('window.__samePage = true');
    await page.locator('tr[data-status="dead"]').first().waitFor({ timeout: 120_000 });
    expect(await page.evaluate('window.__samePage')).toBe(true);
    expect(await page.locator('#delivery-log [data-open]').count()).toBe(0);
    const updated = await page.evaluate("document.documentElement.getAttribute('data-live-updated')");
    expect(updated).toBeTruthy();
    await sleep(4000);
    // Nothing open any more: polling stopped.
    expect(await page.evaluate("document.documentElement.getAttribute('data-live-updated')")).toBe(updated);
    const dead = page.locator('tr[data-status="dead"]').first();
    expect(await dead.textContent()).toContain('#8');
    await shot('08-webhook-dead');
    await page.goto(handlePath());
    expect(await page.locator('#dead-h').locator('..').textContent()).toMatch(/1\s*dead/);
    await shot('09-overview-dead');
    // The charts, from this run's deliveries: succeeded ones and the dead one, with their numbers behind a disclosure.
    const hourly = page.locator('figure.chart').first();
    expect(await hourly.locator('svg').getAttribute('aria-label')).toMatch(
      /[1-9]\d* succeeded, \d+ retrying, [1-9]\d* dead/,
    );
    await hourly.getByText('Numbers').click();
    expect(await hourly.locator('tbody tr').count()).toBe(24);
    await hourly.getByText('Numbers').click();
    await page
      .locator('section[aria-labelledby="deliveries-h"]')
      .screenshot({ path: join(SCREENSHOTS, '21-overview-charts.png') });
    await page.goto(webhookPath);
    const activity = page.locator('section[aria-labelledby="activity-h"]');
    expect(await activity.locator('svg[data-chart="latency"]').first().getAttribute('aria-label')).toMatch(
      /[1-9]\d* attempts; the highest hourly p95 is \d+ ms/,
    );
    expect(await activity.locator('svg[data-chart="errors"]').getAttribute('aria-label')).toContain('http_5xx');
    await activity.screenshot({ path: join(SCREENSHOTS, '22-webhook-charts.png') });
    await shot('22b-webhook-with-charts');
  });

  it('fixes the receiver and redrives the dead delivery with Retry', async () => {
    await setReceiverMode(key, null);
    await page.goto(webhookPath);
    const dead = page.locator('tr[data-status="dead"]').first();
    const deliveryId = await dead.getAttribute('data-delivery');
    await dead.getByRole('button', { name: 'Retry' }).click();
    await expect(page.locator('[role=status]').first().textContent()).resolves.toContain('queued again');
    await reloadUntil(
      'the redriven delivery to succeed',
      webhookPath,
      async () => (await page.locator(`tr[data-delivery="${deliveryId}"][data-status="succeeded"]`).count()) > 0,
    );
    await shot('10-webhook-redriven');
    // The list: health and the 24 h sparkline (successes and failures of the last hour).
    await page.goto(`${handlePath()}/webhooks`);
    const spark = await page.locator('svg.spark').first().getAttribute('aria-label');
    expect(spark).toMatch(/Last 24 hours: [1-9]\d* attempts succeeded, [1-9]\d* failed/);
    await shot('10b-webhooks-list');
  });

  it('adds an email subscription and confirms it through /dev/mailbox', async () => {
    const email = `ops-${key}@example.com`;
    await page.goto(`${handlePath()}/email`);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByRole('button', { name: 'Subscribe' }).click();
    await expect(page.locator('tr[data-status="pending_confirmation"]').textContent()).resolves.toContain(email);
    await shot('11-email-pending');
    await page.getByRole('link', { name: 'local mailbox' }).click();
    const mail = page.locator('article', { hasText: email }).first();
    await mail.locator('a[href*="/v2/email/confirm"]').first().click();
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.goto(`${handlePath()}/email`);
    await expect(page.locator(`tr[data-status="active"]`, { hasText: email }).count()).resolves.toBe(1);
    await shot('12-email-active');
  });

  it('sets the owner default email and sends it a test; unsetting it brings the warning back', async () => {
    await page.goto(`${handlePath()}/email`);
    // The demo handle starts without one: the page says so.
    await expect(page.getByRole('alert').first().textContent()).resolves.toContain('No owner default email');
    await page.getByLabel('Owner default email', { exact: true }).fill(`owner-${key}@example.com`);
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await expect(page.locator('[role=status]').first().textContent()).resolves.toContain('Owner default email saved');
    expect(await page.getByRole('alert').count()).toBe(0);
    // Playbook step 3: trigger the owner default email test after the subscription changes.
    await page.locator('tr[data-subscription="owner-default"]').getByRole('button', { name: 'Send test' }).click();
    await expect(page.locator('#etest-h').textContent()).resolves.toContain('succeeded');
    await shot('13-owner-email-test');
    await page.getByRole('button', { name: 'Unset' }).click();
    await expect(page.getByRole('alert').first().textContent()).resolves.toContain('No owner default email');
    await shot('14-owner-email-unset');
    await page.goto(handlePath());
    expect(await page.locator('#owner-h').locator('..').textContent()).toContain('unset');
    await shot('15-overview-owner-unset');
  });

  it("evaluates the filter policy against a recent event and shows each recipient's verdict", async () => {
    await page.goto(`${handlePath()}/settings`);
    await page.getByLabel('Use').selectOption('recent');
    // The form posts to the same URL and count() does not wait: wait for the answer's page to load, or a busy machine
    // counts the rows of the page the form was on.
    const answered = page.waitForEvent('load');
    await page.getByRole('button', { name: 'Evaluate with the saved settings' }).click();
    await answered;
    const verdicts = page.locator('#evaluation tbody tr');
    expect(await verdicts.count()).toBeGreaterThan(0);
    expect(await page.locator('#evaluation').textContent()).toContain(webhookUrl);
    await shot('16-settings-evaluate');
  });

  it("files a problem report with the page's ids", async () => {
    await page.goto(webhookPath);
    await page.getByText('Report a problem').click();
    await page.getByLabel('Summary').fill('Production deliveries go dead');
    await page.getByLabel('What happened').fill('Test passes, production retries to the DLQ.');
    await page.getByRole('button', { name: 'Send to support' }).click();
    expect(await page.locator('main').textContent()).toMatch(/rpt_[0-9A-Z]+/);
    await shot('17-report-filed');
  });

  it('is usable at 375 px wide: nothing overflows the viewport', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${handlePath()}/notifications`);
    const notificationPath = new URL(
      (await page.locator('tr[data-notification] a').first().getAttribute('href'))!,
      base,
    ).href;
    // Every page of the dashboard (sign-in is checked on its own below).
    for (const [name, path] of [
      ['18-mobile-overview', handlePath()],
      ['19-mobile-webhook', webhookPath],
      ['20-mobile-feed', `${handlePath()}/notifications`],
      ['23-mobile-webhooks', `${handlePath()}/webhooks`],
      ['24-mobile-email', `${handlePath()}/email`],
      ['25-mobile-settings', `${handlePath()}/settings`],
      ['26-mobile-notification', notificationPath],
      ['27-mobile-archives', `${handlePath()}/archives`],
      ['28-mobile-not-found', `${base}/dashboard/no-such-page`],
    ] as const) {
      await page.goto(path);
      await shot(name);
      // The message names the elements that stick out, so a failure says where to look.
      const wide = await page.evaluate(`[...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > 375 && e.parentElement.getBoundingClientRect().right <= 375)
        .slice(0, 5).map((e) => e.tagName + '.' + e.className + ' ' + (e.textContent || '').slice(0, 60)).join(' | ')`);
      expect(await page.evaluate('document.documentElement.scrollWidth'), `${path}: ${wide}`).toBeLessThanOrEqual(375);
    }
    // Tables are cards: each row a block, each cell labelled by its column.
    await page.goto(webhookPath);
    expect(await page.evaluate("getComputedStyle(document.querySelector('#delivery-log tbody tr')).display")).toBe(
      'block',
    );
    expect(await page.locator('#delivery-log tbody td').first().getAttribute('data-label')).toBe('Delivery');
    // Sign-in too, signed out in a fresh context.
    const fresh = await browser!.newContext({ viewport: { width: 375, height: 800 } });
    const signIn = await fresh.newPage();
    await signIn.goto(`${base}/dashboard/login`);
    expect(await signIn.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
    await fresh.close();
  });

  it('made no request to any other origin', () => {
    expect(external).toEqual([]);
  });
});
