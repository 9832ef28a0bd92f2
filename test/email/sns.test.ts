/**
 * AWS SNS (docs/design.md#email, EMAIL_PROVIDER=sns): the Query API client, the filter policy conversion and the email
 * provider of src/email/providers/sns/ (client.ts, filter-policy.ts, provider.ts), against a fake of SNS that is a
 * REAL HTTP server on 127.0.0.1 (test/support/node/sns-fake.ts, started by the globalSetup; its port arrives as
 * `inject('snsFakePort')`). The fake speaks SNS's wire format (form-encoded POST, XML answers) and verifies every
 * request's SigV4 signature, so these tests exercise aws4fetch's signing for real.
 *
 * Every test uses its own handle (hence its own topic) and reads the fake's state per topic, so tests never see each
 * other's records and never need to reset the fake. The throttle control is global to the fake: only this file uses
 * it, and its tests run in order.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, inject, it } from 'vitest';
import type { OutgoingMail } from '../../src/email/message.ts';
import type { SendMeta } from '../../src/email/provider.ts';
import {
  decodeXml,
  isPermanentSnsError,
  SnsError,
  snsClient,
  snsSubject,
  xmlEntries,
  xmlText,
} from '../../src/email/providers/sns/client.ts';
import { toSnsFilterPolicy } from '../../src/email/providers/sns/filter-policy.ts';
import { snsProvider } from '../../src/email/providers/sns/provider.ts';
import { runContext } from '../../src/env.ts';
import type { Condition } from '../../src/lib/filter-policy.ts';
import { unique } from '../support/helpers.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Port of the SNS fake on 127.0.0.1 (test/support/node/global-setup.ts). */
    snsFakePort: number;
  }
}

/** SNS_FAKE_CREDENTIALS of test/support/node/sns-fake.ts (a Node module, so not importable from workerd). */
const ACCESS_KEY_ID = 'AKIAFAKESNS000000001';
const SECRET_ACCESS_KEY = 'fake/SNS+secret/key0123456789abcdefghij';
/** Not the default (eu-west-1): proves the region comes from the configuration. */
const REGION = 'ap-south-1';
const PREFIX = 'gn-test-';
const ACCOUNT = '123456789012';

// The shapes of GET /_control/state (test/support/node/sns-fake.ts), as far as these tests read them.
interface FakeSubscription {
  arn: string;
  topicArn: string;
  protocol: string;
  endpoint: string;
  filterPolicy: string | null;
  filterPolicyScope: string | null;
  pendingConfirmation: boolean;
}
interface FakeMessage {
  messageId: string;
  topicArn: string;
  subject: string | null;
  message: string;
  attributes: Record<string, { dataType: string; stringValue: string }>;
  deliveredTo: string[];
}
interface FakeRequest {
  method: string;
  headers: Record<string, string>;
  params: Record<string, string>;
  action: string | null;
  status: number;
  errorCode: string | null;
}
interface FakeState {
  topics: Array<{ arn: string; name: string; region: string }>;
  subscriptions: FakeSubscription[];
  messages: FakeMessage[];
  requests: FakeRequest[];
  throttleRemaining: number;
}

function fakeBase(): string {
  const port = inject('snsFakePort');
  if (!Number.isInteger(port) || port <= 0)
    throw new Error('snsFakePort was not provided: is the globalSetup registered?');
  return `http://127.0.0.1:${port}`;
}

async function control(path: string, method = 'POST'): Promise<unknown> {
  const res = await fetch(`${fakeBase()}${path}`, { method });
  const text = await res.text();
  if (!res.ok) throw new Error(`sns fake: ${method} ${path} → ${res.status} ${text}`);
  return JSON.parse(text);
}

const state = () => control('/_control/state', 'GET') as Promise<FakeState>;
const confirm = (arn: string) => control(`/_control/confirm?arn=${encodeURIComponent(arn)}`);
const deleteAtSns = (arn: string) => control(`/_control/delete?arn=${encodeURIComponent(arn)}`);
const throttle = (n: number) => control(`/_control/throttle?n=${n}`);

/** The test env: SNS selected, the fake as endpoint, credentials it accepts. */
function snsEnv(overrides: Partial<Env> = {}): Env {
  return {
    ...env,
    EMAIL_PROVIDER: 'sns',
    SNS_API_URL: `${fakeBase()}/`,
    AWS_REGION: REGION,
    SNS_TOPIC_PREFIX: PREFIX,
    AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY,
    ...overrides,
  };
}

async function snsErrorOf(p: Promise<unknown>): Promise<SnsError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SnsError);
    return err as SnsError;
  }
  throw new Error('expected an SnsError, but the call succeeded');
}

function mail(subject = 'Hello', text = 'Body text'): OutgoingMail {
  return {
    from: { email: 'notify@gharart.test', name: 'Gharart notifications' },
    to: { email: 'someone@example.com' },
    subject,
    text,
    html: `<p>${text}</p>`,
    headers: { 'List-Unsubscribe': '<https://notify.test/u>' },
  };
}

