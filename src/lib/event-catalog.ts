/**
 * The event catalog (docs/design.md#event-catalog): every type a handle can receive, its default severity and a
 * realistic sample used by `GET /v2/event-types`, test sends and the settings dry run. Failures default to `critical`.
 */
export type Severity = 'info' | 'warning' | 'critical';

export interface EventTypeInfo {
  type: string;
  description: string;
  defaultSeverity: Severity;
  /** System events are emitted by this service itself, never published by clients. */
  system: boolean;
  sample: Record<string, unknown>;
}

const order = { orderId: 'ord_10482', customerEmail: 'jane@example.com', currency: 'INR', total: 2499.0, items: 3 };

export const EVENT_CATALOG: readonly EventTypeInfo[] = [
  {
    type: 'order.created',
    description: 'A customer placed an order.',
    defaultSeverity: 'info',
    system: false,
    sample: order,
  },
  {
    type: 'order.paid',
    description: 'Payment for an order was captured.',
    defaultSeverity: 'info',
    system: false,
    sample: { ...order, paymentId: 'pay_8812' },
  },
  {
    type: 'order.fulfilled',
    description: 'All items of an order were shipped.',
    defaultSeverity: 'info',
    system: false,
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
    sample: { orderId: 'ord_10482', reason: 'customer_request' },
  },
  {
    type: 'order.refunded',
    description: 'An order was refunded, in whole or in part.',
    defaultSeverity: 'warning',
    system: false,
    sample: { orderId: 'ord_10482', amount: 2499.0, currency: 'INR' },
  },
  {
    type: 'fulfillment.delayed',
    description: 'A shipment will miss its promised date.',
    defaultSeverity: 'warning',
    system: false,
    sample: { orderId: 'ord_10482', promisedBy: '2026-11-22', expectedBy: '2026-11-25' },
  },
  {
    type: 'fulfillment.failed',
    description: 'A shipment could not be fulfilled.',
    defaultSeverity: 'critical',
    system: false,
    sample: { orderId: 'ord_10482', reason: 'out_of_stock', sku: 'TSHIRT-RED-M' },
  },
  {
    type: 'payment.failed',
    description: 'A payment attempt failed.',
    defaultSeverity: 'critical',
    system: false,
    sample: { orderId: 'ord_10482', paymentId: 'pay_8813', code: 'card_declined' },
  },
  {
    type: 'campaign.scheduled',
    description: 'A campaign was scheduled.',
    defaultSeverity: 'info',
    system: false,
    sample: { campaignId: 'cmp_311', name: 'Diwali sale', startsAt: '2026-11-01T00:00:00Z' },
  },
  {
    type: 'campaign.started',
    description: 'A campaign started sending.',
    defaultSeverity: 'info',
    system: false,
    sample: { campaignId: 'cmp_311', audience: 12840 },
  },
  {
    type: 'campaign.completed',
    description: 'A campaign finished.',
    defaultSeverity: 'info',
    system: false,
    sample: { campaignId: 'cmp_311', sent: 12840, failed: 12 },
  },
  {
    type: 'campaign.failed',
    description: 'A campaign stopped with an error.',
    defaultSeverity: 'critical',
    system: false,
    sample: { campaignId: 'cmp_311', reason: 'template_render_error' },
  },
  {
    type: 'webhook.endpoint_disabled',
    description: 'A webhook endpoint was disabled after repeated failures or a 410.',
    defaultSeverity: 'critical',
    system: true,
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
    sample: { subscriptionId: 'esub_01JD0000000000000000000000', email: 'ops@example.com', provider: 'sns' },
  },
  {
    type: 'email.owner_default_suppressed',
    description: 'A bounce or complaint suppressed the owner default email: critical events no longer reach it.',
    defaultSeverity: 'critical',
    system: true,
    sample: {
      subscriptionId: 'esub_01JD0000000000000000000001',
      email: 'owner@example.com',
      provider: 'ses',
      reason: 'Permanent bounce reported by ses: smtp; 550 5.1.1 user unknown',
    },
  },
];

const BY_TYPE = new Map(EVENT_CATALOG.map((e) => [e.type, e]));

export function eventTypeInfo(type: string): EventTypeInfo | undefined {
  return BY_TYPE.get(type);
}
