/**
 * The email side of Amazon SNS's HTTP(S) delivery (`POST /v2/providers/sns/events`, docs/design.md#email): visiting
 * the SubscribeURL of a SubscriptionConfirmation, and reading the SES bounce or complaint feedback a Notification
 * carries. The route verifies the message first (sns-signature.ts) and decides what to answer.
 */
import { isPlainObject } from '../lib/json.ts';
import { type SnsUrlPolicy, urlProblem } from './sns-signature.ts';
import { feedbackAddress, MAX_FEEDBACK_RECIPIENTS, subscriptionTagValue } from './suppression.ts';

/** How long the SubscribeURL may take to answer. */
const CONFIRM_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------------------------------
// SubscriptionConfirmation
// ---------------------------------------------------------------------------------------------------------------

/**
 * How a SubscribeURL visit went: confirmed; `refused` before any request (why: the URL policy's words); `failed`
 * without an answer (the error's name); or answered with a non-2xx `status`.
 */
export type SubscribeUrlVisit =
  | { ok: true }
  | { ok: false; refused: string }
  | { ok: false; failed: string }
  | { ok: false; status: number };

/**
 * Confirms an SNS subscription by visiting its SubscribeURL (a GET), once the URL passes the same policy as signing
 * certificates ({@link urlProblem}). Redirects are not followed: they could lead off the allow-list.
 */
export async function confirmSubscription(
  subscribeUrl: string | undefined,
  policy: SnsUrlPolicy,
): Promise<SubscribeUrlVisit> {
  const refused = urlProblem(subscribeUrl, policy);
  if (refused !== null || subscribeUrl === undefined) return { ok: false, refused: refused ?? 'missing' };
  let res: Response;
  try {
    res = await fetch(subscribeUrl, { signal: AbortSignal.timeout(CONFIRM_TIMEOUT_MS), redirect: 'manual' });
    await res.body?.cancel();
  } catch (err) {
    return { ok: false, failed: err instanceof Error ? err.name : 'error' };
  }
  return res.ok ? { ok: true } : { ok: false, status: res.status };
}

// ---------------------------------------------------------------------------------------------------------------
// SES feedback
// ---------------------------------------------------------------------------------------------------------------

/** One entry of SES's `bouncedRecipients` / `complainedRecipients`, as far as it is read. */
export interface SesRecipient {
  /** `emailAddress` without a display name (`Name <a@b>` → `a@b`). */
  email: string;
  /** `diagnosticCode` (bounces), e.g. `smtp; 550 5.1.1 user unknown`. */
  diagnosticCode?: string;
}

/**
 * The fields of an SES notification that are read. Text fields are trimmed and absent when empty or not a string;
 * recipients are distinct addresses (case-insensitively), taken from the first {@link MAX_FEEDBACK_RECIPIENTS}
 * entries.
 */
export interface SesFeedback {
  /** `notificationType` (SES notifications) or else `eventType` (SES event publishing): `Bounce`, `Complaint`, … */
  kind?: string;
  /** `mail.messageId`, as SES wrote it. */
  mailMessageId?: string;
  /** Our `subscription_id` mail tag (`mail.tags: {name: [values]}`), when SES echoes a valid one. */
  subscriptionId: string | null;
  bounce: { bounceType?: string; bounceSubType?: string; bouncedRecipients: SesRecipient[] };
  complaint: { complaintFeedbackType?: string; complainedRecipients: SesRecipient[] };
}

/** A Notification's Message as SES feedback, or null when it is not a JSON object (then it is not SES feedback). */
export function parseSesFeedback(message: string): SesFeedback | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return null;
  }
  if (!isPlainObject(parsed)) return null;
  const mail = field(parsed, 'mail');
  const messageId = field(mail, 'messageId');
  const bounce = field(parsed, 'bounce');
  const complaint = field(parsed, 'complaint');
  return {
    kind: text(parsed.notificationType) ?? text(parsed.eventType),
    // Tested trimmed, kept as written.
    mailMessageId: typeof messageId === 'string' && text(messageId) ? messageId : undefined,
    subscriptionId: subscriptionTag(mail),
    bounce: {
      bounceType: text(field(bounce, 'bounceType')),
      bounceSubType: text(field(bounce, 'bounceSubType')),
      bouncedRecipients: recipients(field(bounce, 'bouncedRecipients')),
    },
    complaint: {
      complaintFeedbackType: text(field(complaint, 'complaintFeedbackType')),
      complainedRecipients: recipients(field(complaint, 'complainedRecipients')),
    },
  };
}

/** `v[key]` when v is a JSON object, else undefined. */
function field(v: unknown, key: string): unknown {
  return isPlainObject(v) ? v[key] : undefined;
}

/** A non-empty string, trimmed; else undefined. */
function text(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/** Distinct addresses of a recipient list; a later entry for the same address replaces the earlier one. */
function recipients(list: unknown): SesRecipient[] {
  if (!Array.isArray(list)) return [];
  const out = new Map<string, SesRecipient>();
  for (const entry of list.slice(0, MAX_FEEDBACK_RECIPIENTS)) {
    const email = feedbackAddress(text(field(entry, 'emailAddress')) ?? '');
    if (!email) continue;
    const diagnosticCode = text(field(entry, 'diagnosticCode'));
    out.set(email.toLowerCase(), diagnosticCode === undefined ? { email } : { email, diagnosticCode });
  }
  return [...out.values()];
}

/** The `subscription_id` mail tag SES echoes (`mail.tags: {name: [values]}`), if any. */
function subscriptionTag(mail: unknown): string | null {
  const value = field(field(mail, 'tags'), 'subscription_id');
  return subscriptionTagValue(Array.isArray(value) ? value[0] : value);
}
