/**
 * `POST /v2/providers/sns/events`: Amazon SNS's HTTP(S) delivery of SES bounce and complaint feedback.
 *
 * Messages are signed by the SNS notifier (test/support/node/sns-notifier.ts, a real HTTP server on 127.0.0.1 started
 * by the globalSetup, port `inject('snsNotifierPort')`): it holds a throwaway RSA key whose self-signed certificate
 * it serves, and signs with node:crypto — independently of the Worker's verifier. The Worker accepts the certificate
 * only because these tests set SNS_CERT_HOSTS=127.0.0.1 and ALLOW_INSECURE_WEBHOOK_TARGETS=true (http to loopback).
 */

import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { canonicalString, hostMatches, subjectPublicKeyInfo, urlProblem } from '../../src/email/sns-signature.ts';
import { ensureFeedbackTopic } from '../../src/email/sns-topics.ts';
import { config } from '../../src/env.ts';
import { newId } from '../../src/lib/ids.ts';
import { anyShard, callWithVars, expectProblem, shardOf, unique } from '../support/helpers.ts';
import { assertMatchesDocument } from '../support/openapi-check.ts';
import { setupHandle } from '../support/pipeline-helpers.ts';
import { SNS_FAKE_ACCOUNT, SNS_TEST_REGION, snsDeployment } from '../support/sns-messages.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Port of the SNS notifier on 127.0.0.1 (test/support/node/sns-notifier.ts). */
    snsNotifierPort: number;
  }
}

const PATH = '/v2/providers/sns/events';
const CERT_PATH = '/SimpleNotificationService-test.pem';
/** EMAIL_PROVIDER=sns against the SNS fake; certificates and SubscribeURLs may come from the notifier. */
const VARS: Partial<Env> = snsDeployment('gn-');
/** The SES feedback topic this deployment creates (as the minute job does, in `beforeAll`): messages come from it. */
const TOPIC = `arn:aws:sns:${SNS_TEST_REGION}:${SNS_FAKE_ACCOUNT}:gn-ses_feedback`;

beforeAll(async () => {
  const deployment = { ...env, ...VARS } as Env;
  await ensureFeedbackTopic(deployment, config(deployment).aws);
  const ours = await env.DB.prepare('SELECT arn FROM sns_topics WHERE arn = ?1').bind(TOPIC).first();
  expect(ours, 'the feedback topic is recorded').not.toBeNull();
});

function notifier(): string {
  const port = inject('snsNotifierPort');
  if (!Number.isInteger(port) || port <= 0)
    throw new Error('snsNotifierPort was not provided: is the globalSetup registered?');
  return `http://127.0.0.1:${port}`;
}

type Msg = Record<string, string>;

/** The message, signed by the notifier (SigningCertURL and Signature added). */
async function sign(message: Msg): Promise<Msg> {
  const res = await fetch(`${notifier()}/_sign`, { method: 'POST', body: JSON.stringify(message) });
  expect(res.status).toBe(200);
  return (await res.json()) as Msg;
}

async function requestsFor(path: string): Promise<Array<{ method: string; path: string; query: string }>> {
  const res = await fetch(`${notifier()}/_requests?path=${encodeURIComponent(path)}`);
  return (await res.json()) as Array<{ method: string; path: string; query: string }>;
}

function post(message: Msg | string, vars: Partial<Env> = {}) {
  const body = typeof message === 'string' ? message : JSON.stringify(message);
  const type = typeof message === 'string' ? 'Notification' : message.Type!;
  return callWithVars({ ...VARS, ...vars }, 'POST', PATH, {
    rawBody: body,
    headers: { 'content-type': 'text/plain; charset=UTF-8', 'x-amz-sns-message-type': type },
  });
}

async function postOk(message: Msg, vars: Partial<Env> = {}) {
  const res = await post(message, vars);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const body = JSON.parse(text);
  await assertMatchesDocument('POST', PATH, 200, body);
  return body as { received: true; confirmed?: boolean; ignored?: string };
}

