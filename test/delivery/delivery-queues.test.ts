/**
 * Several delivery queues (docs/design.md#several-delivery-queues): `notify-deliveries-0 … -{Q-1}`, each delivery on
 * the one its id picks, all served by the same consumer, each with its own DLQ and dead-letter consumer.
 *
 * The real consumer is observed through the queue entry point's dispatch table (`queueConsumers` in src/queue.ts):
 * the local queues call the Worker's `queue` handler in this isolate, and a call-through spy records each batch's
 * `batch.queue` with the delivery ids it carried. Only this file's own delivery ids are counted: the background
 * consumer serves every other test's messages too.
 */
import { createExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { deliveryQueueIndex, deliveryQueues } from '../../src/delivery/enqueue.ts';
import { QUEUES } from '../../src/delivery/messages.ts';
import worker from '../../src/index.ts';
import { queueConsumers } from '../../src/queue.ts';
import { anyShard, callJson, shardOf, unique } from '../support/helpers.ts';
import {
  createWebhook,
  type DeliveryDbRow,
  deliveryMessage,
  deliveryRow,
  eventually,
  fakeBatch,
  ingestQuiet,
  insertWebhookCopies,
  notificationRow,
  setupHandle,
  type TestHandle,
} from '../support/pipeline-helpers.ts';
import { receiverUrl, waitForHits } from '../support/receivers.ts';

/** Q, as wrangler.toml binds it (2 locally and in tests). */
const Q = deliveryQueues(env).length;

interface Seen {
  queue: string;
  deliveryId: string;
  attempts: number;
}

/** Records every batch the real deliveries consumer is handed, message by message, and still runs it. */
function observeDeliveryBatches(): Seen[] {
  const seen: Seen[] = [];
  const original = queueConsumers.deliveries;
  vi.spyOn(queueConsumers, 'deliveries').mockImplementation((batch, e) => {
    for (const m of batch.messages) {
      const deliveryId = (m.body as { deliveryId?: unknown } | null)?.deliveryId;
      if (typeof deliveryId === 'string') seen.push({ queue: batch.queue, deliveryId, attempts: m.attempts });
    }
    return original(batch, e);
  });
  return seen;
}

afterEach(() => {
  vi.restoreAllMocks();
});

/** A handle with `count` webhooks on one receiver scenario (distinct URLs), and the key their hits are under. */
async function handleWithWebhooks(scenario: 'ok' | 'flaky' | 'fail', count: number) {
  const h = await setupHandle();
  const key = unique(scenario);
  const template = await createWebhook(h, { url: receiverUrl(scenario, key, { n: 0 }) });
  await insertWebhookCopies(
    template.id,
    Array.from({ length: count - 1 }, (_, i) => receiverUrl(scenario, key, { n: i + 1 })),
  );
  return { h, key };
}

async function publish(h: TestHandle): Promise<string[]> {
  const res = await callJson('POST', `/v2/handles/${h.handle}/events`, {
    token: h.token,
    body: { type: 'order.paid', data: { orderId: unique('ord') } },
  });
  expect(res.status).toBe(202);
  return (res.body.recipients as { deliveryId: string }[]).map((r) => r.deliveryId);
}

const queueOf = (deliveryId: string) => QUEUES.deliveries(deliveryQueueIndex(deliveryId, Q));

describe('several delivery queues', () => {
  it('deliveries of one publish land on both queues, each on the queue its id picks (batch.queue in the real consumer)', async () => {
    expect(Q).toBe(2);
    const seen = observeDeliveryBatches();
    // 20 recipients: all on one queue by chance would be 2 in 2^20.
    const { h, key } = await handleWithWebhooks('ok', 20);
    const ids = await publish(h);
    expect(ids).toHaveLength(20);
    await waitForHits(key, 20, 30_000);
    const mine = seen.filter((s) => ids.includes(s.deliveryId));
    expect(new Set(mine.map((s) => s.deliveryId))).toEqual(new Set(ids));
    for (const s of mine) expect(s.queue, s.deliveryId).toBe(queueOf(s.deliveryId));
    expect(new Set(mine.map((s) => s.queue))).toEqual(new Set([QUEUES.deliveries(0), QUEUES.deliveries(1)]));
    for (const id of ids)
      await eventually(
        () => deliveryRow(id),
        (d) => d.status === 'succeeded',
        15_000,
        id,
      );
  }, 45_000);

  it("a delivery's retry comes back on its own queue (batch.queue in the real consumer)", async () => {
    const seen = observeDeliveryBatches();
    // `flaky` answers 500 to a delivery's first attempt and 200 to the next: one retry each, 5 s later.
    const { h, key } = await handleWithWebhooks('flaky', 20);
    const ids = await publish(h);
    await waitForHits(key, 40, 45_000);
    for (const id of ids) {
      const d = await eventually(
        () => deliveryRow(id),
        (r) => r.status === 'succeeded',
        15_000,
        id,
      );
      expect(d.attempt_count).toBe(2);
    }
    const mine = seen.filter((s) => ids.includes(s.deliveryId));
    for (const id of ids) {
      const of = mine.filter((s) => s.deliveryId === id);
      expect(
        of.map((s) => s.attempts),
        id,
      ).toEqual([1, 2]);
      expect(
        of.map((s) => s.queue),
        id,
      ).toEqual([queueOf(id), queueOf(id)]);
    }
    expect(new Set(mine.map((s) => s.queue)).size).toBe(2);
  }, 60_000);

  it('a dead letter from each DLQ ends `dead` exactly once', async () => {
    const h = await setupHandle();
    const key = unique('fail');
    const template = await createWebhook(h, { url: receiverUrl('fail', key, { n: 0 }) });
    await insertWebhookCopies(
      template.id,
      Array.from({ length: 5 }, (_, i) => receiverUrl('fail', key, { n: i + 1 })),
    );
    // One delivery per queue, kept away from the background consumer; events until every queue has one.
    const chosen = new Map<number, { id: string; notificationId: string }>();
    for (let i = 0; i < 10 && chosen.size < Q; i++) {
      const ing = await ingestQuiet(h.handle, {});
      for (const id of ing.deliveryIds) {
        const n = deliveryQueueIndex(id, Q);
        if (!chosen.has(n)) chosen.set(n, { id, notificationId: ing.notificationId });
      }
    }
    expect([...chosen.keys()].sort()).toEqual(Array.from({ length: Q }, (_, n) => n));

    const run = async (queue: string, deliveryId: string, attempts: number, copies = 1) => {
      // As the enqueue path sends it: with the handle that names the delivery's shard (docs/design.md#shards).
      const body = await deliveryMessage(deliveryId);
      const fb = fakeBatch(
        queue,
        Array.from({ length: copies }, () => ({ body, attempts })),
      );
      await worker.queue(fb.batch, env, createExecutionContext());
      return fb;
    };
    for (const [n, { id, notificationId }] of chosen) {
      // The first attempt through the entry point, then fast-forward to the 8th: the schedule is spent, and the
      // message is handed to the DLQ of its own queue.
      await run(QUEUES.deliveries(n), id, 1);
      expect(await deliveryRow(id)).toMatchObject({ status: 'retrying', attempt_count: 1 });
      await anyShard.prepare('UPDATE deliveries SET attempt_count = 7 WHERE id = ?').bind(id).run();
      const last = await run(QUEUES.deliveries(n), id, 8);
      expect(last.outcomes[0]).toMatchObject({ retried: true, acked: false, delaySeconds: 0 });
      expect(await deliveryRow(id)).toMatchObject({ status: 'retrying', status_reason: 'retries_exhausted' });

      // Its DLQ, at least once: twice in one batch, then once more.
      const dlq = await run(QUEUES.deliveriesDlq(n), id, 1, 2);
      expect(dlq.retryAll).toBeNull();
      for (const o of dlq.outcomes) expect(o, `${QUEUES.deliveriesDlq(n)} ${id}`).toMatchObject({ acked: true });
      const dead: DeliveryDbRow = await deliveryRow(id);
      expect(dead).toMatchObject({
        status: 'dead',
        status_reason: 'retries_exhausted',
        attempt_count: 8,
        last_error_class: 'http_5xx',
      });
      const again = await run(QUEUES.deliveriesDlq(n), id, 3);
      expect(again.outcomes[0]).toMatchObject({ acked: true, retried: false });
      expect(await deliveryRow(id)).toEqual(dead);
      // Counted once: the notification's dead count holds this delivery once, whatever the copies.
      // On the handle's own shard: over every shard, `all()` answers one count per shard (the other one's 0 first).
      const counted = await (await shardOf(h.handle))
        .prepare(`SELECT count(*) AS n FROM deliveries WHERE notification_id = ? AND status = 'dead'`)
        .bind(notificationId)
        .first<{ n: number }>();
      expect((await notificationRow(notificationId)).dead_count).toBe(counted!.n);
    }
  });
});
