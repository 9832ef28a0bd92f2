/**
 * Builds raw RFC 5322 / RFC 2045 messages for the `send_email` binding (which takes a raw MIME message) and for
 * keeping an exact record of what was sent. Pure: no bindings, no I/O.
 *
 * Security is the point of this module. Every header value that could carry user or event data (subject, display
 * names, custom headers) goes through {@link sanitizeHeaderValue}, so it can never contain a line break and never
 * start a header of its own; addresses are validated, not escaped; bodies are always quoted-printable or base64, so
 * the message is 7-bit ASCII with short lines and nothing in a body can end the part, the header block or (for an
 * SMTP relay) the message.
 */
import { randomBytes, toBase64, toHex } from '../lib/crypto.ts';

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
  messageId?: string;
  date?: Date;
}

const CRLF = '\r\n';
/** RFC 5322 §2.1.1: the line length to aim for, and the one that must never be exceeded (both without the CRLF). */
const SOFT_LINE = 78;
const HARD_LINE = 998;
/** RFC 2045 §6.7/§6.8: encoded body lines are at most 76 characters. */
const BODY_LINE = 76;
/**
 * UTF-8 bytes per RFC 2047 encoded-word: 42 bytes → 56 base64 chars → a 68-char word, so `Subject: ` plus one word
 * stays under 78 and every word stays under the 75-char limit of §2.
 */
const WORD_BYTES = 42;

const encoder = new TextEncoder();

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
 * Headers a caller may not set through `headers`: the structural ones this module writes itself, and the ones that
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
 * A mail's custom headers, checked and cleaned, for whoever puts them on the wire (this builder, or a provider's API
 * that takes headers as JSON): names must be RFC 7230 tokens of at most 64 characters, none reserved (`setBy` says
 * who sets those instead) and none twice; CR/LF and other control characters never reach a value. Throws on the
 * first bad one, so nothing is sent.
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

/**
 * Builds the raw message: CRLF line endings, multipart/alternative (text/plain then text/html, both UTF-8,
 * quoted-printable or base64), RFC 2047 encoded-words for non-ASCII subject and display names, Message-ID (generated
 * if absent, `<random@domain-of-from>`), Date, MIME-Version.
 *
 * Line breaks in the bodies are sent as CRLF whatever the input used (`\n`, `\r` or `\r\n`): that is the canonical
 * form of text/* (RFC 2046 §4.1.1), so a body given with CRLF decodes back byte for byte. Throws on an invalid
 * address, Message-ID or date, and on a custom header whose name is not a token, is reserved, or is given twice.
 */
export function buildMimeMessage(mail: OutgoingMail): string {
  const fromDomain = assertMailAddress(mail.from.email).split('@').pop()!;
  const lines: string[] = [];

  const date = mail.date ?? new Date();
  if (!Number.isFinite(date.getTime())) throw new Error('invalid date');
  lines.push(`Date: ${formatDate(date)}`);
  lines.push(addressHeader('From', mail.from));
  lines.push(addressHeader('To', mail.to));
  if (mail.replyTo) lines.push(addressHeader('Reply-To', mail.replyTo));
  lines.push(
    `Message-ID: ${mail.messageId === undefined ? newMessageId(fromDomain) : normaliseMessageId(mail.messageId)}`,
  );
  lines.push(unstructuredHeader('Subject', sanitizeHeaderValue(mail.subject)));
  lines.push('MIME-Version: 1.0');

  for (const [name, value] of checkedCustomHeaders(mail.headers, 'the message builder')) {
    lines.push(customHeader(name, value));
  }

  const text = encodeBody(mail.text);
  const html = encodeBody(mail.html);
  const boundary = newBoundary([text.body, html.body]);
  lines.push(`Content-Type: multipart/alternative;${CRLF} boundary="${boundary}"`);

  return [
    lines.join(CRLF),
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${text.encoding}`,
    '',
    text.body,
    `--${boundary}`,
    'Content-Type: text/html; charset=utf-8',
    `Content-Transfer-Encoding: ${html.encoding}`,
    '',
    html.body,
    `--${boundary}--`,
    '',
  ].join(CRLF);
}

// ---------------------------------------------------------------------------------------------------------------------
// Headers

/** RFC 5322 §3.3 date in UTC: `Thu, 26 Nov 2026 10:00:00 +0000`. */
function formatDate(date: Date): string {
  // toUTCString is specified (ECMA-262 §21.4.4.43) as exactly this layout with "GMT" at the end.
  return date.toUTCString().replace(/GMT$/, '+0000');
}

function newMessageId(domain: string): string {
  return `<${toHex(randomBytes(16))}@${domain.toLowerCase()}>`;
}

const ID_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/** Accepts `left@right` with or without angle brackets (RFC 5322 §3.6.4 dot-atom-text on both sides). */
function normaliseMessageId(id: string): string {
  const bare = id.startsWith('<') && id.endsWith('>') ? id.slice(1, -1) : id;
  const at = bare.lastIndexOf('@');
  if (at <= 0 || bare.length > 250 || !ID_PART.test(bare.slice(0, at)) || !ID_PART.test(bare.slice(at + 1))) {
    throw new Error(`invalid Message-ID: ${JSON.stringify(id.slice(0, 100))}`);
  }
  return `<${bare}>`;
}

function addressHeader(name: string, address: MailAddress): string {
  const email = assertMailAddress(address.email);
  const display = sanitizeHeaderValue(address.name ?? '');
  if (!display) return `${name}: ${email}`;
  return foldWords(`${name}:`, [...phraseWords(display), `<${email}>`]);
}

// atext plus single spaces: a display name that is a plain phrase of atoms and needs no quoting.
const ATOMS = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
/** Longest unencoded word in a phrase: with `Reply-To: ` in front it still fits the 78-char line. */
const MAX_PLAIN_WORD = 60;

/**
 * A display name as words of a phrase: plain atoms when it is only atoms, a quoted-string when it is printable ASCII
 * with specials (`Doe, Jane` must stay one mailbox), encoded-words when it is anything else or contains `=?` (which a
 * reader would otherwise decode as an encoded-word the sender never wrote).
 */
function phraseWords(display: string): string[] {
  if (!display.includes('=?')) {
    const words = display.split(' ');
    if (ATOMS.test(display) && words.every((w) => w.length <= MAX_PLAIN_WORD)) return words;
    if (PRINTABLE_ASCII.test(display) && display.length <= MAX_PLAIN_WORD)
      return [`"${display.replace(/[\\"]/g, '\\$&')}"`];
  }
  return encodedWords(display);
}

