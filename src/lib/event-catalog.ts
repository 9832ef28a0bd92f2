/**
 * The event catalog (docs/design.md#event-catalog): every type a handle can receive, its default severity, a zod
 * schema for its `data` (checked when it is published, served as JSON Schema by `GET /v2/event-types` and as the
 * OpenAPI `webhooks`) and a realistic sample used by test sends and the settings dry run. Failures default to
 * `critical`. Data objects are open: a publisher may add fields, but a catalog field must have the catalog's type.
 */
import { z } from 'zod';
import { matchesEventTypes } from './filter-policy.ts';

export type Severity = 'info' | 'warning' | 'critical';

export interface EventTypeInfo {
  type: string;
  description: string;
  defaultSeverity: Severity;
  /** System events are emitted by this service itself, never published by clients. */
  system: boolean;
  /** What `data` holds for this type; every sample parses with it (test/lib/event-catalog.test.ts). */
  schema: z.ZodType<Record<string, unknown>>;
  sample: Record<string, unknown>;
  /** Words people use for the last segment of this type (`shipped` for `order.fulfilled`), for typo suggestions. */
  aliases?: readonly string[];
}

const text = (description: string) => z.string().min(1).max(1000).describe(description);
const orderId = text('The order id in the shop.');
const money = z.number().nonnegative();
const currency = z
  .string()
  .regex(/^[A-Z]{3}$/)
  .describe('ISO 4217 currency code.');
const instant = (description: string) => z.iso.datetime({ offset: true }).describe(description);
const day = (description: string) => z.iso.date().describe(description);
const count = z.number().int().nonnegative();
/**
 * An open object: the `required` fields must be there, the other named fields are optional but typed; any other field
 * passes through.
 */
const data = (shape: Record<string, z.ZodType>, required: readonly string[] = []) =>
  z.looseObject(
    Object.fromEntries(Object.entries(shape).map(([k, v]) => [k, required.includes(k) ? v : v.optional()])),
  ) as unknown as z.ZodType<Record<string, unknown>>;

const orderFields = {
  orderId,
  customerEmail: text('The customer email address.'),
  currency,
  total: money.describe('The order total, in `currency`.'),
  items: count.describe('The number of items.'),
};

const order = { orderId: 'ord_10482', customerEmail: 'jane@example.com', currency: 'INR', total: 2499.0, items: 3 };

