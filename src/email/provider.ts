/**
 * The email provider interface (docs/design.md#email): one adapter per `EMAIL_PROVIDER` under `email/providers/`,
 * which import these types and nothing above them. Only `email/providers/*` talk to a mail API; the pipeline sees
 * `send()` and an outcome it can classify. Which provider sends a mail is decided in one place, `send.ts`.
 */
import type { OutgoingMail } from './message.ts';

export type SendOutcome =
  | { ok: true; providerMessageId: string | null }
  | { ok: false; permanent: boolean; message: string };

/** What a send is about, for providers that route or tag by it (Resend tags, SNS message attributes). */
export interface SendMeta {
  /** The email subscription the mail is for (null for the platform alert and support addresses). */
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
