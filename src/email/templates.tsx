/**
 * The mails this service sends: one per notification, the double opt-in confirmation, and the support report. Each
 * is a subject, a plain-text body and an HTML body (JSX, from the pieces in `mail-layout.tsx`); the provider turns
 * them into a message (`message.ts` says what every provider checks first).
 *
 * Event data is written by clients, so it is treated as hostile: every value is HTML-escaped by JSX (keys too),
 * values are shown on one line with control and bidi characters made visible (a value cannot forge a footer line or
 * reorder what is shown), nothing from the data ever becomes a link, and sizes are capped. The HTML loads nothing: no
 * images, fonts or stylesheets, only inline styles, so it renders the same with remote content blocked and tracks
 * nobody.
 */
import { eventTypeInfo, type Severity } from '../lib/event-catalog.ts';
import { isPlainObject } from '../lib/json.ts';
import {
  Banner,
  Button,
  DataRow,
  DataTable,
  Footer,
  FooterLine,
  headingStyle,
  Link,
  MailPage,
  NL,
  Para,
  type Row,
  renderFragment,
  renderMailHtml,
} from './mail-layout.tsx';
import { sanitizeHeaderValue } from './message.ts';

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
const MAX_LISTED_FIELDS = 50;
/** A value (or key) longer than this is cut, with an ellipsis. */
const MAX_VALUE_CHARS = 500;
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
  'email.owner_default_suppressed': [
    { key: 'email', label: 'Address' },
    { key: 'provider', label: 'Reported by' },
    { key: 'reason', label: 'Reason' },
  ],
};

const SEVERITY_LABEL: Record<Severity, string> = { info: 'Info', warning: 'Warning', critical: 'Critical' };
// Text colour on white, all with a contrast ratio above 4.5:1; the severity is also always written out.
const SEVERITY_COLOUR: Record<Severity, string> = { info: '#175cd3', warning: '#b54708', critical: '#b42318' };

/** What a notification mail shows, worked out once for the text and the HTML. */
interface NotificationView {
  subject: string;
  test: boolean;
  severity: string;
  colour: string;
  handle: string;
  heading: string;
  type: string;
  occurred: string;
  facts: Row[];
  dashboardUrl: string | null;
  unsubscribeUrl: string | null;
  reason: string;
  id: string;
}

const TEST_NOTE = 'This is a test notification: no real event happened.';
const MUTED = 'font-size:13px;color:#57606a;';

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
  const info = eventTypeInfo(n.type);
  const shortTitle = truncate(oneLine(humanise(n.type)), MAX_TITLE_CHARS);
  const data = isPlainObject(n.data) ? n.data : {};
  const facts: Row[] = [];
  for (const fact of FACTS[n.type] ?? []) {
    if (!Object.hasOwn(data, fact.key)) continue;
    const value = data[fact.key];
    facts.push([fact.label, fact.money ? formatMoney(value, data.currency) : displayValue(value)]);
  }
  const v: NotificationView = {
    subject: headerText(`${n.test ? '[TEST] ' : ''}[Gharart] ${severity}: ${shortTitle} — ${n.handle}`),
    test: Boolean(n.test),
    severity,
    colour: SEVERITY_COLOUR[n.severity] ?? SEVERITY_COLOUR.info,
    handle: oneLine(n.handle),
    heading: info ? info.description : `${capitalise(shortTitle)}.`,
    type: truncate(oneLine(n.type), MAX_TITLE_CHARS * 2),
    occurred: formatTimestamp(n.occurredAt),
    facts,
    dashboardUrl,
    unsubscribeUrl,
    reason:
      'You receive this email because this address is subscribed to Gharart notifications for ' +
      `${oneLine(n.handle)}.`,
    id: oneLine(n.id),
  };

  const keys = Object.keys(data);
  const fields = keys
    .slice(0, MAX_LISTED_FIELDS)
    .map((key): Row => [truncate(escapeInvisible(key), MAX_KEY_CHARS), displayValue(data[key])]);
  // Everything but the field rows and the note, so the rows can be fitted into what is left of the HTML budget; 1,000
  // bytes of slack for the "not shown" note between the table and the footer.
  const listed = fitRows(fields, utf8Length(notificationHtml(v, [], null)) + 1_000);
  const omitted = keys.length - listed.length;
  const omittedNote =
    omitted > 0
      ? `${omitted} more ${omitted === 1 ? 'field' : 'fields'} not shown; ` +
        'the full event is in the API and the webhook payload.'
      : null;
  const note = omittedNote ?? (keys.length === 0 ? 'This event carries no data fields.' : null);

  const text = lines([
    ...(v.test ? [TEST_NOTE, ''] : []),
    `${severity} · ${v.handle}`,
    v.heading,
    `Event ${v.type} at ${v.occurred}`,
    '',
    ...(facts.length ? [...facts.map(([k, val]) => `${k}: ${val}`), ''] : []),
    ...(listed.length ? ['All fields:', ...listed.map(([k, val]) => `  ${k}: ${val}`)] : []),
    ...(note ? [note] : []),
    ...(v.dashboardUrl ? ['', `View in the dashboard: ${v.dashboardUrl}`] : []),
    '',
    '-- ',
    v.reason,
    `Notification id: ${v.id}`,
    ...(v.unsubscribeUrl ? [`Unsubscribe: ${v.unsubscribeUrl}`] : []),
  ]);

  return { subject: v.subject, text, html: notificationHtml(v, listed, note) };
}

