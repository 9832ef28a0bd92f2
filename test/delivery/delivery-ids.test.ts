/**
 * Delivery ids made from their notification's (docs/design.md#delivery-ids): the format every id keeps, and
 * `notificationDeliveriesSql` finding exactly a notification's deliveries, whichever way their ids were made, through
 * an index and never a scan of the table.
 */
import { describe, expect, it } from 'vitest';
import { notificationDeliveriesFrom, notificationDeliveriesSql } from '../../src/db/schema.ts';
import { derivedId, idPattern, newId } from '../../src/lib/ids.ts';
import { shardOf, unique } from '../support/helpers.ts';
import { createWebhook, deliveriesOf, ingestQuiet, setupHandle } from '../support/pipeline-helpers.ts';
import { receiverUrl } from '../support/receivers.ts';

/** A delivery row as ingest (`fromNotification`) or a replay, a platform alert or an older version writes it. */
function insertDelivery(d1: D1Database, handle: string, id: string, notificationId: string | null, derived: boolean) {
  return d1
    .prepare(
      `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, target, status,
         created_at, updated_at, id_from_notification)
       VALUES (?1, ?2, ?3, ?4, 'webhook', 'webhook', 'https://example.com/', 'succeeded', ?5, ?5, ?6)`,
    )
    .bind(id, handle, notificationId, notificationId ? 'event' : 'test', new Date().toISOString(), derived ? 1 : 0);
}

/** A plan's lines that read the deliveries table in full (a SCAN of it, or of any of its indexes). */
const scans = (plan: string[]) => plan.filter((d) => /^SCAN d\b/.test(d));

describe('delivery ids', () => {
  it('a derived id keeps the id pattern, repeats 22 characters of its parent and ends with its ordinal', () => {
    const parent = newId('ntf');
    const ordinals = [0, 1, 31, 32, 32 ** 4 - 1];
    const ids = ordinals.map((i) => derivedId('dlv', parent, i));
    for (const id of ids) {
      expect(id).toMatch(idPattern('dlv'));
      expect(id.slice(4, 26)).toBe(parent.slice(4, 26));
    }
    expect(ids.map((id) => id.slice(26))).toEqual(['0000', '0001', '000Z', '0010', 'ZZZZ']);
    // In ordinal order, and as old as their parent (the first 10 characters are its time).
    expect([...ids].sort()).toEqual(ids);
    expect(() => derivedId('dlv', parent, 32 ** 4)).toThrow(RangeError);
    expect(() => derivedId('dlv', parent, -1)).toThrow(RangeError);
  });

  it('ids minted in the same millisecond by one isolate differ within the 22 characters a derived id repeats', () => {
    const at = Date.now() + 60_000;
    const ids = Array.from({ length: 2000 }, () => newId('ntf', at));
    expect(new Set(ids.map((id) => id.slice(4, 26))).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it("ingest's deliveries take their ids from the notification, in recipient order", async () => {
    const h = await setupHandle();
    for (let i = 0; i < 3; i++) await createWebhook(h, { url: receiverUrl('ok', unique(`ids${i}`)) });
    const event = await ingestQuiet(h.handle, { type: 'order.paid' });
    expect(event.deliveryIds).toEqual([0, 1, 2].map((i) => derivedId('dlv', event.notificationId, i)));
    const rows = await deliveriesOf(event.notificationId);
    expect(rows.map((r) => r.id_from_notification)).toEqual([1, 1, 1]);
  });

  it("finds exactly a notification's deliveries, derived or not, through indexes only", async () => {
    const h = await setupHandle();
    const d1 = await shardOf(h.handle);
    // Two notifications minted in the same millisecond, each with derived deliveries and one with a random id (a
    // replay's, or a row from before), and a test send with no notification.
    const at = Date.now();
    const [n1, n2] = [newId('ntf', at), newId('ntf', at)] as [string, string];
    await d1.batch([
      ...[0, 1, 2].map((i) => insertDelivery(d1, h.handle, derivedId('dlv', n1, i), n1, true)),
      ...[0, 1].map((i) => insertDelivery(d1, h.handle, derivedId('dlv', n2, i), n2, true)),
      insertDelivery(d1, h.handle, newId('dlv'), n1, false),
      insertDelivery(d1, h.handle, newId('dlv'), n2, false),
      insertDelivery(d1, h.handle, newId('dlv'), null, false),
    ]);
    const ids = async (sql: string, ...params: unknown[]) => {
      const rows = await d1
        .prepare(sql)
        .bind(...params)
        .all<{ id: string }>();
      const plan = await d1
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .bind(...params)
        .all<{ detail: string }>();
      return { ids: rows.results.map((r) => r.id).sort(), plan: plan.results.map((p) => p.detail) };
    };
    for (const n of [n1, n2]) {
      const expected = await ids('SELECT id FROM deliveries WHERE notification_id = ?1', n);
      expect(expected.ids).toHaveLength(n === n1 ? 4 : 3);
      const found = await ids(`SELECT d.id FROM deliveries d WHERE ${notificationDeliveriesSql('d', '?1')}`, n);
      expect(found.ids).toEqual(expected.ids);
      expect(scans(found.plan), found.plan.join(' | ')).toEqual([]);
    }
    // Several notifications at once (the purge, the placement counts): a join, still through the indexes.
    const list = JSON.stringify([n1, n2]);
    const both = await ids(
      `SELECT d.id FROM ${notificationDeliveriesFrom('SELECT value AS id FROM json_each(?1)')}`,
      list,
    );
    const expected = await ids(
      'SELECT id FROM deliveries WHERE notification_id IN (SELECT value FROM json_each(?1))',
      list,
    );
    expect(both.ids).toEqual(expected.ids);
    expect(both.ids).toHaveLength(7);
    expect(scans(both.plan), both.plan.join(' | ')).toEqual([]);
  });
});
