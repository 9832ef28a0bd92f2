/**
 * Amazon SNS's HTTP(S) delivery of SES feedback (docs/design.md#email): `POST /v2/providers/sns/events`.
 *
 * Only with EMAIL_PROVIDER=sns: otherwise the route answers 404 and reads nothing. SNS posts a JSON message with
 * `Content-Type: text/plain; charset=UTF-8` (the body guard lets text/plain through for this path only).
 *
 * Anyone can make SNS sign a message for a topic of their own, so the topic is checked first: a TopicArn that is not
 * one this deployment created (email/sns-topics.ts: recorded when CreateTopic answered, in AWS_REGION and
 * AWS_ACCOUNT_ID) is a 403 — nothing is fetched, neither its signing certificate nor its SubscribeURL. Then the
 * message's own signature (email/sns-signature.ts): a bad or missing signature, a SigningCertURL off the
 * SNS_CERT_HOSTS allow-list (never fetched), or a Timestamp more than 1 hour from now is a 401 and changes nothing.
 *
 * Types: `SubscriptionConfirmation` → GET its SubscribeURL (same host allow-list, naming the same topic) → 200;
 * `Notification` whose Message is SES feedback: a Permanent bounce suppresses every subscription of each bounced
 * recipient, a complaint each complained recipient's (narrowed by a `subscription_id` mail tag when present), and a
 * suppressed owner default email raises the owner alert (feedback.ts); Transient/Undetermined bounces and everything
 * else are acknowledged and ignored. `UnsubscribeConfirmation` is acknowledged (we never re-subscribe). The answer
 * never depends on whether an address is subscribed. The visit and the reading of the feedback are
 * email/sns-feedback.ts's; what to answer is decided here.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { suppressAndAlert } from '../../delivery/alerts.ts';
import { confirmSubscription, parseSesFeedback, type SubscribeUrlVisit } from '../../email/sns-feedback.ts';
import { type SnsMessage, type SnsUrlPolicy, verifySnsMessage } from '../../email/sns-signature.ts';
import { isOurTopic } from '../../email/sns-topics.ts';
import { runContext } from '../../env.ts';
import { createRouter, errorResponses, jsonResponse } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';

/** A message whose Timestamp is further than this from now is refused (replays). */
export const SNS_MAX_AGE_MS = 60 * 60 * 1000;

const MESSAGE_TYPES = ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'] as const;

const SnsMessageSchema = z
  .looseObject({
    Type: z.enum(MESSAGE_TYPES),
    MessageId: z.string(),
    TopicArn: z.string().openapi({
      description: 'Must be a topic this deployment created, in AWS_REGION and AWS_ACCOUNT_ID.',
    }),
    Subject: z.string().optional(),
    Message: z.string().openapi({ description: 'For a Notification: the SES feedback object, as a JSON string.' }),
    Timestamp: z.string().openapi({ description: 'ISO 8601; refused when more than 1 hour from now.' }),
    Token: z.string().optional(),
    SubscribeURL: z.string().optional(),
    UnsubscribeURL: z.string().optional(),
    SignatureVersion: z.enum(['1', '2']).openapi({ description: '1: SHA1withRSA, 2: SHA256withRSA.' }),
    Signature: z.string(),
    SigningCertURL: z.string().openapi({ description: 'https, on a SNS_CERT_HOSTS host, ending in .pem.' }),
  })
  .openapi('SnsMessage', {
    description:
      'An Amazon SNS HTTP(S) message (https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html).',
  });

const SnsEventReceipt = z
  .object({
    received: z.literal(true),
    confirmed: z
      .boolean()
      .optional()
      .openapi({ description: 'A SubscriptionConfirmation: the SubscribeURL was visited.' }),
    ignored: z
      .string()
      .optional()
      .openapi({ description: 'Why the message changed nothing by design (never whether an address is known).' }),
  })
  .openapi('SnsEventReceipt');

