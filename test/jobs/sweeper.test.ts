/**
 * The outbox sweeper's overdue net (docs/design.md#overdue-deliveries, docs/reliability.md#scenarios): deliveries whose
 * queue message was lost — the Worker killed mid-delivery — are re-enqueued within minutes of their due time, and a
 * stalled consumer (a long queue backlog) does not turn the sweeper into a re-send storm.
 *
 * The crash is simulated the way it looks in D1: the deliveries were written `queued` (or `retrying` by a real
 * consumer run) but their messages went to a recording producer, never to the real queue. The sweeper runs on a
 * simulated clock hours ahead, so these tests use a local D1 of their own (`SWEEPER_TEST_DB`, migrated here, the
 * handle's rows copied from the shared one): on the shared database such a sweep would also take every
 * other test's deliveries.
 */
import { applyD1Migrations } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { deliveryQueueIndex } from '../../src/delivery/enqueue.ts';
import { config } from '../../src/env.ts';
import { sweepOutbox } from '../../src/jobs/sweeper.ts';
import { shardOf, unique } from '../support/helpers.ts';
import {
  type AttemptDbRow,
  allDeliveryQueues,
  captureQueue,
  createWebhook,
  type DeliveryDbRow,
  d1FailingBatchesMatching,
  ingestQuiet,
  recordingDeliveryQueues,
  runDeliveries,
  sentDeliveryIds,
  setupHandle,
} from '../support/pipeline-helpers.ts';
import { hits, receiverUrl } from '../support/receivers.ts';

const MINUTE = 60_000;
const GRACE_MS = config(env).overdueAfterSeconds * 1000;
const db = env.SWEEPER_TEST_DB;
/** The Worker's env on this file's own database: its control plane and its one shard (docs/design.md#shards). */
const isolated = { ...env, DB: db, SHARD_0: db, SHARD_1: undefined } as unknown as Env;

beforeAll(async () => {
  await applyD1Migrations(db, env.TEST_MIGRATIONS);
});

