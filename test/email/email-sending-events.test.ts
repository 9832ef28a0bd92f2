/**
 * Email on Cloudflare Email Service (docs/design.md#email, #email-events): the Cloudflare provider sends the structured
 * form through the real local `send_email` binding and keeps the message id `send()` returns; Email Sending's lifecycle
 * events, in their documented wire format, go through the real local `notify-email-events` queue to the Worker's own
 * consumer, which finds the delivery by that id.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import type { OutgoingMail } from '../../src/email/message.ts';
import { cloudflareProvider, structuredMessage } from '../../src/email/providers/cloudflare.ts';
import worker from '../../src/index.ts';
import { newId } from '../../src/lib/ids.ts';
import { ALL_USER_SCOPES, anyShard, callJson, provisionHandle, shardOf, signJwt, unique } from '../support/helpers.ts';

const EVENTS_QUEUE = 'notify-email-events';

/** Polls until `read` returns something truthy (the real queue consumer runs in the background). */
async function eventually<T>(what: string, read: () => Promise<T | null | undefined | false>, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

type Kind = 'delivered' | 'deferred' | 'bounced' | 'failed' | 'rejected' | 'complained';

/** One Email Sending event as Cloudflare documents it (docs/design.md#email-events), for this mail. */
function sendingEvent(kind: Kind, messageId: string, recipient: string): Record<string, unknown> {
  const details: Record<Kind, Record<string, unknown>> = {
    delivered: {
      delivery: {
        status: 'delivered',
        provider: 'gmail',
        deliveryTimeMs: 1234,
        smtpStatusCode: '250',
        smtpEnhancedStatusCode: '2.0.0',
        smtpResponse: '250 2.0.0 OK 1714820445 a1b2c3 - gsmtp',
      },
    },
    deferred: {
      delivery: { status: 'deferred', provider: 'external_smtp', smtpStatusCode: '451', smtpResponse: '451 4.2.0 x' },
      bounce: { type: 'soft', classification: 'temporary_failure', reason: '451 4.2.0 Temporary mailbox error' },
    },
    bounced: {
      delivery: { status: 'bounced', provider: 'external_smtp', smtpStatusCode: '550', smtpResponse: '550 5.1.1 x' },
      bounce: { type: 'hard', classification: 'permanent_failure', reason: '550 5.1.1 User unknown' },
    },
    failed: { delivery: { status: 'failed' }, failure: { reason: 'delivery_failed' } },
    rejected: {
      delivery: { status: 'rejected' },
      rejection: { reason: 'suppressed', party: 'recipient', detail: 'Recipient is suppressed' },
    },
    complained: { delivery: { status: 'complained' }, complaint: { type: 'abuse' } },
  };
  return {
    type: `cf.email.sending.message.${kind}`,
    source: { type: 'email.sending', zoneId: '023e105f4ecef8ad9ca31a8372d0c353', domain: 'gharart.com' },
    payload: {
      eventId: crypto.randomUUID(),
      messageId,
      sender: 'notifications@gharart.com',
      recipient,
      subject: '[Gharart] Critical: payment failed',
      terminal: kind !== 'deferred',
      ...details[kind],
    },
    metadata: {
      accountId: 'f9f79265f388666de8122cfb508d7776',
      eventSubscriptionId: '1830c4bb612e43c3af7f4cada31fbf3f',
      eventSchemaVersion: 1,
      eventTimestamp: '2026-06-01T02:48:57.132Z',
    },
  };
}

interface DeliveryState {
  id: string;
  status: string;
  status_reason: string | null;
  provider_message_id: string | null;
  delivered_at: string | null;
  provider_verdict: string | null;
  notification_id: string;
}

/**
 * A handle whose owner default email gets a critical event through the real pipeline and the real local `send_email`
 * binding: its delivery `succeeded` with the provider message id `send()` returned.
 */
async function sentCriticalMail() {
  const owner = unique('owner');
  const handle = await provisionHandle(owner);
  const token = await signJwt({ sub: owner, scope: ALL_USER_SCOPES });
  const email = `${unique('od')}@example.com`;
  const subscriptionId = newId('esub');
  const now = new Date().toISOString();
  await (await shardOf(handle))
    .prepare(
      `INSERT INTO email_subscriptions (id, handle, kind, email, email_normalized, status, confirmed_at, provider,
       created_at, updated_at)
     VALUES (?1, ?2, 'owner_default', ?3, ?3, 'active', ?4, 'cloudflare', ?4, ?4)`,
    )
    .bind(subscriptionId, handle, email, now)
    .run();
  const pub = await callJson('POST', `/v2/handles/${handle}/events`, {
    token,
    body: { type: 'payment.failed', severity: 'critical', data: { orderId: 'ord_1' } },
  });
  expect(pub.status).toBe(202);
  const delivery = await eventually('the owner default delivery to succeed', () =>
    anyShard
      .prepare(
        `SELECT id, status, status_reason, provider_message_id, delivered_at, provider_verdict, notification_id
       FROM deliveries WHERE notification_id = ?1 AND recipient_type = 'owner_default' AND status = 'succeeded'`,
      )
      .bind(pub.body.notificationId)
      .first<DeliveryState>(),
  );
  expect(delivery.provider_message_id).toMatch(/^[^<>\s]+@gharart\.com$/);
  return { handle, token, email, subscriptionId, delivery, messageId: delivery.provider_message_id! };
}

const deliveryRow = (id: string) =>
  anyShard
    .prepare(
      `SELECT id, status, status_reason, provider_message_id, delivered_at, provider_verdict, notification_id
     FROM deliveries WHERE id = ?1`,
    )
    .bind(id)
    .first<DeliveryState>();

const subscriptionRow = (id: string) =>
  anyShard
    .prepare('SELECT status, status_reason FROM email_subscriptions WHERE id = ?1')
    .bind(id)
    .first<{ status: string; status_reason: string | null }>();

const ownerAlerts = async (handle: string) =>
  (
    await anyShard
      .prepare(`SELECT severity, data FROM notifications WHERE handle = ?1 AND type = 'email.owner_default_suppressed'`)
      .bind(handle)
      .all<{ severity: string; data: string }>()
  ).results;

const rejectionsWith = async (needle: string) =>
  (
    await env.DB.prepare(`SELECT queue, reason, body FROM event_rejections WHERE body LIKE ?1`)
      .bind(`%${needle}%`)
      .all<{ queue: string; reason: string; body: string }>()
  ).results;

function mail(overrides: Partial<OutgoingMail> = {}): OutgoingMail {
  return {
    from: { email: 'notifications@gharart.com', name: 'Gharart notifications' },
    to: { email: 'jane@example.com' },
    subject: 'Order ord_10482 was paid',
    text: 'Hello Jane,\nyour order was paid.\n',
    html: '<p>Hello Jane,</p>',
    headers: { 'X-Gharart-Delivery-Id': 'dlv_1', 'List-Unsubscribe': '<https://notify.gharart.com/u>' },
    ...overrides,
  };
}

describe('Cloudflare provider: structured send', () => {
  it('hands the send_email binding the structured message and keeps the message id send() returned', async () => {
    const handed: unknown[] = [];
    const returned: string[] = [];
    // The real local binding, watched: what it is given and what it answers.
    const watched = {
      async send(message: EmailMessageBuilder) {
        handed.push(message);
        const result = await env.EMAIL.send(message);
        returned.push(result.messageId);
        return result;
      },
    } as unknown as SendEmail;
    const outcome = await cloudflareProvider({ EMAIL: watched }).send(
      mail({ replyTo: { email: 'support@gharart.com', name: 'Support' } }),
      { subscriptionId: null, deliveryId: 'dlv_1', handle: 'demo-store', eventType: 'order.paid', severity: 'info' },
    );
    expect(handed).toEqual([
      {
        from: { name: 'Gharart notifications', email: 'notifications@gharart.com' },
        to: 'jane@example.com',
        replyTo: { name: 'Support', email: 'support@gharart.com' },
        subject: 'Order ord_10482 was paid',
        text: 'Hello Jane,\nyour order was paid.\n',
        html: '<p>Hello Jane,</p>',
        headers: { 'X-Gharart-Delivery-Id': 'dlv_1', 'List-Unsubscribe': '<https://notify.gharart.com/u>' },
      },
    ]);
    expect(returned).toHaveLength(1);
    expect(outcome).toEqual({ ok: true, providerMessageId: returned[0]!.replace(/^<|>$/g, '') });
  });

  it('a mail the binding refuses is a failed outcome: permanent for an address that will never be accepted', async () => {
    const refusing = {
      send: async () => {
        throw new Error('destination address is not verified');
      },
    } as unknown as SendEmail;
    const outcome = await cloudflareProvider({ EMAIL: refusing }).send(mail(), {
      subscriptionId: null,
      deliveryId: 'dlv_1',
      handle: 'demo-store',
      eventType: 'order.paid',
      severity: 'info',
    });
    expect(outcome).toEqual({ ok: false, permanent: true, message: 'destination address is not verified' });
  });

  const payloads = ['\r\nBcc: evil@example.com', '\nBcc: evil@example.com', '\u2028Bcc: evil@example.com', '\u0000x'];
  for (const p of payloads) {
    it(`no line break from ${JSON.stringify(p)} reaches the subject, a name or a header value`, () => {
      const m = structuredMessage(
        mail({
          subject: `Hello${p}`,
          to: { email: 'jane@example.com', name: `Jane${p}` },
          headers: { 'X-Gharart-Delivery-Id': `dlv_1${p}` },
        }),
      );
      const values = [m.subject, (m.to as EmailAddress).name, ...Object.values(m.headers ?? {})];
      for (const v of values) expect(v).not.toMatch(/[\p{Cc}\u2028\u2029]/u);
      expect(m.to).toEqual({ name: expect.stringMatching(/^Jane /), email: 'jane@example.com' });
      expect(Object.keys(m)).not.toContain('bcc');
    });
  }

  it('refuses an invalid address, a reserved header and a malformed header name before anything is sent', () => {
    expect(() => structuredMessage(mail({ to: { email: 'jane@example.com, evil@example.com' } }))).toThrow(
      /invalid email address/,
    );
    expect(() => structuredMessage(mail({ replyTo: { email: 'Jane <jane@example.com>' } }))).toThrow(
      /invalid email address/,
    );
    for (const name of ['Bcc', 'From', 'Subject', 'Message-ID', 'Content-Type', 'Resent-To'])
      expect(() => structuredMessage(mail({ headers: { [name]: 'x' } })), name).toThrow(/cannot be overridden/);
    expect(() => structuredMessage(mail({ headers: { 'X Bad': 'x' } }))).toThrow(/invalid header name/);
  });
});

// Each of these takes two real queue hops (the delivery, then the event), each up to a batch timeout plus the
// consumer's D1 writes: the per-test budget is that of the other multi-hop pipeline tests, not the 5 s of a unit test.
const TWO_HOPS_MS = 30_000;

describe('Email Sending events through the real notify-email-events queue', () => {
  it(
    "message.delivered: the delivery then reads delivered to the recipient's server, with when",
    async () => {
      const s = await sentCriticalMail();
      await env.EMAIL_EVENTS_TEST_QUEUE.send(sendingEvent('delivered', s.messageId, s.email));
      const d = await eventually('delivered_at', async () => {
        const row = await deliveryRow(s.delivery.id);
        return row?.delivered_at ? row : null;
      });
      expect(d).toMatchObject({
        status: 'succeeded',
        status_reason: "delivered to the recipient's server",
        provider_verdict: "delivered to the recipient's server",
        delivered_at: '2026-06-01T02:48:57.132Z',
      });
      // The feed says so too.
      const n = await callJson('GET', `/v2/handles/${s.handle}/notifications/${d.notification_id}`, { token: s.token });
      const mine = (n.body.deliveries as Array<{ deliveryId: string; statusReason: string | null }>).find(
        (r) => r.deliveryId === s.delivery.id,
      );
      expect(mine?.statusReason).toBe("delivered to the recipient's server");
      expect((await subscriptionRow(s.subscriptionId))?.status).toBe('active');
    },
    TWO_HOPS_MS,
  );

  it(
    'message.deferred: noted on the delivery, which stays succeeded and not yet delivered',
    async () => {
      const s = await sentCriticalMail();
      await env.EMAIL_EVENTS_TEST_QUEUE.send(sendingEvent('deferred', s.messageId, s.email));
      const d = await eventually('the deferred verdict', async () => {
        const row = await deliveryRow(s.delivery.id);
        return row?.provider_verdict ? row : null;
      });
      expect(d).toMatchObject({
        status: 'succeeded',
        delivered_at: null,
        provider_verdict: 'deferred: 451 4.2.0 Temporary mailbox error',
      });
      expect((await subscriptionRow(s.subscriptionId))?.status).toBe('active');
    },
    TWO_HOPS_MS,
  );

  it(
    'message.bounced on the owner default email: suppressed with the reason, owner alerted once, delivery dead',
    async () => {
      const s = await sentCriticalMail();
      const bounce = sendingEvent('bounced', s.messageId, s.email);
      await env.EMAIL_EVENTS_TEST_QUEUE.send(bounce);
      const d = await eventually('the bounced delivery to be dead', async () => {
        const row = await deliveryRow(s.delivery.id);
        return row?.status === 'dead' ? row : null;
      });
      expect(d.status_reason).toBe('provider_bounced: 550 5.1.1 User unknown');
      expect(d.provider_verdict).toBe('bounced: 550 5.1.1 User unknown');
      const sub = await subscriptionRow(s.subscriptionId);
      expect(sub).toEqual({
        status: 'suppressed',
        status_reason: 'Permanent bounce reported by cloudflare: 550 5.1.1 User unknown',
      });
      const alerts = await ownerAlerts(s.handle);
      expect(alerts).toHaveLength(1);
      expect(alerts[0]!.severity).toBe('critical');
      expect(JSON.parse(alerts[0]!.data)).toMatchObject({
        subscriptionId: s.subscriptionId,
        email: s.email,
        provider: 'cloudflare',
        reason: expect.stringContaining('550 5.1.1 User unknown'),
      });
      // The notification no longer counts the mail as delivered.
      const n = await anyShard
        .prepare('SELECT succeeded_count, dead_count FROM notifications WHERE id = ?1')
        .bind(d.notification_id)
        .first<{ succeeded_count: number; dead_count: number }>();
      expect(n).toEqual({ succeeded_count: 0, dead_count: 1 });

      // Email Sending delivers at least once: the same event again changes nothing and alerts nobody again.
      // A malformed marker right behind it in the same batch: once it is recorded, the repeat has been handled.
      const marker = unique('marker');
      await env.EMAIL_EVENTS_TEST_QUEUE.sendBatch([{ body: bounce }, { body: { type: 'x', marker } }]);
      await eventually('the redelivered bounce to be handled', async () => (await rejectionsWith(marker)).length === 1);
      expect(await ownerAlerts(s.handle)).toHaveLength(1);
      expect((await deliveryRow(s.delivery.id))?.status).toBe('dead');
    },
    TWO_HOPS_MS,
  );

  it(
    'message.complained: the address is suppressed and the owner alerted; the mail itself was delivered',
    async () => {
      const s = await sentCriticalMail();
      await env.EMAIL_EVENTS_TEST_QUEUE.send(sendingEvent('complained', s.messageId, s.email));
      const sub = await eventually('the suppression', async () => {
        const row = await subscriptionRow(s.subscriptionId);
        return row?.status === 'suppressed' ? row : null;
      });
      expect(sub.status_reason).toBe('Spam complaint reported by cloudflare: abuse');
      expect(await ownerAlerts(s.handle)).toHaveLength(1);
      const d = await eventually('the complaint verdict', async () => {
        const row = await deliveryRow(s.delivery.id);
        return row?.provider_verdict ? row : null;
      });
      expect(d).toMatchObject({ status: 'succeeded', provider_verdict: 'complained: abuse' });
    },
    TWO_HOPS_MS,
  );

  for (const [kind, reason] of [
    ['failed', 'delivery_failed'],
    ['rejected', 'suppressed: Recipient is suppressed'],
  ] as const) {
    it(
      `message.${kind}: the delivery ends dead with the provider's reason; the address is not suppressed`,
      async () => {
        const s = await sentCriticalMail();
        await env.EMAIL_EVENTS_TEST_QUEUE.send(sendingEvent(kind, s.messageId, s.email));
        const d = await eventually(`the ${kind} delivery to be dead`, async () => {
          const row = await deliveryRow(s.delivery.id);
          return row?.status === 'dead' ? row : null;
        });
        expect(d.status_reason).toBe(`provider_${kind}: ${reason}`);
        expect((await subscriptionRow(s.subscriptionId))?.status).toBe('active');
        expect(await ownerAlerts(s.handle)).toEqual([]);
      },
      TWO_HOPS_MS,
    );
  }

  it(
    'a malformed event and an unknown event type are recorded with their reason, not lost',
    async () => {
      const tag = unique('bad');
      await env.EMAIL_EVENTS_TEST_QUEUE.send({ type: 'cf.email.sending.message.delivered', payload: { tag } });
      await env.EMAIL_EVENTS_TEST_QUEUE.send({
        ...sendingEvent('delivered', `${tag}@gharart.com`, 'jane@example.com'),
        type: 'cf.email.sending.message.opened',
      });
      const rows = await eventually('both rejections', async () => {
        const found = await rejectionsWith(tag);
        return found.length === 2 ? found : null;
      });
      expect(rows.map((r) => r.queue)).toEqual([EVENTS_QUEUE, EVENTS_QUEUE]);
      expect(rows.map((r) => r.reason).sort()).toEqual([
        expect.stringMatching(/^invalid email event: payload\.messageId: /),
        'unknown email event type: cf.email.sending.message.opened',
      ]);
    },
    TWO_HOPS_MS,
  );

  it(
    'an event naming no delivery of ours is retried while the send may still be landing, then recorded and acked',
    async () => {
      const tag = unique('nomatch');
      const body = sendingEvent('delivered', `${tag}@gharart.com`, 'jane@example.com');
      const early = createMessageBatch<unknown>(EVENTS_QUEUE, [
        { id: `${tag}-1`, timestamp: new Date(), attempts: 1, body },
      ]);
      const ctx1 = createExecutionContext();
      await worker.queue(early, env, ctx1);
      const r1 = await getQueueResult(early, ctx1);
      expect(r1.retryMessages.map((m) => m.msgId)).toEqual([`${tag}-1`]);
      expect(r1.explicitAcks).toEqual([]);

      const late = createMessageBatch<unknown>(EVENTS_QUEUE, [
        { id: `${tag}-3`, timestamp: new Date(), attempts: 3, body },
      ]);
      const ctx3 = createExecutionContext();
      await worker.queue(late, env, ctx3);
      const r3 = await getQueueResult(late, ctx3);
      expect(r3.explicitAcks).toEqual([`${tag}-3`]);
      expect((await rejectionsWith(tag)).map((r) => r.reason)).toEqual([
        'no delivery has the provider message id of this delivered event',
      ]);
    },
    TWO_HOPS_MS,
  );

  it('notify-email-events-dlq records each exhausted event before it is acked', async () => {
    const tag = unique('dlq');
    const batch = createMessageBatch<unknown>(`${EVENTS_QUEUE}-dlq`, [
      { id: `${tag}-1`, timestamp: new Date(), attempts: 1, body: sendingEvent('bounced', `${tag}@x.com`, 'a@b.co') },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual([`${tag}-1`]);
    expect((await rejectionsWith(tag)).map((r) => [r.queue, r.reason])).toEqual([
      [`${EVENTS_QUEUE}-dlq`, 'retries_exhausted: applying the email event kept failing'],
    ]);
  });
});

describe("the provider's verdicts in the email test-send diagnosis and the doctor", () => {
  it(
    "the test send's diagnosis shows Email Sending's verdicts on the subscription's mails",
    async () => {
      const s = await sentCriticalMail();
      await env.EMAIL_EVENTS_TEST_QUEUE.send(sendingEvent('delivered', s.messageId, s.email));
      await eventually('delivered_at', async () => (await deliveryRow(s.delivery.id))?.delivered_at);
      const res = await callJson(
        'POST',
        `/v2/handles/${s.handle}/notifications/email-subscriptions/owner-default/test`,
        { token: s.token, body: { eventType: 'payment.failed' } },
      );
      expect(res.status).toBe(200);
      const d = res.body.diagnosis;
      expect(d.test.outcome).toBe('succeeded');
      expect(d.summary).toContain(
        "Email Sending last reported a mail delivered to the recipient's server at 2026-06-01T02:48:57.132Z.",
      );
      expect(d.providerVerdicts).toEqual({
        lastDeliveredAt: '2026-06-01T02:48:57.132Z',
        recent: [
          {
            deliveryId: s.delivery.id,
            kind: 'event',
            verdict: "delivered to the recipient's server",
            at: expect.any(String),
          },
        ],
      });
      // The test mail itself was sent through the binding and keeps its message id for the verdict still to come.
      const test = await deliveryRow(res.body.deliveryId);
      expect(test?.provider_message_id).toMatch(/@gharart\.com$/);
    },
    TWO_HOPS_MS,
  );

  it(
    'the doctor counts sent mails by verdict and sends the owner to a bounce',
    async () => {
      const s = await sentCriticalMail();
      await env.EMAIL_EVENTS_TEST_QUEUE.send(sendingEvent('bounced', s.messageId, s.email));
      await eventually('the bounce', async () => (await deliveryRow(s.delivery.id))?.status === 'dead');
      const res = await callJson('GET', `/v2/handles/${s.handle}/health`, { token: s.token });
      expect(res.status).toBe(200);
      expect(res.body.emailDelivery).toEqual({
        delivered24h: 0,
        awaitingVerdict24h: 0,
        deferred24h: 0,
        refused24h: 1,
        action: expect.stringContaining('bounced or were refused after acceptance'),
      });
    },
    TWO_HOPS_MS,
  );
});
