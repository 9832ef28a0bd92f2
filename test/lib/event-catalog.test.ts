/** The event catalog's pure parts (docs/design.md#event-catalog): schemas, samples, typo detection, test-send default. */
import { describe, expect, it } from 'vitest';
import {
  defaultTestEventType,
  EVENT_CATALOG,
  editDistance,
  looksLikeCatalogTypo,
  nearestEventTypes,
  patternTypoSuggestions,
} from '../../src/lib/event-catalog.ts';

describe('event catalog', () => {
  it('every catalog type has a description, a data schema its sample passes, and a schema that refuses wrong types', () => {
    for (const e of EVENT_CATALOG) {
      expect(e.description.length, e.type).toBeGreaterThan(10);
      expect(e.schema.safeParse(e.sample).success, `${e.type} sample`).toBe(true);
      // Every sample field is typed: a value of the wrong JSON type is refused at that path.
      for (const [key, value] of Object.entries(e.sample)) {
        const wrong = typeof value === 'string' ? 42 : 'not-a-number';
        const r = e.schema.safeParse({ ...e.sample, [key]: wrong });
        expect(r.success, `${e.type}.${key} accepts ${JSON.stringify(wrong)}`).toBe(false);
        expect(r.error!.issues[0]!.path).toEqual([key]);
      }
      // Open objects: a field the catalog does not name passes.
      expect(e.schema.safeParse({ ...e.sample, extra: { any: 1 } }).success).toBe(true);
    }
  });

  it('typos of catalog types are told apart from custom types, with the nearest catalog type first', () => {
    expect(editDistance('order.shiped', 'order.shipped')).toBe(1);
    for (const typo of ['order.shipped', 'orders.created', 'payment.faild', 'campain.started']) {
      expect(looksLikeCatalogTypo(typo), typo).toBe(true);
    }
    for (const custom of ['inventory.low_stock', 'refund.failed', 'shop.opened', 'order.created']) {
      expect(looksLikeCatalogTypo(custom), custom).toBe(false);
    }
    expect(nearestEventTypes('orders.created')[0]).toBe('order.created');
    expect(nearestEventTypes('payment.faild')[0]).toBe('payment.failed');
    expect(nearestEventTypes('email.bounced', { publishable: true }).every((t) => !t.startsWith('email.'))).toBe(true);
  });

  it('suggestions weigh the last segment: order.shiped means the shipped-like type, not order.paid', () => {
    for (const typo of ['order.shiped', 'order.shipped', 'orders.shipped', 'order.dispatched']) {
      expect(nearestEventTypes(typo)[0], typo).toBe('order.fulfilled');
      expect(nearestEventTypes(typo, { publishable: true })[0], typo).toBe('order.fulfilled');
    }
    // The namespace still counts: a failure of a payment is payment.failed, not another namespace's failed.
    expect(nearestEventTypes('payment.faild')[0]).toBe('payment.failed');
    expect(nearestEventTypes('campain.failed')[0]).toBe('campaign.failed');
    expect(nearestEventTypes('order.canceled')[0]).toBe('order.cancelled');
  });

  it('eventTypes patterns: a typo gets suggestions, catalog and custom patterns pass', () => {
    expect(patternTypoSuggestions('orders.*')?.[0]).toBe('order.*');
    expect(patternTypoSuggestions('order.shipped')).toEqual(
      expect.arrayContaining([expect.stringMatching(/^order\./)]),
    );
    for (const ok of ['*', 'order.*', 'order.paid', 'campaign.*', 'inventory.*', 'refund.*']) {
      expect(patternTypoSuggestions(ok), ok).toBeNull();
    }
  });

  it('a test send defaults to the first catalog type the eventTypes receive', () => {
    expect(defaultTestEventType(null)).toBe('order.created');
    expect(defaultTestEventType(['order.fulfilled'])).toBe('order.fulfilled');
    expect(defaultTestEventType(['payment.*', 'campaign.failed'])).toBe('payment.failed');
    expect(defaultTestEventType(['webhook.endpoint_disabled'])).toBe('webhook.endpoint_disabled');
    expect(defaultTestEventType(['inventory.*'])).toBe('order.created');
  });
});
