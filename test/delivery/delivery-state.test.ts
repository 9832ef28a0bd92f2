/**
 * The delivery state machine under real interleavings (docs/reliability.md#scenarios, docs/design.md#consumer): a
 * producer's `queued` marking committing while a consumer holds the row it loaded, the queue's delivery count drifting
 * from the attempts the rows record, two invocations running one message at once, and the `webhook.endpoint_disabled`
 * alert of a disable raised exactly once. Each scenario was found by the fault model
 * (test/delivery/fault-model.test.ts) and is kept here by name.
 *
 * The interleavings are made exact with a D1 binding that holds a consumer invocation right after its load (the first
 * `batch`) until the other side has done its part; the producer, the consumer, the DLQ consumer and the auto-disable
 * job are the production functions on real local D1 with real receivers on 127.0.0.1.
 */

import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { consumeDeadLetters } from '../../src/delivery/dead-letter.ts';
import { enqueueDeliveries } from '../../src/delivery/enqueue.ts';
import { autoDisableFailingWebhooks } from '../../src/jobs/auto-disable.ts';
import { wrapD1 } from '../support/d1-wrap.ts';
import { anyShard, callJson, shardOf, unique } from '../support/helpers.ts';
import {
  allDeliveryQueues,
  attemptsOf,
  captureQueue,
  createWebhook,
  deliveryBatch,
  deliveryMessage,
  deliveryRow,
  fakeBatch,
  ingestQuiet,
  notificationRow,
  runDeliveries,
  setupHandle,
  type TestHandle,
  webhookDbRow,
} from '../support/pipeline-helpers.ts';
import { hits, receiverUrl, setMode } from '../support/receivers.ts';
import { summaryById } from '../support/seed.ts';

const DAY = 24 * 3600 * 1000;

/**
 * A D1 binding whose first `batch` (a consumer's load) is followed by `afterLoad` before the caller goes on, and whose
 * later batches fail while `failLater()` says so (counted from 1 = the first batch after the load).
 */
function steppedD1(
  inner: D1Database,
  opts: { afterLoad?: () => Promise<void>; failLater?: (n: number) => boolean; failLoads?: number } = {},
): D1Database {
  let loads = opts.failLoads ?? 0;
  let loaded = false;
  let later = 0;
  return wrapD1(inner, {
    batch: async (target, statements) => {
      if (loads > 0) {
        loads--;
        throw new Error('D1_ERROR: Network connection lost. (test, load)');
      }
      if (!loaded) {
        loaded = true;
        const result = await target.batch(statements);
        await opts.afterLoad?.();
        return result;
      }
      if (opts.failLater?.(++later)) throw new Error('D1_ERROR: Network connection lost. (test, later)');
      return target.batch(statements);
    },
  });
}

/** A barrier for `n` parties: each `arrive()` resolves once all have arrived. */
function barrier(n: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const all = new Promise<void>((r) => {
    open = r;
  });
  return () => {
    if (++arrived === n) open();
    return all;
  };
}

/** An env for hand-driven consumers: every queue send recorded, none reaching the background consumer. */
function quiet(wrap: (d1: D1Database) => D1Database = (d1) => d1) {
  const capture = captureQueue();
  // The consumer reads and writes a handle's rows on its shard (docs/design.md#shards): the shards are wrapped.
  const shards = { SHARD_0: wrap(env.SHARD_0), SHARD_1: wrap(env.SHARD_1) };
  return { capture, env: { ...env, ...shards, ...allDeliveryQueues(capture.queue) } as Env };
}

/** The deliveries a captured queue was given, by id. */
const sentIds = (capture: ReturnType<typeof captureQueue>) =>
  capture.batches.flat().map((m) => (m.body as { deliveryId: string }).deliveryId);

async function ownerEmail(h: TestHandle) {
  const owner = `${unique('owner')}@example.com`;
  const res = await callJson('PUT', `/v2/handles/${h.handle}/notifications/owner-default-email`, {
    token: h.token,
    body: { email: owner },
  });
  expect(res.status).toBe(200);
}

async function endpointDisabledAlerts(handle: string) {
  const { results } = await anyShard
    .prepare(`SELECT * FROM notifications WHERE handle = ? AND type = 'webhook.endpoint_disabled' ORDER BY id`)
    .bind(handle)
    .all<Record<string, any>>();
  return results;
}

