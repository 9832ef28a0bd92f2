/**
 * Resend's HTTP API (`EMAIL_PROVIDER=resend`, docs/design.md#email): `POST {RESEND_API_URL}/emails` with the API key
 * as a Bearer token and the mail as JSON. Bounces and complaints come back through Resend's webhook
 * (routes/providers/resend.routes.ts), which finds the subscription again through the `subscription_id` tag.
 *
 * Outcomes: 2xx is accepted (Resend's email id is kept); a request Resend will never accept (400 bad request, 401/403
 * missing or invalid key, 404, 422 validation errors such as an invalid `to`) is permanent; 429 (rate limit, daily or
 * monthly quota), 5xx, network errors and the 15 s timeout are transient, so the delivery is retried on the schedule.
 * Every failure message carries Resend's own `name` and `message`, never the key.
 *
 * Retries of one delivery send the same `Idempotency-Key`: if an earlier attempt was accepted but its answer was lost
 * (a timeout), Resend answers with the first email's id instead of sending the mail twice. The key is the delivery id
 * plus a hash of the request body, because `SendMeta.deliveryId` is not unique per mail everywhere (a re-sent
 * confirmation mail reuses `confirm-<subscription>` with a new link): a different mail gets a different key, and Resend
 * never sees one key with two bodies (which it refuses with 409 invalid_idempotent_request).
 */
import type { RunContext } from '../../env.ts';
import { sha256Hex } from '../../lib/crypto.ts';
import {
  assertMailAddress,
  checkedCustomHeaders,
  type MailAddress,
  type OutgoingMail,
  sanitizeHeaderValue,
} from '../message.ts';
import type { EmailProvider, SendMeta, SendOutcome } from '../provider.ts';

const RESEND_TIMEOUT_MS = 15_000;
/** How much of an error answer is kept in the outcome message. */
const MESSAGE_MAX = 500;

/** The JSON body of `POST /emails` (https://resend.com/docs/api-reference/emails/send-email). */
export interface ResendEmailRequest {
  from: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
  reply_to?: string;
  headers?: Record<string, string>;
  tags: Array<{ name: string; value: string }>;
}

export interface ResendProviderOptions {
  /** Default 15 s. */
  timeoutMs?: number;
}

// atext and single spaces: a display name that needs no quoting.
const PLAIN_PHRASE = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/** `Name <email>` (the name quoted when it has specials), or the bare address. Throws on an invalid address. */
function formatResendAddress(address: MailAddress): string {
  const email = assertMailAddress(address.email);
  const name = sanitizeHeaderValue(address.name ?? '');
  if (!name) return email;
  if (PLAIN_PHRASE.test(name)) return `${name} <${email}>`;
  return `"${name.replace(/[\\"]/g, '\\$&')}" <${email}>`;
}

/** Resend tag values allow only ASCII letters, numbers, underscores and dashes, at most 256 characters. */
function tagValue(value: string): string {
  return value.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 256);
}

/** The request body for one mail. Throws on an invalid address or custom header (nothing is sent then). */
export function resendRequestBody(mail: OutgoingMail, meta: SendMeta): ResendEmailRequest {
  const headers = Object.fromEntries(checkedCustomHeaders(mail.headers, 'the provider'));
  const tags = [
    ...(meta.subscriptionId ? [{ name: 'subscription_id', value: tagValue(meta.subscriptionId) }] : []),
    { name: 'delivery_id', value: tagValue(meta.deliveryId) },
  ];
  return {
    from: formatResendAddress(mail.from),
    to: [assertMailAddress(mail.to.email)],
    subject: sanitizeHeaderValue(mail.subject),
    text: mail.text,
    html: mail.html,
    ...(mail.replyTo ? { reply_to: formatResendAddress(mail.replyTo) } : {}),
    ...(Object.keys(headers).length ? { headers } : {}),
    tags,
  };
}

/** Resend's error body: `{"statusCode":422,"name":"validation_error","message":"…"}`. */
function describeError(status: number, text: string): { name: string | null; description: string } {
  let name: string | null = null;
  let message: string | null = null;
  try {
    const body = JSON.parse(text) as { name?: unknown; message?: unknown; error?: unknown };
    if (typeof body.name === 'string') name = body.name;
    if (typeof body.message === 'string') message = body.message;
    else if (typeof body.error === 'string') message = body.error;
  } catch {
    // not JSON: keep the raw text
  }
  const detail = message ?? (text.trim() ? text.trim() : 'no error message');
  return { name, description: `Resend answered ${status}${name ? ` ${name}` : ''}: ${detail}`.replace(/\s+/g, ' ') };
}

/** Whether Resend answering `status` (with error `name`) means the same request can never succeed. */
function isPermanent(status: number, name: string | null): boolean {
  if (status === 429 || status >= 500) return false;
  // Another attempt with the same idempotency key is still in flight: try again later.
  if (status === 409 && name === 'concurrent_idempotent_requests') return false;
  if (status === 408) return false;
  return true;
}

/** `<delivery id>/<first 32 hex of SHA-256(body)>`: stable across retries of one mail, at most 256 characters. */
export async function idempotencyKey(deliveryId: string, body: string): Promise<string> {
  return `${deliveryId.slice(0, 200)}/${(await sha256Hex(body)).slice(0, 32)}`;
}

export function resendProvider({ env, cfg }: RunContext, options: ResendProviderOptions = {}): EmailProvider {
  const timeoutMs = options.timeoutMs ?? RESEND_TIMEOUT_MS;
  return {
    name: 'resend',
    async send(mail: OutgoingMail, meta: SendMeta): Promise<SendOutcome> {
      const key = env.RESEND_API_KEY?.trim();
      if (!key) {
        return {
          ok: false,
          permanent: true,
          message:
            'EMAIL_PROVIDER=resend but RESEND_API_KEY is not set: ' +
            'configure the secret (wrangler secret put RESEND_API_KEY).',
        };
      }
      let body: string;
      try {
        body = JSON.stringify(resendRequestBody(mail, meta));
      } catch (err) {
        return {
          ok: false,
          permanent: true,
          message: `Not sent to Resend: ${err instanceof Error ? err.message : String(err)}`.slice(0, MESSAGE_MAX),
        };
      }
      const url = `${cfg.resendApiUrl}/emails`;
      let res: Response;
      let text: string;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${key}`,
            'content-type': 'application/json',
            'idempotency-key': await idempotencyKey(meta.deliveryId, body),
            'user-agent': 'gharart-notify',
          },
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(timeoutMs),
        });
        text = await res.text();
      } catch (err) {
        const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
        const message = timedOut
          ? `Resend did not answer within ${timeoutMs} ms.`
          : `Resend request failed: ${err instanceof Error ? err.message : String(err)}`;
        return { ok: false, permanent: false, message: message.slice(0, MESSAGE_MAX) };
      }
      if (res.status >= 200 && res.status < 300) {
        let id: unknown = null;
        try {
          id = (JSON.parse(text) as { id?: unknown }).id;
        } catch {
          id = null;
        }
        return { ok: true, providerMessageId: typeof id === 'string' && id ? id.slice(0, 200) : null };
      }
      if (res.status >= 300 && res.status < 400) {
        return {
          ok: false,
          permanent: true,
          message: `Resend answered ${res.status} (a redirect): check RESEND_API_URL.`,
        };
      }
      const { name, description } = describeError(res.status, text.slice(0, 4096));
      return { ok: false, permanent: isPermanent(res.status, name), message: description.slice(0, MESSAGE_MAX) };
    },
  };
}
