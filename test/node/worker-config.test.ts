/**
 * Starts the Worker from wrangler.toml exactly as `wrangler dev` would (bundled by wrangler, every binding local),
 * proving the configuration and not only the code, then validates the served OpenAPI document with an independent
 * OpenAPI 3.1 validator.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unstable_readConfig, unstable_startWorker } from 'wrangler';
import { DELIVERIES_QUEUE_MAX_RETRIES } from '../../src/lib/retry-delays.ts';
import { THROTTLES } from '../../src/lib/throttles.ts';

type Worker = Awaited<ReturnType<typeof unstable_startWorker>>;
let worker: Worker;

beforeAll(async () => {
  worker = await unstable_startWorker({
    config: 'wrangler.toml',
    dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: false, persist: false, watch: false },
  });
  await worker.ready;
});

afterAll(async () => {
  await worker?.dispose();
});

describe('the Worker built from wrangler.toml', () => {
  it('answers /v2/health with a D1 ping and a deployment id', async () => {
    const res = await worker.fetch('http://example.test/v2/health');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { d1: { ok: boolean }; deploymentId: string };
    expect(body.d1.ok).toBe(true);
    expect(res.headers.get('x-deployment-id')).toBe(body.deploymentId);
  });

  it('serves an OpenAPI document that is valid OpenAPI 3.1', async () => {
    const res = await worker.fetch('http://example.test/v2/openapi.json');
    expect(res.status).toBe(200);
    const doc = await res.json();
    const validator = new Validator();
    const result = await validator.validate(doc as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('the validator does reject an invalid document (so the check above can fail)', async () => {
    const result = await new Validator().validate({ openapi: '3.1.0', info: { title: 'x' }, paths: { bad: {} } });
    expect(result.valid).toBe(false);
  });
});

describe('module evaluation order', () => {
  // zod schemas get `.openapi()` once @hono/zod-openapi has extended zod; delivery/messages.ts builds its schemas with
  // plain zod, so an entry that evaluates it first (the bench's metered entry imports the consumer before the app)
  // must still build every route.
  it('the Worker starts and documents POST …/events when the delivery schemas are evaluated first', async () => {
    const other = await unstable_startWorker({
      config: 'wrangler.toml',
      entrypoint: 'test/support/delivery-first-entry.ts',
      dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: false, persist: false, watch: false },
    });
    try {
      await other.ready;
      const res = await other.fetch('http://example.test/v2/openapi.json');
      expect(res.status).toBe(200);
      const doc = (await res.json()) as { paths: Record<string, unknown> };
      expect(Object.keys(doc.paths)).toContain('/v2/handles/{handle}/events');
    } finally {
      await other.dispose();
    }
  });
});

describe('wrangler.toml', () => {
  const config = unstable_readConfig({ config: 'wrangler.toml' });

  it('the throttle table the headers quote matches the Rate Limiting bindings that enforce it', () => {
    const bindings = Object.fromEntries(
      config.ratelimits.map((r: { name: string; simple: unknown }) => [r.name, r.simple]),
    );
    for (const t of Object.values(THROTTLES)) {
      expect(bindings[t.binding], t.binding).toEqual({ limit: t.limit, period: t.period });
    }
  });

  it('every queue has a consumer with explicit settings; deliveries retry 7 times, then their DLQ', () => {
    const consumers = Object.fromEntries(
      config.queues.consumers.map((c: { queue: string; [k: string]: unknown }) => [c.queue, c]),
    );
    const producers = config.queues.producers.map((p: { queue: string }) => p.queue);
    const dlqs = config.queues.consumers.flatMap((c: { dead_letter_queue?: string }) => c.dead_letter_queue ?? []);
    for (const queue of [...producers, ...dlqs]) {
      const c = consumers[queue];
      expect(c, queue).toBeDefined();
      // Every value explicit: nothing left to a default that may change under us.
      for (const key of ['max_batch_size', 'max_batch_timeout', 'max_retries', 'max_concurrency', 'retry_delay']) {
        expect(c![key], `${queue} ${key}`).toBeGreaterThan(0);
      }
    }
    for (const queue of producers.filter((q: string) => q.startsWith('notify-deliveries-'))) {
      expect(consumers[queue], queue).toMatchObject({ max_retries: 7, dead_letter_queue: `${queue}-dlq` });
      // RETRY_DELAYS_SECONDS is checked against this count (src/lib/retry-delays.ts).
      expect(consumers[queue]!.max_retries).toBe(DELIVERIES_QUEUE_MAX_RETRIES);
    }
    expect(consumers['notify-events']).toMatchObject({ dead_letter_queue: 'notify-events-dlq' });
    expect(config.compatibility_flags).toContain('global_fetch_strictly_public');
    expect(config.triggers.crons).toEqual(['* * * * *']);
  });

  it('Q = 2 delivery queues notify-deliveries-0 … -{Q-1}: bound in order, the same consumer settings, each its own DLQ with a consumer', () => {
    const producers = config.queues.producers as { binding: string; queue: string }[];
    const consumers = config.queues.consumers as { queue: string; dead_letter_queue?: string; [k: string]: unknown }[];
    const delivery = producers.filter((p) => p.binding.startsWith('DELIVERIES_QUEUE'));
    expect(delivery).toEqual([
      { binding: 'DELIVERIES_QUEUE_0', queue: 'notify-deliveries-0' },
      { binding: 'DELIVERIES_QUEUE_1', queue: 'notify-deliveries-1' },
    ]);
    const settingsOf = (queue: string) => {
      const found = consumers.find((c) => c.queue === queue);
      expect(found, queue).toBeDefined();
      const { queue: _q, dead_letter_queue: dlq, ...settings } = found!;
      return { dlq, settings };
    };
    const first = settingsOf('notify-deliveries-0');
    const firstDlq = settingsOf('notify-deliveries-0-dlq');
    for (const { queue } of delivery) {
      expect(settingsOf(queue)).toEqual({ dlq: `${queue}-dlq`, settings: first.settings });
      // A DLQ has no DLQ of its own; its consumer retries many times instead.
      expect(settingsOf(`${queue}-dlq`)).toEqual({ dlq: undefined, settings: firstDlq.settings });
    }
    expect(firstDlq.settings.max_retries).toBeGreaterThanOrEqual(100);
    // One events queue (docs/design.md#several-delivery-queues says why), with its DLQ.
    expect(producers.filter((p) => p.queue.startsWith('notify-events'))).toEqual([
      { binding: 'EVENTS_QUEUE', queue: 'notify-events' },
    ]);
  });
});
