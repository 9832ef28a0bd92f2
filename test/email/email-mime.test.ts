/**
 * The MIME builder and the mail templates (docs/design.md#email: CR/LF never reaches a header). Every message is parsed
 * back with postal-mime, an independent parser, so the tests check what a receiving client would see — not what the
 * builder thinks it wrote — and every raw message is also checked line by line.
 */
import { jsx } from 'hono/jsx';
import PostalMime, { type Email } from 'postal-mime';
import { describe, expect, it } from 'vitest';
import { renderFragment, renderMailHtml } from '../../src/email/mail-layout.tsx';
import { buildMimeMessage, type OutgoingMail, sanitizeHeaderValue } from '../../src/email/mime.ts';
import {
  MAX_HTML_BYTES,
  type NotificationForMail,
  renderConfirmationMail,
  renderNotificationMail,
  renderSupportReportMail,
} from '../../src/email/templates.tsx';
import { EVENT_CATALOG } from '../../src/lib/event-catalog.ts';

const STRUCTURAL = ['content-type', 'date', 'from', 'message-id', 'mime-version', 'subject', 'to'];

function mail(overrides: Partial<OutgoingMail> = {}): OutgoingMail {
  return {
    from: { email: 'notifications@gharart.com', name: 'Gharart notifications' },
    to: { email: 'jane@example.com', name: 'Jane Doe' },
    subject: 'Order ord_10482 was paid',
    text: 'Hello Jane,\r\nyour order was paid.\r\n',
    html: '<p>Hello Jane,</p>\r\n<p>your order was paid.</p>\r\n',
    ...overrides,
  };
}

async function parse(raw: string): Promise<Email> {
  return PostalMime.parse(raw);
}

/** The top-level header block, split into physical lines. */
function headerLines(raw: string): string[] {
  return raw.slice(0, raw.indexOf('\r\n\r\n')).split('\r\n');
}

/** Names of the top-level headers as written (folded continuation lines belong to the header above), sorted. */
function rawHeaderNames(raw: string): string[] {
  return headerLines(raw)
    .filter((l) => !/^[ \t]/.test(l))
    .map((l) => l.slice(0, l.indexOf(':')).toLowerCase())
    .sort();
}

function parsedHeaderNames(email: Email): string[] {
  return email.headers.map((h) => h.key).sort();
}

function headerValues(email: Email, name: string): string[] {
  return email.headers.filter((h) => h.key === name).map((h) => h.value);
}

/** Every line ends in CRLF: no bare CR or LF anywhere, and the message ends with CRLF. */
function expectCrlfOnly(raw: string): void {
  expect(raw.endsWith('\r\n')).toBe(true);
  expect(raw.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
}

function physicalLines(raw: string): string[] {
  return raw.split('\r\n');
}

function boundaryOf(raw: string): string {
  const m = /boundary="([^"]+)"/.exec(raw);
  if (!m?.[1]) throw new Error('no boundary');
  return m[1];
}

function canonical(body: string): string {
  return body.replace(/\r\n|\r|\n/g, '\r\n');
}

type Part = { contentType: string; encoding: string; encoded: string; decoded: string };

/**
 * A strict, independent reading of the two parts (RFC 2046 §5.1.1: the CRLF before `--boundary` belongs to the
 * delimiter): checks the encoded lines against RFC 2045 (≤ 76 chars, quoted-printable escapes as `=` + two upper-case
 * hex digits, no trailing whitespace, base64 alphabet only) and decodes them byte for byte.
 */
function readParts(raw: string): Part[] {
  const b = boundaryOf(raw);
  const chunks = `\r\n${raw.slice(raw.indexOf('\r\n\r\n') + 4)}`.split(`\r\n--${b}`);
  expect(chunks[0]).toBe(''); // no preamble
  expect(chunks[chunks.length - 1]).toBe('--\r\n'); // close delimiter, no epilogue
  return chunks.slice(1, -1).map((chunk) => {
    expect(chunk.startsWith('\r\n')).toBe(true);
    const sep = chunk.indexOf('\r\n\r\n');
    const head = chunk.slice(2, sep).split('\r\n');
    const encoded = chunk.slice(sep + 4);
    const header = (name: string) =>
      head.find((h) => h.toLowerCase().startsWith(`${name}: `))?.slice(name.length + 2) ?? '';
    const encoding = header('content-transfer-encoding');
    const lines = encoded.split('\r\n');
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(76);
    let bytes: Uint8Array;
    if (encoding === 'base64') {
      for (const line of lines) expect(line).toMatch(/^[A-Za-z0-9+/]*={0,2}$/);
      bytes = Uint8Array.from(atob(lines.join('')), (c) => c.charCodeAt(0));
    } else {
      expect(encoding).toBe('quoted-printable');
      const out: number[] = [];
      lines.forEach((line, i) => {
        expect(line).toMatch(/^(?:[\t\x20-\x3c\x3e-\x7e]|=[0-9A-F]{2})*=?$/);
        expect(line).not.toMatch(/[ \t]$/);
        let soft = false; // a final `=` that is not part of an escape
        for (let j = 0; j < line.length; j++) {
          if (line[j] !== '=') out.push(line.charCodeAt(j));
          else if (j === line.length - 1) soft = true;
          else {
            out.push(Number.parseInt(line.slice(j + 1, j + 3), 16));
            j += 2;
          }
        }
        if (!soft && i < lines.length - 1) out.push(13, 10);
      });
      bytes = Uint8Array.from(out);
    }
    return {
      contentType: header('content-type'),
      encoding,
      encoded,
      decoded: new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes),
    };
  });
}

