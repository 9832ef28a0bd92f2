/**
 * The one way a mail leaves this service (docs/design.md#email): {@link sendMail} picks the provider for the
 * recipient, records the mail in the development mailbox (dev-mailbox.ts) when ENVIRONMENT=development, and sends.
 * Notification mails (delivery/channels/email.ts), confirmation mails (confirmation.ts) and support reports all go
 * through it; nothing else builds a provider.
 */
import type { RunContext } from '../env.ts';
import { withDevMailbox } from './dev-mailbox.ts';
import type { OutgoingMail } from './message.ts';
import type { EmailProvider, SendMeta, SendOutcome } from './provider.ts';
import { cloudflareProvider } from './providers/cloudflare.ts';
import { resendProvider } from './providers/resend.ts';
import { snsProvider } from './providers/sns/provider.ts';

/**
 * Who a mail is for, which decides the provider:
 * - `subscriber`: an email subscription's address (its notifications and its confirmation mail): the configured
 *   provider;
 * - `platform-alert`: PLATFORM_ALERT_EMAIL, which is no subscription: the configured provider, except SNS, which can
 *   only reach its own topic subscribers: then the `send_email` binding;
 * - `support`: SUPPORT_EMAIL: always the `send_email` binding.
 */
export type MailRoute = 'subscriber' | 'platform-alert' | 'support';

/** A mail to send: everything but the sender, which is always this deployment's EMAIL_FROM. */
export type Mail = Omit<OutgoingMail, 'from'>;

const SENDER_NAME = 'Gharart notifications';

/**
 * Sends one mail from EMAIL_FROM through the provider its route calls for. A refused or failed send resolves to the
 * provider's outcome; it rejects only when the mail cannot be handed over at all (a message the `send_email` path
 * cannot build, a development mailbox that cannot be written).
 */
export async function sendMail(
  run: RunContext,
  mail: Mail,
  meta: SendMeta,
  options: { route: MailRoute },
): Promise<SendOutcome> {
  return await withDevMailbox(run, providerFor(run, options.route)).send(
    { from: { email: run.cfg.emailFrom, name: SENDER_NAME }, ...mail },
    meta,
  );
}

function providerFor(run: RunContext, route: MailRoute): EmailProvider {
  if (route === 'support') return cloudflareProvider(run.env);
  if (route === 'platform-alert' && run.cfg.emailProvider === 'sns') return cloudflareProvider(run.env);
  return configuredProvider(run);
}

/** The provider EMAIL_PROVIDER names. */
function configuredProvider(run: RunContext): EmailProvider {
  const name = run.cfg.emailProvider;
  if (name === 'cloudflare') return cloudflareProvider(run.env);
  if (name === 'resend') return resendProvider(run);
  if (name === 'sns') return snsProvider(run);
  // Not a silent fallback: every send fails visibly (provider_permanent) until the configuration is fixed.
  return {
    name,
    send: async () => ({
      ok: false,
      permanent: true,
      message: `EMAIL_PROVIDER=${name} is not supported by this deployment.`,
    }),
  };
}
