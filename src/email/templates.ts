/**
 * The mails this service sends: one per notification, the double opt-in confirmation, and the test mail. Each is a
 * subject, a plain-text body and an HTML body; {@link buildMimeMessage} in `mime.ts` turns them into a message.
 *
 * Event data is written by clients, so it is treated as hostile: every value is HTML-escaped (keys too), values are
 * shown on one line with control and bidi characters made visible (a value cannot forge a footer line or reorder what
 * is shown), nothing from the data ever becomes a link, and sizes are capped. The HTML loads nothing: no images,
 * fonts or stylesheets, only inline styles, so it renders the same with remote content blocked and tracks nobody.
 */
import { eventTypeInfo, type Severity } from '../lib/event-catalog.ts';
import { isPlainObject } from '../lib/json.ts';
import { sanitizeHeaderValue } from './mime.ts';

export interface NotificationForMail {
  id: string;
  handle: string;
  type: string;
  severity: Severity;
  occurredAt: string;
  data: Record<string, unknown>;
  test?: boolean;
}

export interface MailLinks {
  unsubscribeUrl: string | null;
  dashboardUrl?: string | null;
}

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

/** Data fields listed per mail; the rest are counted ("… 10 more fields not shown"). */
export const MAX_LISTED_FIELDS = 50;
/** A value (or key) longer than this is cut, with an ellipsis. */
export const MAX_VALUE_CHARS = 500;
/** Upper bound of the HTML body in UTF-8 bytes; fields that would pass it are counted as not shown. */
export const MAX_HTML_BYTES = 100_000;

const MAX_KEY_CHARS = 200;
const MAX_TITLE_CHARS = 100;

// ---------------------------------------------------------------------------------------------------------------------
// Notification mail

/**
 * Key facts per event type: the fields a reader looks for first, in that order. `money` pairs an amount with the
 * `currency` field. Types not listed (unknown types) show only the full field list.
 */
type Fact = { key: string; label: string; money?: true };

const FACTS: Record<string, Fact[]> = {
  'order.created': [
    { key: 'orderId', label: 'Order' },
    { key: 'total', label: 'Total', money: true },
    { key: 'items', label: 'Items' },
    { key: 'customerEmail', label: 'Customer' },
  ],
  'order.paid': [
    { key: 'orderId', label: 'Order' },
    { key: 'total', label: 'Total', money: true },
    { key: 'paymentId', label: 'Payment' },
  ],
  'order.fulfilled': [
    { key: 'orderId', label: 'Order' },
    { key: 'carrier', label: 'Carrier' },
    { key: 'trackingNumber', label: 'Tracking number' },
    { key: 'shippedAt', label: 'Shipped at' },
  ],
  'order.cancelled': [
    { key: 'orderId', label: 'Order' },
    { key: 'reason', label: 'Reason' },
  ],
  'order.refunded': [
    { key: 'orderId', label: 'Order' },
    { key: 'amount', label: 'Amount', money: true },
  ],
  'fulfillment.delayed': [
    { key: 'orderId', label: 'Order' },
    { key: 'promisedBy', label: 'Promised by' },
    { key: 'expectedBy', label: 'Now expected by' },
  ],
  'fulfillment.failed': [
    { key: 'orderId', label: 'Order' },
    { key: 'reason', label: 'Reason' },
    { key: 'sku', label: 'SKU' },
  ],
  'payment.failed': [
    { key: 'orderId', label: 'Order' },
    { key: 'paymentId', label: 'Payment' },
    { key: 'code', label: 'Decline code' },
    { key: 'amount', label: 'Amount', money: true },
  ],
  'campaign.scheduled': [
    { key: 'campaignId', label: 'Campaign' },
    { key: 'name', label: 'Name' },
    { key: 'startsAt', label: 'Starts at' },
  ],
  'campaign.started': [
    { key: 'campaignId', label: 'Campaign' },
    { key: 'audience', label: 'Audience' },
  ],
  'campaign.completed': [
    { key: 'campaignId', label: 'Campaign' },
    { key: 'sent', label: 'Sent' },
    { key: 'failed', label: 'Failed' },
  ],
  'campaign.failed': [
    { key: 'campaignId', label: 'Campaign' },
    { key: 'reason', label: 'Reason' },
  ],
  'webhook.endpoint_disabled': [
    { key: 'subscriptionId', label: 'Webhook' },
    { key: 'url', label: 'URL' },
    { key: 'reason', label: 'Reason' },
  ],
  'email.subscription_stale': [
    { key: 'subscriptionId', label: 'Subscription' },
    { key: 'email', label: 'Address' },
    { key: 'provider', label: 'Provider' },
  ],
};