/**
 * What postal-mime returns for a body we sent. It hands quoted-printable hard line breaks back as LF — including the
 * CRLF that belongs to the boundary delimiter, so a quoted-printable body always comes back with one extra LF —
 * while base64 comes back byte for byte.
 */
function asPostalMimeReads(given: string, encoding: string): string {
  const c = canonical(given);
  return encoding === 'quoted-printable' ? `${c.replace(/\r\n/g, '\n')}\n` : c;
}

/**
 * Both bodies decode to exactly what was given (in canonical CRLF form) under the strict reading, and postal-mime
 * agrees up to its documented line-ending convention.
 */
function expectBodies(raw: string, email: Email, text: string, html: string): Part[] {
  const parts = readParts(raw);
  expect(parts.map((p) => p.contentType)).toEqual(['text/plain; charset=utf-8', 'text/html; charset=utf-8']);
  expect(parts[0]!.decoded).toBe(canonical(text));
  expect(parts[1]!.decoded).toBe(canonical(html));
  expect(email.text).toBe(asPostalMimeReads(text, parts[0]!.encoding));
  expect(email.html).toBe(asPostalMimeReads(html, parts[1]!.encoding));
  return parts;
}

describe('buildMimeMessage: round trip through an independent parser', () => {
  it('keeps addresses, subject, bodies and custom headers exactly', async () => {
    const headers = {
      'List-Unsubscribe': '<https://notify.gharart.com/v2/email/unsubscribe?token=abc&x=1>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      'X-Gharart-Delivery-Id': 'dlv_01JD0000000000000000000000',
    };
    const date = new Date('2026-11-26T10:00:00Z');
    const raw = buildMimeMessage(
      mail({
        replyTo: { email: 'support@gharart.com', name: 'Gharart support' },
        headers,
        messageId: 'abc.123@gharart.com',
        date,
      }),
    );
    const email = await parse(raw);

    expect(email.from).toEqual({ name: 'Gharart notifications', address: 'notifications@gharart.com' });
    expect(email.to).toEqual([{ name: 'Jane Doe', address: 'jane@example.com' }]);
    expect(email.replyTo).toEqual([{ name: 'Gharart support', address: 'support@gharart.com' }]);
    expect(email.subject).toBe('Order ord_10482 was paid');
    expectBodies(
      raw,
      email,
      'Hello Jane,\r\nyour order was paid.\r\n',
      '<p>Hello Jane,</p>\r\n<p>your order was paid.</p>\r\n',
    );
    expect(email.messageId).toBe('<abc.123@gharart.com>');
    expect(email.date).toBe('2026-11-26T10:00:00.000Z');
    expect(headerValues(email, 'date')).toEqual(['Thu, 26 Nov 2026 10:00:00 +0000']);
    expect(headerValues(email, 'mime-version')).toEqual(['1.0']);
    for (const [name, value] of Object.entries(headers))
      expect(headerValues(email, name.toLowerCase())).toEqual([value]);
    expect(parsedHeaderNames(email)).toEqual(
      [...STRUCTURAL, 'reply-to', 'list-unsubscribe', 'list-unsubscribe-post', 'x-gharart-delivery-id'].sort(),
    );
    expect(email.attachments).toEqual([]);
    expectCrlfOnly(raw);
  });

  it('encodes non-ASCII subjects, display names and bodies (RFC 2047, UTF-8) and decodes them back', async () => {
    const subject = 'Bestellung über ₹2,499 — दीया 🪔 für 👩‍👩‍👧 Zoë';
    const text = 'Namaste 🙏\r\nदीया जलाओ — ₹2,499.00\r\nZoë 👩‍👩‍👧\r\n';
    const html = '<p lang="hi">दीया 🪔</p><p>Crème brûlée — 😀</p>';
    const raw = buildMimeMessage(
      mail({
        subject,
        text,
        html,
        from: { email: 'notifications@gharart.com', name: 'घरआर्ट 🪔' },
        to: { email: 'zoe@example.com', name: 'Zoë Ørsted' },
      }),
    );
    const email = await parse(raw);
    expect(email.subject).toBe(subject);
    expect(email.from).toEqual({ name: 'घरआर्ट 🪔', address: 'notifications@gharart.com' });
    expect(email.to).toEqual([{ name: 'Zoë Ørsted', address: 'zoe@example.com' }]);
    expectBodies(raw, email, text, html);
    // The wire format is 7-bit: every non-ASCII character went through an encoding.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the whole 7-bit range, control characters included.
    expect(raw).toMatch(/^[\x00-\x7f]*$/);
    expect(raw).toContain('=?UTF-8?B?');
  });

  it('keeps display names with specials as one mailbox (quoted-string)', async () => {
    const name = 'Doe, Jane "JD" \\ <boss@example.com>; x';
    const raw = buildMimeMessage(mail({ to: { email: 'jane@example.com', name } }));
    const email = await parse(raw);
    expect(email.to).toEqual([{ name, address: 'jane@example.com' }]);
  });

  it('encodes a subject that looks like an encoded-word, so it reads back as written', async () => {
    const subject = 'literally =?UTF-8?B?SGFja2Vk?= here';
    const email = await parse(buildMimeMessage(mail({ subject })));
    expect(email.subject).toBe(subject);
  });

  it('sends bare LF or CR line breaks as CRLF, the canonical form of text/*', async () => {
    const text = 'one\ntwo\rthree\r\nfour\n';
    const raw = buildMimeMessage(mail({ text, html: '<p>a</p>\n<p>b</p>' }));
    const parts = readParts(raw);
    expect(parts[0]!.decoded).toBe('one\r\ntwo\r\nthree\r\nfour\r\n');
    expect(parts[1]!.decoded).toBe('<p>a</p>\r\n<p>b</p>');
    expectBodies(raw, await parse(raw), text, '<p>a</p>\n<p>b</p>');
  });

  it('uses quoted-printable for mostly-ASCII bodies and base64 for mostly non-ASCII ones, both exact', async () => {
    const hindi = 'आपका ऑर्डर भेज दिया गया है। ट्रैकिंग नंबर नीचे है।\r\n'.repeat(20);
    const raw = buildMimeMessage(mail({ text: 'Plain text — mostly ASCII.\r\n', html: hindi }));
    const parts = expectBodies(raw, await parse(raw), 'Plain text — mostly ASCII.\r\n', hindi);
    expect(parts.map((p) => p.encoding)).toEqual(['quoted-printable', 'base64']);
  });

  it('handles empty bodies and an empty subject', async () => {
    const raw = buildMimeMessage(mail({ subject: '', text: '', html: '' }));
    const email = await parse(raw);
    expect(email.subject ?? '').toBe('');
    expectBodies(raw, email, '', '');
    expect(parsedHeaderNames(email)).toEqual(STRUCTURAL);
  });

  it('generates a random Message-ID on the domain of From, and Date and MIME-Version', async () => {
    const before = Date.now();
    const a = buildMimeMessage(mail());
    const b = buildMimeMessage(mail());
    const ea = await parse(a);
    const eb = await parse(b);
    expect(ea.messageId).toMatch(/^<[0-9a-f]{32}@gharart\.com>$/);
    expect(ea.messageId).not.toBe(eb.messageId);
    expect(boundaryOf(a)).not.toBe(boundaryOf(b));
    expect(Date.parse(ea.date ?? '')).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(headerValues(ea, 'mime-version')).toEqual(['1.0']);
  });

  it('accepts a Message-ID with or without angle brackets and refuses anything else', () => {
    expect(buildMimeMessage(mail({ messageId: '<a.b@c.d>' }))).toContain('\r\nMessage-ID: <a.b@c.d>\r\n');
    expect(buildMimeMessage(mail({ messageId: 'a.b@c.d' }))).toContain('\r\nMessage-ID: <a.b@c.d>\r\n');
    for (const bad of ['abc', '<a b@c.d>', 'a@c.d>\r\nBcc: evil@example.com', '<<a@b>>', '@c.d', 'a@', '']) {
      expect(() => buildMimeMessage(mail({ messageId: bad })), bad).toThrow(/Message-ID/);
    }
  });

  it('refuses an invalid date', () => {
    expect(() => buildMimeMessage(mail({ date: new Date('nope') }))).toThrow(/date/);
  });
});

