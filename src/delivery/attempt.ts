/**
 * One delivery attempt, whatever the channel: builds the exact request from stored rows (so every retry of a
 * delivery sends the same body under the same `webhook-id`), sends it, and classifies the outcome. The consumer and
 * the test-send routes both call this, so a test send and a production send are one code path.
 */

import type { deliveries, emailSubscriptions, notifications, webhookSubscriptions } from '../db/schema.ts';
import { unsubscribeToken, unsubscribeUrl } from '../email/unsubscribe.ts';
import type { RunContext } from '../env.ts';
import { decryptSecret, importEncryptionKey } from '../lib/crypto.ts';
import { fromJsonColumn } from '../lib/json.ts';
import { sendEmail } from './channels/email.ts';
import type { ChannelResult } from './channels/result.ts';
import { sendWebhook } from './channels/webhook.ts';
import { type Classification, classify } from './classify.ts';

export type DeliveryRow = typeof deliveries.$inferSelect;
export type NotificationRow = typeof notifications.$inferSelect;
export type WebhookRow = typeof webhookSubscriptions.$inferSelect;
export type EmailRow = typeof emailSubscriptions.$inferSelect;

/** The event a delivery carries: from its notification, or from the delivery's own payload for test sends. */
export interface DeliveredEvent {
  id: string;
  handle: string;
  type: string;
  severity: 'info' | 'warning' | 'critical';
  occurredAt: string;
  data: Record<string, unknown>;
  test: boolean;
}

/** One attempt's rows: the delivery, its event, and its webhook subscription on the webhook channel. */
export interface AttemptInput {
  delivery: DeliveryRow;
  event: DeliveredEvent;
  webhook?: WebhookRow | undefined;
}

export interface AttemptOutcome extends ChannelResult {
  classification: Classification;
}

/** The event of a delivery (null when its notification is gone). */
export function eventOf(delivery: DeliveryRow, notification: NotificationRow | undefined): DeliveredEvent | null {
  if (delivery.payload) return JSON.parse(delivery.payload) as DeliveredEvent;
  if (!notification) return null;
  return {
    id: notification.id,
    handle: notification.handle,
    type: notification.type,
    severity: notification.severity,
    occurredAt: notification.occurredAt,
    data: JSON.parse(notification.data) as Record<string, unknown>,
    test: false,
  };
}

/**
 * The webhook body (docs/design.md#webhook-request). Key order is fixed, so the same delivery always sends the same
 * bytes.
 */
export function webhookBody(e: DeliveredEvent): string {
  return JSON.stringify({
    id: e.id,
    type: e.type,
    handle: e.handle,
    severity: e.severity,
    timestamp: e.occurredAt,
    data: e.data,
    test: e.test,
  });
}

/**
 * Decrypted signing secrets by their sealed form, per isolate: every delivery to a webhook would otherwise decrypt
 * the same secret again (AES-GCM, about 5 % of the consumer's CPU in `npm run bench:profile -- deliver`). Keyed by
 * the encryption key and the ciphertext, so a rotated secret is a new entry, never the old one; bounded like the
 * HMAC keys made from the same secrets (src/delivery/signing.ts), which the isolate holds anyway.
 */
const openedByKey = new WeakMap<CryptoKey, Map<string, Promise<string>>>();
const OPENED_MAX = 1000;

function openSecret(sealed: string, key: CryptoKey): Promise<string> {
  let opened = openedByKey.get(key);
  if (!opened) {
    opened = new Map();
    openedByKey.set(key, opened);
  }
  let secret = opened.get(sealed);
  if (!secret) {
    if (opened.size >= OPENED_MAX) opened.clear();
    secret = decryptSecret(sealed, key);
    // A failure (tampered row, another key) is not remembered: the next delivery reports it again.
    const cache = opened;
    secret.catch(() => cache.delete(sealed));
    opened.set(sealed, secret);
  }
  return secret;
}

/** The secrets that sign a request: the current one, and the previous one while its rotation grace lasts. */
export async function signingSecrets(env: Env, webhook: WebhookRow, now = Date.now()): Promise<string[]> {
  const key = await importEncryptionKey(env.ENCRYPTION_KEY);
  const secrets = [await openSecret(webhook.secretEncrypted, key)];
  if (
    webhook.previousSecretEncrypted &&
    webhook.previousSecretExpiresAt &&
    Date.parse(webhook.previousSecretExpiresAt) > now
  ) {
    secrets.push(await openSecret(webhook.previousSecretEncrypted, key));
  }
  return secrets;
}

/**
 * Performs one attempt. Throws only on bugs or corrupt rows (the caller isolates them per message), or when a
 * webhook's `beforeSend` throws (no request is made).
 */
export async function performAttempt(
  ctx: RunContext,
  input: AttemptInput,
  options: { beforeSend?: () => Promise<void> } = {},
): Promise<AttemptOutcome> {
  const { env, cfg } = ctx;
  const { delivery, event, webhook } = input;
  let result: ChannelResult;
  if (delivery.channel === 'webhook') {
    if (!webhook) throw new Error(`delivery ${delivery.id} has no webhook subscription`);
    result = await sendWebhook({
      msgId: delivery.id,
      url: webhook.url,
      body: webhookBody(event),
      secrets: await signingSecrets(env, webhook),
      headers: fromJsonColumn<Record<string, string>>(webhook.headers) ?? {},
      timeoutMs: cfg.webhookTimeoutMs,
      allowInsecure: cfg.allowInsecureWebhookTargets,
      dohUrl: cfg.dnsOverHttpsUrl,
      ...(options.beforeSend ? { beforeSend: options.beforeSend } : {}),
    });
  } else {
    result = await sendEmail(ctx, {
      deliveryId: delivery.id,
      subscriptionId: delivery.recipientType === 'platform_alert' ? null : delivery.subscriptionId,
      to: delivery.target,
      notification: {
        id: event.id,
        handle: event.handle,
        type: event.type,
        severity: event.severity,
        occurredAt: event.occurredAt,
        data: event.data,
        test: event.test,
      },
      // Every mail to a subscriber can be stopped in one click; the platform alert address is not a subscriber.
      unsubscribeUrl:
        delivery.subscriptionId && delivery.recipientType !== 'platform_alert'
          ? unsubscribeUrl(
              cfg.publicBaseUrl,
              // Bound to the address this mail goes to: it stops working if the subscription's address changes.
              await unsubscribeToken(env.ENCRYPTION_KEY, delivery.subscriptionId, delivery.target),
            )
          : null,
    });
  }
  return { ...result, classification: classify(result.observation) };
}