describe('a producer marks the deliveries queued while a consumer holds them', () => {
  it('markQueued commits between the consumer’s load and its write → the outcome is recorded (succeeded, attempt 1), not lost', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('ok', key) });
    // Stored but not yet sent: the rows are `pending`, as between ingest's write and its sendBatch.
    const ing = await ingestQuiet(h.handle, {}, allDeliveryQueues(captureQueue({ fail: true }).queue));
    const [id] = ing.deliveryIds as [string];
    expect(await deliveryRow(id)).toMatchObject({ status: 'pending' });

    // The consumer loads the row as `pending`; then the producer's send and `queued` marking commit; then it writes.
    const producer = quiet();
    const consumer = quiet((d1) =>
      steppedD1(d1, {
        afterLoad: async () => {
          const sent = await enqueueDeliveries(producer.env, await shardOf(h.handle), [
            { deliveryId: id, handle: h.handle },
          ]);
          expect(sent.queued).toEqual([id]);
          expect(await deliveryRow(id)).toMatchObject({ status: 'queued', attempt_count: 0 });
        },
      }),
    );
    const { fb, report } = await runDeliveries([id], { env: consumer.env });
    expect(report.attempts).toBe(1);
    expect(fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(await hits(key)).toHaveLength(1);
    expect(await deliveryRow(id)).toMatchObject({ status: 'succeeded', attempt_count: 1, last_http_status: 200 });
    expect((await attemptsOf(id)).map((a) => [a.attempt_number, a.outcome])).toEqual([[1, 'succeeded']]);
    const n = await notificationRow(ing.notificationId);
    expect(n).toMatchObject({ status: 'delivered', open_count: 0, succeeded_count: 1 });
    expect(summaryById(n.recipients)[id]).toMatchObject({ status: 'succeeded', attempts: 1 });
  });
});

