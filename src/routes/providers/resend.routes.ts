/**
 * Resend's webhook (docs/design.md#email): `POST /v2/providers/resend/events`. Resend sends its events through Svix,
 * i.e. Standard Webhooks: `svix-id`, `svix-timestamp`, `svix-signature`
 * (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with RESEND_WEBHOOK_SECRET, a `whsec_` secret); the
 * `webhook-*` names are accepted too.
 *
 * The signature is over the raw bytes, so a route middleware reads the body as text and verifies it BEFORE the body
 * is parsed and validated (Hono keeps the text, and the JSON validator parses that same text). A missing, wrong or
 * stale (more than 5 minutes off) signature is a 401 and changes nothing.
 *
 * Events: `email.bounced` with a permanent bounce (`data.bounce.type` Permanent/hard, or absent — Resend documents the
 * event as a permanent rejection) suppresses every subscription with the address; a transient or soft bounce is
 * recorded nowhere. `email.complained` suppresses the subscription named by the mail's `subscription_id` tag (every
 * one with the address when the tag is missing). A suppressed owner default email raises the owner alert
 * (feedback.ts). Every other event type is acknowledged and ignored.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { suppressAndAlert } from '../../delivery/alerts.ts';
import { verifySignature } from '../../delivery/signing.ts';
import { type AppEnv, runContext } from '../../env.ts';
import { createRouter, errorResponses, jsonBody, jsonResponse } from '../../http/openapi.ts';
import { problems } from '../../lib/problem.ts';

/** Standard Webhooks' default tolerance: a signature more than 5 minutes from now is refused (replays). */
export const SIGNATURE_TOLERANCE_SECONDS = 300;
/** At most this many recipients of one event are looked at (our mails have exactly one). */
const MAX_RECIPIENTS = 50;

const headerParam = (name: string, description: string) =>
  z
    .string()
    .max(2000)
    .optional()
    .openapi({ param: { name, in: 'header' }, description });

const SignatureHeaders = z.object({
  'svix-id': headerParam('svix-id', 'Message id (Svix). Signed together with the timestamp and the body.'),
  'svix-timestamp': headerParam('svix-timestamp', 'Unix seconds; refused when more than 5 minutes from now.'),
  'svix-signature': headerParam('svix-signature', 'Space-separated `v1,<base64 HMAC-SHA256>` signatures.'),
  'webhook-id': headerParam(
    'webhook-id',
    'Standard Webhooks name of `svix-id` (used when no `svix-*` header is sent).',
  ),
  'webhook-timestamp': headerParam('webhook-timestamp', 'Standard Webhooks name of `svix-timestamp`.'),
  'webhook-signature': headerParam('webhook-signature', 'Standard Webhooks name of `svix-signature`.'),
});

const ResendTags = z
  .union([z.record(z.string(), z.unknown()), z.array(z.looseObject({ name: z.string(), value: z.unknown() }))])
  .openapi({
    description:
      'The tags the mail was sent with: `{name: value}` (or a `[{name, value}]` list). `subscription_id` names ' +
      'our subscription.',
  });

const ResendEventData = z
  .looseObject({
    email_id: z.string().optional(),
    created_at: z.string().optional(),
    from: z.string().optional(),
    to: z.union([z.array(z.string()), z.string()]).optional(),
    subject: z.string().optional(),
    bounce: z
      .looseObject({
        type: z
          .string()
          .optional()
          .openapi({ description: '`Permanent` (or absent) suppresses the address; `Transient` is ignored.' }),
        subType: z.string().optional(),
        message: z.string().optional(),
      })
      .optional(),
    tags: ResendTags.optional(),
  })
  .openapi('ResendEventData');

const ResendEvent = z
  .looseObject({
    type: z.string().min(1).max(100).openapi({ example: 'email.bounced' }),
    created_at: z.string().optional(),
    data: ResendEventData.optional(),
  })
  .openapi('ResendEvent', { description: 'A Resend webhook event (https://resend.com/docs/webhooks).' });

const ResendEventReceipt = z
  .object({
    received: z.literal(true),
    applied: z.number().int().min(0).openapi({ description: 'Email subscriptions this event suppressed.' }),
    ignored: z
      .string()
      .optional()
      .openapi({ description: 'Why the event changed nothing by design (type not handled, transient bounce).' }),
  })
  .openapi('ResendEventReceipt');

/** The signature header set: all `svix-*` when any is present, else the `webhook-*` names. */
function signatureHeaders(get: (name: string) => string | undefined) {
  const prefix =
    get('svix-id') !== undefined || get('svix-timestamp') !== undefined || get('svix-signature') !== undefined
      ? 'svix'
      : 'webhook';
  return { id: get(`${prefix}-id`), timestamp: get(`${prefix}-timestamp`), signature: get(`${prefix}-signature`) };
}