export const EVENT_CATALOG: readonly EventTypeInfo[] = [
  {
    type: 'order.created',
    description: 'A customer placed an order.',
    defaultSeverity: 'info',
    system: false,
    schema: data(orderFields, ['orderId']),
    sample: order,
  },
  {
    type: 'order.paid',
    description: 'Payment for an order was captured.',
    defaultSeverity: 'info',
    system: false,
    schema: data({ ...orderFields, paymentId: text('The payment id at the payment provider.') }, ['orderId']),
    sample: { ...order, paymentId: 'pay_8812' },
  },
  {
    type: 'order.fulfilled',
    description: 'All items of an order were shipped.',
    aliases: ['shipped', 'dispatched'],
    defaultSeverity: 'info',
    system: false,
    schema: data(
      {
        orderId,
        carrier: text('The carrier.'),
        trackingNumber: text('The tracking number.'),
        shippedAt: instant('When it shipped.'),
      },
      ['orderId'],
    ),
    sample: {
      orderId: 'ord_10482',
      carrier: 'Delhivery',
      trackingNumber: 'DL123456789IN',
      shippedAt: '2026-11-20T10:15:00Z',
    },
  },
  {
    type: 'order.cancelled',
    description: 'An order was cancelled.',
    defaultSeverity: 'warning',
    system: false,
    schema: data({ orderId, reason: text('Why, e.g. customer_request.') }, ['orderId']),
    sample: { orderId: 'ord_10482', reason: 'customer_request' },
  },
  {
    type: 'order.refunded',
    description: 'An order was refunded, in whole or in part.',
    defaultSeverity: 'warning',
    system: false,
    schema: data({ orderId, amount: money.describe('The refunded amount, in `currency`.'), currency }, ['orderId']),
    sample: { orderId: 'ord_10482', amount: 2499.0, currency: 'INR' },
  },
  {
    type: 'fulfillment.delayed',
    description: 'A shipment will miss its promised date.',
    defaultSeverity: 'warning',
    system: false,
    schema: data(
      {
        orderId,
        promisedBy: day('The promised delivery date.'),
        expectedBy: day('The new expected date.'),
      },
      ['orderId'],
    ),
    sample: { orderId: 'ord_10482', promisedBy: '2026-11-22', expectedBy: '2026-11-25' },
  },
  {
    type: 'fulfillment.failed',
    description: 'A shipment could not be fulfilled.',
    defaultSeverity: 'critical',
    system: false,
    schema: data({ orderId, reason: text('Why, e.g. out_of_stock.'), sku: text('The SKU concerned.') }, ['orderId']),
    sample: { orderId: 'ord_10482', reason: 'out_of_stock', sku: 'TSHIRT-RED-M' },
  },
  {
    type: 'payment.failed',
    description: 'A payment attempt failed.',
    defaultSeverity: 'critical',
    system: false,
    schema: data({ orderId, paymentId: text('The payment id.'), code: text('The decline code, e.g. card_declined.') }, [
      'orderId',
    ]),
    sample: { orderId: 'ord_10482', paymentId: 'pay_8813', code: 'card_declined' },
  },
  {
    type: 'campaign.scheduled',
    description: 'A campaign was scheduled.',
    defaultSeverity: 'info',
    system: false,
    schema: data(
      {
        campaignId: text('The campaign id.'),
        name: text('The campaign name.'),
        startsAt: instant('When it starts.'),
      },
      ['campaignId'],
    ),
    sample: { campaignId: 'cmp_311', name: 'Diwali sale', startsAt: '2026-11-01T00:00:00Z' },
  },
  {
    type: 'campaign.started',
    description: 'A campaign started sending.',
    defaultSeverity: 'info',
    system: false,
    schema: data({ campaignId: text('The campaign id.'), audience: count.describe('Recipients targeted.') }, [
      'campaignId',
    ]),
    sample: { campaignId: 'cmp_311', audience: 12840 },
  },
  {
    type: 'campaign.completed',
    description: 'A campaign finished.',
    defaultSeverity: 'info',
    system: false,
    schema: data(
      {
        campaignId: text('The campaign id.'),
        sent: count.describe('Messages sent.'),
        failed: count.describe('Messages that failed.'),
      },
      ['campaignId'],
    ),
    sample: { campaignId: 'cmp_311', sent: 12840, failed: 12 },
  },
  {
    type: 'campaign.failed',
    description: 'A campaign stopped with an error.',
    defaultSeverity: 'critical',
    system: false,
    schema: data({ campaignId: text('The campaign id.'), reason: text('Why it stopped.') }, ['campaignId']),
    sample: { campaignId: 'cmp_311', reason: 'template_render_error' },
  },
  {
    type: 'webhook.endpoint_disabled',
    description: 'A webhook endpoint was disabled after repeated failures or a 410.',
    defaultSeverity: 'critical',
    system: true,
    schema: data({
      subscriptionId: text('The webhook id.'),
      url: text('Its URL.'),
      reason: text('Why it was disabled.'),
    }),
    sample: {
      subscriptionId: 'whk_01JD0000000000000000000000',
      url: 'https://crm.example.com/hooks',
      reason: 'no_success_5_days',
    },
  },
  {
    type: 'email.subscription_stale',
    description: 'An email subscription no longer exists at the email provider.',
    defaultSeverity: 'critical',
    system: true,
    schema: data({
      subscriptionId: text('The email subscription id.'),
      email: text('The address.'),
      provider: text('The email provider.'),
    }),
    sample: { subscriptionId: 'esub_01JD0000000000000000000000', email: 'ops@example.com', provider: 'sns' },
  },
  {
    type: 'email.owner_default_suppressed',
    description: 'A bounce or complaint suppressed the owner default email: critical events no longer reach it.',
    defaultSeverity: 'critical',
    system: true,
    schema: data({
      subscriptionId: text('The owner default subscription id.'),
      email: text('The address.'),
      provider: text('The email provider.'),
      reason: text('The bounce or complaint.'),
    }),
    sample: {
      subscriptionId: 'esub_01JD0000000000000000000001',
      email: 'owner@example.com',
      provider: 'ses',
      reason: 'Permanent bounce reported by ses: smtp; 550 5.1.1 user unknown',
    },
  },
];

