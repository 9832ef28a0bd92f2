/**
 * The typed event catalog at the API (docs/design.md#event-catalog, #publishing-an-event, #eventtypes-patterns,
 * #test-sends): `GET /v2/event-types` with JSON Schema, the OpenAPI `webhooks`, typos refused with the nearest catalog
 * type, the feed's pattern filter, and test sends that default to a type the webhook receives. Real Worker, real local
 * D1 and queues, real receivers on 127.0.0.1.
 */
import { Validator } from '@cfworker/json-schema';
import { describe, expect, it } from 'vitest';
import { EVENT_CATALOG } from '../../src/lib/event-catalog.ts';
import { call, callJson, catalogData, expectProblem, provisionHandle, unique } from '../support/helpers.ts';
import { hits, receiverUrl, waitForHits } from '../support/receivers.ts';
import { userJwt } from '../support/seed.ts';

type Json = Record<string, any>;

async function setup() {
  const owner = unique('cat-owner');
  const handle = await provisionHandle(owner);
  const token = await userJwt(owner);
  return { handle, token, base: `/v2/handles/${handle}` };
}

describe('event catalog with schemas', () => {
  it('GET /v2/event-types gives each type a description, an example and its data as JSON Schema', async () => {
    const { token } = await setup();
    const r = await callJson('GET', '/v2/event-types', { token });
    expect(r.status).toBe(200);
    expect(r.body.data.map((e: Json) => e.type)).toEqual(EVENT_CATALOG.map((e) => e.type));
    for (const e of r.body.data as Json[]) {
      expect(e.description, e.type).toEqual(expect.any(String));
      expect(e.dataSchema.type, e.type).toBe('object');
      expect(Object.keys(e.dataSchema.properties), e.type).toEqual(expect.arrayContaining(Object.keys(e.sample)));
      // The JSON Schema is the real contract: an independent validator accepts the sample and refuses a wrong type.
      const v = new Validator(e.dataSchema, '2020-12');
      expect(v.validate(e.sample).valid, `${e.type} sample`).toBe(true);
      const [key, value] = Object.entries(e.sample as Json)[0]!;
      expect(v.validate({ ...e.sample, [key]: typeof value === 'string' ? 1 : 'x' }).valid, `${e.type}.${key}`).toBe(
        false,
      );
      expect(e.example).toEqual({
        id: expect.stringMatching(/^ntf_/),
        type: e.type,
        handle: expect.any(String),
        severity: e.defaultSeverity,
        timestamp: expect.any(String),
        data: e.sample,
        test: false,
      });
    }
  });

  it('the OpenAPI document has a webhook per catalog type: Standard Webhooks headers and the body with its data schema', async () => {
    const { body: doc } = await callJson('GET', '/v2/openapi.json');
    expect(Object.keys(doc.webhooks).sort()).toEqual(EVENT_CATALOG.map((e) => e.type).sort());
    const { body: catalog } = await callJson('GET', '/v2/event-types', { token: (await setup()).token });
    for (const e of catalog.data as Json[]) {
      const op = doc.webhooks[e.type].post;
      expect(op.operationId, e.type).toMatch(/^receive[A-Z]/);
      const headers = (op.parameters as Json[]).filter((p) => p.in === 'header').map((p) => [p.name, p.required]);
      expect(headers).toEqual([
        ['webhook-id', true],
        ['webhook-timestamp', true],
        ['webhook-signature', true],
      ]);
      const ref = op.requestBody.content['application/json'].schema.$ref as string;
      const name = ref.replace('#/components/schemas/', '');
      const schema = doc.components.schemas[name];
      expect(schema.required).toEqual(['id', 'type', 'handle', 'severity', 'timestamp', 'data', 'test']);
      expect(schema.properties.type.const ?? schema.properties.type.enum?.[0]).toBe(e.type);
      const v = new Validator({ $ref: ref, components: doc.components } as Json, '2020-12');
      expect(v.validate(e.example).valid, `${e.type} example`).toBe(true);
      expect(v.validate({ ...e.example, type: 'order.nope' }).valid).toBe(false);
      expect(v.validate({ ...e.example, test: 'no' }).valid).toBe(false);
      expect(op.responses['410'].description).toMatch(/disabled/);
    }
  });

  it('the webhook body the service really sends validates against its OpenAPI webhook schema', async () => {
    const s = await setup();
    const key = unique('cat');
    const created = await callJson('POST', `${s.base}/webhooks`, {
      token: s.token,
      body: { url: receiverUrl('ok', key), eventTypes: ['order.paid'] },
    });
    expect(created.status).toBe(201);
    const data = { orderId: unique('ord'), total: 10.5, currency: 'INR', note: 'extra fields pass' };
    const pub = await callJson('POST', `${s.base}/events`, { token: s.token, body: { type: 'order.paid', data } });
    expect(pub.status, JSON.stringify(pub.body)).toBe(202);
    const [hit] = await waitForHits(key, 1);
    const { body: doc } = await callJson('GET', '/v2/openapi.json');
    const ref = doc.webhooks['order.paid'].post.requestBody.content['application/json'].schema.$ref;
    const v = new Validator({ $ref: ref, components: doc.components } as Json, '2020-12');
    const body = JSON.parse(hit!.body);
    expect(body).toMatchObject({ id: pub.body.notificationId, type: 'order.paid', data });
    expect(v.validate(body).valid).toBe(true);
    for (const h of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) expect(hit!.headers[h]).toBeTruthy();
  });
});

