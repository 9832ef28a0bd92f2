import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { reportedSize } from '../../src/db/shards.ts';
import { newId } from '../../src/lib/ids.ts';
import { PLACEMENT_COUNT_BOUND, readHandleRows } from '../../src/routes/placement/placement.repo.ts';
import { addMember, call, callJson, createPat, expectProblem, shardOf, signJwt, unique } from '../support/helpers.ts';
import { assertMatchesDocument } from '../support/openapi-check.ts';
import { setupHandle } from '../support/pipeline-helpers.ts';
import { insertDeliveries, insertNotifications, seedManyNotifications } from '../support/seed.ts';

/** Attempts for a delivery, numbered 1…n, as the consumer records them. */
async function insertAttempts(d1: D1Database, deliveryId: string, n: number) {
  const now = new Date().toISOString();
  await d1.batch(
    Array.from({ length: n }, (_, i) =>
      d1
        .prepare(
          `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, duration_ms, created_at)
           VALUES (?1, ?2, ?3, 'failed', 12, ?4)`,
        )
        .bind(newId('att'), deliveryId, i + 1, now),
    ),
  );
}

/** A test send: a delivery with no notification, as `POST …/webhooks/{id}/test` stores it. */
async function insertTestSend(d1: D1Database, handle: string): Promise<string> {
  const id = newId('dlv');
  const now = new Date().toISOString();
  await d1
    .prepare(
      `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, target, status, created_at,
         updated_at) VALUES (?1, ?2, NULL, 'test', 'webhook', 'webhook', 'http://127.0.0.1:9/t', 'succeeded', ?3, ?3)`,
    )
    .bind(id, handle, now)
    .run();
  return id;
}

/** One handle's notifications, their deliveries and attempts, and a test send. */
async function seedRows(handle: string): Promise<void> {
  const d1 = await shardOf(handle);
  const now = new Date().toISOString();
  const ids = [newId('ntf'), newId('ntf'), newId('ntf')];
  await insertNotifications(
    handle,
    ids.map((id) => ({ id, type: 'order.paid', severity: 'info', status: 'delivered', createdAt: now })),
  );
  const target = 'http://127.0.0.1:9/x';
  const { ids: deliveries } = await insertDeliveries(handle, [
    { notificationId: ids[0]!, channel: 'webhook', subscriptionId: null, target, status: 'dead' },
    { notificationId: ids[0]!, channel: 'webhook', subscriptionId: null, target, status: 'succeeded' },
    { notificationId: ids[1]!, channel: 'webhook', subscriptionId: null, target, status: 'succeeded' },
  ]);
  await insertAttempts(d1, deliveries[0]!, 2);
  await insertAttempts(d1, await insertTestSend(d1, handle), 1);
}