function notification(feedback: unknown, overrides: Msg = {}): Msg {
  return {
    Type: 'Notification',
    MessageId: crypto.randomUUID(),
    TopicArn: TOPIC,
    Message: JSON.stringify(feedback),
    Timestamp: new Date().toISOString(),
    SignatureVersion: '1',
    UnsubscribeURL: `${notifier()}/unsubscribe?SubscriptionArn=${TOPIC}:x`,
    ...overrides,
  };
}

const sesMail = {
  messageId: '0100018f-ses-message',
  source: 'notifications@gharart.com',
  timestamp: new Date().toISOString(),
};

const permanentBounce = (emails: string[], diagnosticCode?: string) => ({
  notificationType: 'Bounce',
  bounce: {
    bounceType: 'Permanent',
    bounceSubType: 'General',
    bouncedRecipients: emails.map((emailAddress) => ({ emailAddress, ...(diagnosticCode ? { diagnosticCode } : {}) })),
    timestamp: new Date().toISOString(),
    feedbackId: 'fb-1',
  },
  mail: sesMail,
});

const complaint = (emails: string[]) => ({
  notificationType: 'Complaint',
  complaint: {
    complainedRecipients: emails.map((emailAddress) => ({ emailAddress })),
    complaintFeedbackType: 'abuse',
    feedbackId: 'fb-2',
  },
  mail: sesMail,
});

const address = () => `${unique('sns')}@example.com`;

async function insertSubscription(handle: string, email: string): Promise<string> {
  const id = newId('esub');
  const now = new Date().toISOString();
  await (await shardOf(handle))
    .prepare(
      `INSERT INTO email_subscriptions
       (id, handle, kind, email, email_normalized, status, confirmed_at, provider, created_at, updated_at)
     VALUES (?1, ?2, 'standard', ?3, ?4, 'active', ?5, 'sns', ?5, ?5)`,
    )
    .bind(id, handle, email, email.trim().toLowerCase(), now)
    .run();
  return id;
}

async function subscriptionRow(id: string): Promise<{ status: string; status_reason: string | null }> {
  const row = await anyShard
    .prepare('SELECT status, status_reason FROM email_subscriptions WHERE id = ?1')
    .bind(id)
    .first<{ status: string; status_reason: string | null }>();
  if (!row) throw new Error(`no subscription ${id}`);
  return row;
}