describe('no silent typos', () => {
  it('publishing a type that reads as a catalog typo → 422 naming `type` and the nearest catalog type; nothing stored', async () => {
    const s = await setup();
    for (const [type, nearest] of [
      ['orders.created', 'order.created'],
      ['payment.faild', 'payment.failed'],
    ] as const) {
      const res = await call('POST', `${s.base}/events`, { token: s.token, body: { type, data: {} } });
      const p = await expectProblem(res, 422);
      expect(p.code).toBe('unknown_event_type');
      expect(p.errors).toEqual([{ path: 'type', message: expect.stringContaining(nearest) }]);
      expect(p.suggestions[0]).toBe(nearest);
      expect(p.detail).toContain(`did you mean ${nearest}?`);
    }
    const shipped = await expectProblem(
      await call('POST', `${s.base}/events`, { token: s.token, body: { type: 'order.shipped', data: {} } }),
      422,
    );
    expect(shipped.suggestions.every((t: string) => t.startsWith('order.'))).toBe(true);
    const feed = await callJson('GET', `${s.base}/notifications`, { token: s.token });
    expect(feed.body.data).toEqual([]);
  });

  it('data failing its catalog schema → 422 naming each path; custom types of their own namespace still pass', async () => {
    const s = await setup();
    const bad = await call('POST', `${s.base}/events`, {
      token: s.token,
      body: { type: 'order.paid', data: { orderId: 'o-1', total: '2499', items: 2.5 } },
    });
    const p = await expectProblem(bad, 422);
    expect(p.code).toBe('invalid_event_data');
    expect(p.errors.map((e: Json) => e.path).sort()).toEqual(['data.items', 'data.total']);
    expect(p.detail).toContain('order.paid');

    const custom = await callJson('POST', `${s.base}/events`, {
      token: s.token,
      body: { type: 'inventory.low_stock', data: { sku: 'A1', total: 'free-form' } },
    });
    expect(custom.status, JSON.stringify(custom.body)).toBe(202);
  });

  it('data missing a required field of its type → 422 naming the path, what is expected and an example', async () => {
    const s = await setup();
    for (const [type, field, example] of [
      ['order.paid', 'orderId', 'ord_10482'],
      ['payment.failed', 'orderId', 'ord_10482'],
      ['campaign.started', 'campaignId', 'cmp_311'],
    ] as const) {
      const p = await expectProblem(
        await call('POST', `${s.base}/events`, { token: s.token, body: { type, data: {} } }),
        422,
      );
      expect(p.code).toBe('invalid_event_data');
      expect(p.errors).toEqual([{ path: `data.${field}`, message: expect.stringContaining('is required') }]);
      expect(p.errors[0].message).toContain('a string');
      expect(p.errors[0].message).toContain(example);
      expect(p.detail).toContain(`data.${field}`);
    }
    const wrong = await expectProblem(
      await call('POST', `${s.base}/events`, { token: s.token, body: { type: 'order.created', data: { orderId: 7 } } }),
      422,
    );
    expect(wrong.errors).toEqual([{ path: 'data.orderId', message: expect.stringContaining('a string') }]);
    // The catalog says so: GET /v2/event-types lists the required fields in each JSON Schema.
    const catalog = await callJson('GET', '/v2/event-types', { token: s.token });
    const schemaOf = (t: string) => catalog.body.data.find((e: Json) => e.type === t).dataSchema;
    expect(schemaOf('order.paid').required).toEqual(['orderId']);
    expect(schemaOf('campaign.failed').required).toEqual(['campaignId']);
  });

  it('webhook and email subscription eventTypes that match no catalog type → 422 with suggestions; custom namespaces pass', async () => {
    const s = await setup();
    const create = await call('POST', `${s.base}/webhooks`, {
      token: s.token,
      body: { url: receiverUrl('ok', unique('k')), eventTypes: ['order.paid', 'orders.*'] },
    });
    const p = await expectProblem(create, 422);
    expect(p.code).toBe('unknown_event_type');
    expect(p.errors).toEqual([{ path: 'eventTypes.1', message: expect.any(String), suggestions: expect.any(Array) }]);
    expect(p.errors[0].suggestions[0]).toBe('order.*');
    expect((await callJson('GET', `${s.base}/webhooks`, { token: s.token })).body.data).toEqual([]);

    const ok = await callJson('POST', `${s.base}/webhooks`, {
      token: s.token,
      body: { url: receiverUrl('ok', unique('k')), eventTypes: ['order.*', 'inventory.*'] },
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    const patch = await call('PATCH', `${s.base}/webhooks/${ok.body.id}`, {
      token: s.token,
      body: { eventTypes: ['campain.started'] },
    });
    expect((await expectProblem(patch, 422)).errors[0].suggestions[0]).toBe('campaign.started');

    const email = await call('POST', `${s.base}/notifications/email-subscriptions`, {
      token: s.token,
      body: { email: `${unique('ops')}@example.com`, eventTypes: ['payments.*'] },
    });
    expect((await expectProblem(email, 422)).errors[0]).toMatchObject({ path: 'eventTypes.0' });
  });

  it("the feed's type filter takes the eventTypes patterns: `order.*` and `*`", async () => {
    const s = await setup();
    const publish = async (type: string) => {
      const r = await callJson('POST', `${s.base}/events`, { token: s.token, body: { type, data: catalogData(type) } });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      return r.body.notificationId as string;
    };
    const paid = await publish('order.paid');
    const failed = await publish('payment.failed');
    const created = await publish('order.created');
    const list = async (q: string) =>
      (await callJson('GET', `${s.base}/notifications?${q}`, { token: s.token })).body.data.map((n: Json) => n.id);
    expect(await list('type=order.*')).toEqual([created, paid]);
    expect(await list('type=order.*&severity=info&limit=1')).toEqual([created]);
    expect(await list('type=*')).toEqual([created, failed, paid]);
    expect(await list('type=payment.failed')).toEqual([failed]);
  });

  it('a test send without eventType sends a type the webhook receives', async () => {
    const s = await setup();
    const key = unique('cat');
    const wh = await callJson('POST', `${s.base}/webhooks`, {
      token: s.token,
      body: { url: receiverUrl('ok', key), eventTypes: ['order.fulfilled'] },
    });
    expect(wh.status).toBe(201);
    const r = await callJson('POST', `${s.base}/webhooks/${wh.body.id}/test`, { token: s.token });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.diagnosis.test).toMatchObject({ eventType: 'order.fulfilled', outcome: 'succeeded' });
    const [hit] = await waitForHits(key, 1);
    expect(JSON.parse(hit!.body)).toMatchObject({ type: 'order.fulfilled', test: true });
    expect((await hits(key)).length).toBe(1);
  });
});