const eventsRoute = createRoute({
  method: 'post',
  path: '/v2/providers/sns/events',
  operationId: 'receiveSnsMessage',
  tags: ['Providers'],
  summary: 'Amazon SNS: SES bounces and complaints, subscription confirmation',
  description:
    'Called by Amazon SNS, not by clients; SNS sends JSON as `text/plain`. Answers 404 unless EMAIL_PROVIDER=sns. ' +
    'A message from a topic this deployment did not create (recorded when created, in AWS_REGION and ' +
    'AWS_ACCOUNT_ID) is refused with 403 before anything is fetched. Authenticated by the SNS message signature ' +
    '(SignatureVersion 1 or 2, certificate from an SNS_CERT_HOSTS host): a bad or missing signature, a disallowed ' +
    'certificate URL or a Timestamp more than 1 hour off is refused with 401. A SubscriptionConfirmation is ' +
    'confirmed by visiting its SubscribeURL. A Notification carrying SES feedback suppresses the addresses of a ' +
    'permanent bounce or a complaint; transient bounces and other messages are acknowledged and ignored. The answer ' +
    'is the same whether or not an address is subscribed.',
  request: {
    headers: z.object({
      'x-amz-sns-message-type': z
        .string()
        .max(100)
        .optional()
        .openapi({
          param: { name: 'x-amz-sns-message-type', in: 'header' },
          description: "Must equal the body's `Type` when sent.",
        }),
    }),
    body: { required: true, content: { 'text/plain': { schema: SnsMessageSchema } } },
  },
  responses: {
    200: jsonResponse(SnsEventReceipt, 'Received.'),
    ...errorResponses(400, 401, 403, 404, 413, 415, 503),
  },
});

/** The problem a SubscribeURL visit that did not confirm is answered with. */
function visitProblem(visit: Exclude<SubscribeUrlVisit, { ok: true }>) {
  if ('refused' in visit) return problems.forbidden(`The SubscribeURL is not allowed: ${visit.refused}.`);
  if ('failed' in visit)
    return problems.unavailable(`Visiting the SubscribeURL failed (${visit.failed}); SNS will retry.`);
  return problems.unavailable(`The SubscribeURL answered ${visit.status}; SNS will retry.`);
}

/** Whether the SubscribeURL names another topic than the message does (SNS's own SubscribeURLs name the same one). */
function subscribeUrlTopicMismatch(subscribeUrl: string | undefined, topicArn: string): boolean {
  try {
    const named = new URL(subscribeUrl ?? '').searchParams.get('TopicArn');
    return named !== null && named !== topicArn;
  } catch {
    return false; // Not a URL: confirmSubscription refuses it.
  }
}