const SEVERITY_LABEL: Record<Severity, string> = { info: 'Info', warning: 'Warning', critical: 'Critical' };
// Text colour on white, all with a contrast ratio above 4.5:1; the severity is also always written out.
const SEVERITY_COLOUR: Record<Severity, string> = { info: '#175cd3', warning: '#b54708', critical: '#b42318' };

/**
 * Subject, text and HTML for one notification: `[Gharart] Critical: payment failed — demo-store` (`[TEST] ` first for
 * a test send), the catalog description as the heading, the type's key facts, every data field (at most
 * {@link MAX_LISTED_FIELDS}, values cut at {@link MAX_VALUE_CHARS}, HTML at most {@link MAX_HTML_BYTES}), and a footer
 * with the reason for the mail, the notification id and the unsubscribe link when there is one.
 */
export function renderNotificationMail(n: NotificationForMail, links: MailLinks): RenderedMail {
  const unsubscribeUrl = checkedUrl(links.unsubscribeUrl);
  const dashboardUrl = checkedUrl(links.dashboardUrl ?? null);
  const severity = SEVERITY_LABEL[n.severity] ?? 'Info';
  const colour = SEVERITY_COLOUR[n.severity] ?? SEVERITY_COLOUR.info;
  const info = eventTypeInfo(n.type);
  const shortTitle = truncate(oneLine(humanise(n.type)), MAX_TITLE_CHARS);
  const heading = info ? info.description : `${capitalise(shortTitle)}.`;
  const subject = headerText(`${n.test ? '[TEST] ' : ''}[Gharart] ${severity}: ${shortTitle} — ${n.handle}`);
  const occurred = formatTimestamp(n.occurredAt);
  const type = truncate(oneLine(n.type), MAX_TITLE_CHARS * 2);

  const data = isPlainObject(n.data) ? n.data : {};
  const facts: Array<[string, string]> = [];
  for (const fact of FACTS[n.type] ?? []) {
    if (!Object.hasOwn(data, fact.key)) continue;
    const value = data[fact.key];
    facts.push([fact.label, fact.money ? formatMoney(value, data.currency) : displayValue(value)]);
  }

  const testNote = 'This is a test notification: no real event happened.';
  const reason = `You receive this email because this address is subscribed to Gharart notifications for ${oneLine(n.handle)}.`;

  // Everything except the field rows, so the rows can be fitted into what is left of the HTML budget.
  const htmlHead =
    pageStart(subject) +
    (n.test ? banner(testNote) : '') +
    `<p style="margin:0 0 8px;font-size:13px;font-weight:600;color:${colour};">${esc(severity)} · ${esc(oneLine(n.handle))}</p>\n` +
    `<h1 style="margin:0 0 8px;font-size:20px;line-height:1.3;">${esc(heading)}</h1>\n` +
    `<p style="margin:0 0 20px;font-size:13px;color:#57606a;">Event <code>${esc(type)}</code> at ${esc(occurred)}</p>\n` +
    (facts.length ? table('Key facts', null, facts) : '');
  const htmlFoot =
    (dashboardUrl ? `<p style="margin:20px 0 0;">${link(dashboardUrl, 'View in the dashboard')}</p>\n` : '') +
    footer([
      esc(reason),
      `Notification id: <code>${esc(oneLine(n.id))}</code>`,
      ...(unsubscribeUrl ? [`${link(unsubscribeUrl, 'Unsubscribe')} from these emails.`] : []),
    ]) +
    pageEnd();

  const keys = Object.keys(data);
  const fields = keys
    .slice(0, MAX_LISTED_FIELDS)
    .map((key): [string, string] => [truncate(escapeInvisible(key), MAX_KEY_CHARS), displayValue(data[key])]);
  // 1,000 bytes of slack for the "not shown" note between the table and the footer.
  const listed = fitRows(fields, utf8Length(htmlHead) + utf8Length(htmlFoot) + 1_000);
  const omitted = keys.length - listed.length;
  const omittedNote =
    omitted > 0
      ? `${omitted} more ${omitted === 1 ? 'field' : 'fields'} not shown; the full event is in the API and the webhook payload.`
      : null;
  const note = omittedNote ?? (keys.length === 0 ? 'This event carries no data fields.' : null);

  const html =
    htmlHead +
    (listed.length ? table('All fields', ['Field', 'Value'], listed) : '') +
    (note ? `<p style="margin:8px 0 0;font-size:13px;color:#57606a;">${esc(note)}</p>\n` : '') +
    htmlFoot;

  const text = lines([
    ...(n.test ? [testNote, ''] : []),
    `${severity} · ${oneLine(n.handle)}`,
    heading,
    `Event ${type} at ${occurred}`,
    '',
    ...(facts.length ? [...facts.map(([k, v]) => `${k}: ${v}`), ''] : []),
    ...(listed.length ? ['All fields:', ...listed.map(([k, v]) => `  ${k}: ${v}`)] : []),
    ...(note ? [note] : []),
    ...(dashboardUrl ? ['', `View in the dashboard: ${dashboardUrl}`] : []),
    '',
    '-- ',
    reason,
    `Notification id: ${oneLine(n.id)}`,
    ...(unsubscribeUrl ? [`Unsubscribe: ${unsubscribeUrl}`] : []),
  ]);

  return { subject, text, html };
}

