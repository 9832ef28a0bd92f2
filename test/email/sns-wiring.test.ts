/**
 * EMAIL_PROVIDER=sns wired through the API and the minute job, against the SNS wire-format fake — including the seed
 * guide's failure "notification email subscription has stale SNS arn", caught by the job and by the test route.
 */

import { env } from 'cloudflare:workers';
import { describe, expect, inject, it } from 'vitest';
import { reconcileSnsSubscriptions } from '../../src/jobs/reconcile-email.ts';
import { ALL_USER_SCOPES, anyShard, callWithVars, provisionHandle, signJwt, unique } from '../support/helpers.ts';

const base = () => `http://127.0.0.1:${inject('snsFakePort')}`;
/** The fake's credentials and a region (see test/support/node/sns-fake.ts). */
const SNS_VARS = () => ({
  EMAIL_PROVIDER: 'sns',
  SNS_API_URL: `${base()}/`,
  AWS_REGION: 'ap-south-1',
  SNS_TOPIC_PREFIX: 'gn-wire-',
  AWS_ACCESS_KEY_ID: 'AKIAFAKESNS000000001',
  AWS_SECRET_ACCESS_KEY: 'fake/SNS+secret/key0123456789abcdefghij',
});
const snsEnv = () => ({ ...env, ...SNS_VARS() }) as Env;

async function control(path: string, method = 'POST') {
  const res = await fetch(`${base()}${path}`, { method });
  if (!res.ok) throw new Error(`sns fake ${path}: ${res.status}`);
  return res.json() as Promise<any>;
}

async function setup() {
  const owner = unique('owner');
  const handle = await provisionHandle(owner);
  const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
  const call = (method: string, path: string, body?: unknown) =>
    callWithVars(SNS_VARS(), method, `/v2/handles/${handle}${path}`, {
      token,
      ...(body === undefined ? {} : { body }),
    });
  return { handle, call };
}

async function subscribe(call: Awaited<ReturnType<typeof setup>>['call']) {
  const email = `${unique('ops')}@example.com`;
  const res = await call('POST', '/notifications/email-subscriptions', { email, eventTypes: ['order.*'] });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { id: string; status: string; statusReason: string };
  const row = await anyShard
    .prepare('SELECT provider, provider_ref FROM email_subscriptions WHERE id = ?')
    .bind(body.id)
    .first<{ provider: string; provider_ref: string }>();
  return { email, body, arn: row!.provider_ref, provider: row!.provider };
}

const staleNotifications = async (handle: string) =>
  (
    await anyShard
      .prepare(`SELECT data FROM notifications WHERE handle = ? AND type = 'email.subscription_stale'`)
      .bind(handle)
      .all()
  ).results;

describe('EMAIL_PROVIDER=sns', () => {
  it('subscribing creates an SNS email subscription whose filter names it; SNS confirmation is mirrored by the job', async () => {
    const { call } = await setup();
    const { email, body, arn, provider } = await subscribe(call);
    expect(provider).toBe('sns');
    expect(arn).toMatch(/^arn:aws:sns:ap-south-1:/);
    expect(body.status).toBe('pending_confirmation');
    expect(body.statusReason).toMatch(/AWS SNS sent its own confirmation/);
    const state = await control('/_control/state', 'GET');
    const sub = state.subscriptions.find((s: { arn: string }) => s.arn === arn);
    expect(sub).toMatchObject({ protocol: 'email', endpoint: email });
    const policy = JSON.parse(sub.filterPolicy);
    expect(policy.subscription).toEqual([body.id]);
    expect(JSON.stringify(policy.type)).toContain('order.');

    await control(`/_control/confirm?arn=${encodeURIComponent(arn)}`);
    const run = await reconcileSnsSubscriptions(snsEnv(), new Date());
    expect(run.checked).toBeGreaterThanOrEqual(1);
    const row = await anyShard
      .prepare('SELECT status FROM email_subscriptions WHERE id = ?')
      .bind(body.id)
      .first<{ status: string }>();
    expect(row!.status).toBe('active');
  });

  it('a deleted ARN is found by the minute job: stale, with the re-subscribe call, and the owner is told once', async () => {
    const { handle, call } = await setup();
    const { body, arn } = await subscribe(call);
    await control(`/_control/confirm?arn=${encodeURIComponent(arn)}`);
    await reconcileSnsSubscriptions(snsEnv(), new Date());
    await control(`/_control/delete?arn=${encodeURIComponent(arn)}`);
    // The job checks the longest-unchecked first; run until this one was seen (other files' rows may be older).
    for (let i = 0; i < 10; i++) {
      await reconcileSnsSubscriptions(snsEnv(), new Date());
      const r = await anyShard
        .prepare('SELECT status FROM email_subscriptions WHERE id = ?')
        .bind(body.id)
        .first<{ status: string }>();
      if (r!.status === 'stale') break;
    }
    const row = await anyShard
      .prepare('SELECT status, status_reason FROM email_subscriptions WHERE id = ?')
      .bind(body.id)
      .first<{ status: string; status_reason: string }>();
    expect(row!.status).toBe('stale');
    expect(row!.status_reason).toContain(`DELETE …/notifications/email-subscriptions/${body.id}`);
    expect(await staleNotifications(handle)).toHaveLength(1);
    await reconcileSnsSubscriptions(snsEnv(), new Date());
    expect(await staleNotifications(handle)).toHaveLength(1);
    // The stale subscription shows in the delivery doctor.
    const health = (await (await call('GET', '/health')).json()) as {
      emailSubscriptions: { stale: Array<{ id: string }> };
    };
    expect(health.emailSubscriptions.stale.map((s) => s.id)).toContain(body.id);
  });

  it('the test route checks the ARN itself: stale, no mail sent, and what to do', async () => {
    const { handle, call } = await setup();
    const { body, arn, email } = await subscribe(call);
    await control(`/_control/confirm?arn=${encodeURIComponent(arn)}`);
    await control(`/_control/delete?arn=${encodeURIComponent(arn)}`);
    const before = (await control('/_control/state', 'GET')).messages.length;
    const res = await call('POST', `/notifications/email-subscriptions/${body.id}/test`);
    expect(res.status).toBe(200);
    const { deliveryId, diagnosis } = (await res.json()) as any;
    expect(deliveryId).toBeNull();
    expect(diagnosis.providerCheck).toEqual({ provider: 'sns', reference: arn, state: 'not_found' });
    expect(diagnosis.subscription.status).toBe('stale');
    expect(diagnosis.nextSteps.join(' ')).toContain(
      `POST /v2/handles/${handle}/notifications/email-subscriptions {"email": "${email}"}`,
    );
    expect((await control('/_control/state', 'GET')).messages.length).toBe(before);
    expect(await staleNotifications(handle)).toHaveLength(1);
  });

  it('deleting a subscription unsubscribes it at SNS', async () => {
    const { call } = await setup();
    const { body, arn } = await subscribe(call);
    expect((await call('DELETE', `/notifications/email-subscriptions/${body.id}`)).status).toBe(204);
    const state = await control('/_control/state', 'GET');
    expect(state.subscriptions.some((s: { arn: string }) => s.arn === arn)).toBe(false);
  });
});
