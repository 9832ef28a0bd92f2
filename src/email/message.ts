/**
 * A mail as the service hands it to a provider (docs/design.md#email), and the checks every provider applies before
 * it leaves: addresses validated, header values cleaned, custom header names checked. Pure: no bindings, no I/O.
 *
 * No provider of this service needs a hand-built MIME message any more: the `send_email` binding takes the structured
 * form and writes the MIME itself, Resend takes JSON, and SNS writes its own mail. What stays is the part that is
 * ours to get right whoever writes the wire format: a header value carrying user or event data (subject, display
 * names, custom headers) can never contain a line break, so it can never start a header of its own, and an address
 * is validated, not escaped, so nothing can smuggle in a second recipient.
 */

export interface MailAddress {
  email: string;
  name?: string;
}

export interface OutgoingMail {
  from: MailAddress;
  to: MailAddress;
  replyTo?: MailAddress;
  subject: string;
  text: string;
  html: string;
  /**
   * Extra headers (e.g. List-Unsubscribe, List-Unsubscribe-Post, X-Gharart-Delivery-Id). Names must be tokens; values
   * are sanitised.
   */
  headers?: Record<string, string>;
}

// Runs of C0/C1 controls (CR, LF, TAB, NUL, DEL, NEL …) and the Unicode line/paragraph separators, which some
// clients and gateways treat as line breaks.
const HEADER_UNSAFE = /[\p{Cc}\u2028\u2029]+/gu;

/**
 * Removes CR, LF and other control characters (and U+2028/U+2029) from a header value, so a value can never start a
 * new header. Each run becomes one space, so the words either side stay apart; the result is trimmed.
 */
export function sanitizeHeaderValue(value: string): string {
  return value.replace(HEADER_UNSAFE, ' ').trim();
}

// dot-atom-text of RFC 5322 §3.2.3, restricted to ASCII. No quoted local parts, comments or domain literals: anything a
// user could use to smuggle a second recipient or a display name through an address is simply not an address here.
const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const DOMAIN_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * Validates a plain `local@domain` address (ASCII, at most 254 chars, local part ≤ 64, a domain of at least two
 * LDH labels) and returns it unchanged; throws otherwise.
 */
export function assertMailAddress(email: string): string {
  const at = email.lastIndexOf('@');
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  const labels = domain.split('.');
  const ok =
    at > 0 &&
    email.length <= 254 &&
    local.length <= 64 &&
    LOCAL_PART.test(local) &&
    labels.length >= 2 &&
    labels.every((l) => DOMAIN_LABEL.test(l)) &&
    !/^[0-9]+$/.test(labels[labels.length - 1]!);
  if (!ok) throw new Error(`invalid email address: ${JSON.stringify(email.slice(0, 100))}`);
  return email;
}

// RFC 7230 §3.2.6 token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const MAX_HEADER_NAME = 64;

/**
 * Headers a caller may not set through `headers`: the structural ones the provider writes itself, and the ones that
 * add recipients or claim a path the message did not take (a Bcc, Cc or Resent-To smuggled in through a settings
 * field would be a recipient nobody sees).
 */
const RESERVED_HEADERS = new Set([
  'from',
  'to',
  'cc',
  'bcc',
  'reply-to',
  'sender',
  'subject',
  'date',
  'message-id',
  'mime-version',
  'return-path',
  'received',
  'dkim-signature',
]);

function isReservedHeader(lowerName: string): boolean {
  return RESERVED_HEADERS.has(lowerName) || lowerName.startsWith('content-') || lowerName.startsWith('resent-');
}

/**
 * A mail's custom headers, checked and cleaned, for whoever puts them on the wire (the `send_email` binding's
 * structured form, or a provider's API that takes headers as JSON): names must be RFC 7230 tokens of at most 64
 * characters, none reserved (`setBy` says who sets those instead) and none twice; CR/LF and other control characters
 * never reach a value. Throws on the first bad one, so nothing is sent.
 */
export function checkedCustomHeaders(headers: Record<string, string> | undefined, setBy: string): [string, string][] {
  const seen = new Set<string>();
  return Object.entries(headers ?? {}).map(([name, value]) => {
    const lower = name.toLowerCase();
    if (!TOKEN.test(name) || name.length > MAX_HEADER_NAME)
      throw new Error(`invalid header name: ${JSON.stringify(name.slice(0, 100))}`);
    if (isReservedHeader(lower)) throw new Error(`header ${name} is set by ${setBy} and cannot be overridden`);
    if (seen.has(lower)) throw new Error(`header ${name} given twice`);
    seen.add(lower);
    return [name, sanitizeHeaderValue(String(value))];
  });
}

/** A provider message id as events name it: without the angle brackets of a Message-ID header. */
export function bareMessageId(id: string): string {
  return id.trim().replace(/^<([^<>]*)>$/, '$1');
}