const FIELD_COLUMNS: [string, string] = ['Field', 'Value'];

function notificationHtml(v: NotificationView, fields: Row[], note: string | null): string {
  return renderMailHtml(
    <MailPage title={v.subject}>
      {v.test ? <Banner>{TEST_NOTE}</Banner> : null}
      <Para style={`margin:0 0 8px;font-size:13px;font-weight:600;color:${v.colour};`}>
        {`${v.severity} · ${v.handle}`}
      </Para>
      <h1 style={headingStyle('0 0 8px')}>{v.heading}</h1>
      {NL}
      <Para style={`margin:0 0 20px;${MUTED}`}>
        Event <code>{v.type}</code> at {v.occurred}
      </Para>
      {v.facts.length ? <DataTable caption="Key facts" rows={v.facts} /> : null}
      {fields.length ? <DataTable caption="All fields" columns={FIELD_COLUMNS} rows={fields} /> : null}
      {note ? <Para style={`margin:8px 0 0;${MUTED}`}>{note}</Para> : null}
      {v.dashboardUrl ? (
        <Para style="margin:20px 0 0;">
          <Link href={v.dashboardUrl}>View in the dashboard</Link>
        </Para>
      ) : null}
      <Footer>
        <FooterLine>{v.reason}</FooterLine>
        <FooterLine>
          Notification id: <code>{v.id}</code>
        </FooterLine>
        {v.unsubscribeUrl ? (
          <FooterLine>
            <Link href={v.unsubscribeUrl}>Unsubscribe</Link> from these emails.
          </FooterLine>
        ) : null}
      </Footer>
    </MailPage>,
  );
}

/**
 * Takes rows in order while the HTML stays within {@link MAX_HTML_BYTES}; `used` is what the rest of the page takes.
 */
function fitRows(rows: Row[], used: number): Row[] {
  const out: Row[] = [];
  let total = used + utf8Length(renderFragment(<DataTable caption="All fields" columns={FIELD_COLUMNS} rows={[]} />));
  for (const row of rows) {
    total += utf8Length(renderFragment(<DataRow row={row} />));
    if (total > MAX_HTML_BYTES) break;
    out.push(row);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Confirmation and support report mails

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

  const html = renderMailHtml(
    <MailPage title={subject}>
      <h1 style={headingStyle('0 0 16px')}>Confirm notifications for {handle}</h1>
      {NL}
      <Para>{intro}</Para>
      <Para>{action}</Para>
      <Para style="margin:16px 0;">
        <Button href={confirmUrl}>Confirm this address</Button>
      </Para>
      <Para>
        Or open this link: <Link href={confirmUrl}>{confirmUrl}</Link>
      </Para>
      <Para>{expiry}</Para>
      <Footer>
        <FooterLine>{ignore}</FooterLine>
      </Footer>
    </MailPage>,
  );
  const text = lines([intro, '', action, confirmUrl, '', expiry, '', '-- ', ignore]);
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
  const facts: Row[] = [
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
  const html = renderMailHtml(
    <MailPage title={subject}>
      <h1 style={headingStyle('0 0 16px')}>{input.summary}</h1>
      {NL}
      <table role="presentation">
        {facts.map(([k, v]) => (
          <tr>
            <th scope="row" style="text-align:left;padding-right:12px;">
              {k}
            </th>
            <td>{v}</td>
          </tr>
        ))}
      </table>
      {NL}
      <pre style="white-space:pre-wrap;">{input.details}</pre>
      {NL}
      {artifact ? (
        <>
          <h2 style="font-size:16px;">Repro artifact</h2>
          <pre style="white-space:pre-wrap;">{artifact}</pre>
          {NL}
        </>
      ) : null}
    </MailPage>,
  );
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