describe("the queue's delivery count and the recorded attempts", () => {
  it('a failed outcome write is written again in the same invocation: the message is acked, its attempt recorded once', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('ok', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    const consumer = quiet((d1) => steppedD1(d1, { failLater: (n) => n === 1 }));
    const { fb } = await runDeliveries([id], { env: consumer.env });
    expect(fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(await deliveryRow(id)).toMatchObject({ status: 'succeeded', attempt_count: 1 });
    expect(await attemptsOf(id)).toHaveLength(1);
  });

  it('a throw while loading the batch is retried in the same invocation: one D1 blip costs no message a delivery', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await createWebhook(h, { url: receiverUrl('ok', key) });
    await createWebhook(h, { url: receiverUrl('ok', key, { n: 2 }) });
    const ing = await ingestQuiet(h.handle, {});
    expect(ing.deliveryIds).toHaveLength(2);
    const consumer = quiet((d1) => steppedD1(d1, { failLoads: 1 }));
    const { fb, report } = await runDeliveries(ing.deliveryIds, { env: consumer.env });
    expect(report.attempts).toBe(2);
    expect(fb.outcomes.map((o) => o.calls)).toEqual([['ack'], ['ack']]);
    for (const id of ing.deliveryIds) expect(await deliveryRow(id)).toMatchObject({ status: 'succeeded' });
  });

  it('the 8th delivery of a message whose earlier deliveries recorded nothing: a 2xx whose write failed is handed back, never dead, and ends succeeded', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await setMode(key, { status: 500 });
    await createWebhook(h, { url: receiverUrl('mode', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    // Six attempts recorded, as the rows see them; the queue has delivered the message 7 times (one redelivery
    // recorded nothing: a failed write).
    for (let attempt = 1; attempt <= 6; attempt++) await runDeliveries([id], { attempts: attempt, env: quiet().env });
    expect(await deliveryRow(id)).toMatchObject({ status: 'retrying', attempt_count: 6 });

    // The 8th delivery: the receiver now answers 200, and every write of this invocation fails.
    await setMode(key, { status: 200 });
    const down = quiet((d1) => steppedD1(d1, { failLater: () => true }));
    const last = await runDeliveries([id], { attempts: 8, env: down.env });
    expect(last.fb.outcomes[0]!.retried).toBe(true);
    expect(await hits(key)).toHaveLength(7);

    // Queues hands it to the DLQ on its own count. The row has attempts left: it goes back to the queue.
    const dlq = quiet();
    const dead = fakeBatch('notify-deliveries-dlq', [{ body: await deliveryMessage(id) }]);
    await consumeDeadLetters(dead.batch, dlq.env);
    expect(dead.retryAll).toBeNull();
    expect((await deliveryRow(id)).status).not.toBe('dead');
    expect(sentIds(dlq.capture)).toEqual([id]);

    // On its fresh message the attempt is made again and recorded: succeeded, the 7th attempt.
    const again = await runDeliveries([id], { attempts: 1, env: quiet().env });
    expect(again.fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(await deliveryRow(id)).toMatchObject({ status: 'succeeded', attempt_count: 7 });
    expect((await attemptsOf(id)).map((a) => a.outcome)).toEqual([...Array(6).fill('failed'), 'succeeded']);
  });

  it('a row that crashes every consumer is handed back once, then dead (redelivery_exhausted) — a crash loop ends', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('ok', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    await anyShard.prepare(`UPDATE webhook_subscriptions SET headers = 'not json' WHERE id = ?`).bind(wh.id).run();
    const first = quiet();
    await consumeDeadLetters(
      fakeBatch('notify-deliveries-dlq', [{ body: await deliveryMessage(id) }]).batch,
      first.env,
    );
    expect(sentIds(first.capture)).toEqual([id]);
    expect(await deliveryRow(id)).toMatchObject({ status: 'queued', status_reason: 'requeued_from_dlq' });
    // Eight more deliveries crash and record nothing; the queue gives up again.
    const crash = await runDeliveries([id], { attempts: 8, env: quiet().env });
    expect(crash.fb.outcomes[0]!.retried).toBe(true);
    const second = quiet();
    await consumeDeadLetters(
      fakeBatch('notify-deliveries-dlq', [{ body: await deliveryMessage(id) }]).batch,
      second.env,
    );
    expect(sentIds(second.capture)).toEqual([]);
    expect(await deliveryRow(id)).toMatchObject({ status: 'dead', status_reason: 'redelivery_exhausted' });
    expect(await hits(key)).toEqual([]);
  });
});

describe('two invocations running the same message at once', () => {
  it('both send, one wins: one attempt row, the failure counted once in the health, the losing copy acked (one retry chain)', async () => {
    const h = await setupHandle();
    const key = unique('k');
    await setMode(key, { status: 500, delayMs: 50 });
    const wh = await createWebhook(h, { url: receiverUrl('mode', key) });
    const ing = await ingestQuiet(h.handle, {});
    const [id] = ing.deliveryIds as [string];
    const bothLoaded = barrier(2);
    const run = () => runDeliveries([id], { env: quiet((d1) => steppedD1(d1, { afterLoad: bothLoaded })).env });
    const [a, b] = await Promise.all([run(), run()]);
    const calls = [a.fb.outcomes[0]!.calls, b.fb.outcomes[0]!.calls];
    expect(
      calls.filter((c) => c[0] === 'ack'),
      'the losing copy is acked',
    ).toHaveLength(1);
    expect(
      calls.filter((c) => c[0] === 'retry(5)'),
      'one retry chain',
    ).toHaveLength(1);
    expect(await hits(key)).toHaveLength(2);
    expect((await attemptsOf(id)).map((x) => x.attempt_number)).toEqual([1]);
    expect(await deliveryRow(id)).toMatchObject({ status: 'retrying', attempt_count: 1 });
    expect((await webhookDbRow(wh.id)).consecutive_failures).toBe(1);
    expect(await notificationRow(ing.notificationId)).toMatchObject({ status: 'delivering', open_count: 1 });
  });

  it('attempt rows are unique per (delivery, attempt number): a second row #1 is refused by the schema', async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const [id] = (await ingestQuiet(h.handle, {})).deliveryIds as [string];
    await runDeliveries([id], { env: quiet().env });
    const insert = (await shardOf(h.handle))
      .prepare(
        `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, duration_ms, created_at)
       VALUES (?1, ?2, 1, 'succeeded', 1, '2026-01-01T00:00:00.000Z')`,
      )
      .bind(`att_${unique('x')}`, id);
    await expect(insert.run()).rejects.toThrow(/UNIQUE/);
  });
});

describe('webhook.endpoint_disabled: once per disable, never lost', () => {
  it('two concurrent 410s on one webhook → disabled once, one critical notification', async () => {
    const h = await setupHandle();
    await ownerEmail(h);
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('gone', key), eventTypes: ['order.*'] });
    const [a] = (await ingestQuiet(h.handle, {})).deliveryIds as [string];
    const [b] = (await ingestQuiet(h.handle, {})).deliveryIds as [string];
    const bothLoaded = barrier(2);
    const run = (id: string) =>
      runDeliveries([id], { env: quiet((d1) => steppedD1(d1, { afterLoad: bothLoaded })).env });
    await Promise.all([run(a), run(b)]);
    expect(await hits(key)).toHaveLength(2);
    expect(await webhookDbRow(wh.id)).toMatchObject({ enabled: 0, disabled_reason: 'endpoint_gone' });
    const alerts = await endpointDisabledAlerts(h.handle);
    expect(alerts).toHaveLength(1);
    expect(JSON.parse(alerts[0]!.data)).toMatchObject({ subscriptionId: wh.id, reason: 'endpoint_gone' });
  });

  it('a failed publish of the alert is not only logged: the disable is marked, and the minute job raises it once', async () => {
    const h = await setupHandle();
    await ownerEmail(h);
    const wh = await createWebhook(h, { url: receiverUrl('gone', unique('k')), eventTypes: ['order.*'] });
    const [id] = (await ingestQuiet(h.handle, {})).deliveryIds as [string];
    // The outcome write commits; every D1 batch after it (the alert's ingest) fails.
    const consumer = quiet((d1) => steppedD1(d1, { failLater: (n) => n > 1 }));
    const { fb } = await runDeliveries([id], { env: consumer.env });
    expect(fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(await webhookDbRow(wh.id)).toMatchObject({ enabled: 0, disabled_reason: 'endpoint_gone' });
    expect(await endpointDisabledAlerts(h.handle)).toEqual([]);

    await autoDisableFailingWebhooks(quiet().env, new Date());
    const [alert, ...more] = await endpointDisabledAlerts(h.handle);
    expect(more).toEqual([]);
    expect(JSON.parse(alert!.data)).toMatchObject({ subscriptionId: wh.id, reason: 'endpoint_gone' });
    // Finished: the next run raises nothing more.
    await autoDisableFailingWebhooks(quiet().env, new Date());
    expect(await endpointDisabledAlerts(h.handle)).toHaveLength(1);
  });

  it('auto-disable: one alert that fails to publish stops neither the others nor its own next try', async () => {
    const due = async () => {
      // Both on one shard, the one whose batches fail: the job runs on each shard at once (docs/design.md#shards).
      const h = await setupHandle('SHARD_0');
      const wh = await createWebhook(h, { url: receiverUrl('fail', unique('k')) });
      await anyShard
        .prepare(
          `UPDATE webhook_subscriptions SET consecutive_failures = 12, failing_since = ?2, last_success_at = NULL
         WHERE id = ?1`,
        )
        .bind(wh.id, new Date(Date.now() - 6 * DAY).toISOString())
        .run();
      return { h, wh };
    };
    const hooks = [await due(), await due()];
    // The job's second D1 batch fails: the first alert's reads (after the job's own read of what it owes); on a job
    // that reads nothing first, the first alert's write. The rest go through.
    let batches = 0;
    const flaky = (d1: D1Database) =>
      wrapD1(d1, {
        batch: (target, statements) => {
          if (++batches === 2) return Promise.reject(new Error('D1_ERROR: Network connection lost. (test)'));
          return target.batch(statements);
        },
      });
    await autoDisableFailingWebhooks(quiet((d1) => (d1 === env.SHARD_0 ? flaky(d1) : d1)).env, new Date()).catch(
      () => undefined,
    );
    const counts = async () => Promise.all(hooks.map(async ({ h }) => (await endpointDisabledAlerts(h.handle)).length));
    for (const { wh } of hooks) {
      expect(await webhookDbRow(wh.id)).toMatchObject({ enabled: 0, disabled_reason: 'no_success_5_days' });
    }
    expect((await counts()).sort()).toEqual([0, 1]);

    await autoDisableFailingWebhooks(quiet().env, new Date());
    expect(await counts()).toEqual([1, 1]);
  });
});

describe('a message batch for the DLQ', () => {
  it('a batch naming handles on both shards: each delivery written on its own shard, the handles looked up at once', async () => {
    const spent = await setupHandle('SHARD_0');
    await createWebhook(spent, { url: receiverUrl('fail', unique('k')) });
    const [deadId] = (await ingestQuiet(spent.handle, {})).deliveryIds as [string];
    for (let attempt = 1; attempt <= 8; attempt++)
      await runDeliveries([deadId], { attempts: attempt, env: quiet().env });
    expect(await deliveryRow(deadId)).toMatchObject({ status: 'retrying', status_reason: 'retries_exhausted' });
    const fresh = await setupHandle('SHARD_1');
    for (const _ of [1, 2]) await createWebhook(fresh, { url: receiverUrl('ok', unique('k')) });
    const freshIds = (await ingestQuiet(fresh.handle, {})).deliveryIds;
    expect(freshIds).toHaveLength(2);

    // A control-plane binding of its own (an empty directory cache) that watches the directory reads in flight.
    const reads = { count: 0, inFlight: 0, peak: 0 };
    const watch = (st: D1PreparedStatement): D1PreparedStatement =>
      new Proxy(st, {
        get(target, prop) {
          if (prop === 'bind') return (...params: unknown[]) => watch(target.bind(...params));
          if (prop === 'first')
            return async (...args: [string?]) => {
              reads.count++;
              reads.peak = Math.max(reads.peak, ++reads.inFlight);
              try {
                return await target.first(...(args as []));
              } finally {
                reads.inFlight--;
              }
            };
          const v = Reflect.get(target, prop, target) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    const DB = wrapD1(env.DB, {
      prepare: (target, query) =>
        /FROM handles WHERE handle/.test(query) ? watch(target.prepare(query)) : target.prepare(query),
    });
    const dlq = quiet();
    const ids = [deadId, ...freshIds];
    const batch = deliveryBatch(ids, 1, new Map(ids.map((id) => [id, id === deadId ? spent.handle : fresh.handle])));
    await consumeDeadLetters(batch.batch, { ...dlq.env, DB });

    expect(reads).toEqual({ count: 2, inFlight: 0, peak: 2 });
    expect(batch.outcomes.map((o) => o.calls)).toEqual([['ack'], ['ack'], ['ack']]);
    expect(await deliveryRow(deadId)).toMatchObject({ status: 'dead', status_reason: 'retries_exhausted' });
    expect((await shardOf(spent.handle)) === env.SHARD_0).toBe(true);
    expect(sentIds(dlq.capture).sort()).toEqual([...freshIds].sort());
    for (const id of freshIds) {
      const row = await (await shardOf(fresh.handle))
        .prepare('SELECT status, status_reason FROM deliveries WHERE id = ?1')
        .bind(id)
        .first();
      expect(row).toEqual({ status: 'queued', status_reason: 'requeued_from_dlq' });
    }
  });

  it('a delivery whose schedule is spent (retries_exhausted) is written dead by the DLQ consumer', async () => {
    const h = await setupHandle();
    await createWebhook(h, { url: receiverUrl('fail', unique('k')) });
    const [id] = (await ingestQuiet(h.handle, {})).deliveryIds as [string];
    for (let attempt = 1; attempt <= 8; attempt++) {
      const { fb } = await runDeliveries([id], { attempts: attempt, env: quiet().env });
      expect(fb.outcomes[0]!.retried).toBe(true);
    }
    expect(await deliveryRow(id)).toMatchObject({ status: 'retrying', status_reason: 'retries_exhausted' });
    const dlq = quiet();
    const batch = deliveryBatch([id], 1, new Map([[id, h.handle]]));
    await consumeDeadLetters(batch.batch, dlq.env);
    expect(sentIds(dlq.capture)).toEqual([]);
    expect(await deliveryRow(id)).toMatchObject({
      status: 'dead',
      status_reason: 'retries_exhausted',
      attempt_count: 8,
    });
  });
});
