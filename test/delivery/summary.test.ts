/**
 * The notification's recipients summary (src/delivery/summary.ts, docs/design.md#outbox): stored compactly, one array
 * per delivery, and shown by the API exactly as the object it was before — for rows written now, and for rows written
 * in the old form and converted by the `compact_recipients` migration.
 */
import { applyD1Migrations } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import type { RecipientSummary } from '../../src/delivery/summary.ts';
import { newId } from '../../src/lib/ids.ts';
import { callJson, shardOf, unique } from '../support/helpers.ts';
import {
  createWebhook,
  deliveriesOf,
  eventually,
  notificationRow,
  setupHandle,
  type TestHandle,
} from '../support/pipeline-helpers.ts';
import { receiverUrl } from '../support/receivers.ts';
import { insertDeliveries } from '../support/seed.ts';

type Row = Record<string, unknown>;

async function getNotification(h: TestHandle, id: string) {
  const res = await callJson('GET', `/v2/handles/${h.handle}/notifications/${id}`, { token: h.token });
  expect(res.status).toBe(200);
  return res.body as { status: string; deliveries: RecipientSummary[] };
}

async function feedDeliveries(h: TestHandle, id: string): Promise<RecipientSummary[]> {
  const res = await callJson('GET', `/v2/handles/${h.handle}/notifications?limit=50`, { token: h.token });
  expect(res.status).toBe(200);
  const item = (res.body.data as Array<{ id: string; deliveries: RecipientSummary[] }>).find((n) => n.id === id);
  expect(item, 'the notification is on the first feed page').toBeDefined();
  return item!.deliveries;
}

/** The API's form of a delivery row, keys in the order the API has always shown them. */
function apiEntry(d: Row): RecipientSummary {
  return {
    deliveryId: d.id as string,
    channel: d.channel as RecipientSummary['channel'],
    recipientType: d.recipient_type as RecipientSummary['recipientType'],
    subscriptionId: d.subscription_id as string | null,
    target: d.target as string,
    status: d.status as RecipientSummary['status'],
    statusReason: d.status_reason as string | null,
    attempts: d.attempt_count as number,
    lastErrorClass: d.last_error_class as string | null,
    lastHttpStatus: d.last_http_status as number | null,
    updatedAt: d.updated_at as string,
  };
}

