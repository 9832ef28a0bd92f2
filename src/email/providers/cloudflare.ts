/**
 * Cloudflare Email Service (Email Sending) through the `send_email` binding (`EMAIL`), docs/design.md#email. The
 * binding takes the structured form — from, to, subject, text, html, headers, replyTo — and writes the MIME itself;
 * `send()` answers with the provider's message id, which the delivery keeps so Email Sending's later verdicts
 * (delivered, bounced, complained …; docs/design.md#email-events) find it again. `wrangler dev` and the tests run the
 * same binding locally (Miniflare), which answers with a message id of its own.
 *
 * A mail that cannot be built (an invalid address, a reserved or malformed header) never reaches the binding; errors
 * the binding throws are mapped to permanent (the address or sender will never be accepted) or transient.
 */
import {
  assertMailAddress,
  bareMessageId,
  checkedCustomHeaders,
  type MailAddress,
  type OutgoingMail,
  sanitizeHeaderValue,
} from '../message.ts';
import type { EmailProvider, SendMeta, SendOutcome } from '../provider.ts';

const PERMANENT = /not (?:verified|allowed|permitted)|invalid|destination address|no such|unknown recipient/i;

/** An address for the binding: the validated address, with its display name when one is left after cleaning. */
function address(a: MailAddress): string | EmailAddress {
  const email = assertMailAddress(a.email);
  const name = sanitizeHeaderValue(a.name ?? '');
  return name ? { name, email } : email;
}

/**
 * The structured message the binding sends: addresses validated, subject and names cleaned of line breaks, custom
 * headers checked (docs/design.md#email). Throws on a mail that must not be sent, before anything leaves.
 */
export function structuredMessage(mail: OutgoingMail): EmailMessageBuilder {
  const headers = checkedCustomHeaders(mail.headers, 'Email Sending');
  return {
    from: address(mail.from),
    to: address(mail.to),
    ...(mail.replyTo ? { replyTo: address(mail.replyTo) } : {}),
    subject: sanitizeHeaderValue(mail.subject),
    text: mail.text,
    html: mail.html,
    ...(headers.length ? { headers: Object.fromEntries(headers) } : {}),
  };
}

/** The default provider (`EMAIL_PROVIDER=cloudflare`), and the support and SNS platform-alert route. */
export function cloudflareProvider(env: Pick<Env, 'EMAIL'>): EmailProvider {
  return {
    name: 'cloudflare',
    async send(mail: OutgoingMail, _meta: SendMeta): Promise<SendOutcome> {
      const message = structuredMessage(mail);
      try {
        const result = await env.EMAIL.send(message);
        const id = typeof result?.messageId === 'string' ? bareMessageId(result.messageId) : '';
        return { ok: true, providerMessageId: id || null };
      } catch (err) {
        const text = err instanceof Error ? err.message : String(err);
        return { ok: false, permanent: PERMANENT.test(text), message: text.slice(0, 500) };
      }
    },
  };
}
