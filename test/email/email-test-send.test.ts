/**
 * `POST /v2/handles/{handle}/notifications/email-subscriptions/{id}/test` (docs/design.md#routes, #delivery, #debug-playbooks (playbooks 2–3)): a test mail
 * through the production path (the `send_email` binding, simulated locally), recorded as a delivery of kind `test`,
 * with a diagnosis; nothing but the confirmation mail reaches an address that has not confirmed.
 */

import { describe, expect, it, vi } from 'vitest';
import { newId } from '../../src/lib/ids.ts';
import {
  ALL_USER_SCOPES,
  anyShard,
  call,
  callJson,
  expectProblem,
  provisionHandle,
  shardOf,
  signJwt,
  unique,
} from '../support/helpers.ts';
import { insertEmailSubscriptions, userJwt } from '../support/seed.ts';

type Row = Record<string, any>;

async function setup() {
  const owner = unique('et-owner');
  const handle = await provisionHandle(owner);
  const token = await userJwt(owner);
  return { owner, handle, token, subs: `/v2/handles/${handle}/notifications/email-subscriptions` };
}

async function setOwnerEmail(handle: string, token: string, email: string) {
  const r = await callJson('PUT', `/v2/handles/${handle}/notifications/owner-default-email`, {
    token,
    body: { email },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
}

async function testDeliveries(subscriptionId: string): Promise<Row[]> {
  const { results } = await anyShard
    .prepare(
      `SELECT * FROM deliveries WHERE subscription_id = ? AND kind = 'test' AND status_reason = 'test_send' ORDER BY id`,
    )
    .bind(subscriptionId)
    .all<Row>();
  return results;
}

const ownerRow = (handle: string) =>
  anyShard
    .prepare(`SELECT * FROM email_subscriptions WHERE handle = ? AND kind = 'owner_default'`)
    .bind(handle)
    .first<Row>();

describe('POST …/email-subscriptions/{id}/test', () => {
  it('with no eventType, the test mail is of a type the subscription receives (as the dashboard sends it)', async () => {
    const s = await setup();
    const [id] = await insertEmailSubscriptions(s.handle, 1);
    await (await shardOf(s.handle))
      .prepare('UPDATE email_subscriptions SET event_types = ?2 WHERE id = ?1')
      .bind(id, JSON.stringify(['payment.failed', 'campaign.*']))
      .run();
    // The dashboard's "Send test" posts an empty body: the API's default decides.
    const r = await callJson('POST', `${s.subs}/${id}/test`, { token: s.token, body: {} });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const [delivery] = await testDeliveries(id!);
    expect(JSON.parse(delivery!.payload)).toMatchObject({ type: 'payment.failed', test: true });
    // An explicit type still wins.
    const explicit = await callJson('POST', `${s.subs}/${id}/test`, {
      token: s.token,
      body: { eventType: 'campaign.started' },
    });
    expect(explicit.status).toBe(200);
    const sent = await testDeliveries(id!);
    expect(JSON.parse(sent[1]!.payload).type).toBe('campaign.started');
  });

  it('owner-default set → a test mail goes through the send_email binding: deliveryId, outcome succeeded, recorded as kind test', async () => {
    const s = await setup();
    const email = `Owner.${unique('m')}@Example.com`;
    await setOwnerEmail(s.handle, s.token, email);
    const r = await callJson('POST', `${s.subs}/owner-default/test`, { token: s.token });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.deliveryId).toMatch(/^dlv_/);
    const d = r.body.diagnosis;
    expect(d.test).toMatchObject({ sent: true, outcome: 'succeeded', errorClass: null });
    expect(d.test.detail).toMatch(/^accepted/);
    expect(d.subscription).toMatchObject({ kind: 'owner_default', email, status: 'active', provider: 'cloudflare' });
    expect(d.summary).toContain('accepted');
    expect(d.productionFailures).toEqual([]);

    const owner = (await ownerRow(s.handle))!;
    const [delivery] = await testDeliveries(owner.id);
    expect(delivery).toMatchObject({
      id: r.body.deliveryId,
      kind: 'test',
      channel: 'email',
      recipient_type: 'owner_default',
      target: email.toLowerCase(),
      status: 'succeeded',
      attempt_count: 1,
      notification_id: null,
    });
    expect(JSON.parse(delivery!.payload)).toMatchObject({ type: 'order.created', test: true, handle: s.handle });
    const { results: attempts } = await anyShard
      .prepare('SELECT * FROM delivery_attempts WHERE delivery_id = ?')
      .bind(r.body.deliveryId)
      .all<Row>();
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ attempt_number: 1, outcome: 'succeeded', error_class: null });
    // The binding accepted the message and answered with its message id (kept bare, as Email Sending's events name it).
    expect(attempts[0]!.response_snippet).toMatch(/^accepted [^<>\s]+@[^<>\s]+$/);
    expect(attempts[0]!.request_bytes).toBeGreaterThan(0);
  });

  it('an eventType picks the catalog sample; an unknown one → 422 and nothing is sent', async () => {
    const s = await setup();
    await setOwnerEmail(s.handle, s.token, `owner-${unique('m')}@example.com`);
    const owner = (await ownerRow(s.handle))!;
    const r = await callJson('POST', `${s.subs}/owner-default/test`, {
      token: s.token,
      body: { eventType: 'payment.failed' },
    });
    expect(r.status).toBe(200);
    const [delivery] = await testDeliveries(owner.id);
    expect(JSON.parse(delivery!.payload)).toMatchObject({ type: 'payment.failed', severity: 'critical', test: true });

    const bad = await expectProblem(
      await call('POST', `${s.subs}/owner-default/test`, { token: s.token, body: { eventType: 'order.teleported' } }),
      422,
    );
    expect(bad.detail).toContain('order.teleported');
    await expectProblem(
      await call('POST', `${s.subs}/owner-default/test`, {
        token: s.token,
        body: { eventType: 'order.paid', to: 'x@example.com' },
      }),
      400,
    );
    expect(await testDeliveries(owner.id)).toHaveLength(1);
  });

  it('an active standard subscription gets a test mail at its normalized address', async () => {
    const s = await setup();
    const email = `Ops.${unique('m')}@Example.com`;
    const created = await callJson('POST', s.subs, { token: s.token, body: { email } });
    expect(created.status).toBe(201);
    await anyShard
      .prepare(`UPDATE email_subscriptions SET status = 'active', status_reason = NULL, confirmed_at = ? WHERE id = ?`)
      .bind(new Date().toISOString(), created.body.id)
      .run();
    const r = await callJson('POST', `${s.subs}/${created.body.id}/test`, { token: s.token });
    expect(r.status).toBe(200);
    expect(r.body.deliveryId).toMatch(/^dlv_/);
    expect(r.body.diagnosis.test.outcome).toBe('succeeded');
    expect(r.body.diagnosis.subscription).toMatchObject({ kind: 'standard', status: 'active' });
    const [delivery] = await testDeliveries(created.body.id);
    expect(delivery).toMatchObject({
      id: r.body.deliveryId,
      recipient_type: 'email',
      target: email.toLowerCase(),
      status: 'succeeded',
    });
  });

  it('a pending_confirmation subscription gets no mail: deliveryId null, outcome not_sent, the summary says it has not confirmed', async () => {
    const s = await setup();
    const email = `pending-${unique('m')}@example.com`;
    const created = await callJson('POST', s.subs, { token: s.token, body: { email } });
    expect(created.status).toBe(201);
    const r = await callJson('POST', `${s.subs}/${created.body.id}/test`, { token: s.token });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.deliveryId).toBeNull();
    expect(r.body.diagnosis.test).toEqual({ sent: false, outcome: 'not_sent', errorClass: null, detail: null });
    expect(r.body.diagnosis.subscription).toMatchObject({ status: 'pending_confirmation', confirmedAt: null });
    expect(r.body.diagnosis.summary).toContain(email);
    expect(r.body.diagnosis.summary).toMatch(/has not confirmed/);
    expect(r.body.diagnosis.nextSteps.join('\n')).toMatch(/confirmation/);
    expect(await testDeliveries(created.body.id)).toHaveLength(0);
  });

  it('a suppressed subscription gets no mail either, and the diagnosis names its state and reason', async () => {
    const s = await setup();
    const created = await callJson('POST', s.subs, {
      token: s.token,
      body: { email: `bounced-${unique('m')}@example.com` },
    });
    await anyShard
      .prepare(`UPDATE email_subscriptions SET status = 'suppressed', status_reason = 'hard bounce' WHERE id = ?`)
      .bind(created.body.id)
      .run();
    const r = await callJson('POST', `${s.subs}/${created.body.id}/test`, { token: s.token });
    expect(r.status).toBe(200);
    expect(r.body.deliveryId).toBeNull();
    expect(r.body.diagnosis.test.outcome).toBe('not_sent');
    expect(r.body.diagnosis.summary).toMatch(/suppressed/);
    expect(r.body.diagnosis.summary).toMatch(/hard bounce/);
    expect(await testDeliveries(created.body.id)).toHaveLength(0);
  });

  it('an unsubscribed subscription: the summary quotes its reason as one sentence, and the step says who can fix it', async () => {
    const s = await setup();
    const address = `left-${unique('m')}@example.com`;
    const created = await callJson('POST', s.subs, { token: s.token, body: { email: address } });
    await anyShard
      .prepare(
        `UPDATE email_subscriptions SET status = 'unsubscribed',
         status_reason = 'The recipient unsubscribed with the link in a mail. Subscribe again.' WHERE id = ?`,
      )
      .bind(created.body.id)
      .run();
    const r = await callJson('POST', `${s.subs}/${created.body.id}/test`, { token: s.token });
    expect(r.body.diagnosis.summary).toBe(
      `${address} is unsubscribed (the recipient unsubscribed with the link in a mail. Subscribe again), ` +
        'so no test was sent.',
    );
    expect(r.body.diagnosis.summary).not.toMatch(/[.][;,)]|\(The/);
    expect(r.body.diagnosis.nextSteps[0]).toMatch(/^Only the recipient can opt in again/);
  });

  it("lists the subscription's recent production failures with their delivery ids", async () => {
    const s = await setup();
    const email = `owner-${unique('m')}@example.com`;
    await setOwnerEmail(s.handle, s.token, email);
    const owner = (await ownerRow(s.handle))!;
    const dead = newId('dlv');
    const now = new Date().toISOString();
    await (await shardOf(s.handle))
      .prepare(
        `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target, status,
         status_reason, attempt_count, last_error_class, created_at, updated_at)
       VALUES (?1, ?2, NULL, 'event', 'email', 'owner_default', ?3, ?4, 'dead', 'provider_permanent', 1, 'provider_permanent', ?5, ?5)`,
      )
      .bind(dead, s.handle, owner.id, email, now)
      .run();
    const r = await callJson('POST', `${s.subs}/owner-default/test`, { token: s.token });
    expect(r.status).toBe(200);
    expect(r.body.diagnosis.productionFailures).toEqual([
      { deliveryId: dead, notificationId: null, errorClass: 'provider_permanent', status: 'dead', at: now },
    ]);
    expect(r.body.diagnosis.nextSteps.join('\n')).toContain(dead);
    // The test send itself is not listed as a production failure.
    expect(r.body.diagnosis.productionFailures.map((f: Row) => f.deliveryId)).not.toContain(r.body.deliveryId);
  });

  it('owner default unset → 422; unknown or foreign id → 404; without notifications:write → 403', async () => {
    const s = await setup();
    const unset = await expectProblem(await call('POST', `${s.subs}/owner-default/test`, { token: s.token }), 422);
    expect(unset.detail).toMatch(/owner default/i);
    await expectProblem(await call('POST', `${s.subs}/${newId('esub')}/test`, { token: s.token }), 404);
    await expectProblem(await call('POST', `${s.subs}/not-an-id/test`, { token: s.token }), 404);

    const other = await setup();
    const theirs = await callJson('POST', other.subs, {
      token: other.token,
      body: { email: `x-${unique('m')}@example.com` },
    });
    await expectProblem(await call('POST', `${s.subs}/${theirs.body.id}/test`, { token: s.token }), 404);
    await expectProblem(await call('POST', `${other.subs}/${theirs.body.id}/test`, { token: s.token }), 404);

    await setOwnerEmail(s.handle, s.token, `owner-${unique('m')}@example.com`);
    const readOnly = await signJwt({ sub: s.owner, scope: 'notifications:read webhooks:write' });
    await expectProblem(await call('POST', `${s.subs}/owner-default/test`, { token: readOnly }), 403);
    expect(await testDeliveries((await ownerRow(s.handle))!.id)).toHaveLength(0);
  });
});

describe('PUT …/owner-default-email sends a test mail at once', () => {
  it('a changed address gets a recorded test mail through the production path; the same address again does not', async () => {
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
    const put = (email: string) =>
      call('PUT', `/v2/handles/${handle}/notifications/owner-default-email`, { token, body: { email } });
    const mails = async () =>
      (
        await anyShard
          .prepare(
            `SELECT target, status, channel, recipient_type FROM deliveries WHERE handle = ? AND status_reason = 'owner_default_changed' ORDER BY id`,
          )
          .bind(handle)
          .all()
      ).results;
    expect((await put('First@Example.com')).status).toBe(200);
    await vi.waitFor(async () => expect((await mails())[0]?.status).toBe('succeeded'));
    expect((await mails())[0]).toMatchObject({
      target: 'first@example.com',
      status: 'succeeded',
      channel: 'email',
      recipient_type: 'owner_default',
    });
    expect((await put('first@example.com')).status).toBe(200);
    expect((await put('second@example.com')).status).toBe(200);
    await vi.waitFor(async () => expect((await mails()).map((m) => m.status)).toEqual(['succeeded', 'succeeded']));
    expect((await mails()).map((m) => m.target)).toEqual(['first@example.com', 'second@example.com']);
  });
});
