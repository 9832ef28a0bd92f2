/**
 * Where SNS feedback may come from (docs/design.md#email): `POST /v2/providers/sns/events` listens only to the topics
 * this deployment created (recorded when CreateTopic answered) in AWS_ACCOUNT_ID and AWS_REGION, only when
 * EMAIL_PROVIDER=sns, and never tells its caller whether an address is subscribed. A suppressed owner default email
 * raises a critical `email.owner_default_suppressed` alert.
 *
 * Anyone can make SNS sign a message for a topic of their own, so the forged messages here are signed correctly (by
 * the SNS notifier, test/support/node/sns-notifier.ts); what differs is the TopicArn. Our topics are created through
 * the real paths (a subscription through the API, the minute job) against the SNS fake (test/support/node/sns-fake.ts).
 */

import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { reconcileSnsSubscriptions } from '../../src/jobs/reconcile-email.ts';
import { newId } from '../../src/lib/ids.ts';
import { anyShard, callWithVars, expectProblem, shardOf, unique } from '../support/helpers.ts';
import { setupHandle } from '../support/pipeline-helpers.ts';
import {
  handleWithSnsTopic,
  notifierBase,
  notifierRequests,
  postSns,
  SNS_FAKE_ACCOUNT,
  SNS_TEST_REGION,
  sesBounce,
  signSns,
  snsConfirmation,
  snsDeployment,
  strangerTopics as strangerTopicsOf,
} from '../support/sns-messages.ts';

const PREFIX = 'gn-origin-';
const VARS = snsDeployment(PREFIX);
const address = () => `${unique('origin')}@example.com`;

const handleWithTopic = () => handleWithSnsTopic(VARS);
const strangerTopics = (ours: string) => strangerTopicsOf(ours, PREFIX);

async function insertSubscription(
  handle: string,
  email: string,
  kind: 'standard' | 'owner_default' = 'standard',
): Promise<string> {
  const id = newId('esub');
  const now = new Date().toISOString();
  await (await shardOf(handle))
    .prepare(
      `INSERT INTO email_subscriptions
       (id, handle, kind, email, email_normalized, status, confirmed_at, provider, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?4, 'active', ?5, 'sns', ?5, ?5)`,
    )
    .bind(id, handle, kind, email.toLowerCase(), now)
    .run();
  return id;
}

const statusOf = async (id: string) =>
  (await anyShard.prepare('SELECT status FROM email_subscriptions WHERE id = ?1').bind(id).first<{ status: string }>())
    ?.status;

const alertsOf = async (handle: string) =>
  (
    await anyShard
      .prepare(
        `SELECT id, severity, status, data FROM notifications
       WHERE handle = ?1 AND type = 'email.owner_default_suppressed' ORDER BY id`,
      )
      .bind(handle)
      .all<{ id: string; severity: string; status: string; data: string }>()
  ).results;