/** Inserts a row as it is, column by column (as a handle move copies it). */
async function insertRow(d1: D1Database, table: string, row: Row): Promise<void> {
  const cols = Object.keys(row);
  await d1
    .prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `?${i + 1}`).join(', ')})`)
    .bind(...cols.map((c) => row[c] ?? null))
    .run();
}

const byId = (a: RecipientSummary, b: RecipientSummary) => (a.deliveryId < b.deliveryId ? -1 : 1);

describe('the recipients summary on the notification row', () => {
  it('is stored as one array per delivery id and read back as the same entries the delivery rows hold', async () => {
    const h = await setupHandle();
    const key = unique('sum');
    await createWebhook(h, { url: receiverUrl('ok', `${key}-a`) });
    await createWebhook(h, { url: receiverUrl('ok', `${key}-b`) });
    const pub = await callJson('POST', `/v2/handles/${h.handle}/events`, {
      token: h.token,
      body: { type: 'order.paid', data: { orderId: unique('ord') } },
    });
    expect(pub.status).toBe(202);
    const notificationId = pub.body.notificationId as string;
    // At publish: the feed shows exactly what the publish answer said.
    expect(JSON.stringify((await getNotification(h, notificationId)).deliveries)).toBe(
      JSON.stringify([...(pub.body.recipients as RecipientSummary[])].sort(byId)),
    );

    await eventually(
      () => getNotification(h, notificationId),
      (n) => n.status === 'delivered',
      15_000,
      'notification delivered',
    );
    const stored = JSON.parse((await notificationRow(notificationId)).recipients) as Record<string, unknown>;
    const rows = await deliveriesOf(notificationId);
    expect(Object.keys(stored).sort()).toEqual(rows.map((d) => d.id).sort());
    for (const d of rows) {
      // Positional: type, subscription, target, status, reason, attempts, error class, HTTP status, updated.
      expect(stored[d.id]).toEqual([
        'webhook',
        d.subscription_id,
        d.target,
        'succeeded',
        null,
        1,
        null,
        200,
        expect.any(String),
      ]);
    }
    // Delivered: the API shows each delivery row's own values, byte for byte in the API's key order.
    const expected = JSON.stringify(rows.map((d) => apiEntry(d as unknown as Row)).sort(byId));
    expect(JSON.stringify((await getNotification(h, notificationId)).deliveries)).toBe(expected);
    expect(JSON.stringify(await feedDeliveries(h, notificationId))).toBe(expected);
  });

  it('a row written in the old form is converted by the compact_recipients migration; the API shows it unchanged', async () => {
    const h = await setupHandle();
    const shard = await shardOf(h.handle);
    const wh = await createWebhook(h, { url: receiverUrl('ok', unique('old')) });
    const notificationId = newId('ntf');
    const at = '2026-11-30T08:15:02.417Z';
    const ids = [newId('dlv'), newId('dlv'), newId('dlv')] as const;
    // The old form: the API's objects themselves, keyed by delivery id (what main wrote), in its key order.
    const old: RecipientSummary[] = [
      {
        deliveryId: ids[0],
        channel: 'webhook',
        recipientType: 'webhook',
        subscriptionId: wh.id,
        target: wh.url,
        status: 'queued',
        statusReason: null,
        attempts: 0,
        lastErrorClass: null,
        lastHttpStatus: null,
        updatedAt: at,
      },
      {
        deliveryId: ids[1],
        channel: 'email',
        recipientType: 'owner_default',
        subscriptionId: newId('esub'),
        target: 'owner+ünï@example.com',
        status: 'dead',
        statusReason: 'bounced: "mailbox full"',
        attempts: 3,
        lastErrorClass: 'http_5xx',
        lastHttpStatus: 503,
        updatedAt: '2026-11-30T08:20:00.000Z',
      },
      {
        deliveryId: ids[2],
        channel: 'email',
        recipientType: 'platform_alert',
        subscriptionId: null,
        target: 'alerts@example.com',
        status: 'succeeded',
        statusReason: 'undeliverable_critical_event',
        attempts: 1,
        lastErrorClass: null,
        lastHttpStatus: null,
        updatedAt: '2026-11-30T08:16:00.000Z',
      },
    ];
    const notification: Row = {
      id: notificationId,
      handle: h.handle,
      type: 'order.paid',
      severity: 'info',
      data: JSON.stringify({ orderId: 'ord_old' }),
      source: 'test-seed',
      source_event_id: null,
      occurred_at: at,
      status: 'delivering',
      recipient_count: 3,
      recipients: JSON.stringify(Object.fromEntries(old.map((r) => [r.deliveryId, r]))),
      open_count: 1,
      succeeded_count: 1,
      dead_count: 1,
      created_at: at,
      updated_at: at,
    };

    // A database at the migration before, with the row written then; then the migration, as a deploy applies it.
    const db = env.MIGRATION_TEST_DB;
    const migration = env.TEST_MIGRATIONS.find((m) => m.name.endsWith('_compact_recipients.sql'));
    expect(migration, 'migrations/*_compact_recipients.sql').toBeDefined();
    await applyD1Migrations(
      db,
      env.TEST_MIGRATIONS.filter((m) => m.name < migration!.name),
    );
    const handleRow = await shard.prepare('SELECT * FROM handles WHERE handle = ?1').bind(h.handle).first<Row>();
    await insertRow(db, 'handles', handleRow!);
    await insertRow(db, 'notifications', notification);
    await insertRow(db, 'notifications', { ...notification, id: newId('ntf'), recipients: '{}', recipient_count: 0 });
    await applyD1Migrations(db, env.TEST_MIGRATIONS);
    const converted = await db
      .prepare('SELECT * FROM notifications WHERE handle = ?1 ORDER BY id')
      .bind(h.handle)
      .all<Row>();
    expect(converted.results.map((r) => r.recipients === '{}')).toEqual([false, true]);
    const stored = JSON.parse(converted.results[0]!.recipients as string) as Record<string, unknown[]>;
    expect(Object.keys(stored)).toEqual([...ids]);
    for (const entry of Object.values(stored)) expect(entry).toHaveLength(9);

    // The converted row, copied as it is onto the handle's shard: the API shows what it showed for the old form.
    await insertRow(shard, 'notifications', converted.results[0]!);
    const expected = [...old].sort(byId);
    expect(JSON.stringify((await getNotification(h, notificationId)).deliveries)).toBe(JSON.stringify(expected));
    expect(JSON.stringify(await feedDeliveries(h, notificationId))).toBe(JSON.stringify(expected));

    // And the statements that move a summary work on it: deleting the webhook cancels its open delivery there.
    await insertDeliveries(
      h.handle,
      [{ id: ids[0], notificationId, channel: 'webhook', subscriptionId: wh.id, target: wh.url, status: 'queued' }],
      'webhook',
    );
    const del = await callJson('DELETE', `/v2/handles/${h.handle}/webhooks/${wh.id}`, { token: h.token });
    expect(del.status).toBe(204);
    const after = (await getNotification(h, notificationId)).deliveries;
    const cancelled = after.find((d) => d.deliveryId === ids[0])!;
    expect(cancelled).toMatchObject({ status: 'cancelled', statusReason: 'subscription_deleted' });
    expect(JSON.stringify(after)).toBe(
      JSON.stringify(
        expected.map((d) =>
          d.deliveryId === ids[0]
            ? { ...d, status: 'cancelled', statusReason: 'subscription_deleted', updatedAt: cancelled.updatedAt }
            : d,
        ),
      ),
    );
  });
});