/** Copies rows the API wrote into the shared database over to this file's database. */
async function copyRows(table: string, column: string, value: string): Promise<void> {
  const source = table === 'handles' ? env.DB : await shardOf(value);
  const { results } = await source
    .prepare(`SELECT * FROM ${table} WHERE ${column} = ?`)
    .bind(value)
    .all<Record<string, unknown>>();
  // Here every handle lives on this file's one shard.
  if (table === 'handles') for (const row of results) row.shard = 0;
  await db.batch(
    results.map((row) => {
      const cols = Object.keys(row);
      return db
        .prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `?${i + 1}`).join(', ')})`)
        .bind(...cols.map((c) => row[c] ?? null));
    }),
  );
}

async function deliveryRow(id: string): Promise<DeliveryDbRow> {
  const row = await db.prepare('SELECT * FROM deliveries WHERE id = ?').bind(id).first<DeliveryDbRow>();
  if (!row) throw new Error(`no delivery ${id}`);
  return row;
}

/** A stalled queue: it accepts every message and never delivers one. */
function stalledQueue() {
  const capture = captureQueue();
  const sweepEnv = { ...isolated, ...allDeliveryQueues(capture.queue) } as Env;
  /** How many messages each of `ids` got, over every sweep so far. */
  const sentOf = (ids: readonly string[]) => {
    const counts = new Map(ids.map((id) => [id, 0]));
    for (const batch of capture.batches)
      for (const m of batch) {
        const id = (m.body as { deliveryId: string }).deliveryId;
        if (counts.has(id)) counts.set(id, counts.get(id)! + 1);
      }
    return counts;
  };
  return { sweepEnv, sentOf };
}

/** A handle with webhooks created through the API, copied to this file's database. */
async function handleWithWebhooks(scenarios: Array<'ok' | 'fail'>) {
  const h = await setupHandle();
  const keys: string[] = [];
  const ids: string[] = [];
  for (const scenario of scenarios) {
    const key = unique(scenario);
    keys.push(key);
    ids.push((await createWebhook(h, { url: receiverUrl(scenario, key) })).id);
  }
  for (const table of ['handles', 'notification_settings', 'webhook_subscriptions']) {
    await copyRows(table, 'handle', h.handle);
  }
  return { h, keys, webhookIds: ids };
}

/** A handle whose two deliveries were in flight when the Worker died: one `queued`, one `retrying`. */
async function crashedMidDelivery() {
  const { h, webhookIds } = await handleWithWebhooks(['ok', 'fail']);
  const ing = await ingestQuiet(h.handle, {}, { DB: db, SHARD_0: db, SHARD_1: undefined } as unknown as Partial<Env>);
  const rows = await Promise.all(ing.deliveryIds.map(deliveryRow));
  const queuedId = rows.find((r) => r.subscription_id === webhookIds[0])!.id;
  const retryingId = rows.find((r) => r.subscription_id === webhookIds[1])!.id;
  // A real consumer run: the failing endpoint's delivery is `retrying`, its retry message (5 s) is never seen again.
  await runDeliveries([retryingId], { env: isolated });
  expect(await deliveryRow(queuedId)).toMatchObject({ status: 'queued', attempt_count: 0 });
  expect(await deliveryRow(retryingId)).toMatchObject({ status: 'retrying', attempt_count: 1 });
  return { queuedId, retryingId };
}

describe('sweeper: deliveries stuck after a crash', () => {
  it('queued and retrying deliveries whose messages were lost are re-enqueued within minutes of their due time, not an hour', async () => {
    const { queuedId, retryingId } = await crashedMidDelivery();
    const { sweepEnv, sentOf } = stalledQueue();
    const start = Date.now();
    const ids = [queuedId, retryingId];

    // Not yet: a delivery inside its grace may simply be waiting in the queue.
    await sweepOutbox(sweepEnv, new Date(start + GRACE_MS - MINUTE));
    expect([...sentOf(ids).values()]).toEqual([0, 0]);

    // One grace (plus the retry's 5 s and a minute's tick) later, each is sent again exactly once.
    await sweepOutbox(sweepEnv, new Date(start + GRACE_MS + MINUTE));
    expect([...sentOf(ids).values()]).toEqual([1, 1]);
    // Re-enqueueing does not pretend anything happened: status, attempts and the retry time are the consumer's.
    expect(await deliveryRow(queuedId)).toMatchObject({ status: 'queued', attempt_count: 0 });
    expect(await deliveryRow(retryingId)).toMatchObject({ status: 'retrying', attempt_count: 1 });
  });

  it('a stalled consumer: over three hours each delivery is re-enqueued at most once per grace, the gaps growing, never a storm', async () => {
    const { queuedId, retryingId } = await crashedMidDelivery();
    const { sweepEnv, sentOf } = stalledQueue();
    const start = Date.now();
    const ids = [queuedId, retryingId];
    const sentAt = new Map<string, number[]>(ids.map((id) => [id, []]));
    for (let minute = 1; minute <= 180; minute++) {
      const before = sentOf(ids);
      await sweepOutbox(sweepEnv, new Date(start + minute * MINUTE));
      for (const [id, n] of sentOf(ids)) if (n > before.get(id)!) sentAt.get(id)!.push(minute);
    }
    const graceMinutes = GRACE_MS / MINUTE;
    for (const [id, minutes] of sentAt) {
      // First within minutes of the due time; then 1, 3, 7, 15 … graces after it, capped near an hour.
      expect(minutes[0], id).toBeLessThanOrEqual(graceMinutes + 2);
      expect(minutes.length, `${id} re-enqueued at minutes ${minutes}`).toBeGreaterThanOrEqual(4);
      expect(minutes.length, `${id} re-enqueued at minutes ${minutes}`).toBeLessThanOrEqual(7);
      const gaps = minutes.slice(1).map((m, i) => m - minutes[i]!);
      for (const [i, gap] of gaps.entries()) {
        expect(gap, `gap ${i + 1} of ${id}: ${minutes}`).toBeGreaterThanOrEqual(graceMinutes);
        if (i > 0) expect(gap, `gap ${i + 1} of ${id}: ${minutes}`).toBeGreaterThanOrEqual(gaps[i - 1]!);
      }
    }
  });

  it('once the consumer moves a re-enqueued delivery, its own next attempt is the due time again', async () => {
    const { retryingId } = await crashedMidDelivery();
    const { sweepEnv, sentOf } = stalledQueue();
    const start = Date.now();
    await sweepOutbox(sweepEnv, new Date(start + GRACE_MS + MINUTE));
    expect(sentOf([retryingId]).get(retryingId)).toBe(1);
    // The re-enqueued message is consumed: attempt 2 fails, the next retry is due in ~5 min (the schedule's 2nd step).
    await runDeliveries([retryingId], { env: isolated });
    const row = await deliveryRow(retryingId);
    expect(row).toMatchObject({ status: 'retrying', attempt_count: 2 });
    const nextDue = Date.parse(row.next_attempt_at!);
    // Its new retry message is lost too: it is overdue one grace after the new due time, not after a backoff.
    await sweepOutbox(sweepEnv, new Date(nextDue + GRACE_MS - MINUTE));
    expect(sentOf([retryingId]).get(retryingId)).toBe(1);
    await sweepOutbox(sweepEnv, new Date(nextDue + GRACE_MS + MINUTE));
    expect(sentOf([retryingId]).get(retryingId)).toBe(2);
  });

  it('a lost hand-off to the dead-letter queue: the delivery becomes dead without a 9th attempt', async () => {
    const { h, keys } = await handleWithWebhooks(['fail']);
    const ing = await ingestQuiet(h.handle, {}, { DB: db, SHARD_0: db, SHARD_1: undefined } as unknown as Partial<Env>);
    const [id] = ing.deliveryIds as [string];
    // A one-step schedule: attempt 2 is the last; on the queue's 8th delivery the consumer hands it to the DLQ.
    const shortEnv = { ...isolated, RETRY_DELAYS_SECONDS: '1' } as Env;
    await runDeliveries([id], { env: shortEnv });
    const { fb } = await runDeliveries([id], { env: shortEnv, attempts: 8 });
    expect(fb.outcomes[0]!.retried).toBe(true);
    expect(await deliveryRow(id)).toMatchObject({
      status: 'retrying',
      status_reason: 'retries_exhausted',
      attempt_count: 2,
    });

    // The DLQ message is lost with the Worker. One grace later the sweeper writes what the DLQ consumer would have.
    const { sweepEnv, sentOf } = stalledQueue();
    const swept = await sweepOutbox(sweepEnv, new Date(Date.now() + GRACE_MS + MINUTE));
    expect(swept.dead).toBe(1);
    expect(sentOf([id]).get(id)).toBe(0);
    expect(await deliveryRow(id)).toMatchObject({ status: 'dead', status_reason: 'retries_exhausted' });
    const notification = await db
      .prepare('SELECT status, open_count FROM notifications WHERE id = ?')
      .bind(ing.notificationId)
      .first();
    expect(notification).toMatchObject({ status: 'failed', open_count: 0 });
    const attempts = await db
      .prepare('SELECT * FROM delivery_attempts WHERE delivery_id = ?')
      .bind(id)
      .all<AttemptDbRow>();
    expect(attempts.results).toHaveLength(2);
    expect(await hits(keys[0]!)).toHaveLength(2);
  });
});

describe('sweeper: a stalled consumer and pending deliveries', () => {
  it('pending deliveries whose messages wait in a stalled queue are re-enqueued at most once per grace after the first minute, never a storm', async () => {
    // Ingest's send fails, so its rows (written `queued`) are put back to `pending`. Then every re-send by the sweeper
    // reaches the queue but its `queued` mark is lost (D1 overloaded, the Worker killed after the send): the rows stay
    // `pending` while their messages wait in a queue the consumer does not reach.
    const failing = d1FailingBatchesMatching(db, /SET status = 'queued'/);
    const { h } = await handleWithWebhooks(['ok', 'ok']);
    const down = allDeliveryQueues(captureQueue({ fail: true }).queue);
    const vars = { DB: failing.db, SHARD_0: failing.db, SHARD_1: undefined, ...down } as unknown as Partial<Env>;
    const ing = await ingestQuiet(h.handle, {}, vars);
    const ids = ing.deliveryIds;
    expect(ids).toHaveLength(2);
    for (const id of ids) expect(await deliveryRow(id)).toMatchObject({ status: 'pending', attempt_count: 0 });
    const capture = captureQueue();
    const queues = allDeliveryQueues(capture.queue);
    const sentOf = () => {
      const counts = new Map(ids.map((id) => [id, 0]));
      for (const id of sentDeliveryIds(capture)) if (counts.has(id)) counts.set(id, counts.get(id)! + 1);
      return counts;
    };
    expect([...sentOf().values()]).toEqual([0, 0]);

    // The consumer never gets to them: two hours of sweeps. One every two minutes keeps the test's own cost down (each
    // sweep is D1 round trips) and still shows a storm: re-sending on every sweep would be two sends per grace.
    const HOURS = 2;
    const EVERY = 2;
    const sweepEnv = { ...isolated, DB: failing.db, SHARD_0: failing.db, ...queues } as Env;
    const start = Date.now();
    const sentAt = new Map<string, number[]>(ids.map((id) => [id, []]));
    for (let minute = EVERY; minute <= HOURS * 60; minute += EVERY) {
      const before = sentOf();
      await sweepOutbox(sweepEnv, new Date(start + minute * MINUTE));
      for (const [id, n] of sentOf()) if (n > before.get(id)!) sentAt.get(id)!.push(minute);
    }
    const graceMinutes = GRACE_MS / MINUTE;
    for (const [id, minutes] of sentAt) {
      // The first re-send at the first sweep (a failed send is recovered at once), then at most one per grace.
      expect(minutes[0], id).toBe(EVERY);
      expect(minutes.length, `${id} re-enqueued at minutes ${minutes}`).toBeLessThanOrEqual(
        1 + (HOURS * 60) / graceMinutes,
      );
      const gaps = minutes.slice(1).map((m, i) => m - minutes[i]!);
      for (const [i, gap] of gaps.entries()) {
        expect(gap, `gap ${i + 1} of ${id}: ${minutes}`).toBeGreaterThanOrEqual(graceMinutes);
        if (i > 0) expect(gap, `gap ${i + 1} of ${id}: ${minutes}`).toBeGreaterThanOrEqual(gaps[i - 1]!);
      }
      // Still re-sent now and then: a message the queue really lost is not given up on.
      expect(minutes.length, `${id} re-enqueued at minutes ${minutes}`).toBeGreaterThanOrEqual(4);
      expect(await deliveryRow(id)).toMatchObject({ status: 'pending', attempt_count: 0 });
    }
  });
});

describe('sweeper: several delivery queues', () => {
  it('a re-enqueued delivery goes back to its own queue: the one its first message took, picked by its id', async () => {
    const { h } = await handleWithWebhooks(['ok', 'fail', 'ok', 'fail', 'ok', 'fail']);
    const first = recordingDeliveryQueues();
    const queueCount = first.perQueue.length;
    expect(queueCount).toBe(2);
    // Events until every queue has some of them (six deliveries an event: each is on one queue by chance 1 in 32).
    const ids: string[] = [];
    for (let i = 0; i < 10 && new Set(ids.map((id) => deliveryQueueIndex(id, queueCount))).size < queueCount; i++) {
      const vars = { DB: db, SHARD_0: db, SHARD_1: undefined, ...first.bindings } as unknown as Partial<Env>;
      ids.push(...(await ingestQuiet(h.handle, {}, vars)).deliveryIds);
    }
    const firstQueue = new Map<string, number>();
    for (const [n, q] of first.perQueue.entries()) for (const id of sentDeliveryIds(q)) firstQueue.set(id, n);
    expect(new Set(ids.map((id) => firstQueue.get(id)))).toEqual(new Set([0, 1]));
    // The messages were lost (a crash): the rows say `queued`, and one grace later the sweeper sends them again.
    const again = recordingDeliveryQueues();
    await sweepOutbox({ ...isolated, ...again.bindings } as Env, new Date(Date.now() + GRACE_MS + MINUTE));
    for (const id of ids) {
      const resentTo = again.perQueue.flatMap((q, n) => (sentDeliveryIds(q).includes(id) ? [n] : []));
      expect(resentTo, id).toEqual([firstQueue.get(id)]);
      expect(firstQueue.get(id), id).toBe(deliveryQueueIndex(id, queueCount));
    }
  });
});