/**
 * An unstructured header (Subject): sent as is and folded at spaces when it is plain printable ASCII that folds
 * cleanly; otherwise as RFC 2047 encoded-words, which also keeps leading, trailing and repeated spaces and words too
 * long to fold intact.
 */
function unstructuredHeader(name: string, value: string): string {
  if (isPlainFoldable(value, name.length + 2)) return foldWords(`${name}:`, value.split(' '));
  return foldWords(`${name}:`, encodedWords(value));
}

function isPlainFoldable(value: string, prefixLength: number): boolean {
  if (value === '') return true;
  if (!PRINTABLE_ASCII.test(value) || value.includes('=?') || /^ | $| {2}/.test(value)) return false;
  return value.split(' ').every((w) => w.length + prefixLength <= SOFT_LINE);
}

/**
 * A caller's header. Values are structured as often as not (`<https://…>`, `List-Unsubscribe=One-Click`), so ASCII is
 * kept as is and only folded at spaces; non-ASCII text (only meaningful in unstructured headers) is encoded. A value
 * that cannot be folded under the hard limit is refused rather than cut.
 */
function customHeader(name: string, value: string): string {
  if (!PRINTABLE_ASCII.test(value)) return foldWords(`${name}:`, encodedWords(value));
  const line = foldAsciiValue(`${name}:`, value);
  if (line.split(CRLF).some((l) => l.length > HARD_LINE))
    throw new Error(`header ${name} has a value too long to fold`);
  return line;
}

/** Folds a printable-ASCII value at single spaces that sit between two non-space characters, keeping it byte-exact. */
function foldAsciiValue(prefix: string, value: string): string {
  let out = prefix;
  let lineLength = prefix.length;
  let rest = ` ${value}`;
  while (rest.length > 0) {
    if (lineLength + rest.length <= SOFT_LINE) return out + rest;
    // Fold at the last usable space that keeps this line within SOFT_LINE, else at the first one after it.
    let cut = -1;
    for (let i = 1; i < rest.length; i++) {
      if (rest[i] === ' ' && rest[i - 1] !== ' ' && rest[i + 1] !== undefined && rest[i + 1] !== ' ') {
        if (lineLength + i <= SOFT_LINE || cut === -1) cut = i;
        if (lineLength + i > SOFT_LINE) break;
      }
    }
    if (cut === -1) return out + rest;
    out += rest.slice(0, cut) + CRLF;
    lineLength = 0;
    rest = rest.slice(cut);
  }
  return out;
}

/** Joins words with single spaces, starting a new folded line (CRLF SP) when the next word would pass SOFT_LINE. */
function foldWords(prefix: string, words: string[]): string {
  let out = prefix;
  let lineLength = prefix.length;
  for (const word of words) {
    if (lineLength + 1 + word.length > SOFT_LINE && lineLength > prefix.length) {
      out += CRLF;
      lineLength = 0;
    }
    out += ` ${word}`;
    lineLength += 1 + word.length;
  }
  return out;
}

