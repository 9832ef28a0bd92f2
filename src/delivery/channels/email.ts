/**
 * One email delivery: renders the notification mail and sends it (email/send.ts picks the provider). Never throws
 * for a delivery failure: the outcome is classified like a webhook's (provider_permanent / provider_transient).
 */
import { sendMail } from '../../email/send.ts';
import { type NotificationForMail, renderNotificationMail } from '../../email/templates.tsx';
import type { RunContext } from '../../env.ts';
import type { ChannelResult } from './result.ts';

export interface EmailSend {
  deliveryId: string;
  subscriptionId: string | null;
  to: string;
  notification: NotificationForMail;
  unsubscribeUrl: string | null;
}

/** Sends one notification mail through the configured provider (the send_email binding for the platform alert). */
export async function sendEmail(run: RunContext, req: EmailSend): Promise<ChannelResult> {
  const content = renderNotificationMail(req.notification, { unsubscribeUrl: req.unsubscribeUrl });
  const headers: Record<string, string> = { 'X-Gharart-Delivery-Id': req.deliveryId };
  if (req.unsubscribeUrl) {
    headers['List-Unsubscribe'] = `<${req.unsubscribeUrl}>`;
    headers['List-Unsubscribe-Post'] = 'List-Unsubscribe=One-Click';
  }
  const started = Date.now();
  const outcome = await sendMail(
    run,
    {
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
    // A mail with no subscription behind it goes to the platform alert address.
    { route: req.subscriptionId === null ? 'platform-alert' : 'subscriber' },
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
      providerMessageId: outcome.providerMessageId,
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
