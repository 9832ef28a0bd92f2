/**
 * Double opt-in (docs/design.md#email): a new subscription gets one mail with a single-use link (its token stored only
 * as a hash, valid 72 h); nothing else reaches the address until it is confirmed. Resending makes a new token, so an
 * older link stops working.
 */
import { findOnShards, shardFor } from '../db/shards.ts';
import type { Config, RunContext } from '../env.ts';
import { randomBytes, sha256Hex, toBase64Url } from '../lib/crypto.ts';
import { claimFirstConfirmation } from './confirmation-limits.ts';
import { sendMail } from './send.ts';
import { renderConfirmationMail } from './templates.tsx';

const CONFIRM_TTL_MS = 72 * 3600 * 1000;

export interface PendingSubscription {
  id: string;
  handle: string;
  email: string;
}

export function confirmUrl(cfg: Config, token: string): string {
  return `${cfg.publicBaseUrl}/v2/email/confirm?token=${encodeURIComponent(token)}`;
}

/**
 * Stores a new token for the subscription (only while it is pending) and mails the link. Returns whether the
 * provider accepted the mail, and why not.
 */
export async function sendConfirmation(
  run: RunContext,
  sub: PendingSubscription,
): Promise<{ sent: boolean; detail: string }> {
  const { env } = run;
  // A fresh token: the link carries it, the row keeps only its hash.
  const token = toBase64Url(randomBytes(32));
  const hash = await sha256Hex(token);
  const expiresAt = new Date(Date.now() + CONFIRM_TTL_MS).toISOString();
  const d1 = await shardFor(env, sub.handle);
  const updated = await d1
    .prepare(
      'UPDATE email_subscriptions SET confirm_token_hash = ?2, confirm_expires_at = ?3, updated_at = ?4 ' +
        "WHERE id = ?1 AND status = 'pending_confirmation'",
    )
    .bind(sub.id, hash, expiresAt, new Date().toISOString())
    .run();
  if (!updated.meta.changes) return { sent: false, detail: 'The subscription is not waiting for confirmation.' };
  const content = renderConfirmationMail({
    handle: sub.handle,
    email: sub.email,
    confirmUrl: confirmUrl(run.cfg, token),
    expiresAt,
  });
  const outcome = await sendMail(
    run,
    {
      to: { email: sub.email },
      ...content,
      headers: { 'X-Gharart-Subscription-Id': sub.id },
    },
    {
      subscriptionId: sub.id,
      deliveryId: `confirm-${sub.id}`,
      handle: sub.handle,
      eventType: 'email.confirmation',
      severity: 'info',
    },
    { route: 'subscriber' },
  );
  const detail = outcome.ok
    ? `Confirmation mail sent; the link is valid until ${expiresAt}.`
    : `The confirmation mail could not be sent (${outcome.message}); ` +
      'resend it with POST …/email-subscriptions/{id}/resend-confirmation.';
  await d1
    .prepare(`UPDATE email_subscriptions SET status_reason = ?2 WHERE id = ?1 AND status = 'pending_confirmation'`)
    .bind(sub.id, detail)
    .run();
  return { sent: outcome.ok, detail };
}

/**
 * The first confirmation mail of a new subscription, when the address's daily cap of them allows it
 * (src/email/confirmation-limits.ts); otherwise no mail: the subscription waits with the reason and without a cooldown,
 * so `…/resend-confirmation` can send it under the resend cap.
 */
export async function sendFirstConfirmation(
  run: RunContext,
  sub: PendingSubscription,
): Promise<{ sent: boolean; detail: string }> {
  const claim = await claimFirstConfirmation(run.env.DB, sub.email);
  if (claim.ok) return sendConfirmation(run, sub);
  const detail = `No confirmation mail was sent. ${claim.detail}`;
  await (await shardFor(run.env, sub.handle))
    .prepare(
      'UPDATE email_subscriptions SET status_reason = ?2, confirm_sent_at = NULL, updated_at = ?3 ' +
        "WHERE id = ?1 AND status = 'pending_confirmation'",
    )
    .bind(sub.id, detail, new Date().toISOString())
    .run();
  return { sent: false, detail };
}

/**
 * Confirms the subscription a token belongs to. Single use: the hash is cleared. An unknown, used or expired token
 * changes nothing.
 */
export async function confirmByToken(
  env: Env,
  token: string,
): Promise<{ ok: true; email: string; handle: string } | { ok: false; reason: 'unknown' | 'expired' }> {
  const hash = await sha256Hex(token);
  // The link names no handle: the token's shard is the one that has it.
  const hit = await findOnShards(env, (d1) =>
    d1
      .prepare(
        'SELECT id, email, handle, confirm_expires_at FROM email_subscriptions ' +
          "WHERE confirm_token_hash = ?1 AND status = 'pending_confirmation'",
      )
      .bind(hash)
      .first<{ id: string; email: string; handle: string; confirm_expires_at: string | null }>(),
  );
  if (!hit) return { ok: false, reason: 'unknown' };
  const { d1, found: row } = hit;
  if (!row.confirm_expires_at || Date.parse(row.confirm_expires_at) <= Date.now())
    return { ok: false, reason: 'expired' };
  const now = new Date().toISOString();
  const done = await d1
    .prepare(
      "UPDATE email_subscriptions SET status = 'active', status_reason = NULL, confirmed_at = ?3, " +
        'confirm_token_hash = NULL, confirm_expires_at = NULL, updated_at = ?3 ' +
        "WHERE id = ?1 AND confirm_token_hash = ?2 AND status = 'pending_confirmation'",
    )
    .bind(row.id, hash, now)
    .run();
  return done.meta.changes ? { ok: true, email: row.email, handle: row.handle } : { ok: false, reason: 'unknown' };
}
