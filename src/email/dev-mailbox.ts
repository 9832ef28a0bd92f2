/**
 * The local mailbox (docs/design.md#routes `/dev/mailbox`): in development every mail a provider accepts is also stored
 * in D1, so a user sees confirmation links and test mails without a real inbox. Production never writes it.
 */
import type { RunContext } from '../env.ts';
import { newId } from '../lib/ids.ts';
import type { EmailProvider } from './provider.ts';

/** The provider, recording what it sends when ENVIRONMENT=development. */
export function withDevMailbox({ env, cfg }: RunContext, provider: EmailProvider): EmailProvider {
  if (!cfg.isDevelopment) return provider;
  return {
    name: provider.name,
    async send(mail, meta) {
      const outcome = await provider.send(mail, meta);
      if (outcome.ok) {
        await env.DB.prepare(
          'INSERT INTO dev_mailbox ' +
            '(id, provider, from_address, to_address, subject, headers, text_body, html_body, created_at) ' +
            'VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)',
        )
          .bind(
            newId('mail'),
            provider.name,
            mail.from.email,
            mail.to.email,
            mail.subject,
            JSON.stringify(mail.headers ?? {}),
            mail.text,
            mail.html,
            new Date().toISOString(),
          )
          .run();
      }
      return outcome;
    },
  };
}