function meta(handle: string, overrides: Partial<SendMeta> = {}): SendMeta {
  return {
    subscriptionId: 'esub_x',
    deliveryId: unique('dlv'),
    handle,
    eventType: 'order.paid',
    severity: 'info',
    ...overrides,
  };
}

const topicArnOf = (handle: string) => `arn:aws:sns:${REGION}:${ACCOUNT}:${PREFIX}${handle}`;

describe('snsClient against the SNS fake', () => {
  it('ensureTopic is idempotent: the same ARN twice, named prefix + handle, in the configured region', async () => {
    const client = snsClient(snsEnv());
    const handle = unique('h');
    const first = await client.ensureTopic(handle);
    const second = await client.ensureTopic(handle);
    expect(first).toBe(topicArnOf(handle));
    expect(second).toBe(first);
    const s = await state();
    expect(s.topics.filter((t) => t.arn === first)).toEqual([
      { arn: first, name: `${PREFIX}${handle}`, region: REGION, createdAt: expect.any(String) },
    ]);
    const calls = s.requests.filter((r) => r.params.Name === `${PREFIX}${handle}`);
    expect(calls.map((r) => [r.action, r.params.Version, r.status])).toEqual([
      ['CreateTopic', '2010-03-31', 200],
      ['CreateTopic', '2010-03-31', 200],
    ]);
    expect(calls[0]!.method).toBe('POST');
    expect(calls[0]!.headers['content-type']).toMatch(/^application\/x-www-form-urlencoded/);
  });

  it('subscribe: an ARN under the topic, pending until confirmed; SNS got toSnsFilterPolicy’s policy', async () => {
    const client = snsClient(snsEnv());
    const handle = unique('h');
    const topicArn = await client.ensureTopic(handle);
    const { policy, unsupportedKeys } = toSnsFilterPolicy({
      eventTypes: ['order.*', 'payment.failed'],
      filterPolicy: { severity: ['warning', 'critical'], 'data.amount': [{ numeric: ['>', 100] }] },
      subscriptionId: 'esub_1',
    });
    expect(unsupportedKeys).toEqual(['data.amount']);

    const sub = await client.subscribe(topicArn, 'ops@example.com', policy);
    expect(sub.subscriptionArn).toMatch(
      new RegExp(
        `^${topicArn.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:` +
          '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
      ),
    );
    expect(sub.pendingConfirmation).toBe(true);
    expect(await client.checkSubscription(sub.subscriptionArn)).toBe('pending');

    const s = await state();
    const stored = s.subscriptions.find((x) => x.arn === sub.subscriptionArn)!;
    expect(stored).toMatchObject({
      topicArn,
      protocol: 'email',
      endpoint: 'ops@example.com',
      filterPolicyScope: 'MessageAttributes',
      pendingConfirmation: true,
    });
    expect(JSON.parse(stored.filterPolicy!)).toEqual(policy);
    expect(policy).toEqual({
      type: [{ prefix: 'order.' }, 'payment.failed'],
      severity: ['warning', 'critical'],
      subscription: ['esub_1'],
    });
    const request = s.requests.find((r) => r.action === 'Subscribe' && r.params.TopicArn === topicArn)!;
    expect(request.params).toMatchObject({
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      ReturnSubscriptionArn: 'true',
      'Attributes.entry.1.key': 'FilterPolicy',
      'Attributes.entry.2.key': 'FilterPolicyScope',
      'Attributes.entry.2.value': 'MessageAttributes',
    });

    await confirm(sub.subscriptionArn);
    expect(await client.checkSubscription(sub.subscriptionArn)).toBe('confirmed');

    // Subscribing the same address with the same policy again returns the existing (now confirmed) subscription.
    const again = await client.subscribe(topicArn, 'ops@example.com', policy);
    expect(again).toEqual({ subscriptionArn: sub.subscriptionArn, pendingConfirmation: false });
  });

  it('subscribe without a filter policy sends no Attributes', async () => {
    const client = snsClient(snsEnv());
    const topicArn = await client.ensureTopic(unique('h'));
    const sub = await client.subscribe(topicArn, 'all@example.com', null);
    const s = await state();
    expect(s.subscriptions.find((x) => x.arn === sub.subscriptionArn)).toMatchObject({
      filterPolicy: null,
      filterPolicyScope: null,
    });
    const request = s.requests.find((r) => r.action === 'Subscribe' && r.params.TopicArn === topicArn)!;
    expect(Object.keys(request.params).filter((k) => k.startsWith('Attributes.'))).toEqual([]);
  });

  it('publish carries Subject, Message and the String attributes type, severity (and subscription)', async () => {
    const client = snsClient(snsEnv());
    const topicArn = await client.ensureTopic(unique('h'));
    const messageId = await client.publish(topicArn, {
      subject: '[Gharart] Critical: payment failed — shop',
      message: 'Line one\nLine two & <three>',
      attributes: { type: 'payment.failed', severity: 'critical', subscription: 'esub_9' },
    });
    expect(messageId).toMatch(/^[0-9a-f-]{36}$/);
    const s = await state();
    const published = s.messages.find((m) => m.messageId === messageId)!;
    expect(published).toMatchObject({
      topicArn,
      subject: '[Gharart] Critical: payment failed - shop',
      message: 'Line one\nLine two & <three>',
      attributes: {
        type: { dataType: 'String', stringValue: 'payment.failed' },
        severity: { dataType: 'String', stringValue: 'critical' },
        subscription: { dataType: 'String', stringValue: 'esub_9' },
      },
    });
    const request = s.requests.find((r) => r.action === 'Publish' && r.params.TopicArn === topicArn)!;
    expect(request.params['MessageAttributes.entry.1.Name']).toBe('type');
    expect(request.params['MessageAttributes.entry.1.Value.DataType']).toBe('String');
    expect(request.params['MessageAttributes.entry.2.Name']).toBe('severity');
  });

  it('unsubscribe: the subscription is gone (NotFound → not_found); a second unsubscribe is no error', async () => {
    const client = snsClient(snsEnv());
    const topicArn = await client.ensureTopic(unique('h'));
    const { subscriptionArn } = await client.subscribe(topicArn, 'leaving@example.com', null);
    await client.unsubscribe(subscriptionArn);
    expect(await client.checkSubscription(subscriptionArn)).toBe('not_found');
    await expect(client.unsubscribe(subscriptionArn)).resolves.toBeUndefined();
    const s = await state();
    const codes = s.requests
      .filter((r) => r.params.SubscriptionArn === subscriptionArn)
      .map((r) => [r.action, r.status, r.errorCode]);
    expect(codes).toEqual([
      ['GetSubscriptionAttributes', 200, null], // subscribe's pending check
      ['Unsubscribe', 200, null],
      ['GetSubscriptionAttributes', 404, 'NotFound'],
      ['Unsubscribe', 404, 'NotFound'],
    ]);
  });

  it('a subscription deleted at SNS (expired, or unsubscribed by its recipient) → not_found', async () => {
    const client = snsClient(snsEnv());
    const topicArn = await client.ensureTopic(unique('h'));
    const { subscriptionArn } = await client.subscribe(topicArn, 'gone@example.com', null);
    await confirm(subscriptionArn);
    expect(await client.checkSubscription(subscriptionArn)).toBe('confirmed');
    await deleteAtSns(subscriptionArn);
    expect(await client.checkSubscription(subscriptionArn)).toBe('not_found');
  });

  it('throttling → SnsError Throttling, transient; and snsProvider.send → a transient outcome', async () => {
    const e = snsEnv();
    const client = snsClient(e);
    const handle = unique('h');
    const topicArn = await client.ensureTopic(handle);

    await throttle(1);
    const err = await snsErrorOf(
      client.publish(topicArn, { subject: 's', message: 'm', attributes: { type: 'order.paid', severity: 'info' } }),
    );
    expect(err).toMatchObject({ code: 'Throttling', httpStatus: 400, permanent: false, action: 'Publish' });
    expect(err.message).toContain('Rate exceeded');

    await throttle(1);
    const outcome = await snsProvider(runContext(e)).send(mail(), meta(handle));
    expect(outcome).toMatchObject({ ok: false, permanent: false });
    expect(outcome.ok === false && outcome.message).toContain('Throttling');
    expect((await state()).throttleRemaining).toBe(0);

    // The next attempt goes through.
    const retried = await snsProvider(runContext(e)).send(mail(), meta(handle));
    expect(retried).toMatchObject({ ok: true, providerMessageId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  });

  it('InvalidParameter (an invalid email) → SnsError, permanent', async () => {
    const client = snsClient(snsEnv());
    const topicArn = await client.ensureTopic(unique('h'));
    const err = await snsErrorOf(client.subscribe(topicArn, 'not-an-email', null));
    expect(err).toMatchObject({ code: 'InvalidParameter', httpStatus: 400, permanent: true, action: 'Subscribe' });
    expect(err.message).toContain('Invalid parameter: Email address');
  });

  it('NotFound on a topic that does not exist → permanent', async () => {
    const client = snsClient(snsEnv());
    const err = await snsErrorOf(
      client.publish(`arn:aws:sns:${REGION}:${ACCOUNT}:${PREFIX}${unique('never')}`, {
        subject: 's',
        message: 'm',
        attributes: { type: 'a.b', severity: 'info' },
      }),
    );
    expect(err).toMatchObject({ code: 'NotFound', httpStatus: 404, permanent: true });
  });

  it('a wrong secret → SignatureDoesNotMatch, an unknown key → InvalidClientTokenId; both permanent', async () => {
    const wrongSecret = await snsErrorOf(
      snsClient(snsEnv({ AWS_SECRET_ACCESS_KEY: 'not-the-secret' })).ensureTopic(unique('h')),
    );
    expect(wrongSecret).toMatchObject({ code: 'SignatureDoesNotMatch', httpStatus: 403, permanent: true });
    const unknownKey = await snsErrorOf(
      snsClient(snsEnv({ AWS_ACCESS_KEY_ID: 'AKIAUNKNOWN000000000' })).ensureTopic(unique('h')),
    );
    expect(unknownKey).toMatchObject({ code: 'InvalidClientTokenId', httpStatus: 403, permanent: true });
  });

  it('missing secrets → a permanent SnsError naming them, no request; send → permanent, never a crash', async () => {
    const before = (await state()).requests.length;
    const noKeys = snsEnv({ AWS_ACCESS_KEY_ID: undefined as unknown as string, AWS_SECRET_ACCESS_KEY: '' });
    const err = await snsErrorOf(snsClient(noKeys).ensureTopic(unique('h')));
    expect(err).toMatchObject({ code: 'MissingCredentials', permanent: true, httpStatus: 0 });
    expect(err.message).toContain('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
    const outcome = await snsProvider(runContext(noKeys)).send(mail(), meta(unique('h')));
    expect(outcome).toMatchObject({ ok: false, permanent: true });
    expect(outcome.ok === false && outcome.message).toContain('AWS_ACCESS_KEY_ID');
    expect((await state()).requests.length).toBe(before);
  });

  it('SNS unreachable → SnsError NetworkError, transient; send → a transient outcome', async () => {
    // Port 9 (discard) on loopback: nothing listens there.
    const e = snsEnv({ SNS_API_URL: 'http://127.0.0.1:9/' });
    const err = await snsErrorOf(snsClient(e).ensureTopic(unique('h')));
    expect(err).toMatchObject({ code: 'NetworkError', httpStatus: 0, permanent: false, action: 'CreateTopic' });
    expect(await snsProvider(runContext(e)).send(mail(), meta(unique('h')))).toMatchObject({
      ok: false,
      permanent: false,
    });
  });

  it('the fake itself rejects an unsigned request (400 MissingAuthenticationToken, in AWS’s XML)', async () => {
    const res = await fetch(`${fakeBase()}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=CreateTopic&Version=2010-03-31&Name=unsigned',
    });
    expect(res.status).toBe(400);
    const xml = await res.text();
    expect(xmlText(xml, 'Code')).toBe('MissingAuthenticationToken');
    expect(xmlText(xml, 'Type')).toBe('Sender');
  });
});

describe('snsProvider', () => {
  it('publishes to the handle’s topic; with per-subscription policies a mail reaches just its own', async () => {
    const e = snsEnv();
    const client = snsClient(e);
    const handle = unique('h');
    const topicArn = await client.ensureTopic(handle);
    const a = await client.subscribe(
      topicArn,
      'a@example.com',
      toSnsFilterPolicy({ eventTypes: null, filterPolicy: null, subscriptionId: 'esub_a' }).policy,
    );
    const b = await client.subscribe(
      topicArn,
      'b@example.com',
      toSnsFilterPolicy({ eventTypes: ['order.*'], filterPolicy: null, subscriptionId: 'esub_b' }).policy,
    );
    const pending = await client.subscribe(
      topicArn,
      'c@example.com',
      toSnsFilterPolicy({ eventTypes: null, filterPolicy: null, subscriptionId: 'esub_c' }).policy,
    );
    await confirm(a.subscriptionArn);
    await confirm(b.subscriptionArn);

    const provider = snsProvider(runContext(e));
    expect(provider.name).toBe('sns');
    const toA = await provider.send(
      mail('[Gharart] Info: order paid — shop', 'Order 1 was paid.'),
      meta(handle, { subscriptionId: 'esub_a' }),
    );
    const toB = await provider.send(mail(), meta(handle, { subscriptionId: 'esub_b' }));
    const toPending = await provider.send(mail(), meta(handle, { subscriptionId: 'esub_c' }));
    for (const o of [toA, toB, toPending]) expect(o.ok).toBe(true);

    const s = await state();
    const byId = (o: typeof toA) => s.messages.find((m) => o.ok && m.messageId === o.providerMessageId)!;
    expect(byId(toA)).toMatchObject({
      topicArn,
      subject: '[Gharart] Info: order paid - shop',
      message: 'Order 1 was paid.',
      deliveredTo: [a.subscriptionArn],
    });
    expect(byId(toA).attributes.subscription).toEqual({ dataType: 'String', stringValue: 'esub_a' });
    expect(byId(toB).deliveredTo).toEqual([b.subscriptionArn]);
    // SNS delivers nothing to a pending subscription (the publish itself is accepted).
    expect(byId(toPending).deliveredTo).toEqual([]);
    expect(pending.pendingConfirmation).toBe(true);

    // The topic ARN is cached per isolate: one CreateTopic for the test's own call, one for the provider.
    expect(s.requests.filter((r) => r.action === 'CreateTopic' && r.params.Name === `${PREFIX}${handle}`)).toHaveLength(
      2,
    );
  });

  it('refuses, permanently, mails SNS cannot address: platform alerts, our own confirmation mail', async () => {
    const e = snsEnv();
    const handle = unique('h');
    const before = (await state()).requests.length;
    const alert = await snsProvider(runContext(e)).send(
      mail(),
      meta(handle, { subscriptionId: null, eventType: 'payment.failed', severity: 'critical' }),
    );
    expect(alert).toMatchObject({ ok: false, permanent: true });
    expect(alert.ok === false && alert.message).toContain('no subscription');
    const confirmation = await snsProvider(runContext(e)).send(
      mail(),
      meta(handle, { eventType: 'email.confirmation' }),
    );
    expect(confirmation).toMatchObject({ ok: false, permanent: true });
    expect(confirmation.ok === false && confirmation.message).toContain('own confirmation');
    expect((await state()).requests.length).toBe(before);
  });

  it('a topic deleted behind our back: the next send fails permanently (not re-created for nobody)', async () => {
    const e = snsEnv();
    const handle = unique('h');
    const client = snsClient(e);
    const topicArn = await client.ensureTopic(handle);
    const sub = await client.subscribe(
      topicArn,
      'x@example.com',
      toSnsFilterPolicy({ eventTypes: null, filterPolicy: null, subscriptionId: 'esub_x' }).policy,
    );
    await confirm(sub.subscriptionArn);
    expect(await snsProvider(runContext(e)).send(mail(), meta(handle))).toMatchObject({ ok: true });

    await control(`/_control/delete-topic?arn=${encodeURIComponent(topicArn)}`);
    const failed = await snsProvider(runContext(e)).send(mail(), meta(handle));
    expect(failed).toMatchObject({ ok: false, permanent: true });
    expect(failed.ok === false && failed.message).toContain('no longer exists');
    expect(await client.checkSubscription(sub.subscriptionArn)).toBe('not_found');

    // The cached ARN was dropped: a later send creates the topic again — and SNS accepts a publish that reaches
    // nobody. Only the subscription's ARN check (not_found → stale) reveals this; see the provider's comment.
    const later = await snsProvider(runContext(e)).send(mail(), meta(handle));
    expect(later).toMatchObject({ ok: true });
    const s = await state();
    expect(s.messages.find((m) => later.ok && m.messageId === later.providerMessageId)?.deliveredTo).toEqual([]);
  });

  it('an InvalidParameter from SNS → a permanent outcome', async () => {
    // SNS rejects an empty message attribute value.
    const outcome = await snsProvider(runContext(snsEnv())).send(mail(), meta(unique('h'), { eventType: '' }));
    expect(outcome).toMatchObject({ ok: false, permanent: true });
    expect(outcome.ok === false && outcome.message).toMatch(
      /^SNS Publish failed: InvalidParameter: Invalid parameter: MessageAttributes/,
    );
  });

  it('a topic name SNS would refuse (bad SNS_TOPIC_PREFIX) → permanent, without a request', async () => {
    const before = (await state()).requests.length;
    const outcome = await snsProvider(runContext(snsEnv({ SNS_TOPIC_PREFIX: 'bad.prefix.' }))).send(
      mail(),
      meta(unique('h')),
    );
    expect(outcome).toMatchObject({ ok: false, permanent: true });
    expect(outcome.ok === false && outcome.message).toContain('not a valid SNS topic name');
    expect((await state()).requests.length).toBe(before);
  });
});

describe('toSnsFilterPolicy', () => {
  // Exact event types ∧ one type condition → the types our evaluator says it holds for.
  const exactTypeRows: Array<[Condition, unknown[]]> = [
    [{ 'anything-but': 'order.paid' }, ['payment.failed', 'campaign.started']],
    [{ 'anything-but': ['order.paid', 'campaign.started'] }, ['payment.failed']],
    [{ 'anything-but': [1, 'order.paid'] }, ['payment.failed', 'campaign.started']],
    [{ 'anything-but': 7 }, ['order.paid', 'payment.failed', 'campaign.started']],
    [{ 'anything-but': { prefix: 'order.' } }, ['payment.failed', 'campaign.started']],
    [{ 'anything-but': { suffix: '.failed' } }, ['order.paid', 'campaign.started']],
    [{ exists: true }, ['order.paid', 'payment.failed', 'campaign.started']],
    [{ exists: false }, [{ exists: false }]],
  ];
  const cases: Array<{
    name: string;
    input: Parameters<typeof toSnsFilterPolicy>[0];
    policy: Record<string, unknown> | null;
    unsupportedKeys?: string[];
  }> = [
    { name: 'nothing → null', input: { eventTypes: null, filterPolicy: null }, policy: null },
    { name: 'empty eventTypes and policy → null', input: { eventTypes: [], filterPolicy: {} }, policy: null },
    { name: '"*" is all types → null', input: { eventTypes: ['*', 'order.paid'], filterPolicy: null }, policy: null },
    {
      name: 'exact event types',
      input: { eventTypes: ['order.paid', 'order.refunded'], filterPolicy: null },
      policy: { type: ['order.paid', 'order.refunded'] },
    },
    {
      name: 'prefix event types → {prefix: "x."}',
      input: { eventTypes: ['order.*', 'campaign.failed', 'order.*'], filterPolicy: null },
      policy: { type: [{ prefix: 'order.' }, 'campaign.failed'] },
    },
    {
      name: 'severity maps directly',
      input: { eventTypes: null, filterPolicy: { severity: ['critical', { 'anything-but': 'info' }] } },
      policy: { severity: ['critical', { 'anything-but': 'info' }] },
    },
    {
      name: 'type conditions map directly (SNS syntax)',
      input: {
        eventTypes: null,
        filterPolicy: {
          type: [{ prefix: 'order.' }, { suffix: '.failed' }, { 'anything-but': { prefix: 'campaign.' } }],
        },
      },
      policy: { type: [{ prefix: 'order.' }, { suffix: '.failed' }, { 'anything-but': { prefix: 'campaign.' } }] },
    },
    {
      name: 'data.* and source are reported unsupported and left out',
      input: {
        eventTypes: null,
        filterPolicy: { 'data.amount': [{ numeric: ['>=', 100] }], source: ['shop'], severity: ['warning'] },
      },
      policy: { severity: ['warning'] },
      unsupportedKeys: ['data.amount', 'source'],
    },
    {
      name: 'only data.* → null policy, key reported',
      input: { eventTypes: null, filterPolicy: { 'data.region': ['eu'] } },
      policy: null,
      unsupportedKeys: ['data.region'],
    },
    {
      name: 'criticalOnly → severity [critical]',
      input: { eventTypes: null, filterPolicy: null, criticalOnly: true },
      policy: { severity: ['critical'] },
    },
    {
      name: 'criticalOnly ∧ severity conditions: listed exactly',
      input: { eventTypes: null, filterPolicy: { severity: [{ 'anything-but': ['info'] }] }, criticalOnly: true },
      policy: { severity: ['critical'] },
    },
    {
      name: 'criticalOnly ∧ severity [info]: nothing can match',
      input: { eventTypes: null, filterPolicy: { severity: ['info'] }, criticalOnly: true },
      policy: { severity: [{ exists: false }] },
    },
    {
      name: 'severity with anything-but suffix (no SNS equivalent) → the severities it allows',
      input: { eventTypes: null, filterPolicy: { severity: [{ 'anything-but': { suffix: 'ing' } }] } },
      policy: { severity: ['info', 'critical'] },
    },
    {
      name: 'eventTypes ∧ type conditions are intersected',
      input: {
        eventTypes: ['order.*', 'payment.failed', 'campaign.started'],
        filterPolicy: { type: ['order.paid', 'payment.failed', { prefix: 'order.refund' }, { prefix: 'o' }] },
      },
      policy: { type: ['order.paid', { prefix: 'order.refund' }, { prefix: 'order.' }, 'payment.failed'] },
    },
    {
      name: 'eventTypes ∧ a suffix condition under a prefix: widened to the prefix, type reported',
      input: { eventTypes: ['order.*'], filterPolicy: { type: [{ suffix: '.paid' }] } },
      policy: { type: [{ prefix: 'order.' }] },
      unsupportedKeys: ['type'],
    },
    {
      name: 'eventTypes ∧ type with no overlap: never matches',
      input: { eventTypes: ['order.*'], filterPolicy: { type: ['payment.failed'] } },
      policy: { type: [{ exists: false }] },
    },
    {
      name: 'subscriptionId adds the targeting key',
      input: { eventTypes: null, filterPolicy: null, subscriptionId: 'esub_1' },
      policy: { subscription: ['esub_1'] },
    },
    {
      name: 'exact eventTypes ∧ a prefix condition',
      input: { eventTypes: ['order.paid', 'payment.failed'], filterPolicy: { type: [{ prefix: 'order.' }] } },
      policy: { type: ['order.paid'] },
    },
    {
      name: 'exact eventTypes ∧ a suffix condition (exact: nothing widened)',
      input: { eventTypes: ['order.paid', 'payment.failed'], filterPolicy: { type: [{ suffix: '.failed' }] } },
      policy: { type: ['payment.failed'] },
    },
    ...exactTypeRows.map(([condition, type]) => ({
      name: `exact eventTypes ∧ ${JSON.stringify(condition)}`,
      input: {
        eventTypes: ['order.paid', 'payment.failed', 'campaign.started'],
        filterPolicy: { type: [condition] },
      },
      policy: { type },
    })),
    {
      name: 'eventTypes prefix ∧ exists: true keeps the prefix; exists: false keeps nothing',
      input: { eventTypes: ['order.*', 'payment.*'], filterPolicy: { type: [{ exists: true }, { exists: false }] } },
      policy: { type: [{ prefix: 'order.' }, { prefix: 'payment.' }] },
    },
    {
      name: 'eventTypes prefix ∧ a string that is the prefix itself, or outside it: never matches',
      input: {
        eventTypes: ['order.*'],
        filterPolicy: { type: ['order.', 'order', 'payment.failed', { prefix: 'pay' }] },
      },
      policy: { type: [{ exists: false }] },
    },
    {
      name: 'eventTypes prefix ∧ anything-but: widened to the prefix, type reported',
      input: { eventTypes: ['order.*', 'payment.failed'], filterPolicy: { type: [{ 'anything-but': 'order.paid' }] } },
      policy: { type: [{ prefix: 'order.' }, 'payment.failed'] },
      unsupportedKeys: ['type'],
    },
    {
      name: 'eventTypes prefix and exact ∧ overlapping conditions: duplicates removed',
      input: { eventTypes: ['order.*', 'order.paid'], filterPolicy: { type: [{ prefix: 'order.' }, 'order.paid'] } },
      policy: { type: [{ prefix: 'order.' }, 'order.paid'] },
    },
    {
      name: 'empty eventTypes entries are ignored',
      input: { eventTypes: ['', 'order.paid'], filterPolicy: null },
      policy: { type: ['order.paid'] },
    },
    {
      name: 'only empty eventTypes entries → all types',
      input: { eventTypes: [''], filterPolicy: null },
      policy: null,
    },
    {
      name: '"*" with type conditions: the conditions alone',
      input: { eventTypes: ['*'], filterPolicy: { type: [{ exists: true }, { 'anything-but': ['a.b'] }] } },
      policy: { type: [{ exists: true }, { 'anything-but': ['a.b'] }] },
    },
    {
      name: 'type conditions SNS cannot evaluate on a string (anything-but suffix or numbers): left out, reported',
      input: { eventTypes: null, filterPolicy: { type: ['order.paid', { 'anything-but': { suffix: '.x' } }] } },
      policy: null,
      unsupportedKeys: ['type'],
    },
    {
      name: 'type anything-but with a number: left out, reported',
      input: { eventTypes: null, filterPolicy: { type: [{ 'anything-but': ['order.paid', 3] }] } },
      policy: null,
      unsupportedKeys: ['type'],
    },
    {
      name: 'severity exists maps directly',
      input: { eventTypes: null, filterPolicy: { severity: [{ exists: true }] } },
      policy: { severity: [{ exists: true }] },
    },
    {
      name: 'criticalOnly ∧ severity prefix',
      input: { eventTypes: null, filterPolicy: { severity: [{ prefix: 'crit' }] }, criticalOnly: true },
      policy: { severity: ['critical'] },
    },
    {
      name: 'criticalOnly ∧ severity exists: false',
      input: { eventTypes: null, filterPolicy: { severity: [{ exists: false }] }, criticalOnly: true },
      policy: { severity: [{ exists: false }] },
    },
    {
      name: 'criticalOnly ∧ severity exists: true',
      input: { eventTypes: null, filterPolicy: { severity: [{ exists: true }] }, criticalOnly: true },
      policy: { severity: ['critical'] },
    },
    {
      name: 'criticalOnly ∧ severity anything-but prefix / suffix',
      input: {
        eventTypes: null,
        filterPolicy: { severity: [{ 'anything-but': { prefix: 'w' } }, { 'anything-but': { suffix: 'al' } }] },
        criticalOnly: true,
      },
      policy: { severity: ['critical'] },
    },
    {
      name: 'criticalOnly ∧ severity suffix and info: nothing can match',
      input: { eventTypes: null, filterPolicy: { severity: [{ suffix: 'ing' }, 'info'] }, criticalOnly: true },
      policy: { severity: [{ exists: false }] },
    },
    {
      name: 'severity anything-but with numbers (no SNS equivalent) → the severities it allows',
      input: { eventTypes: null, filterPolicy: { severity: [{ 'anything-but': [1, 'info'] }, { 'anything-but': 2 }] } },
      policy: { severity: ['info', 'warning', 'critical'] },
    },
    {
      name: 'unsupported keys in policy order, then type',
      input: {
        eventTypes: ['order.*'],
        filterPolicy: { source: ['shop'], type: [{ suffix: '.paid' }], 'data.a': ['x'], severity: ['info'] },
        subscriptionId: 'esub_2',
      },
      policy: { type: [{ prefix: 'order.' }], severity: ['info'], subscription: ['esub_2'] },
      unsupportedKeys: ['source', 'data.a', 'type'],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      expect(toSnsFilterPolicy(c.input)).toEqual({ policy: c.policy, unsupportedKeys: c.unsupportedKeys ?? [] });
    });
  }

  it('too many combinations for SNS: type is dropped (wider), reported', () => {
    const types = Array.from({ length: 60 }, (_, i) => `order.t${i}`);
    const r = toSnsFilterPolicy({ eventTypes: types, filterPolicy: { severity: ['warning', 'critical', 'info'] } });
    expect(r).toEqual({ policy: { severity: ['warning', 'critical', 'info'] }, unsupportedKeys: ['type'] });
  });

  it('exactly 150 combinations (type × severity × subscription) are kept', () => {
    const types = Array.from({ length: 50 }, (_, i) => `order.t${i}`);
    const r = toSnsFilterPolicy({
      eventTypes: types,
      filterPolicy: { severity: ['warning', 'critical', 'info'] },
      subscriptionId: 'esub_3',
    });
    expect(r).toEqual({
      policy: { type: types, severity: ['warning', 'critical', 'info'], subscription: ['esub_3'] },
      unsupportedKeys: [],
    });
    const over = toSnsFilterPolicy({
      eventTypes: [...types, 'order.t50'],
      filterPolicy: { severity: ['warning', 'critical', 'info'] },
      subscriptionId: 'esub_3',
    });
    expect(over).toEqual({
      policy: { severity: ['warning', 'critical', 'info'], subscription: ['esub_3'] },
      unsupportedKeys: ['type'],
    });
  });

  it('type already widened and then dropped for the count: reported once', () => {
    const types = Array.from({ length: 60 }, (_, i) => `t${i}.*`);
    const r = toSnsFilterPolicy({
      eventTypes: types,
      filterPolicy: { type: [{ suffix: '.x' }], severity: ['warning', 'critical', 'info'] },
    });
    expect(r).toEqual({ policy: { severity: ['warning', 'critical', 'info'] }, unsupportedKeys: ['type'] });
  });
});

describe('SNS helpers', () => {
  it('xmlText decodes entities and CDATA, and handles attributes and self-closing tags', () => {
    const xml =
      '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">' +
      '<Error><Type>Sender</Type><Code>InvalidParameter</Code>' +
      '<Message>Invalid parameter: a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#233; &#x1F600; &bogus; &#xD800;' +
      '</Message></Error>' +
      '<Empty/><Raw><![CDATA[<not &amp; decoded>]]> &amp; after</Raw></ErrorResponse>';
    expect(xmlText(xml, 'Code')).toBe('InvalidParameter');
    expect(xmlText(xml, 'Message')).toBe('Invalid parameter: a & b <c> "d" \'e\' é 😀 &bogus; &#xD800;');
    expect(xmlText(xml, 'Empty')).toBe('');
    expect(xmlText(xml, 'Raw')).toBe('<not &amp; decoded> & after');
    expect(xmlText(xml, 'Missing')).toBeNull();
    expect(decodeXml('&amp;lt;')).toBe('&lt;');
    expect(
      xmlEntries(
        '<Attributes><entry><key>A&amp;B</key><value>1</value></entry>' +
          '<entry><key>Empty</key><value/></entry></Attributes>',
        'Attributes',
      ),
    ).toEqual({
      'A&B': '1',
      Empty: '',
    });
  });

  it('snsSubject: printable ASCII, < 100 characters, starting with a letter, number or punctuation', () => {
    expect(snsSubject('[Gharart] Critical: payment failed — shop')).toBe('[Gharart] Critical: payment failed - shop');
    expect(snsSubject('Café “quoted” … done')).toBe('Cafe "quoted" ... done');
    expect(snsSubject('line\r\nbreak\tand\u2028more')).toBe('line break and more');
    expect(snsSubject('नमस्ते shop')).toMatch(/^\?+ shop$/);
    expect(snsSubject('$$ price')).toBe('price');
    const long = snsSubject('x'.repeat(300));
    expect(long).toHaveLength(99);
    expect(long.endsWith('...')).toBe(true);
    expect(snsSubject('\u0000\u0001')).toBe('');
  });

  it('classifies errors: throttling, 5xx and network are transient; the rest permanent', () => {
    for (const code of ['Throttling', 'ServiceUnavailable', 'InternalError', 'NetworkError', 'Timeout']) {
      expect(isPermanentSnsError(code, 400)).toBe(false);
    }
    expect(isPermanentSnsError('Whatever', 503)).toBe(false);
    expect(isPermanentSnsError('Whatever', 429)).toBe(false);
    for (const code of [
      'InvalidParameter',
      'NotFound',
      'AuthorizationError',
      'InvalidClientTokenId',
      'SignatureDoesNotMatch',
    ]) {
      expect(isPermanentSnsError(code, code === 'NotFound' ? 404 : 400)).toBe(true);
    }
  });
});

// Last, so it sees every request of this file: everything the client sent was signed for `sns` in the region.
describe('SigV4', () => {
  it('every request the fake received carried a SigV4 Authorization scoped to the region and sns', async () => {
    const s = await state();
    const signed = s.requests.filter((r) => r.headers.authorization !== undefined);
    expect(signed.length).toBeGreaterThan(20);
    // The one unsigned request is the fake's own rejection test above.
    expect(s.requests.filter((r) => r.headers.authorization === undefined).map((r) => r.errorCode)).toEqual([
      'MissingAuthenticationToken',
    ]);
    for (const r of signed) {
      expect(r.headers.authorization).toMatch(
        new RegExp(
          `^AWS4-HMAC-SHA256 Credential=AKIA[A-Z0-9]+/\\d{8}/${REGION}/sns/aws4_request, ` +
            'SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$',
        ),
      );
      expect(r.headers.authorization).toContain('x-amz-date');
      expect(r.headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
    }
    // And the fake verified them: only the deliberately wrong secret failed its signature check.
    expect(signed.filter((r) => r.errorCode === 'SignatureDoesNotMatch')).toHaveLength(1);
  });
});
