/**
 * The email provider interface (docs/design.md#email): one adapter per `EMAIL_PROVIDER`. Only `email/providers/*` talk
 * to a mail API; the pipeline sees `send()` and an outcome it can classify.
 */
import { config } from '../env.ts';
import type { OutgoingMail } from './mime.ts';
import { cloudflareProvider } from './providers/cloudflare.ts';
import { resendProvider } from './providers/resend.ts';
import { snsProvider } from './providers/sns/provider.ts';

export type SendOutcome =
  | { ok: true; providerMessageId: string | null }
  | { ok: false; permanent: boolean; message: string };

/** What a send is about, for providers that route or tag by it (Resend tags, SNS message attributes). */
export interface SendMeta {
  /** The email subscription the mail is for (null for the platform alert address). */
  subscriptionId: string | null;
  deliveryId: string;
  handle: string;
  eventType: string;
  severity: 'info' | 'warning' | 'critical';
}

export interface EmailProvider {
  readonly name: string;
  send(mail: OutgoingMail, meta: SendMeta): Promise<SendOutcome>;
}

/** The provider configured for this deployment. */
export function emailProvider(env: Env): EmailProvider {
  const name = config(env).emailProvider;
  if (name === 'cloudflare') return cloudflareProvider(env);
  if (name === 'resend') return resendProvider(env);
  if (name === 'sns') return snsProvider(env);
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
