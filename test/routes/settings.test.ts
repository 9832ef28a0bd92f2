import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evaluateFilterPolicy, type FilterPolicy, matchesEventTypes } from '../../src/lib/filter-policy.ts';
import {
  ALL_USER_SCOPES,
  addMember,
  anyShard,
  call,
  callJson,
  expectProblem,
  provisionHandle,
  signJwt,
  unique,
} from '../support/helpers.ts';

async function setup() {
  const owner = unique('owner');
  const handle = await provisionHandle(owner);
  const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
  return { owner, handle, token, base: `/v2/handles/${handle}` };
}

const DEFAULTS = {
  channels: { email: { enabled: true }, webhook: { enabled: true } },
  eventFilter: null,
  ownerFallback: 'critical',
};
const codes = (body: { warnings: { code: string }[] }) => body.warnings.map((w) => w.code);

describe('GET/PUT …/notification-settings', () => {
  it('a new handle has default settings, an ETag and the owner_default_email_unset warning', async () => {
    const { token, base } = await setup();
    const { body, res } = await callJson('GET', `${base}/notification-settings`, { token });
    expect(body).toMatchObject({ ...DEFAULTS, version: 1 });
    expect(res.headers.get('etag')).toBe('"v1"');
    expect(codes(body)).toEqual(['owner_default_email_unset']);
    await callJson('PUT', `${base}/notifications/owner-default-email`, { token, body: { email: 'Owner@Example.com' } });
    expect(codes((await callJson('GET', `${base}/notification-settings`, { token })).body)).toEqual([]);
  });

  it('PUT replaces everything, bumps the version; a stale If-Match → 412 and nothing changes', async () => {
    const { token, base } = await setup();
    const next = {
      channels: { email: { enabled: false }, webhook: { enabled: true } },
      eventFilter: { severity: ['warning', 'critical'] },
      ownerFallback: 'all',
    };
    const put = await callJson('PUT', `${base}/notification-settings`, {
      token,
      body: next,
      headers: { 'if-match': '"v1"' },
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ ...next, version: 2 });
    expect(put.res.headers.get('etag')).toBe('"v2"');
    const stale = await call('PUT', `${base}/notification-settings`, {
      token,
      body: DEFAULTS,
      headers: { 'if-match': '"v1"' },
    });
    await expectProblem(stale, 412);
    const now = await callJson('GET', `${base}/notification-settings`, { token });
    expect(now.body).toMatchObject({ ...next, version: 2 });
    // Without If-Match the write is unconditional; `*` matches any version.
    expect(
      (await call('PUT', `${base}/notification-settings`, { token, body: DEFAULTS, headers: { 'if-match': '*' } }))
        .status,
    ).toBe(200);
  });

  it('two concurrent PUTs with the same If-Match: exactly one wins', async () => {
    const { token, base } = await setup();
    const results = await Promise.all(
      ['all', 'none'].map((ownerFallback) =>
        call('PUT', `${base}/notification-settings`, {
          token,
          body: { ...DEFAULTS, ownerFallback },
          headers: { 'if-match': '"v1"' },
        }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 412]);
  });

  it('validates the body: full replace, no unknown fields, valid filter policy', async () => {
    const { token, base } = await setup();
    const cases: Array<[unknown, string]> = [
      [{ ...DEFAULTS, channels: undefined }, 'body.channels'],
      [{ ...DEFAULTS, ownerFallback: 'sometimes' }, 'body.ownerFallback'],
      [{ ...DEFAULTS, eventFilter: { 'data.x': [{ numeric: ['>>', 1] }] } }, 'body.eventFilter'],
      [{ ...DEFAULTS, version: 7 }, 'body.version'],
      [
        { ...DEFAULTS, channels: { email: { enabled: true }, webhook: { enabled: true }, sms: { enabled: true } } },
        'body.channels.sms',
      ],
    ];
    for (const [body, path] of cases) {
      const problem = await expectProblem(await call('PUT', `${base}/notification-settings`, { token, body }), 400);
      const paths = problem.errors.map((e: { path: string }) => e.path);
      expect(
        paths.some((p: string) => p.startsWith(path)),
        `${JSON.stringify(body)} → ${paths}`,
      ).toBe(true);
    }
  });

  it('warns when the webhook channel is off but webhooks exist, and when the filter drops critical events', async () => {
    const { token, base } = await setup();
    await callJson('POST', `${base}/webhooks`, { token, body: { url: 'https://crm.example.com/h' } });
    const { body } = await callJson('PUT', `${base}/notification-settings`, {
      token,
      body: {
        channels: { email: { enabled: true }, webhook: { enabled: false } },
        eventFilter: { type: [{ prefix: 'order.' }] },
        ownerFallback: 'none',
      },
    });
    expect(codes(body)).toEqual([
      'owner_default_email_unset',
      'owner_fallback_none',
      'webhook_channel_disabled_with_subscriptions',
      'critical_events_filtered_out',
    ]);
    const critical = body.warnings.find((w: { code: string }) => w.code === 'critical_events_filtered_out');
    expect(critical.message).toContain('payment.failed');
    expect(critical.message).toContain('nobody receives them');
  });

  it('viewers read settings but cannot change them; owners only set the owner default email', async () => {
    const { handle, base } = await setup();
    const viewer = unique('viewer');
    const admin = unique('admin');
    await addMember(handle, viewer, 'viewer');
    await addMember(handle, admin, 'admin');
    const v = await signJwt({ sub: viewer, scope: ALL_USER_SCOPES });
    const a = await signJwt({ sub: admin, scope: ALL_USER_SCOPES });
    expect((await call('GET', `${base}/notification-settings`, { token: v })).status).toBe(200);
    await expectProblem(await call('PUT', `${base}/notification-settings`, { token: v, body: DEFAULTS }), 403);
    expect((await call('PUT', `${base}/notification-settings`, { token: a, body: DEFAULTS })).status).toBe(200);
    await expectProblem(
      await call('PUT', `${base}/notifications/owner-default-email`, { token: a, body: { email: 'a@example.com' } }),
      403,
    );
  });

  it("cross-tenant: another handle's owner gets 404 and changes nothing", async () => {
    const a = await setup();
    const b = await setup();
    await expectProblem(await call('GET', `${b.base}/notification-settings`, { token: a.token }), 404);
    await expectProblem(
      await call('PUT', `${b.base}/notification-settings`, {
        token: a.token,
        body: { ...DEFAULTS, ownerFallback: 'none' },
      }),
      404,
    );
    const row = await anyShard
      .prepare('SELECT owner_fallback, version FROM notification_settings WHERE handle = ?')
      .bind(b.handle)
      .first();
    expect(row).toEqual({ owner_fallback: 'critical', version: 1 });
  });
});

describe('POST …/notification-settings/evaluate', () => {
  it('says for each recipient whether it gets the event and which rule decided', async () => {
    const { token, base } = await setup();
    const mk = async (body: object) => (await callJson('POST', `${base}/webhooks`, { token, body })).body.id as string;
    const all = await mk({ url: 'https://a.example.com/h' });
    const ordersOnly = await mk({ url: 'https://b.example.com/h', eventTypes: ['order.*'] });
    const bigOnly = await mk({
      url: 'https://c.example.com/h',
      filterPolicy: { 'data.amount': [{ numeric: ['>', 100] }] },
    });
    const disabled = await mk({ url: 'https://d.example.com/h', enabled: false });
    await callJson('PUT', `${base}/notifications/owner-default-email`, { token, body: { email: 'owner@example.com' } });
    const pending = (
      await callJson('POST', `${base}/notifications/email-subscriptions`, { token, body: { email: 'ops@example.com' } })
    ).body.id;

    const { status, body } = await callJson('POST', `${base}/notification-settings/evaluate`, {
      token,
      body: { event: { type: 'payment.failed', data: { amount: 50 } } },
    });
    expect(status).toBe(200);
    expect(body.event.severity).toBe('critical');
    const by = Object.fromEntries(body.recipients.map((r: any) => [r.subscriptionId, r]));
    expect(by[all]).toMatchObject({ outcome: 'deliver', rule: 'matched' });
    expect(by[ordersOnly]).toMatchObject({ outcome: 'excluded', rule: 'event_types' });
    expect(by[bigOnly]).toMatchObject({ outcome: 'excluded', rule: 'filter_policy' });
    expect(by[bigOnly].detail).toContain('data.amount');
    expect(by[disabled]).toMatchObject({ outcome: 'skip_disabled', rule: 'subscription_disabled' });
    expect(by[pending]).toMatchObject({ outcome: 'excluded', rule: 'not_confirmed' });
    expect(by['owner-default']).toMatchObject({ outcome: 'deliver', rule: 'owner_fallback_critical' });
    expect(body.undeliverable).toBe(false);
  });

  it('a critical event nobody receives is undeliverable; proposed settings can be dry-run', async () => {
    const { token, base } = await setup();
    const res = await callJson('POST', `${base}/notification-settings/evaluate`, {
      token,
      body: { eventType: 'fulfillment.failed' },
    });
    expect(res.body.recipients).toEqual([]);
    expect(res.body.undeliverable).toBe(true);
    expect(res.body.event.data).toMatchObject({ reason: 'out_of_stock' });
    await callJson('POST', `${base}/webhooks`, { token, body: { url: 'https://a.example.com/h' } });
    const proposed = await callJson('POST', `${base}/notification-settings/evaluate`, {
      token,
      body: {
        eventType: 'order.paid',
        settings: {
          channels: { email: { enabled: true }, webhook: { enabled: false } },
          eventFilter: null,
          ownerFallback: 'critical',
        },
      },
    });
    expect(proposed.body.settingsSource).toBe('request');
    expect(proposed.body.recipients[0]).toMatchObject({ outcome: 'excluded', rule: 'webhook_channel_disabled' });
    // A dry run changes nothing.
    const saved = await callJson('GET', `${base}/notification-settings`, { token });
    expect(saved.body.channels.webhook.enabled).toBe(true);
  });

  it('validates: exactly one of eventType/event; unknown catalog type → 422', async () => {
    const { token, base } = await setup();
    await expectProblem(await call('POST', `${base}/notification-settings/evaluate`, { token, body: {} }), 400);
    await expectProblem(
      await call('POST', `${base}/notification-settings/evaluate`, {
        token,
        body: { eventType: 'order.paid', event: { type: 'x' } },
      }),
      400,
    );
    await expectProblem(
      await call('POST', `${base}/notification-settings/evaluate`, { token, body: { eventType: 'no.such' } }),
      422,
    );
  });

  it('agrees with the evaluator for random policies and events (property)', async () => {
    const { token, base } = await setup();
    const id = (await callJson('POST', `${base}/webhooks`, { token, body: { url: 'https://a.example.com/h' } })).body
      .id;
    const value = fc.oneof(fc.constantFrom('eu', 'us', 'in'), fc.integer({ min: 0, max: 300 }));
    const condition = fc.oneof(
      value,
      fc.record({ prefix: fc.constantFrom('e', 'u', 'i') }),
      fc.record({ 'anything-but': fc.array(fc.constantFrom('eu', 'us'), { minLength: 1, maxLength: 2 }) }),
      fc.record({ exists: fc.boolean() }),
      fc
        .tuple(fc.constantFrom('<', '<=', '>', '>=', '='), fc.integer({ min: 0, max: 300 }))
        .map((t) => ({ numeric: t })),
    );
    const policy = fc.dictionary(
      fc.constantFrom('data.region', 'data.amount', 'severity'),
      fc.array(condition, { minLength: 1, maxLength: 3 }),
      {
        minKeys: 1,
        maxKeys: 3,
      },
    );
    const eventTypes = fc.option(fc.constantFrom(['order.*'], ['payment.failed'], ['*']), { nil: null });
    const event = fc.record({
      type: fc.constantFrom('order.paid', 'payment.failed', 'campaign.started'),
      severity: fc.constantFrom('info', 'warning', 'critical'),
      data: fc.record(
        { region: fc.constantFrom('eu', 'us', 'in'), amount: fc.integer({ min: 0, max: 300 }) },
        { requiredKeys: [] },
      ),
    });
    await fc.assert(
      fc.asyncProperty(policy, eventTypes, event, async (p, types, e) => {
        const patched = await call('PATCH', `${base}/webhooks/${id}`, {
          token,
          body: { filterPolicy: p, eventTypes: types },
        });
        if (patched.status === 400) return; // e.g. a string condition on a numeric key that validation refuses
        expect(patched.status).toBe(200);
        const { body } = await callJson('POST', `${base}/notification-settings/evaluate`, {
          token,
          body: { event: e },
        });
        const verdict = body.recipients.find((r: any) => r.subscriptionId === id);
        const expected =
          matchesEventTypes(types, e.type) && evaluateFilterPolicy(p as FilterPolicy, { ...e, source: null }).match;
        expect(verdict.outcome === 'deliver').toBe(expected);
      }),
      { seed: 20261126, numRuns: 40 },
    );
  });
});
