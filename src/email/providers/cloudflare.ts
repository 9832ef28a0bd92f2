/**
 * Cloudflare Email Routing through the `send_email` binding (`EMAIL`). wrangler dev simulates it locally. The
 * binding takes a complete MIME message; errors it throws are mapped to permanent (the address or sender will never
 * be accepted) or transient.
 */
import { EmailMessage } from 'cloudflare:email';
import { buildMimeMessage, type OutgoingMail } from '../mime.ts';
import type { EmailProvider, SendMeta, SendOutcome } from '../provider.ts';

const PERMANENT = /not (?:verified|allowed|permitted)|invalid|destination address|no such|unknown recipient/i;

export function cloudflareProvider(env: Pick<Env, 'EMAIL'>): EmailProvider {
  return {
    name: 'cloudflare',
    async send(mail: OutgoingMail, _meta: SendMeta): Promise<SendOutcome> {
      const raw = buildMimeMessage(mail);
      try {
        await env.EMAIL.send(new EmailMessage(mail.from.email, mail.to.email, raw));
        return { ok: true, providerMessageId: /^Message-ID:\s*(\S+)/im.exec(raw)?.[1] ?? null };
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        return { ok: false, permanent: PERMANENT.test(message), message: message.slice(0, 500) };
      }
    },
  };
}
