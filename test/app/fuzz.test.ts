/**
 * API fuzzer driven by the served /v2/openapi.json: for every documented operation, FUZZ_RUNS (default 100) cases of
 * valid requests generated from its schemas and invalid ones (wrong types, missing/extra fields, huge strings and
 * arrays, odd Unicode, malformed JSON, wrong content types, bad path ids, bad auth). Invariants:
 *   - no 5xx (503 only where documented, and then problem+json);
 *   - every 4xx/5xx is application/problem+json whose status and requestId match the response;
 *   - every 2xx status is documented, and its JSON body validates against the documented schema;
 *   - every response carries X-Request-Id;
 *   - a rejected (4xx) write changed nothing in the tenant's tables.
 *
 * Replay: the seed is fixed (default 20261126; operation i uses seed + i) and printed with every failure together with
 * the case index and the exact request. More cases / another seed: `FUZZ_RUNS=1000 FUZZ_SEED=7 npx vitest run
 * --project worker test/app/fuzz.test.ts` (vitest.config.ts provides them to the tests).
 *
 * Every operation gets its own tenant (handle, owner, webhook, email subscription, notification, delivery, PATs), so
 * destructive cases (DELETE, PATCH) cannot starve other operations, and the Rate Limiting bindings are replaced by an
 * always-allow stub and the daily write limit raised, so cases are not spent on 429s.
 */

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  applyMutation,
  arbFromSchema,
  type Hints,
  mutationArb,
  oddString,
  RAW_BODIES,
} from '../support/fuzz-support.ts';
import { fuzzRuns } from '../support/generated-runs.ts';
import {
  ALL_USER_SCOPES,
  anyShard,
  call,
  callJson,
  callWithVars,
  createPat,
  provisionHandle,
  serviceJwt,
  signJwt,
  unique,
} from '../support/helpers.ts';
import { assertMatchesDocument } from '../support/openapi-check.ts';
import { receiverUrl } from '../support/receivers.ts';

export const { runs: FUZZ_RUNS, seed: FUZZ_SEED } = fuzzRuns();

type Json = Record<string, any>;

const allowAll = { limit: async () => ({ success: true }) };
/** Operations that answer 503 by design (provider not configured, a certificate that could not be fetched, D1 down for the health check). */
const DELIBERATE_503 = new Set(['/v2/health', '/v2/providers/resend/events', '/v2/providers/sns/events']);
const VARS = {
  DAILY_WRITE_LIMIT: '1000000',
  WEBHOOK_TIMEOUT_MS: '3000',
  RATE_LIMIT_READS: allowAll,
  RATE_LIMIT_WRITES: allowAll,
  RATE_LIMIT_TEST_SENDS: allowAll,
  RATE_LIMIT_SUPPORT: allowAll,
  RATE_LIMIT_EVENTS: allowAll,
} as unknown as Partial<Env>;

interface Tenant {
  owner: string;
  handle: string;
  jwt: string;
  pat: string;
  patForDelete: string; // id of a PAT that is not used for auth (DELETE /v2/tokens/{id} target)
  webhookId: string;
  esubId: string;
  notificationId: string;
  deliveryId: string;
}

async function makeTenant(): Promise<Tenant> {
  const owner = unique('fzown');
  const handle = await provisionHandle(owner, unique('fz'));
  const jwt = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
  const base = `/v2/handles/${handle}`;
  const hook = await callJson('POST', `${base}/webhooks`, {
    token: jwt,
    body: { url: receiverUrl('ok', unique('k')) },
  });
  if (hook.status !== 201) throw new Error(`webhook: ${hook.status} ${JSON.stringify(hook.body)}`);
  const esub = await callJson('POST', `${base}/notifications/email-subscriptions`, {
    token: jwt,
    body: { email: `${handle}@example.com` },
  });
  if (esub.status !== 201) throw new Error(`esub: ${esub.status} ${JSON.stringify(esub.body)}`);
  const ev = await callJson('POST', `${base}/events`, {
    token: jwt,
    body: { type: 'order.created', data: { orderId: 'o-1' } },
  });
  if (ev.status !== 202) throw new Error(`event: ${ev.status} ${JSON.stringify(ev.body)}`);
  const dlv = await anyShard
    .prepare('SELECT id FROM deliveries WHERE handle = ? ORDER BY id LIMIT 1')
    .bind(handle)
    .first<{ id: string }>();
  const pat = await createPat(owner, { name: 'fuzz' });
  const patForDelete = await createPat(owner, { name: 'fuzz-delete-target' });
  return {
    owner,
    handle,
    jwt,
    pat: pat.token,
    patForDelete: patForDelete.id,
    webhookId: hook.body.id,
    esubId: esub.body.id,
    notificationId: ev.body.notificationId,
    deliveryId: dlv?.id ?? 'dlv_01JD3Q7X9T0000000000000000',
  };
}

