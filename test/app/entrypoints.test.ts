/**
 * The queue and scheduled entry points: batches are routed by queue name and nothing is acked unprocessed.
 */

import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { deliveryQueues } from '../../src/delivery/enqueue.ts';
import { QUEUES } from '../../src/delivery/messages.ts';
import worker from '../../src/index.ts';

describe('queue entry point', () => {
  it('a batch from an unknown queue is retried whole, never acked', async () => {
    const batch = createMessageBatch<unknown>('some-other-queue', [
      { id: 'm1', timestamp: new Date(), attempts: 1, body: { deliveryId: 'x' } },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.retryBatch.retry).toBe(true);
    expect(result.explicitAcks).toEqual([]);
  });

  it('a name that only looks like a delivery queue is unknown too: retried whole, never acked', async () => {
    for (const name of [
      'notify-deliveries-',
      'notify-deliveries-01',
      'notify-deliveries-x',
      'notify-deliveries-0-dlq-dlq',
    ]) {
      const batch = createMessageBatch<unknown>(name, [
        { id: 'm1', timestamp: new Date(), attempts: 1, body: { deliveryId: 'x' } },
      ]);
      const ctx = createExecutionContext();
      await worker.queue(batch, env, ctx);
      const result = await getQueueResult(batch, ctx);
      expect(result.retryBatch.retry, name).toBe(true);
      expect(result.explicitAcks, name).toEqual([]);
    }
  });

  // Every delivery queue and DLQ of wrangler.toml, and the unnumbered names of a single-queue deployment (still served
  // while it drains).
  const queues = ['notify-events', 'notify-events-dlq', 'notify-deliveries', 'notify-deliveries-dlq'];
  for (let n = 0; n < deliveryQueues(env).length; n++) queues.push(QUEUES.deliveries(n), QUEUES.deliveriesDlq(n));
  for (const queue of queues) {
    it(`${queue}: a message failing its schema is recorded with its reason before it is acked`, async () => {
      const ids = [`bad-${queue}-1`, `bad-${queue}-2`];
      const batch = createMessageBatch<unknown>(queue, [
        { id: ids[0]!, timestamp: new Date(), attempts: 1, body: { nonsense: true } },
        { id: ids[1]!, timestamp: new Date(), attempts: 3, body: 'not even an object' },
      ]);
      const ctx = createExecutionContext();
      await worker.queue(batch, env, ctx);
      const result = await getQueueResult(batch, ctx);
      const acked = result.ackAll ? ids : [...result.explicitAcks];
      expect(acked.sort()).toEqual([...ids].sort());
      expect(result.retryMessages).toEqual([]);
      expect(result.retryBatch.retry).toBe(false);
      const { results } = await env.DB.prepare(
        'SELECT message_id, queue, reason, body FROM event_rejections WHERE message_id IN (?, ?) ORDER BY message_id',
      )
        .bind(...ids)
        .all<{ message_id: string; queue: string; reason: string; body: string }>();
      expect(results.map((r) => r.message_id)).toEqual([...ids].sort());
      for (const r of results) {
        expect(r.queue).toBe(queue);
        expect(r.reason.length).toBeGreaterThan(5);
      }
      expect(results.find((r) => r.message_id === ids[0])!.body).toBe('{"nonsense":true}');
    });
  }
});

describe('scheduled entry point', () => {
  it('purges idempotency records past retention and keeps live ones', async () => {
    const past = new Date(Date.now() - 60_000).toISOString();
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const insert = env.DB.prepare(
      `INSERT INTO idempotency_keys (principal, handle, key, request_hash, state, created_at, expires_at)
       VALUES ('user:sched', '', ?, 'h', 'completed', ?, ?)`,
    );
    await env.DB.batch([insert.bind('expired-key', past, past), insert.bind('live-key', past, future)]);
    await worker.scheduled(
      createScheduledController({ scheduledTime: new Date(), cron: '* * * * *' }),
      env,
      createExecutionContext(),
    );
    const keys = await env.DB.prepare(`SELECT key FROM idempotency_keys WHERE principal = 'user:sched'`).all();
    expect(keys.results.map((r) => r.key)).toEqual(['live-key']);
  });
});