describe('buildMimeMessage: header injection', () => {
  const payloads = [
    '\r\nBcc: evil@example.com',
    '\nBcc: evil@example.com',
    '\rBcc: evil@example.com',
    '\u2028Bcc: evil@example.com',
    '\u2029Bcc: evil@example.com',
    '\u0085Bcc: evil@example.com',
    '%0d%0aBcc: evil@example.com',
    '\r\n\r\n<h1>a body of my own</h1>',
    '\r\n To: evil@example.com', // tries to continue the header above
    '\r\n\tCc: evil@example.com',
    '\u0000\u001b[31m\u007f',
    '\r\nContent-Type: text/html\r\n\r\n<script>x</script>',
  ];

  for (const p of payloads) {
    it(`no header from ${JSON.stringify(p)} in subject, names and custom header values`, async () => {
      const raw = buildMimeMessage(
        mail({
          subject: `Hello${p}`,
          from: { email: 'notifications@gharart.com', name: `Shop${p}` },
          to: { email: 'jane@example.com', name: `Jane${p}` },
          replyTo: { email: 'support@gharart.com', name: `Support${p}` },
          headers: { 'X-Gharart-Delivery-Id': `dlv_1${p}`, 'List-Unsubscribe': `<https://x.example/u>${p}` },
        }),
      );
      const expected = [...STRUCTURAL, 'list-unsubscribe', 'reply-to', 'x-gharart-delivery-id'].sort();
      expect(rawHeaderNames(raw)).toEqual(expected);
      const email = await parse(raw);
      expect(parsedHeaderNames(email)).toEqual(expected);
      expect(email.bcc).toBeUndefined();
      expect(email.cc).toBeUndefined();
      expect(email.to).toHaveLength(1);
      expect(email.to?.[0]?.address).toBe('jane@example.com');
      expect(email.from?.address).toBe('notifications@gharart.com');
      expect(email.subject).toBe(sanitizeHeaderValue(`Hello${p}`));
      expect(email.from?.name).toBe(sanitizeHeaderValue(`Shop${p}`));
      expect(email.to?.[0]?.name).toBe(sanitizeHeaderValue(`Jane${p}`));
      expect(headerValues(email, 'x-gharart-delivery-id')).toEqual([sanitizeHeaderValue(`dlv_1${p}`)]);
      expect(headerValues(email, 'list-unsubscribe')).toEqual([sanitizeHeaderValue(`<https://x.example/u>${p}`)]);
      expect(email.subject).not.toMatch(/[\r\n\u2028\u2029]/);
      expectBodies(raw, email, mail().text, mail().html);
      expect(email.attachments).toEqual([]);
      expectCrlfOnly(raw);
    });
  }

  it('sanitizeHeaderValue turns every control run into one space and trims', () => {
    expect(sanitizeHeaderValue('a\r\nb')).toBe('a b');
    expect(sanitizeHeaderValue('a\r\n\r\n\tb')).toBe('a b');
    expect(sanitizeHeaderValue('a\u2028b\u2029c\u0085d\u0000e\u007ff')).toBe('a b c d e f');
    expect(sanitizeHeaderValue('\r\nBcc: x\r\n')).toBe('Bcc: x');
    expect(sanitizeHeaderValue('%0d%0a stays text')).toBe('%0d%0a stays text');
    expect(sanitizeHeaderValue('Zoë — 🪔')).toBe('Zoë — 🪔');
  });

  const badAddresses = [
    'jane@example.com\r\nBcc: evil@example.com',
    'jane@example.com\nBcc: evil@example.com',
    'jane@example.com, evil@example.com',
    'jane@example.com;evil@example.com',
    'Jane <jane@example.com>',
    '<jane@example.com>',
    'jane@example.com>',
    '"jane"@example.com',
    '"a b"@example.com',
    'jane doe@example.com',
    ' jane@example.com',
    'jane@example.com ',
    'jane(comment)@example.com',
    'jane@[127.0.0.1]',
    'jane@example',
    'jane@',
    '@example.com',
    'jane@@example.com',
    'jane@exa@mple.com',
    'jane@example..com',
    'jane@-example.com',
    'jane@example-.com',
    'jane@exam_ple.com',
    'jane@example.123',
    '.jane@example.com',
    'jane.@example.com',
    'ja..ne@example.com',
    'jäne@example.com',
    'jane@exämple.com',
    `${'a'.repeat(65)}@example.com`,
    `a@${'b'.repeat(250)}.com`,
    '',
  ];

  for (const bad of badAddresses) {
    it(`refuses the address ${JSON.stringify(bad)} in from, to and reply-to`, () => {
      expect(() => buildMimeMessage(mail({ to: { email: bad } }))).toThrow(/invalid email address/);
      expect(() => buildMimeMessage(mail({ from: { email: bad } }))).toThrow(/invalid email address/);
      expect(() => buildMimeMessage(mail({ replyTo: { email: bad } }))).toThrow(/invalid email address/);
    });
  }

  it('accepts ordinary addresses as they are', async () => {
    for (const ok of [
      "o'brien+orders@mail.example.co.in",
      'a@b.io',
      'first.last@xn--80ak6aa92e.com',
      'UPPER@Example.COM',
    ]) {
      const email = await parse(buildMimeMessage(mail({ to: { email: ok } })));
      expect(email.to).toEqual([{ name: '', address: ok }]);
    }
  });

  const reserved = [
    'From',
    'to',
    'SUBJECT',
    'Date',
    'Message-ID',
    'MIME-Version',
    'Content-Type',
    'content-transfer-encoding',
    'Content-Disposition',
    'Bcc',
    'Cc',
    'Reply-To',
    'Sender',
    'Resent-To',
    'Return-Path',
    'Received',
    'DKIM-Signature',
  ];
  for (const name of reserved) {
    it(`refuses the structural header ${name} in headers`, () => {
      expect(() => buildMimeMessage(mail({ headers: { [name]: 'evil@example.com' } }))).toThrow(/cannot be overridden/);
    });
  }

  it('refuses header names that are not RFC 7230 tokens, and a name given twice', () => {
    for (const name of ['X Bad', 'X-Bad:', 'X-Bad\r\nBcc', '', 'Ümlaut', 'X(y)', 'X-"q"', 'X/Y@', 'a'.repeat(65)]) {
      expect(() => buildMimeMessage(mail({ headers: { [name]: 'v' } })), JSON.stringify(name)).toThrow(
        /invalid header name/,
      );
    }
    expect(() => buildMimeMessage(mail({ headers: { 'X-A': '1', 'x-a': '2' } }))).toThrow(/given twice/);
  });

  it('event data full of line breaks never leaves the body', async () => {
    const data = {
      orderId: 'ord_1\r\nBcc: evil@example.com',
      note: '\r\n\r\n--boundary\r\nContent-Type: text/html\r\n\r\n<script>x</script>',
      'key\r\nBcc: evil@example.com': 'v\n.\nFrom evil',
    };
    const n: NotificationForMail = {
      id: 'ntf_1',
      handle: 'demo-store',
      type: 'order.created\r\nBcc: evil@example.com',
      severity: 'info',
      occurredAt: '2026-11-26T10:00:00Z',
      data,
    };
    const content = renderNotificationMail(n, {
      unsubscribeUrl: 'https://notify.gharart.com/v2/email/unsubscribe?token=t',
    });
    const raw = buildMimeMessage(mail({ ...content, headers: { 'X-Gharart-Delivery-Id': 'dlv_1' } }));
    const email = await parse(raw);
    expect(parsedHeaderNames(email)).toEqual([...STRUCTURAL, 'x-gharart-delivery-id'].sort());
    expect(email.bcc).toBeUndefined();
    expect(email.to).toHaveLength(1);
    expect(email.attachments).toEqual([]);
    expectBodies(raw, email, content.text, content.html);
  });
});

