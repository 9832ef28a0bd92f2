/**
 * docs/receiving-webhooks.md's JavaScript receiver, run as written: the snippet is taken from the Markdown, started as
 * its own Node process on 127.0.0.1 with the webhook's secret, and receives a real delivery from the Worker started
 * from wrangler.toml (`unstable_startWorker`, every binding local). Proves the guide's code verifies a real request,
 * refuses a forged one and answers a replayed `webhook-id` without handling it twice. With the same Worker, a client
 * generated from `/v2/openapi.json` by openapi-typescript (a pinned devDependency) type-checks under strict settings.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import { Webhook } from 'standardwebhooks';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unstable_startWorker } from 'wrangler';
import { migrateAll } from '../../scripts/db-migrate.ts';
import { ROOT } from '../../scripts/wrangler-cli.ts';
import { apiClient, type Json, testJwt } from '../support/node/api-client.ts';

const JWT_SECRET = 'guide-secret-that-is-long-enough-for-hs256-0123456789abcdef';

let persistDir: string;
let worker: Awaited<ReturnType<typeof unstable_startWorker>> | undefined;
let receiver: ChildProcess | undefined;
let snippetFile: string | undefined;
const previousLogLevel = process.env.WRANGLER_LOG;
const plain = (value: string) => ({ type: 'plain_text' as const, value });
const secret = (value: string) => ({ type: 'secret_text' as const, value });

/** The fenced `js` block right after the `receiving-guide:js` marker. */
export function guideSnippet(markdown: string): string {
  const m = /<!-- receiving-guide:js -->\s*```js\n([\s\S]*?)\n```/.exec(markdown);
  if (!m) throw new Error('docs/receiving-webhooks.md has no receiving-guide:js snippet');
  return m[1]!;
}

beforeAll(async () => {
  process.env.WRANGLER_LOG = 'warn';
  persistDir = await mkdtemp(join(tmpdir(), 'gharart-notify-guide-'));
  await migrateAll(persistDir);
  worker = await unstable_startWorker({
    config: join(ROOT, 'wrangler.toml'),
    bindings: {
      ENVIRONMENT: plain('test'),
      ALLOW_INSECURE_WEBHOOK_TARGETS: plain('true'),
      DNS_OVER_HTTPS_URL: plain(''),
      JWT_ISSUER: plain(''),
      JWT_AUDIENCE: plain(''),
      JWT_SECRET: secret(JWT_SECRET),
      ENCRYPTION_KEY: secret(Buffer.alloc(32, 9).toString('base64')),
    },
    dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: false, persist: persistDir, watch: false },
  });
  await worker.ready;
}, 90_000);

afterAll(async () => {
  receiver?.kill();
  await worker?.dispose();
  if (snippetFile) await rm(snippetFile, { force: true });
  if (persistDir) await rm(persistDir, { recursive: true, force: true });
  if (previousLogLevel === undefined) delete process.env.WRANGLER_LOG;
  else process.env.WRANGLER_LOG = previousLogLevel;
}, 30_000);

const jwt = (sub: string, scope: string, extra: Record<string, unknown> = {}) => testJwt(JWT_SECRET, sub, scope, extra);
const api = apiClient((url, init) => worker!.fetch(url, init as never), 'http://notify.test');

/** Starts the guide's snippet with the given secret; resolves with its port and a live view of its stdout lines. */
async function startGuideReceiver(webhookSecret: string): Promise<{ port: number; lines: string[] }> {
  const snippet = guideSnippet(await readFile(join(ROOT, 'docs/receiving-webhooks.md'), 'utf8'));
  // Inside the repository, so `import 'standardwebhooks'` resolves from its node_modules as a user's install would.
  const dir = join(ROOT, 'node_modules', '.cache', 'receiving-guide');
  await mkdir(dir, { recursive: true });
  snippetFile = join(dir, `receiver-${process.pid}.mjs`);
  await writeFile(snippetFile, snippet);
  const child = spawn(process.execPath, [snippetFile], {
    env: { ...process.env, WEBHOOK_SECRET: webhookSecret, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  receiver = child;
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        const m = /^listening on (\d+)$/.exec(line);
        if (m) resolve({ port: Number(m[1]), lines });
      }
    });
    child.on('exit', (code) => reject(new Error(`the guide's receiver exited with ${code}`)));
  });
}