describe('SNS feedback: only from our own topics', () => {
  it("forged but validly signed bounces from a stranger's account, another region or a topic we never created are refused (403) and suppress nothing", async () => {
    const h = await handleWithTopic();
    const victim = address();
    const sub = await insertSubscription(h.handle, victim);
    for (const topicArn of strangerTopics(h.topicArn)) {
      const problem = await expectProblem(await postSns(await signSns(sesBounce(topicArn, [victim])), VARS), 403);
      expect(problem.detail).toMatch(/topic/);
    }
    expect(await statusOf(sub)).toBe('active');
    // The very same bounce from the topic the service created is accepted: the refusals above are about the topic.
    const ok = await postSns(await signSns(sesBounce(h.topicArn, [victim])), VARS);
    expect(ok.status, await ok.clone().text()).toBe(200);
    expect(await statusOf(sub)).toBe('suppressed');
  });

  it('a SubscriptionConfirmation for a topic this deployment did not create is refused and its SubscribeURL never fetched', async () => {
    const h = await handleWithTopic();
    for (const topicArn of strangerTopics(h.topicArn)) {
      const token = unique('tok');
      await expectProblem(await postSns(await signSns(snsConfirmation(topicArn, token)), VARS), 403);
      expect((await notifierRequests('/confirm')).filter((r) => r.query.includes(token))).toEqual([]);
    }
    // Ours is confirmed: visited once.
    const token = unique('tok');
    const res = await postSns(await signSns(snsConfirmation(h.topicArn, token)), VARS);
    expect(res.status, await res.clone().text()).toBe(200);
    expect((await notifierRequests('/confirm')).filter((r) => r.query.includes(token))).toHaveLength(1);
  });

  it('the SES feedback topic is created (and recorded) by the minute job; bounces from it are accepted', async () => {
    const prefix = `gn-${unique('fb').slice(-8).toLowerCase()}-`;
    const vars = snsDeployment(prefix);
    await reconcileSnsSubscriptions({ ...env, ...vars } as Env, new Date());
    const topicArn = `arn:aws:sns:${SNS_TEST_REGION}:${SNS_FAKE_ACCOUNT}:${prefix}ses_feedback`;
    const state = (await (await fetch(`${vars.SNS_API_URL}_control/state`)).json()) as { topics: { arn: string }[] };
    expect(state.topics.map((t) => t.arn)).toContain(topicArn);
    const h = await setupHandle();
    const to = address();
    const sub = await insertSubscription(h.handle, to);
    const res = await postSns(await signSns(sesBounce(topicArn, [to])), vars);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await statusOf(sub)).toBe('suppressed');
  });

  it('a topic CreateTopic answers outside AWS_ACCOUNT_ID is never recorded: the subscription says what to configure', async () => {
    const h = await setupHandle();
    const vars = { ...VARS, AWS_ACCOUNT_ID: '111111111111' };
    const res = await callWithVars(vars, 'POST', `/v2/handles/${h.handle}/notifications/email-subscriptions`, {
      token: h.token,
      body: { email: address() },
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { statusReason: string };
    expect(body.statusReason).toMatch(/in account 123456789012, not AWS_ACCOUNT_ID 111111111111/);
    const topicArn = `arn:aws:sns:${SNS_TEST_REGION}:${SNS_FAKE_ACCOUNT}:${PREFIX}${h.handle}`;
    expect(await env.DB.prepare('SELECT 1 FROM sns_topics WHERE arn = ?1').bind(topicArn).first()).toBeNull();
  });

  it('a confirmation from our topic whose SubscribeURL names another topic is refused, never visited', async () => {
    const h = await handleWithTopic();
    const [stranger] = strangerTopics(h.topicArn);
    const token = unique('tok');
    const forged = { ...snsConfirmation(stranger!, token), TopicArn: h.topicArn };
    await expectProblem(await postSns(await signSns(forged), VARS), 403);
    expect((await notifierRequests('/confirm')).filter((r) => r.query.includes(token))).toEqual([]);
  });

  it('without EMAIL_PROVIDER=sns the route answers 404 and fetches nothing (no certificate, no SubscribeURL)', async () => {
    const h = await handleWithTopic();
    const certPath = `/SimpleNotificationService-${unique('unconfigured')}.pem`;
    const token = unique('tok');
    const signed = await signSns({
      ...snsConfirmation(h.topicArn, token),
      SigningCertURL: `${notifierBase()}${certPath}`,
    });
    for (const provider of ['cloudflare', 'resend', '']) {
      await expectProblem(await postSns(signed, { ...VARS, EMAIL_PROVIDER: provider }), 404);
    }
    expect(await notifierRequests(certPath)).toEqual([]);
    expect((await notifierRequests('/confirm')).filter((r) => r.query.includes(token))).toEqual([]);
  });

  it('the answer to a bounce of a subscribed address and of an unknown one is identical (status and body)', async () => {
    const h = await handleWithTopic();
    const known = address();
    const sub = await insertSubscription(h.handle, known);
    const answers = [];
    for (const email of [known, address()]) {
      const res = await postSns(await signSns(sesBounce(h.topicArn, [email])), VARS);
      answers.push({ status: res.status, body: await res.text() });
    }
    expect(answers[0]!.status).toBe(200);
    expect(answers[1]).toEqual(answers[0]);
    expect(await statusOf(sub)).toBe('suppressed');
  });
});

describe('a suppressed owner default email raises the owner/platform alert', () => {
  it('an SES bounce of the owner default address → one critical email.owner_default_suppressed per handle, to PLATFORM_ALERT_EMAIL when nobody else can receive it', async () => {
    const h = await handleWithTopic();
    const other = await setupHandle();
    const owner = address();
    const ownerDefault = await insertSubscription(h.handle, owner, 'owner_default');
    const otherDefault = await insertSubscription(other.handle, owner, 'owner_default');
    const standard = address();
    await insertSubscription(h.handle, standard);
    const vars = { ...VARS, PLATFORM_ALERT_EMAIL: 'platform-alerts@example.com' };

    // A standard subscription bouncing is no owner alert.
    expect((await postSns(await signSns(sesBounce(h.topicArn, [standard])), vars)).status).toBe(200);
    expect(await alertsOf(h.handle)).toEqual([]);

    expect((await postSns(await signSns(sesBounce(h.topicArn, [owner])), vars)).status).toBe(200);
    expect(await statusOf(ownerDefault)).toBe('suppressed');
    for (const [handle, id] of [
      [h.handle, ownerDefault],
      [other.handle, otherDefault],
    ] as const) {
      const alerts = await alertsOf(handle);
      expect(alerts).toHaveLength(1);
      expect(alerts[0]!.severity).toBe('critical');
      expect(JSON.parse(alerts[0]!.data)).toMatchObject({ subscriptionId: id, email: owner, provider: 'ses' });
      // The owner default address is the one that bounced: nobody of the handle can receive this, so it is
      // undeliverable and the platform alert address gets it.
      expect(alerts[0]!.status).toBe('undeliverable');
      const platform = await anyShard
        .prepare(
          `SELECT target, status_reason FROM deliveries WHERE notification_id = ?1 AND recipient_type = 'platform_alert'`,
        )
        .bind(alerts[0]!.id)
        .first<{ target: string; status_reason: string }>();
      expect(platform).toEqual({
        target: 'platform-alerts@example.com',
        status_reason: 'undeliverable_critical_event',
      });
    }

    // SNS delivers the same message again: already suppressed, no second alert.
    expect((await postSns(await signSns(sesBounce(h.topicArn, [owner])), vars)).status).toBe(200);
    expect(await alertsOf(h.handle)).toHaveLength(1);
  });
});