describe('buildMimeMessage: line lengths, folding and body safety', () => {
  it('folds a long ASCII subject at spaces, ≤ 78 per line, and reads it back', async () => {
    const subject = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');
    const raw = buildMimeMessage(mail({ subject }));
    for (const line of headerLines(raw)) expect(line.length).toBeLessThanOrEqual(78);
    expect((await parse(raw)).subject).toBe(subject);
  });

  it('encodes subjects that cannot be folded at spaces (one 3,000-char word, double spaces, non-ASCII)', async () => {
    const subjects = [
      'x'.repeat(3000),
      `a  b   c ${'y'.repeat(100)} `.trim(),
      '🪔'.repeat(400),
      `${'ä'.repeat(999)} ${'z'.repeat(999)}`,
    ];
    for (const subject of subjects) {
      const raw = buildMimeMessage(mail({ subject }));
      for (const line of physicalLines(raw)) expect(line.length).toBeLessThanOrEqual(998);
      for (const line of headerLines(raw)) expect(line.length).toBeLessThanOrEqual(78);
      expect((await parse(raw)).subject).toBe(subject);
    }
  });

  it('folds long display names and custom header values', async () => {
    const name = `Gharart ${'very '.repeat(60)}long name`;
    const unsub =
      `<https://notify.gharart.com/u?t=${'a'.repeat(300)}>, ` +
      `<mailto:unsubscribe@gharart.com?subject=${'b'.repeat(100)}>`;
    const raw = buildMimeMessage(
      mail({ from: { email: 'n@gharart.com', name }, headers: { 'List-Unsubscribe': unsub } }),
    );
    for (const line of headerLines(raw)) expect(line.length).toBeLessThanOrEqual(998);
    const email = await parse(raw);
    expect(email.from).toEqual({ name, address: 'n@gharart.com' });
    expect(headerValues(email, 'list-unsubscribe')).toEqual([unsub]);
  });

  it('refuses a custom header value that cannot be folded under 998 chars', () => {
    expect(() => buildMimeMessage(mail({ headers: { 'X-Long': 'a'.repeat(1000) } }))).toThrow(/too long/);
  });

  it('encodes a 300 KB body of 5,000-char lines, no line over 998 (76, in fact), decoding it identically', async () => {
    const line = (i: number) => `${i} `.padEnd(4990, 'abc = def ').concat('é.🪔 \t');
    const body = Array.from({ length: 62 }, (_, i) => line(i)).join('\r\n');
    expect(body.length).toBeGreaterThan(300_000);
    const raw = buildMimeMessage(mail({ text: body, html: `<pre>${body}</pre>` }));
    for (const l of physicalLines(raw)) expect(l.length).toBeLessThanOrEqual(998);
    const bodyLines = physicalLines(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    expect(Math.max(...bodyLines.map((l) => l.length))).toBeLessThanOrEqual(76);
    expectBodies(raw, await parse(raw), body, `<pre>${body}</pre>`);
  });

  it('never puts a lone "." or a line starting with "From " on the wire, and both survive decoding', async () => {
    const text = ['.', 'From the shop', '..', '.leading dot', 'From ', 'From', 'Fromage', '.', ''].join('\r\n');
    const raw = buildMimeMessage(mail({ text, html: `${text}.` }));
    const lines = physicalLines(raw);
    expect(lines.filter((l) => l.startsWith('.'))).toEqual([]);
    expect(lines.filter((l) => l.startsWith('From '))).toEqual([]);
    expectBodies(raw, await parse(raw), text, `${text}.`);
  });

  it('also escapes "." and "From " that land at the start of a line after a soft break', async () => {
    for (let pad = 60; pad <= 90; pad++) {
      const text = `${'x'.repeat(pad)}From you.${'y'.repeat(pad)}.${'z'.repeat(pad)}`;
      const raw = buildMimeMessage(mail({ text }));
      const lines = physicalLines(raw);
      expect(lines.filter((l) => l.startsWith('.') || l.startsWith('From '))).toEqual([]);
      expectBodies(raw, await parse(raw), text, mail().html);
    }
  });

  it('keeps trailing spaces and tabs, "=" and control bytes exact', async () => {
    const text = 'trailing space \r\ntrailing tab\t\r\n= sign =3D =\r\nnul\u0000 esc\u001b\r\n  \r\n';
    const raw = buildMimeMessage(mail({ text }));
    expectBodies(raw, await parse(raw), text, mail().html);
  });
});

describe('buildMimeMessage: structure', () => {
  it('ends every line in CRLF and has the multipart/alternative layout, text before html', () => {
    const raw = buildMimeMessage(mail());
    expectCrlfOnly(raw);
    const b = boundaryOf(raw);
    const lines = physicalLines(raw);
    expect(lines.filter((l) => l.includes(b))).toEqual([` boundary="${b}"`, `--${b}`, `--${b}`, `--${b}--`]);
    expect(raw).toContain(`Content-Type: multipart/alternative;\r\n boundary="${b}"`);
    const firstPart = raw.indexOf(`--${b}\r\n`);
    expect(raw.indexOf('Content-Type: text/plain; charset=utf-8', firstPart)).toBeLessThan(
      raw.indexOf('Content-Type: text/html; charset=utf-8'),
    );
  });

  it('never lets the boundary occur inside a part, even when a body imitates it', async () => {
    const imitation = '--=_gharart_000000000000000000000000\r\n--=_gharart_\r\n=_gharart_ --';
    for (let i = 0; i < 20; i++) {
      const raw = buildMimeMessage(mail({ text: imitation, html: `<p>${imitation}</p>` }));
      const b = boundaryOf(raw);
      expect(raw.split(b).length - 1).toBe(4); // the Content-Type parameter, two delimiters, the close delimiter
      expectBodies(raw, await parse(raw), imitation, `<p>${imitation}</p>`);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Templates

const NOW = '2026-11-26T10:00:00Z';
const UNSUB = 'https://notify.gharart.com/v2/email/unsubscribe?token=tok_abc&v=1';
const DASH = 'https://app.gharart.com/demo-store/notifications/ntf_01JD3Q7X9T0000000000000000';

function notification(overrides: Partial<NotificationForMail> = {}): NotificationForMail {
  return {
    id: 'ntf_01JD3Q7X9T0000000000000000',
    handle: 'demo-store',
    type: 'payment.failed',
    severity: 'critical',
    occurredAt: NOW,
    data: { orderId: 'ord_10482', paymentId: 'pay_8813', code: 'card_declined' },
    ...overrides,
  };
}

function escHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function report(overrides: Partial<Parameters<typeof renderSupportReportMail>[0]> = {}) {
  return {
    reportId: 'rpt_01JD',
    summary: 'Webhook test passes but deliveries fail',
    details: 'Since 10:00 every delivery goes to the DLQ.\nThe test send works.',
    principal: 'user_1 (jwt)',
    handle: 'demo-store',
    handleVerified: false,
    sessionId: 'sess_1',
    reportedRequestId: 'req_seen',
    reproArtifact: '"curl -X POST https://notify.gharart.com/v2/events"',
    requestId: 'req_01JD',
    deploymentId: 'dep_1',
    ...overrides,
  };
}

const ALLOWED_TAGS = new Set([
  'html',
  'head',
  'meta',
  'title',
  'body',
  'div',
  'p',
  'h1',
  'table',
  'caption',
  'thead',
  'tbody',
  'tr',
  'th',
  'td',
  'code',
  'a',
  'hr',
]);

/** The HTML only has our tags, no event handler attributes, nothing that loads, and links only to the given URLs. */
function expectSafeHtml(html: string, allowedLinks: string[]): void {
  const tags = [...html.matchAll(/<\/?([a-zA-Z][a-zA-Z0-9]*)\b[^>]*>/g)];
  expect(tags.length).toBeGreaterThan(10);
  for (const [tag, name] of tags) {
    expect(ALLOWED_TAGS.has(name!.toLowerCase()), tag).toBe(true);
    expect(tag).not.toMatch(/\s(?:on[a-z]+|src|srcset|background|poster|action|formaction)\s*=/i);
    expect(tag).not.toMatch(/url\(|@import|expression\(/i);
  }
  expect(html).not.toMatch(/<link|<img|<script|<style|<iframe|<object|<embed|<svg|<form|<base/i);
  const hrefs = [...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]);
  for (const href of hrefs) expect(allowedLinks.map(escHtml)).toContain(href);
}

describe('renderNotificationMail', () => {
  for (const entry of EVENT_CATALOG) {
    it(`renders ${entry.type} from its catalog sample`, async () => {
      const n = notification({ type: entry.type, severity: entry.defaultSeverity, data: entry.sample });
      const m = renderNotificationMail(n, { unsubscribeUrl: UNSUB, dashboardUrl: DASH });
      expect(m.subject.startsWith('[Gharart] ')).toBe(true);
      expect(m.subject).toContain('demo-store');
      expect(m.subject.toLowerCase()).toContain(entry.defaultSeverity);
      expect(m.subject).toContain(entry.type.replace(/[._]/g, ' '));
      for (const body of [m.text, m.html]) {
        expect(body).toContain(n.id);
        for (const key of Object.keys(entry.sample)) expect(body).toContain(key);
      }
      expect(m.text).toContain(entry.description);
      expect(m.html).toContain(escHtml(entry.description));
      expect(m.html).toContain('lang="en"');
      expect(m.html).toMatch(/<h1[^>]*>/);
      expect(m.html).toContain('<th scope="row"');
      expect(m.html).toContain('<th scope="col"');
      expectSafeHtml(m.html, [UNSUB, DASH]);

      // and through the builder: what a client shows is what was rendered
      const raw = buildMimeMessage(mail({ ...m, headers: { 'List-Unsubscribe': `<${UNSUB}>` } }));
      const email = await parse(raw);
      expect(email.subject).toBe(m.subject);
      expectBodies(raw, email, m.text, m.html);
    });
  }

  it('writes the subject as "[Gharart] Critical: payment failed — demo-store"', () => {
    expect(renderNotificationMail(notification(), { unsubscribeUrl: null }).subject).toBe(
      '[Gharart] Critical: payment failed — demo-store',
    );
  });

  it('shows the key facts of a type first', () => {
    const paid = renderNotificationMail(
      notification({
        type: 'order.paid',
        severity: 'info',
        data: EVENT_CATALOG.find((e) => e.type === 'order.paid')!.sample,
      }),
      { unsubscribeUrl: null },
    );
    expect(paid.text).toMatch(/Order: ord_10482\nTotal: INR\s2,499\.00\nPayment: pay_8812\n/);
    const shipped = renderNotificationMail(
      notification({
        type: 'order.fulfilled',
        severity: 'info',
        data: EVENT_CATALOG.find((e) => e.type === 'order.fulfilled')!.sample,
      }),
      { unsubscribeUrl: null },
    );
    expect(shipped.text).toContain('Tracking number: DL123456789IN');
    expect(shipped.html).toContain(
      '<caption style="text-align:left;font-weight:600;padding:0 0 6px;">Key facts</caption>',
    );
  });

  it('gives unknown types a generic title from the type string', () => {
    const m = renderNotificationMail(
      notification({ type: 'inventory.low_stock', severity: 'warning', data: { sku: 'A1' } }),
      { unsubscribeUrl: null },
    );
    expect(m.subject).toBe('[Gharart] Warning: inventory low stock — demo-store');
    expect(m.text).toContain('Inventory low stock.');
    expect(m.html).toContain('>Inventory low stock.</h1>');
    expect(m.text).toContain('sku: A1');
  });

  it('prefixes test sends with [TEST] and says so in the body', () => {
    const m = renderNotificationMail(notification({ test: true }), { unsubscribeUrl: null });
    expect(m.subject).toBe('[TEST] [Gharart] Critical: payment failed — demo-store');
    expect(m.text).toContain('test notification');
    expect(m.html).toContain('test notification');
    expect(renderNotificationMail(notification({ test: false }), { unsubscribeUrl: null }).subject).not.toContain(
      '[TEST]',
    );
  });

  it('escapes every value, key, handle and type in the HTML', () => {
    const hostile = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "'><svg onload=alert(1)>"];
    const data: Record<string, unknown> = {
      '<b>key</b>': hostile[0],
      orderId: hostile[1],
      amp: '&amp;',
      quote: hostile[2],
      nested: { html: hostile[0], list: [hostile[1]] },
    };
    const n = notification({ type: 'order.created', handle: 'demo<i>&"store\'', data, id: 'ntf_<x>' });
    const m = renderNotificationMail(n, { unsubscribeUrl: UNSUB, dashboardUrl: DASH });
    for (const h of hostile) {
      expect(m.html).not.toContain(h);
      expect(m.html).toContain(escHtml(h));
    }
    // `&amp;` occurs in any escaped page, so look at its cell: the entity itself was escaped, not passed through
    expect(m.html).toMatch(/>&amp;amp;<\/td>/);
    expect(m.html).not.toMatch(/>&amp;<\/td>/);
    expect(m.html).not.toContain('<b>key</b>');
    expect(m.html).toContain(escHtml('<b>key</b>'));
    expect(m.html).toContain(escHtml('demo<i>&"store\''));
    expect(m.html).not.toContain('demo<i>');
    expect(m.html).toContain(escHtml('ntf_<x>'));
    // nested values are compact JSON, escaped
    expect(m.html).toContain(escHtml(JSON.stringify(data.nested)));
    expect(m.text).toContain(JSON.stringify(data.nested));
    expectSafeHtml(m.html, [UNSUB, DASH]);

    const typed = renderNotificationMail(notification({ type: '<svg onload=alert(1)>.x' }), { unsubscribeUrl: null });
    expect(typed.html).not.toContain('<svg');
    expect(typed.html).toContain(escHtml('<svg onload=alert(1)>.x'));
  });

  it('loads nothing and links only to the given unsubscribe and dashboard URLs, never to URLs in the data', () => {
    const data = {
      url: 'https://crm.example.com/hooks',
      image: '<img src="https://tracker.example/p.gif">',
      style: '<link rel="stylesheet" href="https://evil.example/s.css">',
      js: 'javascript:alert(1)',
    };
    const m = renderNotificationMail(notification({ type: 'webhook.endpoint_disabled', data }), {
      unsubscribeUrl: UNSUB,
      dashboardUrl: DASH,
    });
    expectSafeHtml(m.html, [UNSUB, DASH]);
    expect(m.html).toContain('https://crm.example.com/hooks'); // as text
    expect(m.html).not.toContain('href="https://crm.example.com');
    expect([...m.html.matchAll(/https?:\/\//g)].length).toBeGreaterThan(0);
    const withoutLinks = renderNotificationMail(notification({ data: {} }), { unsubscribeUrl: null });
    expect(withoutLinks.html).not.toMatch(/https?:\/\//);
  });

  it('includes the unsubscribe link only when given', () => {
    const withLink = renderNotificationMail(notification(), { unsubscribeUrl: UNSUB });
    expect(withLink.text).toContain(`Unsubscribe: ${UNSUB}`);
    expect(withLink.html).toContain(`href="${escHtml(UNSUB)}"`);
    expect(withLink.html).toContain('>Unsubscribe</a>');
    const without = renderNotificationMail(notification(), { unsubscribeUrl: null });
    expect(without.text.toLowerCase()).not.toContain('unsubscribe');
    expect(without.html.toLowerCase()).not.toContain('unsubscribe');
    expect(without.html).not.toContain('href=');
    // the footer says why the mail came, in both bodies
    for (const body of [withLink.text, withLink.html, without.text, without.html]) {
      expect(body).toContain(
        'You receive this email because this address is subscribed to Gharart notifications for demo-store.',
      );
    }
  });

  it('refuses a link that is not http(s)', () => {
    expect(() => renderNotificationMail(notification(), { unsubscribeUrl: 'javascript:alert(1)' })).toThrow(/http/);
    expect(() =>
      renderNotificationMail(notification(), { unsubscribeUrl: UNSUB, dashboardUrl: 'data:text/html,x' }),
    ).toThrow(/http/);
    expect(() => renderNotificationMail(notification(), { unsubscribeUrl: 'not a url' })).toThrow(/URL/);
  });

  it('lists 50 of 60 fields and says how many were left out', () => {
    const data = Object.fromEntries(
      Array.from({ length: 60 }, (_, i) => [`field_${String(i).padStart(2, '0')}`, `value ${i}`]),
    );
    const m = renderNotificationMail(notification({ type: 'order.created', data }), { unsubscribeUrl: null });
    for (let i = 0; i < 60; i++) {
      const key = `field_${String(i).padStart(2, '0')}`;
      expect(m.text.includes(`${key}: value ${i}`), key).toBe(i < 50);
      expect(m.html.includes(`>${key}</th>`), key).toBe(i < 50);
    }
    expect(m.text).toContain('10 more fields not shown');
    expect(m.html).toContain('10 more fields not shown');
    expect(m.html.match(/<th scope="row"/g)).toHaveLength(50);
  });

  it('cuts long values at 500 chars and keeps the HTML under 100 KB even when every char escapes', () => {
    const long = renderNotificationMail(
      notification({ data: { blob: 'x'.repeat(10_000), emoji: '🪔'.repeat(1000) } }),
      { unsubscribeUrl: null },
    );
    expect(long.text).toContain(`blob: ${'x'.repeat(499)}…\n`);
    expect(long.text).not.toContain('x'.repeat(500));
    expect(long.text).not.toMatch(/[\ud800-\udbff]…/); // no half surrogate pair before the ellipsis

    const data = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`q${i}`, '"<&>\''.repeat(200)]));
    const m = renderNotificationMail(notification({ data }), { unsubscribeUrl: UNSUB });
    expect(new TextEncoder().encode(m.html).length).toBeLessThanOrEqual(MAX_HTML_BYTES);
    expect(m.html).toMatch(/\d+ more fields? not shown/);
    expect(m.html).toContain('ntf_01JD3Q7X9T0000000000000000');
    expect(m.html).toContain('>Unsubscribe</a>'); // the footer is never what gets cut
  });

  it('keeps a value on one line, so data cannot forge lines of the mail', () => {
    const data = { note: 'fine\r\nUnsubscribe: https://evil.example/\u2028-- \u202eevil' };
    const m = renderNotificationMail(notification({ data }), { unsubscribeUrl: null });
    expect(m.text).toContain('note: fine\\r\\nUnsubscribe: https://evil.example/\\u2028-- \\u202eevil');
    expect(m.text.split('\n').filter((l) => l.startsWith('Unsubscribe'))).toEqual([]);
    expect(m.text).not.toMatch(/[\r\u2028\u202e]/);
  });

  it('renders an event without data', () => {
    const m = renderNotificationMail(notification({ data: {} }), { unsubscribeUrl: null });
    expect(m.text).toContain('This event carries no data fields.');
    expect(m.html).not.toContain('All fields');
  });
});

describe('renderConfirmationMail and renderSupportReportMail', () => {
  const confirmUrl = 'https://notify.gharart.com/v2/email/confirm?token=abc&x=<1>';

  it('confirmation: subject names the handle, both bodies hold the link and the expiry', async () => {
    const m = renderConfirmationMail({
      handle: 'demo-store',
      email: 'ops@example.com',
      confirmUrl,
      expiresAt: '2026-11-27T10:00:00Z',
    });
    const href = new URL(confirmUrl).href;
    expect(m.subject).toBe('[Gharart] Confirm notifications for demo-store');
    expect(m.text).toContain(href);
    expect(m.text).toContain('2026-11-27 10:00 UTC');
    expect(m.text).toContain('ops@example.com');
    expect(m.html).toContain(`href="${escHtml(href)}"`);
    expect(m.html).toContain('2026-11-27 10:00 UTC');
    expectSafeHtml(m.html, [href]);
    const raw = buildMimeMessage(mail({ ...m, to: { email: 'ops@example.com' } }));
    const email = await parse(raw);
    expect(email.subject).toBe(m.subject);
    expectBodies(raw, email, m.text, m.html);
  });

  it('confirmation: escapes the handle and address, refuses a non-http link', () => {
    const m = renderConfirmationMail({
      handle: '<b>x</b>',
      email: '"><img src=x>@example.com',
      confirmUrl,
      expiresAt: 'soon',
    });
    expect(m.html).not.toContain('<b>x</b>');
    expect(m.html).not.toContain('<img');
    expect(m.html).toContain(escHtml('"><img src=x>@example.com'));
    expect(m.text).toContain('expires at soon');
    expect(() =>
      renderConfirmationMail({ handle: 'h', email: 'a@b.co', confirmUrl: 'javascript:x', expiresAt: NOW }),
    ).toThrow(/http/);
    expect(() => renderConfirmationMail({ handle: 'h', email: 'a@b.co', confirmUrl: '', expiresAt: NOW })).toThrow(
      /required/,
    );
  });

  it('support report: subject names the report, both bodies hold every field and id', async () => {
    const m = renderSupportReportMail(report());
    expect(m.subject).toBe('[Gharart support] rpt_01JD: Webhook test passes but deliveries fail');
    for (const body of [m.text, m.html]) {
      for (const part of ['rpt_01JD', 'user_1 (jwt)', 'demo-store', 'sess_1', 'req_seen', 'req_01JD', 'dep_1']) {
        expect(body).toContain(part);
      }
      expect(body).toContain('curl -X POST');
    }
    expect(m.text).toContain('Handle: demo-store (not verified: the reporter is not a member)');
    expect(m.html).toContain('lang="en"');
    expect(m.html).toContain('<th scope="row"');
    expect(m.html).not.toMatch(/href=|<img|<script|<link|<style/i);
    const raw = buildMimeMessage(mail({ ...m, to: { email: 'support@gharart.com' } }));
    const email = await parse(raw);
    expect(email.subject).toBe(m.subject);
    expectBodies(raw, email, m.text, m.html);
  });

  it('support report: escapes everything and keeps a hostile summary out of the headers', async () => {
    const m = renderSupportReportMail(
      report({
        summary: 'x\r\nBcc: evil@example.com<script>',
        details: '</pre><img src=x onerror=alert(1)>',
        handle: '<b>h</b>',
        reproArtifact: '<a href="https://evil.example/">x</a>',
      }),
    );
    expect(m.html).not.toContain('<script>');
    expect(m.html).not.toContain('<img');
    expect(m.html).not.toContain('<b>h</b>');
    expect(m.html).not.toMatch(/<a\b/);
    expect(m.html).toContain(escHtml('</pre><img src=x onerror=alert(1)>'));
    expect(m.html).toContain(escHtml('<a href="https://evil.example/">x</a>'));
    const email = await parse(buildMimeMessage(mail({ ...m })));
    expect(parsedHeaderNames(email)).toEqual(STRUCTURAL);
    expect(email.subject).toBe(m.subject);
  });
});

describe('mail HTML rendering', () => {
  it('refuses an async component rather than sending "[object Promise]"', () => {
    // What `<p><Async /></p>` compiles to, typed as the JSX element it is.
    const el = (node: unknown) => node as Parameters<typeof renderFragment>[0];
    const Async = async () => 'late';
    expect(() => renderMailHtml(el(jsx('p', null, jsx(Async, null))))).toThrow(/synchronously/);
    expect(() => renderFragment(el(jsx(Async, null)))).toThrow(/synchronously/);
    expect(renderFragment(el(jsx('p', null, '<x>')))).toBe('<p>&lt;x&gt;</p>');
  });
});