export const snsRoutes = createRouter().openapi(eventsRoute, async (c) => {
  const ctx = runContext(c.env);
  const { cfg } = ctx;
  if (cfg.emailProvider !== 'sns') throw problems.notFound('SNS is not the email provider of this deployment.');
  const policy: SnsUrlPolicy = { hosts: cfg.aws.certHosts, allowInsecure: cfg.allowInsecureWebhookTargets };

  let parsed: unknown;
  try {
    parsed = JSON.parse(await c.req.text());
  } catch {
    throw problems.malformedJson();
  }
  const result = SnsMessageSchema.safeParse(parsed);
  if (!result.success) {
    throw problems.unauthenticated(
      'Not a signed SNS message: Type, MessageId, TopicArn, Message, Timestamp, SignatureVersion (1 or 2), ' +
        'Signature and SigningCertURL are required.',
      'invalid_request',
    );
  }
  const msg = result.data as SnsMessage & z.infer<typeof SnsMessageSchema>;
  const headerType = c.req.header('x-amz-sns-message-type');
  if (headerType !== undefined && headerType !== msg.Type) {
    throw problems.validation([
      { path: 'header.x-amz-sns-message-type', message: `Does not match the message Type ${msg.Type}.` },
    ]);
  }

  // Before the signature: a stranger's topic costs no certificate fetch, and its SubscribeURL is never visited.
  if (!(await isOurTopic(c.env, cfg.aws, msg.TopicArn))) {
    console.warn(
      JSON.stringify({
        level: 'warn',
        msg: 'sns_topic_refused',
        requestId: c.get('requestId'),
        topicArn: msg.TopicArn.slice(0, 300),
        type: msg.Type,
      }),
    );
    throw problems.forbidden(
      "The message comes from a topic that is not one of this deployment's (created by it, in AWS_REGION and " +
        'AWS_ACCOUNT_ID).',
    );
  }

  const ts = Date.parse(msg.Timestamp);
  if (!Number.isFinite(ts) || Math.abs(Date.now() - ts) > SNS_MAX_AGE_MS) {
    throw problems.unauthenticated('The message Timestamp is more than 1 hour from now (stale or replayed message).');
  }

  const verification = await verifySnsMessage(msg, policy);
  if (!verification.ok) {
    console.warn(
      JSON.stringify({
        level: 'warn',
        msg: 'sns_signature_refused',
        requestId: c.get('requestId'),
        messageId: msg.MessageId.slice(0, 100),
        reason: verification.reason,
      }),
    );
    if (verification.retryable)
      throw problems.unavailable(`The SNS signing certificate could not be fetched: ${verification.reason}.`);
    throw problems.unauthenticated(`The SNS message signature was not accepted: ${verification.reason}.`);
  }

  let applied = 0;
  let ignored: string | undefined;
  let confirmed: boolean | undefined;

  if (msg.Type === 'SubscriptionConfirmation') {
    if (subscribeUrlTopicMismatch(msg.SubscribeURL, msg.TopicArn))
      throw problems.forbidden('The SubscribeURL is not allowed: it names another topic than the message.');
    const visit = await confirmSubscription(msg.SubscribeURL, policy);
    if (!visit.ok) throw visitProblem(visit);
    confirmed = true;
  } else if (msg.Type === 'UnsubscribeConfirmation') {
    ignored = 'UnsubscribeConfirmation: nothing to do (the subscription is not re-confirmed).';
  } else {
    const feedback = parseSesFeedback(msg.Message);
    const mailRef = feedback?.mailMessageId ? ` (SES message ${feedback.mailMessageId.slice(0, 100)})` : '';
    if (feedback?.kind === 'Bounce') {
      const { bounceType, bounceSubType, bouncedRecipients } = feedback.bounce;
      if (bounceType === 'Permanent') {
        for (const { email, diagnosticCode } of bouncedRecipients) {
          const detail = `${diagnosticCode ?? bounceSubType ?? "the recipient's server rejected the mail"}${mailRef}`;
          applied += await suppressAndAlert(ctx, { kind: 'bounce', email, detail, provider: 'ses' });
        }
      } else {
        ignored = `A ${(bounceType ?? 'unspecified').slice(0, 50)} bounce is not permanent: nothing is suppressed.`;
      }
    } else if (feedback?.kind === 'Complaint') {
      const { complaintFeedbackType, complainedRecipients } = feedback.complaint;
      const detail = `${complaintFeedbackType ?? 'the recipient marked the mail as spam'}${mailRef}`;
      const { subscriptionId } = feedback;
      for (const { email } of complainedRecipients) {
        applied += await suppressAndAlert(ctx, { kind: 'complaint', email, subscriptionId, detail, provider: 'ses' });
      }
    } else {
      ignored = feedback?.kind
        ? `SES ${feedback.kind.slice(0, 50)} notifications are not handled.`
        : 'The notification is not SES bounce or complaint feedback.';
    }
  }

  // How many subscriptions changed is logged, never answered: the caller must not learn who is subscribed.
  console.log(
    JSON.stringify({
      level: 'info',
      msg: 'sns_event',
      requestId: c.get('requestId'),
      type: msg.Type,
      messageId: msg.MessageId.slice(0, 100),
      applied,
      confirmed,
      ignored: ignored !== undefined,
    }),
  );
  return c.json(
    { received: true as const, ...(confirmed !== undefined ? { confirmed } : {}), ...(ignored ? { ignored } : {}) },
    200,
  );
});