/** Verifies the Svix / Standard Webhooks signature over the raw body; runs before the body is parsed. */
const verifyResendSignature: MiddlewareHandler<AppEnv> = async (c, next) => {
  const secret = c.env.RESEND_WEBHOOK_SECRET?.trim();
  if (!secret) {
    console.error(
      JSON.stringify({ level: 'error', msg: 'resend_webhook_unconfigured', requestId: c.get('requestId') }),
    );
    throw problems.unavailable(
      'Resend webhooks are not configured on this deployment (RESEND_WEBHOOK_SECRET is not set).',
    );
  }
  const { id, timestamp, signature } = signatureHeaders((name) => c.req.header(name));
  if (!id || !timestamp || !signature) {
    throw problems.unauthenticated(
      'Missing signature: send svix-id, svix-timestamp and svix-signature (or the webhook-* headers).',
      'invalid_request',
    );
  }
  const ts = Number(timestamp);
  const now = Math.floor(Date.now() / 1000);
  if (!Number.isInteger(ts))
    throw problems.unauthenticated('The signature timestamp is not a Unix time in seconds.', 'invalid_request');
  if (Math.abs(now - ts) > SIGNATURE_TOLERANCE_SECONDS) {
    throw problems.unauthenticated(
      'The signature timestamp is more than 5 minutes from now (stale or replayed message).',
    );
  }
  const body = await c.req.text();
  let valid: boolean;
  try {
    valid = await verifySignature(secret, { id, timestamp, signature }, body, now, SIGNATURE_TOLERANCE_SECONDS);
  } catch (err) {
    // Only a malformed secret makes the HMAC key import fail.
    console.error(
      JSON.stringify({
        level: 'error',
        msg: 'resend_webhook_secret_invalid',
        requestId: c.get('requestId'),
        error: err instanceof Error ? err.name : 'unknown',
      }),
    );
    throw problems.unavailable('RESEND_WEBHOOK_SECRET is not a valid whsec_ secret on this deployment.');
  }
  if (!valid)
    throw problems.unauthenticated('The signature does not match the body (wrong secret, or the body was altered).');
  return next();
};

const eventsRoute = createRoute({
  method: 'post',
  path: '/v2/providers/resend/events',
  operationId: 'receiveResendEvent',
  tags: ['Providers'],
  summary: 'Resend webhook: bounces and complaints',
  description:
    'Called by Resend, not by clients. Authenticated by the Svix / Standard Webhooks signature ' +
    '(RESEND_WEBHOOK_SECRET) over the raw body; a missing, wrong or stale (> 5 min) signature is refused with ' +
    '401. `email.bounced` (permanent) suppresses every subscription with the address; `email.complained` ' +
    "suppresses the subscription in the mail's `subscription_id` tag; other events are acknowledged and ignored.",
  middleware: [verifyResendSignature],
  request: { headers: SignatureHeaders, body: jsonBody(ResendEvent) },
  responses: {
    200: jsonResponse(ResendEventReceipt, 'Received; `applied` subscriptions were suppressed.'),
    ...errorResponses(400, 401, 413, 415, 503),
  },
});

type EventData = z.infer<typeof ResendEventData>;

/** Distinct, trimmed recipient addresses of an event. */
function recipients(data: EventData | undefined): string[] {
  const to = data?.to;
  const list = typeof to === 'string' ? [to] : (to ?? []);
  const out = new Set<string>();
  for (const raw of list.slice(0, MAX_RECIPIENTS)) {
    // Resend may echo `Name <email>`; keep the address.
    const email = (/<([^<>]+)>\s*$/.exec(raw)?.[1] ?? raw).trim();
    if (email.includes('@') && email.length <= 254) out.add(email);
  }
  return [...out];
}

/** The `subscription_id` tag, from either tag shape. */
function subscriptionTag(data: EventData | undefined): string | null {
  const tags = data?.tags;
  let value: unknown;
  if (Array.isArray(tags)) value = tags.find((t) => t.name === 'subscription_id')?.value;
  else if (tags) value = tags.subscription_id;
  return typeof value === 'string' && /^[A-Za-z0-9_-]{1,256}$/.test(value) ? value : null;
}

const PERMANENT_BOUNCE = new Set(['permanent', 'hard']);

export const resendRoutes = createRouter().openapi(eventsRoute, async (c) => {
  const ctx = runContext(c.env);
  const event = c.req.valid('json');
  const data = event.data;
  const emailRef = data?.email_id ? ` (Resend email ${data.email_id.slice(0, 100)})` : '';
  let applied = 0;
  let ignored: string | undefined;

  if (event.type === 'email.bounced') {
    const bounceType = data?.bounce?.type?.trim();
    if (bounceType === undefined || bounceType === '' || PERMANENT_BOUNCE.has(bounceType.toLowerCase())) {
      const parts = [data?.bounce?.subType, data?.bounce?.message].filter(
        (p): p is string => typeof p === 'string' && p.trim() !== '',
      );
      const detail = `${parts.join(': ') || "the recipient's server rejected the mail"}${emailRef}`;
      for (const email of recipients(data)) {
        applied += await suppressAndAlert(ctx, {
          kind: 'bounce',
          email,
          subscriptionId: subscriptionTag(data),
          detail,
          provider: 'resend',
        });
      }
    } else {
      ignored = `A ${bounceType.slice(0, 50)} bounce is not permanent: nothing is suppressed.`;
    }
  } else if (event.type === 'email.complained') {
    const detail = `the recipient marked the mail as spam${emailRef}`;
    const subscriptionId = subscriptionTag(data);
    for (const email of recipients(data)) {
      applied += await suppressAndAlert(ctx, {
        kind: 'complaint',
        email,
        subscriptionId,
        detail,
        provider: 'resend',
      });
    }
  } else {
    ignored = `Event type ${event.type} is not handled.`;
  }

  console.log(
    JSON.stringify({
      level: 'info',
      msg: 'resend_event',
      requestId: c.get('requestId'),
      type: event.type,
      emailId: data?.email_id,
      applied,
      ignored: ignored !== undefined,
    }),
  );
  return c.json({ received: true as const, applied, ...(ignored ? { ignored } : {}) }, 200);
});
