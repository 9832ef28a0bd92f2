/**
 * Workerd-side helpers for `POST /v2/providers/sns/events`: SNS messages signed by the SNS notifier
 * (test/support/node/sns-notifier.ts, a real HTTP server on 127.0.0.1 holding a throwaway RSA key and serving its
 * certificate), the requests the notifier saw (to prove a URL was NOT fetched), and a deployment configured for SNS
 * against the SNS wire-format fake (test/support/node/sns-fake.ts: account 123456789012, the region of the signing
 * scope).
 */
import { expect, inject } from 'vitest';
import { callWithVars, unique } from './helpers.ts';
import { setupHandle, type TestHandle } from './pipeline-helpers.ts';

export const SNS_EVENTS_PATH = '/v2/providers/sns/events';
/** The account the SNS fake puts in every ARN. */
export const SNS_FAKE_ACCOUNT = '123456789012';
/**
 * The region every test talking to the SNS fake uses (test/email/sns.test.ts checks that every request the shared
 * fake received was signed for it).
 */
export const SNS_TEST_REGION = 'ap-south-1';

export type SnsMsg = Record<string, string>;

function port(name: 'snsNotifierPort' | 'snsFakePort'): number {
  const p = inject(name);
  if (!Number.isInteger(p) || p <= 0) throw new Error(`${name} was not provided: is the globalSetup registered?`);
  return p;
}

/** Base URL of the SNS notifier (signing certificate, SubscribeURL, `/_sign`). */
export const notifierBase = () => `http://127.0.0.1:${port('snsNotifierPort')}`;
/** Base URL of the SNS API fake. */
export const snsFakeBase = () => `http://127.0.0.1:${port('snsFakePort')}`;

/**
 * A deployment with EMAIL_PROVIDER=sns against the fake, whose certificates and SubscribeURLs may come from the
 * notifier (http to loopback is allowed in tests only).
 */
export function snsDeployment(prefix: string): Partial<Env> {
  return {
    EMAIL_PROVIDER: 'sns',
    SNS_API_URL: `${snsFakeBase()}/`,
    AWS_REGION: SNS_TEST_REGION,
    AWS_ACCOUNT_ID: SNS_FAKE_ACCOUNT,
    SNS_TOPIC_PREFIX: prefix,
    AWS_ACCESS_KEY_ID: 'AKIAFAKESNS000000001',
    AWS_SECRET_ACCESS_KEY: 'fake/SNS+secret/key0123456789abcdefghij',
    SNS_CERT_HOSTS: '127.0.0.1',
    ALLOW_INSECURE_WEBHOOK_TARGETS: 'true',
  };
}

/** The message, signed by the notifier (SigningCertURL, unless given, and Signature added). */
export async function signSns(message: SnsMsg): Promise<SnsMsg> {
  const res = await fetch(`${notifierBase()}/_sign`, { method: 'POST', body: JSON.stringify(message) });
  expect(res.status).toBe(200);
  return (await res.json()) as SnsMsg;
}

/** Every request the notifier received for `path`. */
export async function notifierRequests(path: string): Promise<Array<{ method: string; path: string; query: string }>> {
  const res = await fetch(`${notifierBase()}/_requests?path=${encodeURIComponent(path)}`);
  return (await res.json()) as Array<{ method: string; path: string; query: string }>;
}

/** Posts a message as SNS does: JSON as `text/plain`, with `x-amz-sns-message-type`. */
export function postSns(message: SnsMsg, vars: Partial<Env>): Promise<Response> {
  return callWithVars(vars, 'POST', SNS_EVENTS_PATH, {
    rawBody: JSON.stringify(message),
    headers: { 'content-type': 'text/plain; charset=UTF-8', 'x-amz-sns-message-type': message.Type! },
  });
}

/** An SES permanent bounce of `emails`, as the Message of an SNS Notification from `topicArn` (unsigned). */
export function sesBounce(topicArn: string, emails: string[]): SnsMsg {
  return {
    Type: 'Notification',
    MessageId: crypto.randomUUID(),
    TopicArn: topicArn,
    Message: JSON.stringify({
      notificationType: 'Bounce',
      bounce: {
        bounceType: 'Permanent',
        bounceSubType: 'General',
        bouncedRecipients: emails.map((emailAddress) => ({ emailAddress, diagnosticCode: 'smtp; 550 5.1.1 unknown' })),
      },
      mail: { messageId: `ses-${crypto.randomUUID()}`, source: 'notifications@gharart.com' },
    }),
    Timestamp: new Date().toISOString(),
    SignatureVersion: '2',
  };
}

/** A SubscriptionConfirmation for `topicArn` whose SubscribeURL is on the notifier and carries `token` (unsigned). */
export function snsConfirmation(topicArn: string, token: string): SnsMsg {
  const query = `Action=ConfirmSubscription&TopicArn=${encodeURIComponent(topicArn)}&Token=${token}`;
  return {
    Type: 'SubscriptionConfirmation',
    MessageId: crypto.randomUUID(),
    Token: token,
    TopicArn: topicArn,
    Message: `You have chosen to subscribe to the topic ${topicArn}.`,
    SubscribeURL: `${notifierBase()}/confirm?${query}`,
    Timestamp: new Date().toISOString(),
    SignatureVersion: '2',
  };
}

/**
 * A handle with an SNS email subscription made through the API, so the service created (and recorded) the handle's
 * topic at the SNS fake; `topicArn` is that topic.
 */
export async function handleWithSnsTopic(vars: Partial<Env>): Promise<TestHandle & { topicArn: string }> {
  const h = await setupHandle();
  const res = await callWithVars(vars, 'POST', `/v2/handles/${h.handle}/notifications/email-subscriptions`, {
    token: h.token,
    body: { email: `${unique('sns-topic')}@example.com` },
  });
  expect(res.status, await res.clone().text()).toBe(201);
  const topicArn = `arn:aws:sns:${SNS_TEST_REGION}:${SNS_FAKE_ACCOUNT}:${vars.SNS_TOPIC_PREFIX}${h.handle}`;
  return { ...h, topicArn };
}

/** Topics that are not ours though they look it: the same name in a stranger's account and in another region, and
 * a name under our prefix in our account that this deployment never created. */
export function strangerTopics(ours: string, prefix: string): string[] {
  const name = ours.split(':').at(-1)!;
  return [
    `arn:aws:sns:${SNS_TEST_REGION}:999999999999:${name}`,
    `arn:aws:sns:us-east-1:${SNS_FAKE_ACCOUNT}:${name}`,
    `arn:aws:sns:${SNS_TEST_REGION}:${SNS_FAKE_ACCOUNT}:${prefix}${unique('never')}`,
  ];
}
