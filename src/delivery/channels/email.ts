/**
 * One email delivery: renders the notification mail and hands it to the configured provider. Never throws for a
 * delivery failure: the outcome is classified like a webhook's (provider_permanent / provider_transient).
 */

import { withDevMailbox } from '../../email/dev-mailbox.ts';
import { emailProvider } from '../../email/provider.ts';
import { cloudflareProvider } from '../../email/providers/cloudflare.ts';
import { type NotificationForMail, renderNotificationMail } from '../../email/templates.ts';
import type { DeliveryContext } from '../context.ts';
import type { ChannelResult } from './result.ts';

export interface EmailSend {
  deliveryId: string;
  subscriptionId: string | null;
  to: string;
  notification: NotificationForMail;
  unsubscribeUrl: string | null;
}

/** Sends one notification mail through the configured provider (the send_email binding for the platform alert). */
export async function sendEmail({ env, cfg }: DeliveryContext, req: EmailSend): Promise<ChannelResult> {
  const content = renderNotificationMail(req.notification, { unsubscribeUrl: req.unsubscribeUrl });
  const headers: Record<string, string> = { 'X-Gharart-Delivery-Id': req.deliveryId };
  if (req.unsubscribeUrl) {
    headers['List-Unsubscribe'] = `<${req.unsubscribeUrl}>`;
    headers['List-Unsubscribe-Post'] = 'List-Unsubscribe=One-Click';
  }
  const started = Date.now();
  // SNS can only reach its own subscribers: mail to the platform alert address goes through the send_email binding.
  const provider =
    cfg.emailProvider === 'sns' && req.subscriptionId === null ? cloudflareProvider(env) : emailProvider(env);
  const outcome = await withDevMailbox(env, provider).send(
    {
      from: { email: cfg.emailFrom, name: 'Gharart notifications' },
      to: { email: req.to },
      subject: content.subject,
      text: content.text,
      html: content.html,
      headers,
    },
    {
      subscriptionId: req.subscriptionId,
      deliveryId: req.deliveryId,
      handle: req.notification.handle,
      eventType: req.notification.type,
      severity: req.notification.severity,
    },
  );
  const durationMs = Date.now() - started;
  const requestBytes = new TextEncoder().encode(content.html).length + new TextEncoder().encode(content.text).length;
  if (outcome.ok) {
    return {
      observation: { kind: 'accepted' },
      httpStatus: null,
      responseSnippet: outcome.providerMessageId ? `accepted ${outcome.providerMessageId}` : 'accepted',
      durationMs,
      requestBytes,
      errorMessage: null,
    };
  }
  return {
    observation: { kind: 'provider', permanent: outcome.permanent, message: outcome.message },
    httpStatus: null,
    responseSnippet: null,
    durationMs,
    requestBytes,
    errorMessage: outcome.message,
  };
}