describe('SNS signature helpers', () => {
  it('builds the string to sign as AWS documents it (Subject only when present)', () => {
    const base = { Message: 'm', MessageId: 'id', Timestamp: 't', TopicArn: 'arn', Type: 'Notification' };
    expect(canonicalString(base)).toBe('Message\nm\nMessageId\nid\nTimestamp\nt\nTopicArn\narn\nType\nNotification\n');
    expect(canonicalString({ ...base, Subject: 's' })).toBe(
      'Message\nm\nMessageId\nid\nSubject\ns\nTimestamp\nt\nTopicArn\narn\nType\nNotification\n',
    );
    expect(canonicalString({ ...base, Type: 'SubscriptionConfirmation', SubscribeURL: 'u', Token: 'k' })).toBe(
      'Message\nm\nMessageId\nid\nSubscribeURL\nu\nTimestamp\nt\nToken\nk\n' +
        'TopicArn\narn\nType\nSubscriptionConfirmation\n',
    );
    expect(canonicalString({ ...base, Type: 'SubscriptionConfirmation' })).toBeNull();
    expect(canonicalString({ ...base, Type: 'Other' })).toBeNull();
  });

  it('host patterns: `*` is exactly one DNS label', () => {
    expect(hostMatches('sns.eu-west-1.amazonaws.com', 'sns.*.amazonaws.com')).toBe(true);
    expect(hostMatches('sns.evil.example.amazonaws.com', 'sns.*.amazonaws.com')).toBe(false);
    expect(hostMatches('sns.amazonaws.com', 'sns.*.amazonaws.com')).toBe(false);
    expect(hostMatches('sns.eu-west-1.amazonaws.com.evil.com', 'sns.*.amazonaws.com')).toBe(false);
    const prod = { hosts: ['sns.*.amazonaws.com'], allowInsecure: false };
    expect(
      urlProblem('https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem', prod, { pem: true }),
    ).toBeNull();
    expect(
      urlProblem('http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem', prod, { pem: true }),
    ).toMatch(/https/);
    expect(urlProblem('https://sns.us-east-1.amazonaws.com/cert.txt', prod, { pem: true })).toMatch(/pem/);
    expect(urlProblem('https://sns.us-east-1.amazonaws.com:8443/a.pem', prod, { pem: true })).not.toBeNull();
    // Production: http to loopback is refused even when the host is listed.
    expect(urlProblem('http://127.0.0.1/a.pem', { hosts: ['127.0.0.1'], allowInsecure: false }, { pem: true })).toMatch(
      /https/,
    );
    expect(
      urlProblem('http://127.0.0.1/a.pem', { hosts: ['127.0.0.1'], allowInsecure: true }, { pem: true }),
    ).toBeNull();
  });

  it("extracts the SubjectPublicKeyInfo from the notifier's certificate, and WebCrypto imports it", async () => {
    const pem = await (await fetch(`${notifier()}${CERT_PATH}`)).text();
    const der = Uint8Array.from(atob(pem.replace(/-----[^-]+-----|\s/g, '')), (ch) => ch.charCodeAt(0));
    const spki = subjectPublicKeyInfo(der);
    const key = await crypto.subtle.importKey('spki', spki, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, [
      'verify',
    ]);
    expect((key.algorithm as { modulusLength?: number }).modulusLength).toBe(2048);
    expect(() => subjectPublicKeyInfo(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]))).toThrow();
  });
});