async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('docs/receiving-webhooks.md', () => {
  it('its JavaScript receiver verifies a real delivery, refuses a forged one and handles a replayed webhook-id once', async () => {
    const handle = `guide-${Date.now().toString(36)}`;
    const ownerId = `guide-owner-${Date.now().toString(36)}`;
    const service = await jwt('svc:control-plane', 'internal:provision', { svc: 'control-plane' });
    const provisioned = await api('PUT', `/v2/internal/handles/${handle}`, service, {
      displayName: 'Guide',
      ownerUserId: ownerId,
    });
    expect(provisioned.status, JSON.stringify(provisioned.body)).toBe(201);
    const owner = await jwt(
      ownerId,
      'notifications:read notifications:write webhooks:read webhooks:write events:publish',
    );

    // The secret is shown once at creation; the receiver needs it before the first delivery, so the webhook starts
    // disabled, the receiver starts with the secret, and the URL is set with the port it got.
    const created = await api('POST', `/v2/handles/${handle}/webhooks`, owner, {
      url: 'http://127.0.0.1:9/not-yet',
      enabled: false,
      eventTypes: ['order.*'],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const { port, lines } = await startGuideReceiver(created.body.secret);
    const url = `http://127.0.0.1:${port}/hooks/gharart`;
    const enabled = await api('PATCH', `/v2/handles/${handle}/webhooks/${created.body.id}`, owner, {
      url,
      enabled: true,
    });
    expect(enabled.status, JSON.stringify(enabled.body)).toBe(200);

    const data = { orderId: 'ord_guide_1', carrier: 'Delhivery', trackingNumber: 'DL1' };
    const pub = await api('POST', `/v2/handles/${handle}/events`, owner, { type: 'order.fulfilled', data });
    expect(pub.status, JSON.stringify(pub.body)).toBe(202);

    const handled = await waitFor('the guide receiver to handle the event', () =>
      lines
        .map((l) => (l.startsWith('{') ? (JSON.parse(l) as Json) : null))
        .find((e) => e?.id === pub.body.notificationId),
    );
    expect(handled).toEqual({ received: 'order.fulfilled', id: pub.body.notificationId, test: false, data });
    // The delivery succeeded on its first attempt: the snippet answered 204 at once.
    const log = await waitFor('the delivery to be recorded as succeeded', async () => {
      const r = await api('GET', `/v2/handles/${handle}/webhooks/${created.body.id}/deliveries`, owner);
      const d = (r.body.data as Json[]).find((x) => x.notificationId === pub.body.notificationId);
      return d?.status === 'succeeded' ? d : undefined;
    });
    expect(log.attempts[0]).toMatchObject({ httpStatus: 204, outcome: 'succeeded' });

    // A forged request (wrong signature) is refused with 401 and never handled.
    const forged = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': 'dlv_forged',
        'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
        'webhook-signature': 'v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      },
      body: JSON.stringify({ id: 'ntf_forged', type: 'order.paid', data: {} }),
    });
    expect(forged.status).toBe(401);

    // A redelivery under the same webhook-id (what a retry after a lost answer looks like: same id, same body, a fresh
    // timestamp and signature) is answered 200 and not handled again.
    const body = JSON.stringify({ id: pub.body.notificationId, type: 'order.fulfilled', handle, data, test: false });
    const now = new Date();
    const again = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': log.id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': new Webhook(created.body.secret).sign(log.id, now, body),
      },
      body,
    });
    expect(again.status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    expect(lines.filter((l) => l.includes(`"id":"${pub.body.notificationId}"`))).toHaveLength(1);
  }, 120_000);
});

/** The TypeScript diagnostics of `files` (name → source, written to `dir`) under strict settings, as `file: message`. */
async function typeErrors(dir: string, files: Record<string, string>): Promise<string[]> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [name, source] of Object.entries(files)) await writeFile(join(dir, name), source);
  const program = ts.createProgram(
    Object.keys(files).map((f) => join(dir, f)),
    {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      skipLibCheck: true,
      types: [],
    },
  );
  return ts
    .getPreEmitDiagnostics(program)
    .map(
      (d) => `${d.file?.fileName.slice(dir.length + 1) ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`,
    );
}

describe('a client generated from /v2/openapi.json', () => {
  it('openapi-typescript generates types for every route and catalog webhook, and a client using them type-checks', async () => {
    const doc = (await (await worker!.fetch('http://notify.test/v2/openapi.json')).json()) as Json;
    const client = astToString(await openapiTS(doc as Parameters<typeof openapiTS>[0]));
    expect(client).toContain('export interface webhooks');
    expect(client).toContain('"order.fulfilled"');
    const dir = join(ROOT, 'node_modules', '.cache', 'openapi-client');
    const usage = `
import type { paths, webhooks } from './client';
type OrderPaid = webhooks['order.paid']['post']['requestBody']['content']['application/json'];
export function onOrderPaid(body: OrderPaid): string {
  const total: number | undefined = body.data.total;
  const type: 'order.paid' = body.type;
  const id: string = body.id;
  return \`\${id} \${type} \${total ?? 0} \${body.test ? 'test' : 'live'} \${body.severity}\`;
}
type Publish = NonNullable<paths['/v2/handles/{handle}/events']['post']['requestBody']>['content']['application/json'];
export const publish: Publish = { type: 'order.paid', data: { orderId: 'ord_1', total: 10 } };
type Catalog = paths['/v2/event-types']['get']['responses'][200]['content']['application/json'];
export const schemaOf = (c: Catalog, type: string) => c.data.find((e) => e.type === type)?.dataSchema;
`;
    expect(await typeErrors(dir, { 'client.ts': client, 'usage.ts': usage })).toEqual([]);
    // The types carry the contract: a string total, a wrong type literal and a body without data are errors.
    const wrong = `
import type { webhooks } from './client';
type OrderPaid = webhooks['order.paid']['post']['requestBody']['content']['application/json'];
export const total: OrderPaid['data']['total'] = '2499';
export const type: OrderPaid['type'] = 'order.created';
export const body: OrderPaid = { id: 'n', type: 'order.paid', handle: 'h', severity: 'info', timestamp: 't', test: false };
`;
    const errors = await typeErrors(dir, { 'client.ts': client, 'wrong.ts': wrong });
    expect(errors.filter((e) => e.startsWith('wrong.ts'))).toHaveLength(3);
    await rm(dir, { recursive: true, force: true });
  });
});