describe('GET /v2/handles/{handle}/placement', () => {
  it("shows owners and admins the handle's shard, its database size, its own rows, retention and the move status", async () => {
    const h = await setupHandle('SHARD_1');
    await seedRows(h.handle);
    // A neighbour on the same shard: its rows are not counted.
    const neighbour = await setupHandle('SHARD_1');
    await seedRows(neighbour.handle);

    const res = await call('GET', `/v2/handles/${h.handle}/placement`, { token: h.token });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, any>;
    assertMatchesDocument('get', '/v2/handles/{handle}/placement', 200, body);
    expect(body.shard).toEqual({ index: 1, binding: 'SHARD_1', of: 2 });
    expect(body.database.sizeBytes).toBeGreaterThan(0);
    expect(body.database.limitBytes).toBe(10_000_000_000);
    expect(body.rows).toEqual({
      notifications: { count: 3, atLeast: false },
      deliveries: { count: 4, atLeast: false },
      attempts: { count: 3, atLeast: false },
    });
    expect(body.retentionDays).toBe(30);
    expect(body.movingSince).toBeNull();

    // A move under way shows at once: the route reads the directory, not this isolate's cache of it.
    const since = new Date().toISOString();
    await env.DB.prepare('UPDATE handles SET moving_since = ?1 WHERE handle = ?2').bind(since, h.handle).run();
    try {
      const moving = await callJson('GET', `/v2/handles/${h.handle}/placement`, { token: h.token });
      expect(moving.body.movingSince).toBe(since);
    } finally {
      await env.DB.prepare('UPDATE handles SET moving_since = NULL WHERE handle = ?1').bind(h.handle).run();
      await call('GET', `/v2/handles/${h.handle}/placement`, { token: h.token });
    }

    const admin = unique('admin');
    await addMember(h.handle, admin, 'admin');
    const asAdmin = await callJson('GET', `/v2/handles/${h.handle}/placement`, {
      token: (await createPat(admin)).token,
    });
    expect(asAdmin.status).toBe(200);
    expect(asAdmin.body.rows.notifications.count).toBe(3);
  });

  it('refuses a viewer with the 403 naming the role and a non-member with the 404 of a handle that does not exist', async () => {
    const h = await setupHandle();
    const viewer = unique('viewer');
    await addMember(h.handle, viewer, 'viewer');
    const refused = await call('GET', `/v2/handles/${h.handle}/placement`, { token: (await createPat(viewer)).token });
    const problem = await expectProblem(refused, 403);
    expect(problem.detail).toContain('owner or admin');
    expect(JSON.stringify(problem)).not.toContain('SHARD_');

    const stranger = await signJwt({ sub: unique('stranger'), scope: 'notifications:read' });
    const hidden = await expectProblem(
      await call('GET', `/v2/handles/${h.handle}/placement`, { token: stranger }),
      404,
    );
    const missing = await expectProblem(
      await call('GET', `/v2/handles/${unique('nohandle')}/placement`, { token: stranger }),
      404,
    );
    expect(hidden.detail).toBe(missing.detail);
  });

  it('counts each kind of row from an index up to a bound: the rows read stay the same however many rows the handle has', async () => {
    const h = await setupHandle();
    const d1 = await shardOf(h.handle);
    // Every notification with one delivery and one attempt, written in SQL (fast for thousands).
    const fill = async (count: number, baseMs: number) => {
      await seedManyNotifications(h.handle, count, baseMs);
      await d1
        .prepare(
          `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, target, status,
             attempt_count, created_at, updated_at, id_from_notification)
           SELECT 'dlv_' || substr(n.id, 5, 22) || '0000', n.handle, n.id, 'event', 'webhook', 'webhook',
             'http://127.0.0.1:9/b', 'succeeded', 1, n.created_at, n.created_at, 1
           FROM notifications n WHERE n.handle = ?1 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id)`,
        )
        .bind(h.handle)
        .run();
      await d1
        .prepare(
          `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, duration_ms, created_at)
           SELECT 'att_' || substr(d.id, 5), d.id, 1, 'succeeded', 3, d.created_at FROM deliveries d
           WHERE d.handle = ?1 AND NOT EXISTS (SELECT 1 FROM delivery_attempts a WHERE a.delivery_id = d.id)`,
        )
        .bind(h.handle)
        .run();
    };
    const small = await readHandleRows(d1, h.handle);
    expect(small.notifications).toEqual({ count: 0, atLeast: false });
    expect(small.rowsRead).toBeLessThanOrEqual(5);

    await fill(PLACEMENT_COUNT_BOUND + 200, Date.now() - 3_600_000);
    const bounded = await readHandleRows(d1, h.handle);
    for (const kind of ['notifications', 'deliveries', 'attempts'] as const) {
      expect(bounded[kind], kind).toEqual({ count: PLACEMENT_COUNT_BOUND, atLeast: true });
    }
    await fill(PLACEMENT_COUNT_BOUND * 2, Date.now() - 1_800_000);
    const twice = await readHandleRows(d1, h.handle);
    expect(twice.rowsRead).toBe(bounded.rowsRead);
    // At the bound: the notifications' index entries once for their count, then twice more as the source of the
    // deliveries (index entry and row each) and their attempts: about nine rows per counted row, never more than ten.
    expect(bounded.rowsRead).toBeLessThanOrEqual(10 * PLACEMENT_COUNT_BOUND);
  });

  it("measures the shard as placement does, by D1's own reported size (D1 refuses PRAGMA page_count)", async () => {
    const h = await setupHandle('SHARD_0');
    const body = (await callJson('GET', `/v2/handles/${h.handle}/placement`, { token: h.token })).body;
    expect(body.database.sizeBytes).toBeGreaterThan(0);
    expect(body.database.sizeBytes).toBeLessThanOrEqual(await reportedSize(env.SHARD_0));
    await expect(env.SHARD_0.prepare('PRAGMA page_count').first()).rejects.toThrow(/not authorized/);
  });
});