/** Takes rows in order while the HTML stays within {@link MAX_HTML_BYTES}; `used` is what the rest of the page takes. */
function fitRows(rows: Array<[string, string]>, used: number): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let total = used + utf8Length(table('All fields', ['Field', 'Value'], []));
  for (const row of rows) {
    total += utf8Length(tableRow(row));
    if (total > MAX_HTML_BYTES) break;
    out.push(row);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Confirmation and test mails

/** The double opt-in mail: the only mail a `pending_confirmation` address ever gets. */
export function renderConfirmationMail(input: {
  handle: string;
  email: string;
  confirmUrl: string;
  expiresAt: string;
}): RenderedMail {
  const confirmUrl = checkedUrl(input.confirmUrl);
  if (!confirmUrl) throw new Error('confirmUrl is required');
  const handle = oneLine(input.handle);
  const email = oneLine(input.email);
  const expires = formatTimestamp(input.expiresAt);
  const subject = headerText(`[Gharart] Confirm notifications for ${handle}`);
  const intro = `Someone asked to send Gharart notifications for ${handle} to ${email}.`;
  const action = 'To start receiving them, confirm this address:';
  const expiry = `The link expires at ${expires}.`;
  const ignore = 'If you did not ask for this, ignore this email: nothing more will be sent to this address.';

  const html =
    pageStart(subject) +
    `<h1 style="margin:0 0 16px;font-size:20px;line-height:1.3;">Confirm notifications for ${esc(handle)}</h1>\n` +
    para(esc(intro)) +
    para(esc(action)) +
    `<p style="margin:16px 0;">${button(confirmUrl, 'Confirm this address')}</p>\n` +
    para(`Or open this link: ${link(confirmUrl, confirmUrl)}`) +
    para(esc(expiry)) +
    footer([esc(ignore)]) +
    pageEnd();
  const text = lines([intro, '', action, confirmUrl, '', expiry, '', '-- ', ignore]);
  return { subject, text, html };
}

/** The mail of `POST …/email-subscriptions/{id}/test` and of a changed owner default email. */
export function renderTestMail(input: {
  handle: string;
  email: string;
  isOwnerDefault: boolean;
  requestId: string;
}): RenderedMail {
  const handle = oneLine(input.handle);
  const email = oneLine(input.email);
  const subject = headerText(`[TEST] [Gharart] Test email for ${handle}`);
  const role = input.isOwnerDefault
    ? `${email} is the owner default email of ${handle}: it receives every critical notification.`
    : `${email} is subscribed to Gharart notifications for ${handle}.`;
  const works = 'If you can read this, email delivery to this address works. No action is needed.';
  const ref = `Request id: ${oneLine(input.requestId)}`;
  const refNote = 'Quote it to support if something about this email looks wrong.';

  const html =
    pageStart(subject) +
    banner('This is a test email.') +
    `<h1 style="margin:0 0 16px;font-size:20px;line-height:1.3;">Test email for ${esc(handle)}</h1>\n` +
    para(esc(works)) +
    para(esc(role)) +
    footer([`Request id: <code>${esc(oneLine(input.requestId))}</code>. ${esc(refNote)}`]) +
    pageEnd();
  const text = lines(['This is a test email.', '', works, '', role, '', '-- ', `${ref}. ${refNote}`]);
  return { subject, text, html };
}

/** The mail a support report sends to SUPPORT_EMAIL: every field, escaped, with the ids support needs. */
export function renderSupportReportMail(input: {
  reportId: string;
  summary: string;
  details: string;
  principal: string;
  handle: string | null;
  handleVerified: boolean;
  sessionId: string | null;
  reportedRequestId: string | null;
  reproArtifact: string | null;
  requestId: string;
  deploymentId: string;
}): RenderedMail {
  const subject = headerText(`[Gharart support] ${input.reportId}: ${input.summary}`).slice(0, 200);
  const facts: Array<[string, string]> = [
    ['Report', input.reportId],
    ['From', input.principal],
    [
      'Handle',
      input.handle
        ? `${input.handle}${input.handleVerified ? '' : ' (not verified: the reporter is not a member)'}`
        : '-',
    ],
    ['Session', input.sessionId ?? '-'],
    ['Request id reported', input.reportedRequestId ?? '-'],
    ['Filed by request', `${input.requestId} (deployment ${input.deploymentId})`],
  ];
  const artifact = (input.reproArtifact ?? '').slice(0, 20_000);
  const text = lines([
    ...facts.map(([k, v]) => `${k}: ${oneLine(v)}`),
    '',
    'Summary:',
    input.summary,
    '',
    'Details:',
    input.details,
    ...(artifact ? ['', 'Repro artifact:', artifact] : []),
  ]);
  const html =
    pageStart(subject) +
    `<h1 style="margin:0 0 16px;font-size:20px;line-height:1.3;">${esc(input.summary)}</h1>\n` +
    `<table role="presentation">${facts.map(([k, v]) => `<tr><th scope="row" style="text-align:left;padding-right:12px;">${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>\n` +
    `<pre style="white-space:pre-wrap;">${esc(input.details)}</pre>\n` +
    (artifact
      ? `<h2 style="font-size:16px;">Repro artifact</h2><pre style="white-space:pre-wrap;">${esc(artifact)}</pre>\n`
      : '') +
    pageEnd();
  return { subject, text, html };
}

// ---------------------------------------------------------------------------------------------------------------------
// Values

/** `payment.failed` → `payment failed`; `webhook.endpoint_disabled` → `webhook endpoint disabled`. */
function humanise(type: string): string {
  return type.replace(/[._-]+/g, ' ').trim() || 'notification';
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Subject text: one line, no controls (the MIME builder sanitises again; this keeps the stored subject clean too). */
function headerText(s: string): string {
  return sanitizeHeaderValue(s).replace(/\s+/g, ' ');
}

/** Plain strings shown in a line of their own (handle, type, id): controls become spaces. */
function oneLine(s: string): string {
  return escapeInvisible(String(s)).replace(/\s+/g, ' ').trim();
}

// C0/C1 controls, line/paragraph separators, and the bidi embedding/override/isolate controls (which can make a value
// read as something else, "Trojan Source" style).
const INVISIBLE = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/** Makes control and bidi characters visible as `\n`, `\r`, `\t` or `\uXXXX`, so a value stays on one line. */
function escapeInvisible(s: string): string {
  return s.replace(INVISIBLE, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** One data value on one line: strings as they are, everything else as compact JSON; cut at MAX_VALUE_CHARS. */
function displayValue(value: unknown): string {
  let s: string;
  if (typeof value === 'string') s = value;
  else if (typeof value === 'number' || typeof value === 'boolean' || value === null) s = String(value);
  else {
    try {
      s = JSON.stringify(value) ?? String(value);
    } catch {
      s = String(value); // BigInt or a cycle: never from parsed JSON, but a template must not throw on data
    }
  }
  return truncate(escapeInvisible(s), MAX_VALUE_CHARS);
}

/** Cuts at `max` UTF-16 units without splitting a surrogate pair, marking the cut with an ellipsis. */
function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  let cut = max - 1;
  const last = s.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut--;
  return `${s.slice(0, cut)}…`;
}

function formatMoney(amount: unknown, currency: unknown): string {
  if (
    typeof amount === 'number' &&
    Number.isFinite(amount) &&
    typeof currency === 'string' &&
    /^[A-Z]{3}$/.test(currency)
  ) {
    try {
      return new Intl.NumberFormat('en-US', { style: 'currency', currency, currencyDisplay: 'code' }).format(amount);
    } catch {
      // an ISO-shaped code the runtime does not know: fall through to the plain form
    }
  }
  if (typeof currency === 'string')
    return truncate(escapeInvisible(`${displayValue(amount)} ${currency}`), MAX_VALUE_CHARS);
  return displayValue(amount);
}

/** `2026-11-20T10:15:00Z` → `2026-11-20 10:15 UTC`; anything that does not parse is shown as given. */
function formatTimestamp(iso: string): string {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return truncate(oneLine(iso), 100);
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * Links are only ever ours (unsubscribe, dashboard, confirm), never from event data; still, anything but an absolute
 * http(s) URL is refused rather than rendered, so a misconfiguration cannot put a `javascript:` link in a mail.
 */
function checkedUrl(url: string | null): string | null {
  if (url === null || url === '') return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('mail link is not a URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error('mail link must be http(s)');
  return parsed.href;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // A surrogate pair is 4 bytes over 2 units: counting each unit as 2 sums right.
    n += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3;
  }
  return n;
}

function lines(parts: string[]): string {
  return `${parts.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------------------
// HTML

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes the five characters that matter in HTML text and (quoted) attribute values. */
function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

// Unquoted on purpose (multi-word family names may be bare identifiers): the value sits in a double-quoted attribute.
const FONT = '-apple-system,BlinkMacSystemFont,Segoe UI,Roboto,Helvetica,Arial,sans-serif';

function pageStart(title: string): string {
  return (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n' +
    `<title>${esc(title)}</title>\n</head>\n` +
    `<body style="margin:0;padding:24px 12px;background:#f6f8fa;color:#1f2328;font-family:${esc(FONT)};font-size:15px;line-height:1.5;">\n` +
    '<div style="max-width:640px;margin:0 auto;padding:24px;background:#ffffff;border:1px solid #d0d7de;border-radius:6px;">\n'
  );
}

function pageEnd(): string {
  return '</div>\n</body>\n</html>\n';
}

function banner(text: string): string {
  return `<p style="margin:0 0 16px;padding:8px 12px;background:#fff8c5;border:1px solid #d4a72c;border-radius:4px;font-weight:600;">${esc(text)}</p>\n`;
}

function para(innerHtml: string): string {
  return `<p style="margin:0 0 12px;">${innerHtml}</p>\n`;
}

function link(url: string, label: string): string {
  return `<a href="${esc(url)}" style="color:#0969da;">${esc(label)}</a>`;
}

function button(url: string, label: string): string {
  return `<a href="${esc(url)}" style="display:inline-block;padding:10px 18px;background:#1f883d;color:#ffffff;border-radius:6px;text-decoration:none;font-weight:600;">${esc(label)}</a>`;
}

const CELL = 'padding:6px 8px;border-top:1px solid #d0d7de;vertical-align:top;text-align:left;';

/** A data table: a caption, optional column headers, and one row per pair with the label as a row header. */
function table(caption: string, columns: [string, string] | null, rows: Array<[string, string]>): string {
  const head = columns
    ? `<thead><tr>${columns.map((c) => `<th scope="col" style="${CELL}font-size:13px;color:#57606a;">${esc(c)}</th>`).join('')}</tr></thead>`
    : '';
  return (
    `<table style="width:100%;border-collapse:collapse;margin:0 0 16px;font-size:14px;">\n` +
    `<caption style="text-align:left;font-weight:600;padding:0 0 6px;">${esc(caption)}</caption>\n${head}\n<tbody>\n` +
    rows.map(tableRow).join('') +
    '</tbody>\n</table>\n'
  );
}

function tableRow([label, value]: [string, string]): string {
  return (
    `<tr><th scope="row" style="${CELL}width:30%;font-weight:600;word-break:break-all;">${esc(label)}</th>` +
    `<td style="${CELL}word-break:break-word;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;">${esc(value)}</td></tr>\n`
  );
}

function footer(htmlLines: string[]): string {
  return (
    '<hr style="margin:24px 0 12px;border:0;border-top:1px solid #d0d7de;">\n' +
    htmlLines.map((l) => `<p style="margin:0 0 6px;font-size:12px;color:#57606a;">${l}</p>\n`).join('')
  );
}