const BY_TYPE = new Map(EVENT_CATALOG.map((e) => [e.type, e]));

/** The catalog entry of `type`, or undefined for a type outside the catalog. */
export function eventTypeInfo(type: string): EventTypeInfo | undefined {
  return BY_TYPE.get(type);
}

/** The first segment of every catalog type (`order`, `payment`, …): a type in one of them must be a catalog type. */
const NAMESPACES = new Set(EVENT_CATALOG.map((e) => e.type.split('.')[0]!));

/** Levenshtein distance, for suggesting the catalog type a typo meant. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

const lastSegment = (type: string) => type.slice(type.lastIndexOf('.') + 1);

/**
 * How far `input` is from a catalog type: the edit distance of the whole type plus twice that of the last segment
 * (the nearest of the type's own and its aliases), so `order.shiped` reads as the shipped-like `order.fulfilled`, not
 * as `order.paid`, which is fewer edits away but names another event.
 */
function typoDistance(input: string, type: string): number {
  if (type.endsWith('.*')) return editDistance(input, type);
  const words = [lastSegment(type), ...(BY_TYPE.get(type)?.aliases ?? [])];
  const last = lastSegment(input);
  return editDistance(input, type) + 2 * Math.min(...words.map((w) => editDistance(last, w)));
}

/**
 * Catalog types nearest to `input` (`typoDistance`), best first, at most `n`: with `prefixes` the `namespace.*`
 * patterns too (for eventTypes), with `publishable` only the types a client may publish.
 */
export function nearestEventTypes(input: string, opts: { n?: number; prefixes?: boolean; publishable?: boolean } = {}) {
  const { n = 3, prefixes = false, publishable = false } = opts;
  const candidates = EVENT_CATALOG.filter((e) => !(publishable && e.system)).map((e) => e.type);
  if (prefixes) candidates.push(...[...NAMESPACES].map((ns) => `${ns}.*`));
  return candidates
    .map((t) => ({ t, d: typoDistance(input, t) }))
    .sort((x, y) => x.d - y.d || x.t.localeCompare(y.t))
    .slice(0, n)
    .map((x) => x.t);
}

/**
 * Whether a type outside the catalog reads as a typo of a catalog type rather than a custom type of the publisher's
 * own (docs/design.md#publishing-an-event): it sits in a catalog namespace (`order.shipped`), its namespace is
 * within two edits of one (`orders.created`), or the whole type is within two edits of a catalog type.
 */
export function looksLikeCatalogTypo(type: string): boolean {
  if (BY_TYPE.has(type)) return false;
  const ns = type.split('.')[0]!;
  if (NAMESPACES.has(ns)) return true;
  for (const known of NAMESPACES) if (editDistance(ns, known) <= 2) return true;
  return EVENT_CATALOG.some((e) => editDistance(type, e.type) <= 2);
}

/**
 * The type a test send uses when none is given (docs/design.md#test-sends): the first catalog type the subscription's
 * eventTypes let through, publishable types first, so the test exercises what production will send. Patterns that
 * name only custom types fall back to `order.created`.
 */
export function defaultTestEventType(eventTypes: readonly string[] | null | undefined): string {
  const ordered = [...EVENT_CATALOG.filter((e) => !e.system), ...EVENT_CATALOG.filter((e) => e.system)];
  return ordered.find((e) => matchesEventTypes(eventTypes, e.type))?.type ?? 'order.created';
}

/** Whether an eventTypes pattern (docs/design.md#eventtypes-patterns) matches at least one catalog type. */
export function patternMatchesCatalog(pattern: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) {
    const prefix = pattern.slice(0, -1);
    return EVENT_CATALOG.some((e) => e.type.startsWith(prefix));
  }
  return BY_TYPE.has(pattern);
}

/**
 * Suggestions for an eventTypes pattern that matches no catalog type and reads as a typo of one (`orders.*`,
 * `order.shipped`); null when the pattern matches the catalog or names a custom type of the publisher's own.
 */
export function patternTypoSuggestions(pattern: string): string[] | null {
  if (patternMatchesCatalog(pattern)) return null;
  const probe = pattern.endsWith('.*') ? pattern.slice(0, -2) : pattern;
  if (!looksLikeCatalogTypo(probe)) return null;
  return nearestEventTypes(pattern, { prefixes: true });
}
