/**
 * The mail templates (docs/design.md#email): what each mail says, that event data is escaped and never reaches a
 * header, and that the Cloudflare provider's structured message carries the rendered subject and bodies unchanged
 * (the platform writes the MIME: docs/design.md#email).
 */
import { jsx } from 'hono/jsx';
import { describe, expect, it } from 'vitest';
import { renderFragment, renderMailHtml } from '../../src/email/mail-layout.tsx';
import type { OutgoingMail } from '../../src/email/message.ts';
import { structuredMessage } from '../../src/email/providers/cloudflare.ts';
import {
  MAX_HTML_BYTES,
  type NotificationForMail,
  renderConfirmationMail,
  renderNotificationMail,
  renderSupportReportMail,
} from '../../src/email/templates.tsx';
import { EVENT_CATALOG } from '../../src/lib/event-catalog.ts';

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

/** The message handed to the binding says exactly what the template rendered. */
function expectSentAsRendered(sent: EmailMessageBuilder, m: { subject: string; text: string; html: string }): void {
  expect({ subject: sent.subject, text: sent.text, html: sent.html }).toEqual({
    subject: m.subject,
    text: m.text,
    html: m.html,
  });
}

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

      // and into the structured message the binding sends: what a client shows is what was rendered
      const sent = structuredMessage(mail({ ...m, headers: { 'List-Unsubscribe': `<${UNSUB}>` } }));
      expectSentAsRendered(sent, m);
      expect(sent.headers).toEqual({ 'List-Unsubscribe': `<${UNSUB}>` });
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
    expectSentAsRendered(structuredMessage(mail({ ...m, to: { email: 'ops@example.com' } })), m);
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
    expectSentAsRendered(structuredMessage(mail({ ...m, to: { email: 'support@gharart.com' } })), m);
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
    const sent = structuredMessage(mail({ ...m }));
    expectSentAsRendered(sent, m);
    expect(sent.subject).not.toMatch(/[\r\n]/);
    expect(Object.keys(sent).sort()).toEqual(['from', 'html', 'subject', 'text', 'to']);
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