describe('POST /v2/providers/sns/events', () => {
  it('v1 (SHA1withRSA) permanent bounce → each subscription of the address (any handle) suppressed', async () => {
    const h = await setupHandle();
    const h2 = await setupHandle();
    const to = address();
    const s1 = await insertSubscription(h.handle, to);
    const s2 = await insertSubscription(h2.handle, to.toUpperCase());
    const other = await insertSubscription(h.handle, address());
    const msg = await sign(
      notification(permanentBounce([to], 'smtp; 550 5.1.1 user unknown'), { SignatureVersion: '1' }),
    );
    expect(await postOk(msg)).toEqual({ received: true });
    for (const s of [s1, s2]) {
      const row = await subscriptionRow(s);
      expect(row.status).toBe('suppressed');
      expect(row.status_reason).toMatch(/^Permanent bounce reported by ses: smtp; 550 5\.1\.1 user unknown/);
    }
    expect((await subscriptionRow(other)).status).toBe('active');
  });

  it('v2 (SHA256withRSA) bounce with a Subject; no diagnosticCode: the bounceSubType is the reason', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    const msg = await sign(
      notification(permanentBounce([to]), { SignatureVersion: '2', Subject: 'Amazon SES Email Event Notification' }),
    );
    expect(await postOk(msg)).toEqual({ received: true });
    const row = await subscriptionRow(s);
    expect(row.status).toBe('suppressed');
    expect(row.status_reason).toMatch(/reported by ses: General/);
  });

  it('complaint → each complained recipient suppressed', async () => {
    const h = await setupHandle();
    const a = address();
    const b = address();
    const sa = await insertSubscription(h.handle, a);
    const sb = await insertSubscription(h.handle, b);
    const msg = await sign(notification(complaint([a, b]), { SignatureVersion: '2' }));
    expect(await postOk(msg)).toEqual({ received: true });
    for (const s of [sa, sb]) {
      const row = await subscriptionRow(s);
      expect(row.status).toBe('suppressed');
      expect(row.status_reason).toMatch(/^Spam complaint reported by ses: abuse/);
    }
  });

  it('transient and undetermined bounces, and non-SES messages, are acknowledged and change nothing', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    for (const bounceType of ['Transient', 'Undetermined']) {
      const feedback = permanentBounce([to], '452 mailbox full');
      feedback.bounce.bounceType = bounceType;
      const body = await postOk(await sign(notification(feedback)));
      expect(body.ignored).toMatch(new RegExp(bounceType));
    }
    const delivery = await postOk(await sign(notification({ notificationType: 'Delivery', mail: sesMail })));
    expect(delivery).toMatchObject({ ignored: expect.stringMatching(/Delivery/) });
    const plain = await postOk(await sign(notification('not SES feedback')));
    expect(plain.ignored).toBe('The notification is not SES bounce or complaint feedback.');
    expect(await subscriptionRow(s)).toEqual({ status: 'active', status_reason: null });
  });

  it('SES feedback read defensively: event publishing, display names, the mail tag, odd shapes', async () => {
    const h = await setupHandle();
    const a = address();
    const sa = await insertSubscription(h.handle, a);
    // SES event publishing says eventType; recipients may carry a display name; junk entries are skipped.
    const published = {
      eventType: 'Bounce',
      bounce: {
        bounceType: 'Permanent',
        bouncedRecipients: [
          { emailAddress: `Some One <${a}>` },
          { emailAddress: a.toUpperCase() },
          'junk',
          null,
          { emailAddress: 5 },
          { emailAddress: 'no-at-sign' },
        ],
      },
      mail: { messageId: '  m-1  ' },
    };
    expect(await postOk(await sign(notification(published)))).toEqual({ received: true });
    expect(await subscriptionRow(sa)).toEqual({
      status: 'suppressed',
      status_reason: "Permanent bounce reported by ses: the recipient's server rejected the mail (SES message   m-1  )",
    });

    // A complaint narrowed to the subscription named by the subscription_id mail tag.
    const b = address();
    const tagged = await insertSubscription(h.handle, b);
    const untagged = await insertSubscription((await setupHandle()).handle, b);
    const narrowed = {
      notificationType: 'Complaint',
      complaint: { complainedRecipients: [{ emailAddress: b }] },
      mail: { messageId: 'm-2', tags: { subscription_id: [tagged] } },
    };
    expect(await postOk(await sign(notification(narrowed)))).toEqual({ received: true });
    expect(await subscriptionRow(tagged)).toEqual({
      status: 'suppressed',
      status_reason: 'Spam complaint reported by ses: the recipient marked the mail as spam (SES message m-2)',
    });
    expect((await subscriptionRow(untagged)).status).toBe('active');

    // Only the first 50 recipient entries are read, junk included.
    const c = address();
    const sc = await insertSubscription(h.handle, c);
    const flood = permanentBounce([]);
    flood.bounce.bouncedRecipients = [
      ...Array.from({ length: 50 }, () => ({ emailAddress: 'junk' })),
      { emailAddress: c },
    ];
    expect(await postOk(await sign(notification(flood)))).toEqual({ received: true });
    expect((await subscriptionRow(sc)).status).toBe('active');

    const ignored = async (feedback: unknown) => (await postOk(await sign(notification(feedback)))).ignored;
    expect(await ignored({ notificationType: 'Bounce', bounce: null, mail: 'x' })).toBe(
      'A unspecified bounce is not permanent: nothing is suppressed.',
    );
    expect(await ignored({ notificationType: 'Bounce', bounce: { bounceType: 7 } })).toBe(
      'A unspecified bounce is not permanent: nothing is suppressed.',
    );
    expect(await ignored({ notificationType: ' Delivery ', mail: sesMail })).toBe(
      'SES Delivery notifications are not handled.',
    );
    expect(await ignored({ notificationType: '', eventType: 'Open' })).toBe('SES Open notifications are not handled.');
    expect(await ignored([{ notificationType: 'Bounce' }])).toBe(
      'The notification is not SES bounce or complaint feedback.',
    );
    expect(await ignored('not SES feedback')).toBe('The notification is not SES bounce or complaint feedback.');
  });

  it('a tampered Message (the signature no longer matches) → 401, nothing changes', async () => {
    const h = await setupHandle();
    const to = address();
    const victim = address();
    const s = await insertSubscription(h.handle, victim);
    for (const version of ['1', '2']) {
      const msg = await sign(notification(permanentBounce([to], '550'), { SignatureVersion: version }));
      const tampered = { ...msg, Message: msg.Message!.replace(to, victim) };
      const problem = await expectProblem(await post(tampered), 401);
      expect(problem.detail).toMatch(/signature/i);
      // The signature of one version does not verify as the other.
      await expectProblem(
        await post({
          ...msg,
          Message: msg.Message!.replace(to, victim),
          SignatureVersion: version === '1' ? '2' : '1',
        }),
        401,
      );
    }
    const msg = await sign(notification(permanentBounce([victim], '550')));
    await expectProblem(await post({ ...msg, Signature: '' }), 401);
    const { Signature: _omitted, ...unsigned } = msg;
    await expectProblem(await post(unsigned as Msg), 401);
    await expectProblem(await post({ ...msg, SignatureVersion: '3' }), 401);
    expect((await subscriptionRow(s)).status).toBe('active');
  });

  it('a SigningCertURL outside the allow-list → 401, and the URL is never fetched', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    const port = inject('snsNotifierPort');
    const evilPath = `/SimpleNotificationService-${unique('evil')}.pem`;
    const msg = await sign(notification(permanentBounce([to], '550')));
    // SigningCertURL is not part of the signed string: an attacker can change it freely.
    for (const certUrl of [`http://localhost:${port}${evilPath}`, `http://127.0.0.2:${port}${evilPath}`]) {
      const problem = await expectProblem(await post({ ...msg, SigningCertURL: certUrl }), 401);
      expect(problem.detail).toMatch(/SigningCertURL/);
    }
    // On an allowed host but not a .pem, and plain http when insecure targets are not allowed (production).
    await expectProblem(await post({ ...msg, SigningCertURL: `http://127.0.0.1:${port}/cert.txt` }), 401);
    await expectProblem(await post(msg, { ALLOW_INSECURE_WEBHOOK_TARGETS: 'false' }), 401);
    // The default allow-list (sns.*.amazonaws.com) does not include the notifier.
    await expectProblem(await post(msg, { SNS_CERT_HOSTS: undefined as unknown as string }), 401);
    expect(await requestsFor(evilPath)).toEqual([]);
    expect(await requestsFor('/cert.txt')).toEqual([]);
    expect((await subscriptionRow(s)).status).toBe('active');
  });

  it('a Timestamp more than 1 hour old → 401 even with a correct signature', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    const stale = await sign(
      notification(permanentBounce([to], '550'), { Timestamp: new Date(Date.now() - 61 * 60 * 1000).toISOString() }),
    );
    const problem = await expectProblem(await post(stale), 401);
    expect(problem.detail).toMatch(/1 hour/);
    const garbage = await sign(notification(permanentBounce([to], '550'), { Timestamp: 'yesterday' }));
    await expectProblem(await post(garbage), 401);
    expect((await subscriptionRow(s)).status).toBe('active');
    // 50 minutes old is still accepted.
    const recent = await sign(
      notification(permanentBounce([to], '550'), { Timestamp: new Date(Date.now() - 50 * 60 * 1000).toISOString() }),
    );
    expect(await postOk(recent)).toEqual({ received: true });
    expect((await subscriptionRow(s)).status).toBe('suppressed');
  });

  it('a correctly signed message from a topic that is not ours → 403, nothing changes', async () => {
    const h = await setupHandle();
    const to = address();
    const s = await insertSubscription(h.handle, to);
    const msg = await sign(
      notification(permanentBounce([to], '550'), { TopicArn: 'arn:aws:sns:eu-west-1:999999999999:someone-else' }),
    );
    const problem = await expectProblem(await post(msg), 403);
    expect(problem.detail).toMatch(/topic/);
    // A familiar name is not enough: under the prefix `someone-` the topic name fits, but this deployment never
    // created it (nor is it in our account).
    await expectProblem(await post(msg, { SNS_TOPIC_PREFIX: 'someone-' }), 403);
    expect((await subscriptionRow(s)).status).toBe('active');
  });

  it('SubscriptionConfirmation → the SubscribeURL is visited once → 200', async () => {
    const token = unique('tok');
    const query = `Action=ConfirmSubscription&TopicArn=${encodeURIComponent(TOPIC)}&Token=${token}`;
    const subscribeUrl = `${notifier()}/confirm?${query}`;
    const msg = await sign({
      Type: 'SubscriptionConfirmation',
      MessageId: crypto.randomUUID(),
      Token: token,
      TopicArn: TOPIC,
      Message:
        `You have chosen to subscribe to the topic ${TOPIC}.\n` +
        'To confirm the subscription, visit the SubscribeURL included in this message.',
      SubscribeURL: subscribeUrl,
      Timestamp: new Date().toISOString(),
      SignatureVersion: '2',
    });
    expect(await postOk(msg)).toEqual({ received: true, confirmed: true });
    const visits = (await requestsFor('/confirm')).filter((r) => r.query.includes(token));
    expect(visits).toHaveLength(1);
    expect(visits[0]!.method).toBe('GET');

    // A tampered SubscribeURL breaks the signature: never visited.
    const token2 = unique('tok');
    await expectProblem(await post({ ...msg, SubscribeURL: subscribeUrl.replace(token, token2) }), 401);
    expect((await requestsFor('/confirm')).filter((r) => r.query.includes(token2))).toEqual([]);
  });

  it('SubscriptionConfirmation: a refused SubscribeURL → 403; one not answering 2xx → 503 (SNS retries)', async () => {
    const port = inject('snsNotifierPort');
    const confirmation = (subscribeUrl: string) =>
      sign({
        Type: 'SubscriptionConfirmation',
        MessageId: crypto.randomUUID(),
        Token: 'tok',
        TopicArn: TOPIC,
        Message: 'You have chosen to subscribe.',
        SubscribeURL: subscribeUrl,
        Timestamp: new Date().toISOString(),
        SignatureVersion: '2',
      });
    // Correctly signed, but the SubscribeURL is off the allow-list: never visited.
    const offList = unique('off');
    const refused = await expectProblem(await post(await confirmation(`http://127.0.0.2:${port}/${offList}`)), 403);
    expect(refused.detail).toMatch(/^The SubscribeURL is not allowed: .+\.$/);
    expect(await requestsFor(`/${offList}`)).toEqual([]);
    // Allowed, visited, but not a 2xx.
    const missing = unique('missing');
    const answered = await expectProblem(await post(await confirmation(`http://127.0.0.1:${port}/${missing}`)), 503);
    expect(answered.detail).toBe('The SubscribeURL answered 404; SNS will retry.');
    expect(await requestsFor(`/${missing}`)).toHaveLength(1);
  });

  it('the body guard lets text/plain through only on this path; malformed JSON is 400', async () => {
    await expectProblem(await post('{"Type":'), 400);
    const res = await callWithVars(VARS, 'POST', '/v2/providers/resend/events', {
      rawBody: '{}',
      headers: { 'content-type': 'text/plain; charset=UTF-8', 'content-length': '2' },
    });
    await expectProblem(res, 415);
  });
});