/** Waits until the delivery pipeline has nothing in flight for these handles (so digests are stable). */
async function settle(handles: string[]) {
  const marks = handles.map(() => '?').join(',');
  for (let i = 0; i < 60; i++) {
    const row = await anyShard
      .prepare(
        `SELECT count(*) AS n FROM deliveries WHERE handle IN (${marks}) AND status IN ('pending','queued','retrying')`,
      )
      .bind(...handles)
      .first<{ n: number }>();
    if (!row?.n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What a rejected write must not change: per-table counts and change markers for the tenant. */
async function digest(t: Tenant, extraHandle?: string): Promise<string> {
  const h = extraHandle ?? t.handle;
  const row = await anyShard
    .prepare(
      `SELECT
      (SELECT count(*) || '|' || ifnull(max(updated_at), '') FROM webhook_subscriptions WHERE handle = ?1) AS webhook_subscriptions,
      (SELECT count(*) || '|' || ifnull(max(updated_at), '') FROM email_subscriptions WHERE handle = ?1) AS email_subscriptions,
      (SELECT count(*) FROM notifications WHERE handle = ?1) AS notifications,
      (SELECT count(*) FROM deliveries WHERE handle = ?1) AS deliveries,
      (SELECT ifnull(max(version), 0) || '|' || ifnull(max(updated_at), '') FROM notification_settings WHERE handle = ?1) AS notification_settings,
      (SELECT count(*) || '|' || count(revoked_at) FROM access_tokens WHERE user_id = ?2) AS access_tokens,
      (SELECT ifnull(sum(count), 0) FROM daily_write_counters WHERE handle = ?1) AS daily_write_counters,
      (SELECT count(*) || '|' || ifnull(max(updated_at), '') || '|' || ifnull(group_concat(role), '') FROM memberships WHERE handle = ?1) AS memberships,
      (SELECT count(*) || '|' || ifnull(max(updated_at), '') FROM handles WHERE handle = ?1) AS handles,
      (SELECT count(*) FROM support_reports WHERE principal_id IN (?2, 'user:' || ?2)) AS support_reports`,
    )
    .bind(h, t.owner)
    .first();
  return JSON.stringify(row);
}

// ---------------------------------------------------------------------------------------------------------------------

interface Op {
  method: string;
  template: string;
  op: Json;
}

type AuthKind = 'user' | 'service' | 'none';

function authKindOf(o: Op): AuthKind {
  if (o.template.startsWith('/v2/internal/')) return 'service';
  if (o.op.security?.length) return 'user';
  return 'none';
}

const GARBAGE_IDS = [
  '..',
  '../',
  '..%2F..%2Fetc%2Fpasswd',
  '%00',
  'a%00b',
  'x'.repeat(300),
  encodeURIComponent('💥🏳️‍🌈'),
  encodeURIComponent('\u202e'),
  '%ZZ',
  '%',
  'ntf_123',
  `ntf_${'0'.repeat(27)}`,
  `whk_${'I'.repeat(26)}`,
  `tok_${'U'.repeat(26)}`,
  `dlv_${'0'.repeat(25)}`,
  `esub_${'0'.repeat(26)}`,
  'NULL',
  '-1',
  '0',
  'UPPER-Case',
  '%20',
  encodeURIComponent("' OR '1'='1"),
];

interface Case {
  path: string;
  label: string;
  token?: string;
  authLabel: string;
  headers: Record<string, string>;
  rawBody?: string;
  bodyLabel: string;
}

function describeCase(c: Case, method: string): string {
  const body =
    c.rawBody === undefined
      ? '(none)'
      : c.rawBody.length > 600
        ? `${c.rawBody.slice(0, 300)}… (${c.rawBody.length} chars)`
        : c.rawBody;
  return `${method} ${c.path.length > 400 ? `${c.path.slice(0, 400)}…` : c.path}\n  auth: ${c.authLabel}\n  headers: ${JSON.stringify(c.headers)}\n  body [${c.bodyLabel}]: ${body}`;
}

let doc: Json;
let ops: Op[] = [];
const tenants = new Map<string, Tenant>();
let other: Tenant;
let tokens: Record<string, string> = {};

function idsFor(template: string, t: Tenant, o: Tenant): { real: string; other: string } {
  if (template.startsWith('/v2/tokens/')) return { real: t.patForDelete, other: o.patForDelete };
  if (template.includes('/webhooks/{id}')) return { real: t.webhookId, other: o.webhookId };
  if (template.includes('email-subscriptions/{id}')) return { real: t.esubId, other: o.esubId };
  if (template.includes('/notifications/{id}')) return { real: t.notificationId, other: o.notificationId };
  if (template.includes('/deliveries/{id}')) return { real: t.deliveryId, other: o.deliveryId };
  return { real: 'x', other: 'y' };
}

function caseArb(o: Op, t: Tenant): fc.Arbitrary<Case> {
  const kind = authKindOf(o);
  const params = (o.op.parameters ?? []) as Json[];
  const ids = idsFor(o.template, t, other);
  const internal = kind === 'service';

  const handleArb = fc.oneof(
    { arbitrary: fc.constant(t.handle), weight: 8 },
    { arbitrary: fc.constant(other.handle), weight: internal ? 0 : 1 },
    { arbitrary: fc.constant(unique('fznew')), weight: internal ? 2 : 0 },
    { arbitrary: fc.constantFrom(...GARBAGE_IDS), weight: 2 },
  );
  const idArb = fc.oneof(
    { arbitrary: fc.constant(ids.real), weight: 8 },
    { arbitrary: fc.constant(ids.other), weight: 1 },
    { arbitrary: fc.constantFrom(...GARBAGE_IDS), weight: 2 },
  );
  const userIdArb = fc.oneof(
    { arbitrary: fc.constantFrom('user_42', 'fz-member', 'a.b@c|d+e:f'), weight: 6 },
    { arbitrary: fc.constantFrom(...GARBAGE_IDS), weight: 2 },
  );

  const pathArb = fc
    .record({ handle: handleArb, id: idArb, userId: userIdArb })
    .map((p) => o.template.replace('{handle}', p.handle).replace('{id}', p.id).replace('{userId}', p.userId));

  // Query parameters: from their schemas, or garbage; sometimes none, sometimes unknown ones.
  const queryParams = params.filter((p) => p.in === 'query');
  const queryArb = fc
    .tuple(
      ...queryParams.map((p) =>
        fc.oneof(
          { arbitrary: fc.constant(undefined), weight: 3 },
          { arbitrary: arbFromSchema(p.schema, doc).map((v) => String(v)), weight: 3 },
          {
            arbitrary: fc.oneof(
              oddString,
              fc.constantFrom('-1', '0', '1e9', 'NaN', 'x'.repeat(5000), '[]', '2026-13-45T99:99:99Z'),
            ),
            weight: 2,
          },
        ),
      ),
      fc.boolean(),
    )
    .map(([...vals]) => {
      const extra = vals.pop() as boolean;
      const q = new URLSearchParams();
      queryParams.forEach((p, i) => {
        const v = vals[i] as string | undefined;
        if (v !== undefined) q.append(p.name, v);
      });
      if (extra) q.append('unknownParam', '1');
      const s = q.toString();
      return s ? `?${s}` : '';
    });

  const expired = tokens.expired!;
  const authArb: fc.Arbitrary<{ token?: string; authorization?: string; label: string }> =
    kind === 'none'
      ? fc.oneof(
          { arbitrary: fc.constant({ label: 'none' }), weight: 8 },
          { arbitrary: fc.constant({ authorization: 'Bearer garbage', label: 'garbage bearer' }), weight: 1 },
          { arbitrary: fc.constant({ token: t.jwt, label: 'owner JWT' }), weight: 1 },
        )
      : fc.oneof(
          {
            arbitrary: fc.constant({
              token: internal ? tokens.service : t.jwt,
              label: internal ? 'service JWT' : 'owner JWT',
            }),
            weight: 12,
          },
          {
            arbitrary: fc.constant({
              token: internal ? tokens.service : t.pat,
              label: internal ? 'service JWT' : 'owner PAT',
            }),
            weight: internal ? 0 : 3,
          },
          { arbitrary: fc.constant({ label: 'no auth' }), weight: 1 },
          {
            arbitrary: fc.constant({ authorization: 'Bearer garbage.token.here', label: 'garbage bearer' }),
            weight: 1,
          },
          { arbitrary: fc.constant({ authorization: 'Basic dXNlcjpwdw==', label: 'basic auth' }), weight: 1 },
          { arbitrary: fc.constant({ authorization: 'Bearer', label: 'empty bearer' }), weight: 1 },
          { arbitrary: fc.constant({ token: expired, label: 'expired JWT' }), weight: 1 },
          { arbitrary: fc.constant({ token: tokens.wrongSecret, label: 'JWT with wrong secret' }), weight: 1 },
          {
            arbitrary: fc.constant({
              token: t.pat.slice(0, -1) + (t.pat.endsWith('A') ? 'B' : 'A'),
              label: 'PAT with a typo',
            }),
            weight: 1,
          },
          { arbitrary: fc.constant({ token: other.jwt, label: 'other tenant JWT' }), weight: 1 },
          { arbitrary: fc.constant({ token: tokens.noScopes, label: 'JWT without scopes' }), weight: 1 },
          {
            arbitrary: fc.constant({
              token: internal ? t.jwt : tokens.service,
              label: internal ? 'user JWT' : 'service JWT',
            }),
            weight: 1,
          },
        );

  // Bodies.
  const content = o.op.requestBody?.content as Record<string, { schema: Json }> | undefined;
  const schema = content ? Object.values(content)[0]!.schema : undefined;
  const hints: Hints = {
    url: fc.constant(receiverUrl('ok', 'fuzz')),
    email: fc.constantFrom(`ok-${t.handle}@example.com`, 'someone@example.org'),
    handle: fc.constant(t.handle),
    notificationId: fc.constant(t.notificationId),
    eventTypes: fc.constantFrom(['order.*'], ['order.created', 'payment.failed'], null),
    eventType: fc.constantFrom('order.created', 'order.fulfilled', 'payment.failed'),
    type: fc.constantFrom('order.created', 'order.fulfilled', 'email.bounced'),
    data: fc.constant({ orderId: 'o-2', total: 1200 }),
    ownerUserId: fc.constantFrom('fz-owner-2', t.owner),
    filterPolicy: fc.constantFrom(
      null,
      { type: [{ prefix: 'order.' }] },
      { 'data.total': [{ numeric: ['>=', 1000] }] },
    ),
    headers: fc.constantFrom({ 'X-Crm-Tenant': 'acme' }, {}),
    since: fc.constant(new Date(Date.now() - 3600_000).toISOString()),
    scopes: fc.constantFrom(['notifications:read'], ALL_USER_SCOPES.split(' ')),
  };
  const jsonBodyArb: fc.Arbitrary<{ raw?: string; ct?: string; label: string }> = schema
    ? fc.tuple(arbFromSchema(schema, doc, hints), mutationArb).map(([valid, m]) => {
        const body = applyMutation(valid, m);
        return {
          raw: JSON.stringify(body),
          ct: content!['text/plain'] ? 'text/plain; charset=UTF-8' : 'application/json',
          label: m.kind,
        };
      })
    : fc.constant({ label: 'no body' });
  const rawBodyArb = fc.constantFrom(...RAW_BODIES).map((r) => ({ raw: r.body, ct: r.contentType, label: r.label }));
  const bodyArb = ['GET', 'HEAD'].includes(o.method)
    ? fc.constant({ label: 'no body' } as { raw?: string; ct?: string; label: string })
    : fc.oneof({ arbitrary: jsonBodyArb, weight: schema ? 4 : 1 }, { arbitrary: rawBodyArb, weight: 1 });

  const headerArb = fc.record(
    {
      idem: fc.oneof(fc.uuid(), fc.constantFrom('x'.repeat(300), '', ' ', 'a\tb', 'k\u00e9y')),
      ifMatch: fc.constantFrom('"1"', '"2"', '*', 'W/"1"', 'garbage', '"99999999999999999999"', ''),
      svix: fc.constantFrom('v1,Zm9v', 'garbage', ''),
      sns: fc.constantFrom('Notification', 'SubscriptionConfirmation', 'Bogus'),
    },
    { requiredKeys: [] },
  );

  return fc
    .record({ path: pathArb, query: queryArb, auth: authArb, body: bodyArb, hdr: headerArb })
    .map(({ path, query, auth, body, hdr }) => {
      const headers: Record<string, string> = {};
      if (auth.authorization) headers.authorization = auth.authorization;
      if (body.ct) headers['content-type'] = body.ct;
      if (hdr.idem !== undefined) headers['idempotency-key'] = hdr.idem;
      if (hdr.ifMatch !== undefined && o.template.endsWith('notification-settings')) headers['if-match'] = hdr.ifMatch;
      if (o.template.startsWith('/v2/providers/resend') && hdr.svix !== undefined) {
        headers['svix-id'] = 'msg_fuzz';
        headers['svix-timestamp'] = String(Math.floor(Date.now() / 1000));
        headers['svix-signature'] = hdr.svix;
      }
      if (o.template.startsWith('/v2/providers/sns') && hdr.sns !== undefined)
        headers['x-amz-sns-message-type'] = hdr.sns;
      return {
        path: path + query,
        label: `${auth.label}; ${body.label}`,
        token: auth.token,
        authLabel: auth.label,
        headers,
        rawBody: body.raw,
        bodyLabel: body.label,
      };
    });
}

/** Runs one case; returns a failure message or undefined. */
async function runCase(o: Op, t: Tenant, c: Case, hist: Record<number, number>): Promise<string | undefined> {
  const isWrite = !['GET', 'HEAD'].includes(o.method);
  const pathHandle = /^\/v2\/(?:internal\/)?handles\/([^/?]+)/.exec(c.path)?.[1];
  const digestHandle =
    pathHandle && pathHandle !== t.handle && /^[a-z0-9-]+$/.test(pathHandle) ? pathHandle : undefined;
  const before = isWrite ? await digest(t, digestHandle) : '';
  const res = await callWithVars(VARS, o.method, c.path, { token: c.token, headers: c.headers, rawBody: c.rawBody });
  const text = await res.text();
  const status = res.status;
  hist[status] = (hist[status] ?? 0) + 1;
  const rid = res.headers.get('x-request-id');
  const ct = res.headers.get('content-type') ?? '';
  const fail = (why: string) => `${why}\n  → ${status} ${ct}\n  ${text.slice(0, 500)}`;
  if (!rid) return fail('no X-Request-Id');
  const documented = o.op.responses[String(status)] ?? o.op.responses.default;
  // 503 is documented everywhere (D1 unavailable) but only these answer it on purpose; here D1 is up, so nothing else may.
  if (status >= 500 && !(status === 503 && documented && DELIBERATE_503.has(o.template)))
    return fail(`${status} (server error)`);
  if (status >= 400) {
    if (!ct.startsWith('application/problem+json')) return fail('error response is not application/problem+json');
    // Every error an operation can answer is in its documentation. 405 is the router's (a `..` in a path id can
    // land on another route), not the operation's.
    if (status !== 405 && !o.op.responses[String(status)])
      return fail(`status ${status} is not documented for ${o.method} ${o.template}`);
    let body: Json;
    try {
      body = JSON.parse(text);
    } catch {
      return fail('problem body is not JSON');
    }
    if (body.status !== status) return fail(`problem.status ${body.status} != HTTP ${status}`);
    if (body.requestId !== rid) return fail(`problem.requestId ${body.requestId} != X-Request-Id ${rid}`);
    for (const k of ['type', 'title', 'detail', 'instance']) if (!(k in body)) return fail(`problem lacks ${k}`);
    if (isWrite) {
      const after = await digest(t, digestHandle);
      if (after !== before) return fail(`rejected write changed data\n  before: ${before}\n  after:  ${after}`);
    }
    return undefined;
  }
  if (status >= 200 && status < 300) {
    if (!o.op.responses[String(status)])
      return fail(`status ${status} is not documented for ${o.method} ${o.template}`);
    if (ct.startsWith('application/json')) {
      try {
        await assertMatchesDocument(o.method, c.path, status, text ? JSON.parse(text) : null);
      } catch (e) {
        return fail(String((e as Error).message));
      }
    }
  }
  return undefined;
}

const PRIORITY = (o: Op) => (o.method === 'DELETE' ? 1 : 0);

beforeAll(async () => {
  const res = await call('GET', '/v2/openapi.json');
  doc = (await res.json()) as Json;
  for (const [template, item] of Object.entries(doc.paths as Record<string, Json>)) {
    for (const [method, op] of Object.entries(item)) ops.push({ method: method.toUpperCase(), template, op });
  }
  ops = ops.sort((a, b) => PRIORITY(a) - PRIORITY(b));
  tokens = {
    service: await serviceJwt(),
    expired: await signJwt({ sub: 'fz-expired', scope: ALL_USER_SCOPES, exp: Math.floor(Date.now() / 1000) - 60 }),
    wrongSecret: await signJwt({
      sub: 'fz-wrong',
      scope: ALL_USER_SCOPES,
      secret: 'another-secret-that-is-long-enough-0123456789abcdef',
    }),
    noScopes: await signJwt({ sub: 'fz-noscope', scope: '' }),
  };
  other = await makeTenant();
  const made = await Promise.all(ops.map(() => makeTenant()));
  for (const [i, o] of ops.entries()) tenants.set(`${o.method} ${o.template}`, made[i]!);
  await settle([other.handle, ...made.map((t) => t.handle)]);
}, 60_000);

describe('API fuzzer (driven by /v2/openapi.json)', () => {
  it('covers every documented operation', () => {
    expect(ops.length).toBeGreaterThan(40);
    console.warn(`fuzz: ${ops.length} operations × ${FUZZ_RUNS} cases, seed ${FUZZ_SEED}`);
  });

  // Operations are only known after the document is loaded: one test iterates them, reporting every failure.
  it(`every operation: ${FUZZ_RUNS} generated cases each hold the invariants`, async () => {
    const failures: string[] = [];
    const histogram: string[] = [];
    const seen = new Set<string>();
    let total = 0;
    for (const [i, o] of ops.entries()) {
      const t = tenants.get(`${o.method} ${o.template}`)!;
      const hist: Record<number, number> = {};
      const cases = fc.sample(caseArb(o, t), { seed: FUZZ_SEED + i, numRuns: FUZZ_RUNS });
      for (const [n, c] of cases.entries()) {
        total++;
        const why = await runCase(o, t, c, hist);
        if (!why) continue;
        const sig = `${o.method} ${o.template} :: ${why.split('\n')[0]} :: ${why.split('\n')[1]}`;
        if (seen.has(sig)) continue;
        seen.add(sig);
        failures.push(
          `[seed ${FUZZ_SEED + i}, case ${n}] ${o.method} ${o.template}: ${why}\n  request: ${describeCase(c, o.method)}`,
        );
      }
      histogram.push(`${o.method} ${o.template}: ${JSON.stringify(hist)}`);
    }
    console.warn(`fuzz: statuses per operation\n${histogram.join('\n')}`);
    console.warn(`fuzz: ran ${total} cases over ${ops.length} operations; ${failures.length} distinct failures`);
    if (failures.length) console.warn(failures.join('\n\n'));
    expect(failures).toEqual([]);
  }, 600_000);
});