/**
 * RFC 2047 "B" encoded-words of UTF-8, split on code point boundaries (§5: an encoded-word must hold whole
 * characters). Adjacent encoded-words separated only by folding whitespace decode to one run of text (§6.2).
 */
function encodedWords(value: string): string[] {
  const words: string[] = [];
  let chunk: number[] = [];
  const flush = () => {
    if (chunk.length) words.push(`=?UTF-8?B?${toBase64(Uint8Array.from(chunk))}?=`);
    chunk = [];
  };
  for (const ch of value) {
    const bytes = encoder.encode(ch);
    if (chunk.length + bytes.length > WORD_BYTES) flush();
    for (const b of bytes) chunk.push(b);
  }
  flush();
  return words.length ? words : [''];
}

// ---------------------------------------------------------------------------------------------------------------------
// Bodies

type TransferEncoding = 'quoted-printable' | 'base64';

/**
 * Encodes a body in canonical form (CRLF line breaks). Quoted-printable keeps mostly-ASCII text readable in the raw
 * message; when more than a third of the bytes would need escaping (Devanagari, emoji-heavy text) base64 is smaller.
 */
function encodeBody(input: string): { encoding: TransferEncoding; body: string } {
  const bytes = encoder.encode(input.replace(/\r\n|\r|\n/g, CRLF));
  let escaped = 0;
  for (const b of bytes) if (b > 0x7e || (b < 0x20 && b !== 0x0d && b !== 0x0a && b !== 0x09) || b === 0x3d) escaped++;
  if (escaped * 3 > bytes.length) return { encoding: 'base64', body: base64Lines(bytes) };
  return { encoding: 'quoted-printable', body: quotedPrintable(bytes) };
}

function base64Lines(bytes: Uint8Array): string {
  // 57 bytes → exactly 76 base64 chars; chunking on a multiple of 3 means no padding inside the body.
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 57) lines.push(toBase64(bytes.subarray(i, i + 57)));
  return lines.join(CRLF);
}

const HEX = '0123456789ABCDEF';

function escapeByte(b: number): string {
  return `=${HEX[b >> 4]}${HEX[b & 15]}`;
}

/**
 * Quoted-printable (RFC 2045 §6.7) of canonical bytes: CRLF pairs are hard line breaks, everything else that is not
 * printable ASCII (and `=`) is escaped, space and tab are escaped at the end of a line, and encoded lines are soft
 * broken at 76 chars. Deliberately also escaped: a `.` or the `F` of `From ` at the start of any physical line (after
 * a hard or a soft break), so a line that is a lone `.` (SMTP end of data) or starts with `From ` (mbox separator)
 * never appears on the wire, whatever a relay does.
 * The output only ever contains `=` followed by two hex digits or a soft break, which the boundary relies on.
 */
function quotedPrintable(bytes: Uint8Array): string {
  const out: string[] = [];
  let line = '';
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    const b = bytes[i]!;
    if (b === 0x0d && bytes[i + 1] === 0x0a) {
      out.push(line, CRLF);
      line = '';
      i++;
      continue;
    }
    const atLineEnd = i + 1 === n || (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a);
    let token: string;
    if ((b === 0x20 || b === 0x09) && atLineEnd) token = escapeByte(b);
    else if (line === '' && startsUnsafeLine(bytes, i)) token = escapeByte(b);
    else if ((b >= 0x21 && b <= 0x7e && b !== 0x3d) || b === 0x20 || b === 0x09) token = String.fromCharCode(b);
    else token = escapeByte(b);
    // Room for the token plus a trailing soft-break `=`, unless this token ends the line anyway.
    const limit = atLineEnd ? BODY_LINE : BODY_LINE - 1;
    if (line.length + token.length > limit) {
      out.push(line, `=${CRLF}`);
      line = '';
      // The token now starts a physical line: re-check the line-start rule.
      if (startsUnsafeLine(bytes, i)) token = escapeByte(b);
    }
    line += token;
  }
  out.push(line);
  return out.join('');
}

const FROM_SPACE = [0x46, 0x72, 0x6f, 0x6d, 0x20]; // "From "

/** Whether a physical line starting at byte i would start with `.` or `From `. */
function startsUnsafeLine(bytes: Uint8Array, i: number): boolean {
  if (bytes[i] === 0x2e) return true;
  return FROM_SPACE.every((c, k) => bytes[i + k] === c);
}

/**
 * A random boundary. `=_` can never occur in quoted-printable or base64 output, so the boundary cannot occur in a
 * part; the check below is there so that this stays true if an encoding ever changes.
 */
function newBoundary(parts: string[]): string {
  for (;;) {
    const boundary = `=_gharart_${toHex(randomBytes(12))}`;
    if (!parts.some((p) => p.includes(boundary))) return boundary;
  }
}
