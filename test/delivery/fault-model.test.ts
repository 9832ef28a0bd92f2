/**
 * Model-based fault test (docs/reliability.md#the-model-based-fault-test): fast-check drives random sequences of API
 * calls, receiver behaviour, injected faults and interleavings against the real Worker code, real local D1 and real
 * webhook receivers on 127.0.0.1, then drains everything and checks that nothing was silently dropped.
 *
 * The queue is simulated here (see `SimQueue`) because the faults ARE queue behaviour: at-least-once duplicates, a
 * consumer invocation that dies after sending but before writing (every message redelivered), `max_retries` and the
 * hand-off to the dead-letter queue — the real local queue cannot be made to do those on demand. The simulated queue
 * keeps its own delivery count per message, independent of the rows, and dead-letters a message on that count alone
 * (`max_retries = 7` in wrangler.toml: 8 deliveries). Everything else is the production code path: `POST …/events`,
 * `…/recover` and `…/deliveries/{id}/retry` through the app, `consumeDeliveries`, `consumeDeadLetters`,
 * `sweepOutbox`, `autoDisableFailingWebhooks`.
 *
 * Each sequence runs 4 handles, 2 on each data shard (docs/design.md#shards), sharing the queue: a step acts on one
 * handle or on the shared runtime, consumer batches mix both shards' messages, and a D1 fault is injected on ONE
 * shard's binding. The checks below hold per handle, and they are the isolation: a handle's 5xx only while a fault
 * was armed on its own shard (or the queue), and a second request for one of its deliveries only where a fault on its
 * own shard (or a crash, or a duplicate run) allows it. "one shard down" takes a whole shard's D1 away instead.
 *
 * Real interleavings, not only faults between steps:
 *   - a producer's writes during a running consumer invocation: a send (ingest, sweep, recover, retry) whose messages
 *     a consumer loads before the producer marks them `queued`, and writes its outcomes after;
 *   - two consumer invocations running the SAME messages at once (both load before either writes);
 *   - a D1 batch failing under the consumer's load or its write, a message that crashes once (a row corrupt for one
 *     invocation), an invocation that dies after its sends;
 *   - the retention purge (docs/design.md#retention-and-archives) between deliveries, with a clock a day ahead and a
 *     retention of one day, so that everything stored so far is expired: closed notifications go to the real local R2
 *     bucket and leave D1, open ones wait; a purge with a redrive and a consumer run between its verified archive
 *     and its delete; and a purge after the drain's first round (retries still to come).
 *
 * Checked after every sequence, once the queues are drained:
 *   1. every accepted event (202) has its notification, and a repeated sourceEventId answered with the same one;
 *   2. every delivery is terminal (succeeded/dead/cancelled/skipped) and the notification's counters agree with them;
 *   3. no delivery is left open with no message to move it (a lost message);
 *   4. a receiver sees a webhook-id exactly as often as attempts are recorded for it, and nothing after the attempt
 *      that succeeded, except where the run injected the fault that allows a redelivery (the outcome was not written:
 *      a consumer crash or a failed write, or the losing copy of a message two invocations ran at once); never a
 *      different body under one webhook-id; every request verifies with the independent `standardwebhooks` library;
 *   5. every critical event reached the owner default email (when one was set) or is `undeliverable`;
 *   6. no 5xx without a problem+json body, and no 5xx at all unless a fault was armed (then 503, never 500);
 *   7. a delivery's attempt rows are numbered exactly 1…attempt_count: no attempt row without the move it belongs to,
 *      none twice;
 *   8. `dead` agrees with the rows: `retries_exhausted` only once the schedule is spent (8 attempts since the last
 *      redrive), `redelivery_exhausted` only for a delivery whose row crashes every consumer (a corrupt secret);
 *   9. every webhook the service disabled has its `webhook.endpoint_disabled` notification, and no disable has two;
 *  10. every row of a notification the purge took out of D1 is in exactly one purged archive, whose object (read back
 *      from the real local bucket, SHA-256 and size as recorded, gunzipped, one JSON object per line) holds it closed:
 *      nothing open is ever purged, and no archived row is still in D1. (Test sends, with no notification, are
 *      deleted without an archive by design: docs/design.md#rows-deleted-without-an-archive.)
 *
 * Archived rows count as present: checks 1–9 run over D1's rows and the archived ones together. The one difference a
 * purge makes to the ledger: `sourceEventId` de-duplicates only against notifications still in D1, so a repeat
 * accepted after the first notification was purged stores a new one (allowed only then).
 *
 * Runs: 50 sequences of 4 handles by default; `FAULT_RUNS=500 FAULT_SEED=7 npx vitest run --project worker
 * test/delivery/fault-model.test.ts` for more or another seed (the seed is printed; a failure prints the shrunk sequence).
 */

import { env } from 'cloudflare:workers';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { sha256Hex } from '../../src/archive/format.ts';
import { purgeStep } from '../../src/archive/purge.ts';
import { consumeDeliveries } from '../../src/delivery/consumer.ts';
import { consumeDeadLetters } from '../../src/delivery/dead-letter.ts';
import { releaseDeferred } from '../../src/delivery/deferral.ts';
import { enqueueDeliveries } from '../../src/delivery/enqueue.ts';
import { autoDisableFailingWebhooks } from '../../src/jobs/auto-disable.ts';
import { purgeHandle } from '../../src/jobs/purge-expired.ts';
import { sweepOutbox } from '../../src/jobs/sweeper.ts';
import { newId } from '../../src/lib/ids.ts';
import { wrapD1 } from '../support/d1-wrap.ts';
import { faultRuns } from '../support/generated-runs.ts';
import { anyShard, callJson, callWithVars, shardOf, unique } from '../support/helpers.ts';
import { allDeliveryQueues, recordingEmail, setupHandle, type TestHandle } from '../support/pipeline-helpers.ts';
import { type Hit, hits, receiverUrl, setMode } from '../support/receivers.ts';

const { runs: RUNS, seed: SEED } = faultRuns();

/** Short timeouts and a 7-step schedule of 1 s: 8 attempts, as in production, then the DLQ. */
const TIMEOUT_MS = 150;
const SIM_VARS = { RETRY_DELAYS_SECONDS: '1,1,1,1,1,1,1', WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS) };
/** Attempts a schedule of 7 delays allows. */
const SCHEDULE_ATTEMPTS = 8;
/** The purge's retention (the least a handle may have) and clock: a day and a minute ahead, so all is expired. */
const PURGE_RETENTION_DAYS = 1;
const PURGE_AHEAD_MS = 86_400_000 + 60_000;
/** `max_retries = 7` in wrangler.toml, kept here rather than imported: the queue counts on its own. */
const MAX_RETRIES = 7;
const EVENT_TYPES = [
  'order.paid',
  'order.created',
  'fulfillment.shipped',
  'payment.failed',
  'fulfillment.failed',
] as const;
type ReceiverBehaviour = 'ok' | 'fail' | 'timeout' | 'gone';
const MODES: Record<ReceiverBehaviour, { status: number; delayMs?: number }> = {
  ok: { status: 200 },
  fail: { status: 500 },
  timeout: { status: 200, delayMs: TIMEOUT_MS + 150 },
  gone: { status: 410 },
};

// ---------------------------------------------------------------------------------------------------------------
// The simulated runtime: a queue with Cloudflare's delivery semantics, a D1 binding that fails on demand

interface SimMessage {
  id: string;
  body: unknown;
  /** Deliveries so far; the next delivery reports attempts + 1. */
  deliveries: number;
}

class SimQueue {
  messages: SimMessage[] = [];
  failNextSendBatch = 0;
  /** Called with each sent batch's messages before `sendBatch` returns: where a consumer may race the producer. */
  onSend: ((sent: SimMessage[]) => Promise<void>) | null = null;
  private seq = 0;

  readonly producer = {
    send: async (body: unknown) => this.producer.sendBatch([{ body }]),
    sendBatch: async (reqs: Iterable<MessageSendRequest<unknown>>) => {
      if (this.failNextSendBatch > 0) {
        this.failNextSendBatch--;
        throw new Error('Queue sendBatch failed (injected)');
      }
      const sent = [...reqs].map((r) => this.push(r.body));
      await this.onSend?.(sent);
      return { metadata: { metrics: { backlogCount: this.messages.length, backlogBytes: 0 } } };
    },
    metrics: async () => ({ backlogCount: this.messages.length, backlogBytes: 0 }),
  } as unknown as Queue;

  push(body: unknown, deliveries = 0): SimMessage {
    const m = { id: `m${++this.seq}`, body, deliveries };
    this.messages.push(m);
    return m;
  }
}

/** The delivery ids the messages name. */
const idsOf = (messages: SimMessage[]) =>
  messages.map((m) => (m.body as { deliveryId?: string }).deliveryId).filter((x): x is string => !!x);

/** What a consumer invocation did with a message, as the runtime sees it. */
type Settled = 'ack' | 'retry' | 'none';

function messageBatch(queue: string, taken: SimMessage[]) {
  const settled = new Map<string, Settled>(taken.map((m) => [m.id, 'none']));
  const all = { ack: false, retry: false };
  const batch: MessageBatch<unknown> = {
    queue,
    messages: taken.map((m) => ({
      id: m.id,
      timestamp: new Date(),
      body: m.body,
      attempts: m.deliveries + 1,
      ack: () => settled.set(m.id, 'ack'),
      retry: () => settled.set(m.id, 'retry'),
    })),
    metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } },
    ackAll: () => {
      all.ack = true;
    },
    retryAll: () => {
      all.retry = true;
    },
  };
  const outcome = (m: SimMessage, threw: boolean): Settled => {
    const s = settled.get(m.id)!;
    if (s !== 'none') return s;
    if (all.retry) return 'retry';
    if (all.ack) return 'ack';
    // Cloudflare Queues: a handler that throws retries every message not settled explicitly; one that returns acks them.
    return threw ? 'retry' : 'ack';
  };
  return { batch, outcome };
}

/**
 * One shard's D1 as the sequence sees it: its next `batch()` (after `skip` others) fails, before anything is written
 * or after it committed; or, while `down`, the whole database is unreachable (every batch and statement fails before
 * anything is written), as in an outage of that one database.
 */
class FaultyD1 {
  armed: { mode: 'before' | 'after'; skip: number } | null = null;
  down = false;
  readonly db: D1Database;
  constructor(inner: D1Database) {
    const outage = () => new Error('D1_ERROR: Network connection lost. (injected: the database is down)');
    const unreachable = (): D1PreparedStatement => {
      const fail = async () => {
        throw outage();
      };
      const st = { bind: () => st, first: fail, run: fail, all: fail, raw: fail };
      return st as unknown as D1PreparedStatement;
    };
    // Through wrapD1, so the outage and the armed fault also reach D1 sessions opened on this shard.
    this.db = wrapD1(inner, {
      prepare: (target, query) => (this.down ? unreachable() : target.prepare(query)),
      exec: (target, query) => (this.down ? Promise.reject(outage()) : target.exec(query)),
      batch: async (target, statements) => {
        if (this.down) throw outage();
        const a = this.armed;
        if (a && a.skip > 0) a.skip--;
        else if (a) {
          this.armed = null;
          if (a.mode === 'before') throw new Error('D1_ERROR: Network connection lost. (injected before commit)');
          await target.batch(statements);
          throw new Error('D1_ERROR: Network connection lost. (injected after commit: the answer was lost)');
        }
        return target.batch(statements);
      },
    });
  }
}

/**
 * The D1 of one shard as one consumer invocation sees it: the shard's faulty binding, with `afterLoad` run once its
 * first batch (the load) has settled — where the invocation is held while a producer or another invocation goes on.
 * `crash`: every later batch fails, as if the invocation died after its sends (nothing it writes afterwards reaches D1).
 */
function invocationDb(inner: D1Database, opts: { afterLoad?: () => Promise<void>; crash?: boolean }): D1Database {
  let loaded = false;
  return wrapD1(inner, {
    batch: async (target, statements) => {
      if (loaded) {
        if (opts.crash) throw new Error('the invocation died (injected)');
        return target.batch(statements);
      }
      loaded = true;
      try {
        return await target.batch(statements);
      } finally {
        await opts.afterLoad?.();
      }
    },
  });
}

/** A consumer invocation held after its load, and how to let it go on. */
interface Held {
  done: Promise<void>;
  release: () => void;
}

/** The data shards (docs/design.md#shards); each sequence puts HANDLES_PER_SHARD handles on each. */
const SHARDS = ['SHARD_0', 'SHARD_1'] as const;
type ShardName = (typeof SHARDS)[number];
const HANDLES_PER_SHARD = 2;
/** Handles of one sequence: alternately on SHARD_0 and SHARD_1. */
const HANDLES = SHARDS.length * HANDLES_PER_SHARD;
/**
 * The run's time budget grows with the sequences asked for (about 1.2 s per handle of a sequence on a loaded machine,
 * budgeted at 3 s), 10 min at least.
 */
const TIME_BUDGET_MS = Math.max(600_000, RUNS * HANDLES * 3_000);
/** Steps of one sequence: 40 spread over its 4 handles and the shared runtime. */
const MAX_COMMANDS = 40;

// ---------------------------------------------------------------------------------------------------------------
// One sequence's world: the runtime the handles share (queues, a faulty D1 per shard, the mail binding), and each
// handle's own view (its webhooks and what its clients were told)

interface SimWebhook {
  id: string;
  key: string;
  secret: string;
  deleted: boolean;
  /** Its stored secret was corrupted: nothing more may reach it. */
  corrupted?: boolean;
}

interface Accepted {
  notificationId: string;
  sourceEventId: string;
}

interface HttpRecord {
  what: string;
  status: number;
  contentType: string;
  body: string;
  faultArmed: boolean;
}

/**
 * The runtime one sequence's handles share: one simulated queue standing for every delivery queue (which one a delivery
 * takes changes no outcome here), its DLQ, and a faulty D1 per shard: a fault is injected on ONE shard, so a
 * consumer batch that mixes the shards' messages meets it only in that shard's part.
 */
class World {
  readonly queue = new SimQueue();
  readonly dlq: SimMessage[] = [];
  readonly faulty: Record<ShardName, FaultyD1> = {
    SHARD_0: new FaultyD1(env.SHARD_0),
    SHARD_1: new FaultyD1(env.SHARD_1),
  };
  readonly email = recordingEmail();
  readonly vars: Partial<Env>;
  readonly env: Env;
  readonly handles: Sim[] = [];
  /** Deliveries whose outcome a fault may have kept from being written: a second 2xx hit is allowed for them. */
  readonly unrecorded = new Set<string>();
  /** Consumer invocations held after their load while the producer that raced them finishes. */
  readonly inFlight: Held[] = [];
  /** The next this many `sendBatch` calls each start a consumer invocation that races the rest of the producer. */
  raceNextSend = 0;
  readonly interleavings = { racedSends: 0, twice: 0 };
  /** Deliveries the peak window deferred, then released. */
  released = 0;

  constructor() {
    this.vars = {
      ...SIM_VARS,
      SHARD_0: this.faulty.SHARD_0.db,
      SHARD_1: this.faulty.SHARD_1.db,
      ...allDeliveryQueues(this.queue.producer),
      EMAIL: this.email.binding,
    } as Partial<Env>;
    this.env = { ...env, ...this.vars } as Env;
    this.queue.onSend = (sent) => this.raceSend(sent);
  }

  /** HANDLES handles, alternately on SHARD_0 and SHARD_1, each with its peak window, owner email and 2 webhooks. */
  static async create(): Promise<World> {
    const world = new World();
    for (let k = 0; k < HANDLES; k++) world.handles.push(await Sim.create(world, SHARDS[k % SHARDS.length]!));
    return world;
  }

  /** Handle `k` of the sequence (any natural number picks one). */
  sim(k: number): Sim {
    return this.handles[k % this.handles.length]!;
  }

  /** The shard of the handle a queue message names. */
  private shardOfMessage(m: SimMessage): ShardName | undefined {
    const handle = (m.body as { handle?: string }).handle;
    return this.handles.find((s) => s.h.handle === handle)?.shard;
  }

  duplicateMessage(i: number): void {
    const m = this.queue.messages[i % Math.max(1, this.queue.messages.length)];
    if (m) this.queue.push(m.body, m.deliveries);
  }

  /**
   * One consumer invocation on up to `size` messages (of any handles, both shards). `crash`: the invocation dies after
   * its sends, before its write — the runtime then redelivers every message of the batch whatever the code called.
   */
  async consume(size: number, crash = false): Promise<void> {
    const taken = this.queue.messages.splice(0, size);
    if (taken.length) await this.invoke(taken, { crash });
  }

  /** `consume`, with the D1 batch of `shard`'s load (`skip 0`) or of its write (`skip 1`) failing. */
  async consumeFailing(
    shard: ShardName,
    size: number,
    fault: { mode: 'before' | 'after'; skip: number },
  ): Promise<void> {
    if (!this.queue.messages.length) return;
    this.faulty[shard].armed = { ...fault };
    await this.consume(size);
    this.faulty[shard].armed = null;
  }

  /**
   * Two consumer invocations on the same `size` messages at once (a duplicate delivery by Queues): on each shard both
   * load before either writes. The losing copy's request is the at-least-once duplicate a receiver may see.
   */
  async consumeTwice(size: number): Promise<void> {
    const taken = this.queue.messages.splice(0, size);
    if (!taken.length) return;
    this.interleavings.twice++;
    const copies = taken.map((m) => ({ ...m, id: `${m.id}-copy` }));
    for (const id of idsOf(taken)) this.unrecorded.add(id);
    // One barrier per shard: the two copies meet after their loads of that shard.
    const barriers = new Map(
      SHARDS.map((s) => {
        let open!: () => void;
        const opened = new Promise<void>((r) => {
          open = r;
        });
        const barrier: { arrived: number; open: () => void; opened: Promise<void> } = { arrived: 0, open, opened };
        return [s, barrier] as const;
      }),
    );
    const arrive = (s: ShardName) => {
      const b = barriers.get(s)!;
      if (++b.arrived === 2) b.open();
    };
    await Promise.all(
      [taken, copies].map(async (messages) => {
        const arrivedAt = new Set<ShardName>();
        const afterLoad = async (s: ShardName) => {
          arrivedAt.add(s);
          arrive(s);
          await barriers.get(s)!.opened;
        };
        await this.invoke(messages, { afterLoad });
        for (const s of SHARDS) if (!arrivedAt.has(s)) arrive(s);
      }),
    );
  }

  /**
   * A consumer invocation on a batch the producer just sent, started inside `sendBatch`: it loads the rows before the
   * producer goes on (to mark them `queued`, or to send its next chunk) and writes only once the producer's call is
   * over (`settleInFlight`).
   */
  private async raceSend(sent: SimMessage[]): Promise<void> {
    if (this.raceNextSend <= 0) return;
    this.raceNextSend--;
    this.interleavings.racedSends++;
    this.queue.messages = this.queue.messages.filter((m) => !sent.includes(m));
    let loaded!: () => void;
    const load = new Promise<void>((r) => {
      loaded = r;
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const done = this.invoke(sent, {
      afterLoad: async () => {
        loaded();
        await gate;
      },
    });
    this.inFlight.push({ done, release });
    await Promise.race([load, done]);
  }

  /** Lets every held invocation write, and waits for them (and for any they started in turn). */
  async settleInFlight(): Promise<void> {
    while (this.inFlight.length) {
      const held = this.inFlight.splice(0);
      for (const h of held) h.release();
      await Promise.all(held.map((h) => h.done));
    }
  }

  /** A producer step with a consumer racing its first send. */
  async racing(act: () => Promise<void>): Promise<void> {
    this.raceNextSend = 1;
    try {
      await act();
    } finally {
      this.raceNextSend = 0;
      await this.settleInFlight();
    }
  }

  /**
   * One invocation of the deliveries consumer on `taken`, each message then settled as Cloudflare Queues would. Each
   * shard's D1 is wrapped for this invocation on its own (its own load, its own hold).
   */
  private async invoke(
    taken: SimMessage[],
    opts: { crash?: boolean; afterLoad?: (shard: ShardName) => Promise<void> } = {},
  ): Promise<void> {
    // A fault armed on a shard may keep the outcomes of that shard's messages from being written — only those.
    const armedShards = new Set(SHARDS.filter((s) => this.faulty[s].armed !== null));
    const { batch, outcome } = messageBatch('notify-deliveries', taken);
    const shards = Object.fromEntries(
      SHARDS.map((s) => [
        s,
        invocationDb(this.faulty[s].db, {
          crash: opts.crash,
          ...(opts.afterLoad ? { afterLoad: () => opts.afterLoad!(s) } : {}),
        }),
      ]),
    );
    let threw = false;
    try {
      await consumeDeliveries(batch, { ...this.env, ...shards });
    } catch {
      threw = true;
    }
    const unrecorded = opts.crash
      ? taken
      : taken.filter((m) => {
          const s = this.shardOfMessage(m);
          return s !== undefined && armedShards.has(s);
        });
    for (const id of idsOf(unrecorded)) this.unrecorded.add(id);
    for (const m of taken) {
      const settled = opts.crash ? 'retry' : outcome(m, threw);
      if (settled === 'ack') continue;
      m.deliveries++;
      // max_retries = 7: a message delivered 8 times that is retried again goes to the dead-letter queue, whatever
      // the rows say.
      if (m.deliveries > MAX_RETRIES) this.dlq.push(m);
      else this.queue.messages.push(m);
    }
  }

  async processDlq(): Promise<void> {
    const taken = this.dlq.splice(0, 100);
    if (!taken.length) return;
    const { batch, outcome } = messageBatch('notify-deliveries-dlq', taken);
    let threw = false;
    try {
      await consumeDeadLetters(batch, this.env);
    } catch {
      threw = true;
    }
    for (const m of taken) if (outcome(m, threw) !== 'ack') this.dlq.push(m);
  }

  /** The minute cron's outbox sweep (every shard), `minutes` ahead of now (pending deliveries older than a minute). */
  async sweep(minutes: number): Promise<void> {
    try {
      await sweepOutbox(this.env, new Date(Date.now() + minutes * 60_000));
    } catch {
      // A failed sweep (one shard's fault) changes nothing it has not finished; the next cron run tries again.
    }
  }

  /** The minute job that disables failing webhooks and finishes any `webhook.endpoint_disabled` left to raise. */
  async autoDisable(): Promise<void> {
    try {
      await autoDisableFailingWebhooks(this.env, new Date());
    } catch {
      // A failed run changes nothing it has not finished; the next cron run tries again.
    }
  }

  /** The sweeper's release of deferred deliveries on every shard, with a clock past the windows' end and spread. */
  async release(): Promise<void> {
    for (const s of SHARDS) {
      try {
        this.released += (
          await releaseDeferred(this.env, this.faulty[s].db, new Date(Date.now() + 2 * 3_600_000))
        ).released;
      } catch {
        // A failed release changes nothing (one batch); the next run tries again.
      }
    }
  }

  /**
   * No faults any more: consume, dead-letter and sweep until nothing is open on any handle or the bound is hit, with a
   * purge of every handle after the first round.
   */
  async drain(): Promise<void> {
    await this.settleInFlight();
    for (const s of SHARDS) {
      this.faulty[s].armed = null;
      this.faulty[s].down = false;
    }
    this.queue.failNextSendBatch = 0;
    for (let round = 0; round < 60; round++) {
      await this.release();
      await this.sweep(2);
      await this.autoDisable();
      while (this.queue.messages.length) await this.consume(100);
      await this.processDlq();
      // A purge between the drain's first deliveries and its retries: what closed goes, what is still open waits.
      if (round === 0) for (const sim of this.handles) await sim.purge();
      if (this.queue.messages.length || this.dlq.length) continue;
      const open = await Promise.all(this.handles.map((sim) => sim.openDeliveries()));
      if (open.every((o) => o.length === 0)) return;
    }
  }
}

/** One handle of the sequence, on its shard: its webhooks, and what its clients were told. */
class Sim {
  readonly webhooks: SimWebhook[] = [];
  readonly accepted: Accepted[] = [];
  readonly http: HttpRecord[] = [];
  ownerEmailSet = false;
  /** How many times the owner default email was removed so far. */
  ownerRemovals = 0;
  /** Per notification: whether the owner default email was set when it was accepted, and removals until then. */
  readonly ownerAtIngest = new Map<string, { set: boolean; removals: number }>();
  /** Per webhook: PATCHes that enabled it (each allows one more `webhook.endpoint_disabled`). */
  readonly reEnables = new Map<string, number>();
  /** Events accepted through `…/events/batch`. */
  batched = 0;
  /** Ids of the handle's rows seen in D1 around each purge: one gone from D1 must be in an archive. */
  readonly seen = { notifications: new Set<string>(), deliveries: new Set<string>(), attempts: new Set<string>() };
  /** Per notification the purge took out of D1: how many events had been accepted by then. */
  readonly purgedAt = new Map<string, number>();
  /** Its own owner default email: the mails of each handle are told apart. */
  readonly ownerAddress: string;
  private readonly startedAt = new Date().toISOString();
  private sourceIds: string[] = [];

  private constructor(
    readonly world: World,
    readonly h: TestHandle,
    readonly shard: ShardName,
  ) {
    this.ownerAddress = `owner+${h.handle}@example.com`;
  }

  static async create(world: World, shard: ShardName): Promise<Sim> {
    const h = await setupHandle(shard);
    const sim = new Sim(world, h, shard);
    await sim.setPeakWindow();
    await sim.setOwnerEmail(true);
    await sim.createWebhook('ok');
    await sim.createWebhook('fail');
    return sim;
  }

  /** This handle's shard, as the sequence injects faults on it. */
  get d1(): FaultyD1 {
    return this.world.faulty[this.shard];
  }

  /** A fault that may hit this handle's requests: on its own shard's D1, or on the queue they all send to. */
  private faultArmed(): boolean {
    return this.d1.armed !== null || this.d1.down || this.world.queue.failNextSendBatch > 0;
  }

  private async api(
    what: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: any }> {
    const faultArmed = this.faultArmed();
    const res = await callWithVars(this.world.vars, method, `/v2/handles/${this.h.handle}${path}`, {
      token: this.h.token,
      body,
    });
    const text = await res.text();
    this.http.push({
      what,
      status: res.status,
      contentType: res.headers.get('content-type') ?? '',
      body: text,
      faultArmed,
    });
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }

  async createWebhook(behaviour: ReceiverBehaviour): Promise<void> {
    const key = unique('fm');
    await setMode(key, MODES[behaviour]);
    const r = await this.api('create webhook', 'POST', '/webhooks', { url: receiverUrl('mode', key) });
    if (r.status === 201) this.webhooks.push({ id: r.json.id, key, secret: r.json.secret, deleted: false });
  }

  /**
   * A peak window open for the next hour: off_peak events wait as deferred until the world's `release()`
   * (docs/design.md#peak-campaign-windows).
   */
  async setPeakWindow(): Promise<void> {
    const now = Date.now();
    const r = await this.api('peak window', 'PUT', '/notification-settings', {
      channels: { email: { enabled: true }, webhook: { enabled: true } },
      eventFilter: null,
      ownerFallback: 'critical',
      peakWindows: {
        timeZone: 'UTC',
        oneOff: [{ start: new Date(now - 60_000).toISOString(), end: new Date(now + 3_600_000).toISOString() }],
      },
    });
    if (r.status !== 200) throw new Error(`peak window: ${r.status}`);
  }

  async setOwnerEmail(on: boolean): Promise<void> {
    const r = await this.api('owner email', 'PUT', '/notifications/owner-default-email', {
      email: on ? this.ownerAddress : null,
    });
    // A write that failed after it committed answered 5xx but did change it: take the state from D1, not the answer.
    const nowSet = r.status === 200 ? on : await this.ownerEmailInD1();
    if (this.ownerEmailSet && !nowSet) this.ownerRemovals++;
    this.ownerEmailSet = nowSet;
  }

  private async ownerEmailInD1(): Promise<boolean> {
    const row = await env[this.shard]
      .prepare(`SELECT 1 AS x FROM email_subscriptions WHERE handle = ? AND kind = 'owner_default'`)
      .bind(this.h.handle)
      .first();
    return row !== null;
  }

  async ingest(type: string, repeat: number | null, offPeak = false): Promise<void> {
    const sourceEventId = this.sourceIdFor(repeat);
    const owner = { set: this.ownerEmailSet, removals: this.ownerRemovals };
    const r = await this.api(`ingest ${type}`, 'POST', '/events', {
      type,
      data: { orderId: unique('ord') },
      sourceEventId,
      ...(offPeak ? { delivery: 'off_peak' } : {}),
    });
    if (r.status !== 202) return;
    this.record(sourceEventId, r.json, owner);
  }

  /** `POST …/events/batch` (docs/design.md#batch-publish): each stored or duplicate result counts as accepted. */
  async publishBatch(events: { type: string; repeat: number | null }[], offPeak: boolean): Promise<void> {
    const owner = { set: this.ownerEmailSet, removals: this.ownerRemovals };
    const sources = events.map((e) => this.sourceIdFor(e.repeat));
    const r = await this.api('publish batch', 'POST', '/events/batch', {
      ...(offPeak ? { delivery: 'off_peak' } : {}),
      events: events.map((e, i) => ({ type: e.type, data: { orderId: unique('ord') }, sourceEventId: sources[i] })),
    });
    if (r.status !== 200) return;
    for (const item of r.json.results as Array<{ index: number; status: number; notificationId?: string }>) {
      if (item.status !== 202 && item.status !== 200) continue;
      this.batched++;
      this.record(
        sources[item.index]!,
        { notificationId: item.notificationId!, duplicate: item.status === 200 },
        owner,
      );
    }
  }

  private sourceIdFor(repeat: number | null): string {
    return repeat !== null && this.sourceIds.length ? this.sourceIds[repeat % this.sourceIds.length]! : unique('src');
  }

  private record(
    sourceEventId: string,
    answer: { notificationId: string; duplicate: boolean },
    owner: { set: boolean; removals: number },
  ): void {
    if (!this.sourceIds.includes(sourceEventId)) this.sourceIds.push(sourceEventId);
    this.accepted.push({ notificationId: answer.notificationId, sourceEventId });
    if (!answer.duplicate && !this.ownerAtIngest.has(answer.notificationId))
      this.ownerAtIngest.set(answer.notificationId, owner);
  }

  async patchWebhook(i: number, enabled: boolean): Promise<void> {
    const w = this.live()[i % Math.max(1, this.live().length)];
    if (!w) return;
    const r = await this.api('patch webhook', 'PATCH', `/webhooks/${w.id}`, { enabled });
    if (enabled && r.status === 200) this.reEnables.set(w.id, (this.reEnables.get(w.id) ?? 0) + 1);
  }

  /** `POST …/webhooks/{id}/recover`: redrives its dead and skipped deliveries (a producer that sends). */
  async recover(i: number): Promise<void> {
    const w = this.live()[i % Math.max(1, this.live().length)];
    if (w) await this.api('recover webhook', 'POST', `/webhooks/${w.id}/recover`, { since: this.startedAt });
  }

  /** `POST …/deliveries/{id}/retry` on one of the handle's dead or skipped deliveries. */
  async retryDelivery(i: number): Promise<void> {
    const { results } = await env[this.shard]
      .prepare(
        `SELECT id FROM deliveries WHERE handle = ? AND kind = 'event' AND status IN ('dead', 'skipped') ORDER BY id`,
      )
      .bind(this.h.handle)
      .all<{ id: string }>();
    const d = results[i % Math.max(1, results.length)];
    if (d) await this.api('retry delivery', 'POST', `/deliveries/${d.id}/retry`);
  }

  async deleteWebhook(i: number): Promise<void> {
    const w = this.live()[i % Math.max(1, this.live().length)];
    if (!w) return;
    const r = await this.api('delete webhook', 'DELETE', `/webhooks/${w.id}`);
    if (r.status === 204) w.deleted = true;
  }

  async setReceiver(i: number, behaviour: ReceiverBehaviour): Promise<void> {
    const w = this.webhooks[i % this.webhooks.length];
    if (w) await setMode(w.key, MODES[behaviour]);
  }

  /**
   * Corrupts a webhook's stored secret, so every attempt for it throws inside the consumer (an exception in the
   * middle of a batch): that message alone is retried until the queue hands it to the DLQ, the rest go on.
   */
  async corruptSecret(i: number): Promise<void> {
    const w = this.live()[i % Math.max(1, this.live().length)];
    if (!w) return;
    await env[this.shard]
      .prepare(`UPDATE webhook_subscriptions SET secret_encrypted = 'not-a-ciphertext' WHERE id = ?`)
      .bind(w.id)
      .run();
    w.corrupted = true;
  }

  live(): SimWebhook[] {
    return this.webhooks.filter((w) => !w.deleted);
  }

  /** The world's `consume`, while this handle's webhook `i` has corrupt custom headers: its messages crash once. */
  async consumeCrashingOnce(i: number, size: number): Promise<void> {
    const w = this.live()[i % Math.max(1, this.live().length)];
    const d1 = env[this.shard];
    const row = w
      ? await d1.prepare('SELECT headers FROM webhook_subscriptions WHERE id = ?').bind(w.id).first<{
          headers: string | null;
        }>()
      : null;
    if (!w || !row) return this.world.consume(size);
    await d1.prepare(`UPDATE webhook_subscriptions SET headers = 'not json' WHERE id = ?`).bind(w.id).run();
    try {
      await this.world.consume(size);
    } finally {
      await d1.prepare('UPDATE webhook_subscriptions SET headers = ? WHERE id = ?').bind(row.headers, w.id).run();
    }
  }

  /** The handle's notification ids in D1 now; every row id is added to `seen`. */
  private async snapshot(): Promise<Set<string>> {
    const d1 = env[this.shard];
    const [n, d, a] = await d1.batch<{ id: string }>([
      d1.prepare('SELECT id FROM notifications WHERE handle = ?').bind(this.h.handle),
      // Test sends (no notification) are deleted without an archive by design: the rows of notifications are tracked.
      d1.prepare('SELECT id FROM deliveries WHERE handle = ? AND notification_id IS NOT NULL').bind(this.h.handle),
      d1
        .prepare(
          `SELECT a.id FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE d.handle = ? AND d.notification_id IS NOT NULL`,
        )
        .bind(this.h.handle),
    ]);
    for (const r of d!.results) this.seen.deliveries.add(r.id);
    for (const r of a!.results) this.seen.attempts.add(r.id);
    const ids = new Set(n!.results.map((r) => r.id));
    for (const id of ids) this.seen.notifications.add(id);
    return ids;
  }

  /**
   * The retention purge on this handle (through its shard's faulty D1: an armed fault may hit it), with a clock that
   * makes everything stored so far expired. `race`: a single step, with a redrive of a dead delivery and a consumer
   * run between its verified archive and its delete (the guard must then refuse, or find the range untouched).
   */
  async purge(race?: { i: number; n: number }): Promise<void> {
    const before = await this.snapshot();
    const now = new Date(Date.now() + PURGE_AHEAD_MS);
    try {
      if (!race) await purgeHandle(this.world.env, this.h.handle, PURGE_RETENTION_DAYS, now);
      else {
        await purgeStep(this.world.env, this.h.handle, PURGE_RETENTION_DAYS, now, {
          beforeDelete: async () => {
            await this.retryDelivery(race.i);
            await this.world.consume(race.n);
            await this.snapshot();
          },
        });
      }
    } catch {
      // An injected D1 fault: the step deleted a whole range or nothing; check 10 finds out which after the drain.
    }
    const after = await this.snapshot();
    for (const id of before) if (!after.has(id)) this.purgedAt.set(id, this.accepted.length);
  }

  async openDeliveries(): Promise<Array<{ id: string; status: string }>> {
    const { results } = await env[this.shard]
      .prepare(
        `SELECT id, status FROM deliveries WHERE handle = ? AND status IN ('deferred', 'pending', 'queued', 'retrying')`,
      )
      .bind(this.h.handle)
      .all<{ id: string; status: string }>();
    return results;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Commands: most act on one handle (`h<k>`, k picked with the command), the rest on the shared runtime; a D1 fault
// names the shard it is injected on.

class Step implements fc.AsyncCommand<object, World> {
  constructor(
    readonly label: string,
    readonly act: (w: World) => Promise<void> | void,
  ) {}
  check(): boolean {
    return true;
  }
  async run(_m: object, w: World): Promise<void> {
    await this.act(w);
    await w.settleInFlight();
  }
  toString(): string {
    return this.label;
  }
}

/** A step on handle `k` of the sequence. */
const onHandle = (k: number, label: string, act: (s: Sim) => Promise<void>) =>
  new Step(`h${k % HANDLES}.${label}`, (w) => act(w.sim(k)));
const handle = fc.nat(HANDLES - 1);
const shard = fc.constantFrom(...SHARDS);

const behaviour = fc.constantFrom<ReceiverBehaviour>('ok', 'ok', 'fail', 'timeout', 'gone');
const ingest = fc
  .record({ k: handle, type: fc.constantFrom(...EVENT_TYPES), repeat: fc.option(fc.nat(), { freq: 4 }) })
  .map(({ k, type, repeat }) =>
    onHandle(k, `ingest(${type}${repeat === null ? '' : `, repeat #${repeat}`})`, (s) => s.ingest(type, repeat)),
  );
const offPeak = fc
  .record({ k: handle, type: fc.constantFrom(...EVENT_TYPES), repeat: fc.option(fc.nat(), { freq: 4 }) })
  .map(({ k, type, repeat }) =>
    onHandle(k, `ingest(${type}, off_peak${repeat === null ? '' : `, repeat #${repeat}`})`, (s) =>
      s.ingest(type, repeat, true),
    ),
  );
const batch = fc
  .tuple(
    handle,
    fc.array(fc.record({ type: fc.constantFrom(...EVENT_TYPES), repeat: fc.option(fc.nat(), { freq: 3 }) }), {
      minLength: 1,
      maxLength: 5,
    }),
    fc.boolean(),
  )
  .map(([k, events, off]) =>
    onHandle(
      k,
      `publishBatch(${events.map((e) => `${e.type}${e.repeat === null ? '' : `#${e.repeat}`}`).join(', ')}${off ? ', off_peak' : ''})`,
      (s) => s.publishBatch(events, off),
    ),
  );
// Listed more than once to be picked more often: events and consumer runs are what the faults act on.
const commands = [
  ingest,
  ingest,
  ingest,
  offPeak,
  batch,
  batch,
  fc.constant(new Step('releaseDeferred (the window ended)', (w) => w.release())),
  fc.tuple(handle, behaviour).map(([k, b]) => onHandle(k, `createWebhook(${b})`, (s) => s.createWebhook(b))),
  fc
    .tuple(handle, fc.nat(), fc.boolean())
    .map(([k, i, on]) => onHandle(k, `webhook#${i}.enabled=${on}`, (s) => s.patchWebhook(i, on))),
  fc.tuple(handle, fc.nat()).map(([k, i]) => onHandle(k, `deleteWebhook#${i}`, (s) => s.deleteWebhook(i))),
  fc
    .tuple(handle, fc.nat(), behaviour)
    .map(([k, i, b]) => onHandle(k, `receiver#${i}→${b}`, (s) => s.setReceiver(i, b))),
  fc.tuple(handle, fc.boolean()).map(([k, on]) => onHandle(k, `ownerEmail=${on}`, (s) => s.setOwnerEmail(on))),
  fc.integer({ min: 1, max: 2 }).map(
    (n) =>
      new Step(`failNextSendBatch(${n})`, (w) => {
        w.queue.failNextSendBatch = n;
      }),
  ),
  fc
    .record({
      shard,
      mode: fc.constantFrom<'before' | 'after'>('before', 'after'),
      skip: fc.integer({ min: 0, max: 2 }),
    })
    .map(
      ({ shard: s, ...a }) =>
        new Step(`failD1Batch(${s}, ${a.mode}, skip ${a.skip})`, (w) => {
          w.faulty[s].armed = { ...a };
        }),
    ),
  fc.nat().map((i) => new Step(`duplicateMessage#${i}`, (w) => w.duplicateMessage(i))),
  fc.tuple(handle, fc.nat()).map(([k, i]) => onHandle(k, `corruptSecret#${i}`, (s) => s.corruptSecret(i))),
  fc.integer({ min: 1, max: 10 }).map((n) => new Step(`consume(${n})`, (w) => w.consume(n))),
  fc.integer({ min: 1, max: 10 }).map((n) => new Step(`consume(${n})`, (w) => w.consume(n))),
  fc.integer({ min: 1, max: 10 }).map((n) => new Step(`consume(${n}, crash)`, (w) => w.consume(n, true))),
  fc.constantFrom(0, 2).map((m) => new Step(`sweep(+${m} min)`, (w) => w.sweep(m))),
  fc.constant(new Step('processDlq', (w) => w.processDlq())),
  // Interleavings: a consumer racing a producer's writes, two invocations on the same messages, faults inside one.
  fc
    .tuple(handle, fc.constantFrom(...EVENT_TYPES))
    .map(([k, type]) =>
      onHandle(k, `ingest(${type}), a consumer racing it`, (s) => s.world.racing(() => s.ingest(type, null))),
    ),
  fc
    .tuple(fc.constantFrom(0, 2), fc.boolean())
    .map(
      ([m, race]) =>
        new Step(`sweep(+${m} min)${race ? ', a consumer racing it' : ''}`, (w) =>
          race ? w.racing(() => w.sweep(m)) : w.sweep(m),
        ),
    ),
  fc
    .tuple(handle, fc.nat(), fc.boolean())
    .map(([k, i, race]) =>
      onHandle(k, `recover#${i}${race ? ', a consumer racing it' : ''}`, (s) =>
        race ? s.world.racing(() => s.recover(i)) : s.recover(i),
      ),
    ),
  fc
    .tuple(handle, fc.nat(), fc.boolean())
    .map(([k, i, race]) =>
      onHandle(k, `retryDelivery#${i}${race ? ', a consumer racing it' : ''}`, (s) =>
        race ? s.world.racing(() => s.retryDelivery(i)) : s.retryDelivery(i),
      ),
    ),
  fc.integer({ min: 1, max: 10 }).map((n) => new Step(`consumeTwice(${n})`, (w) => w.consumeTwice(n))),
  fc.integer({ min: 1, max: 10 }).map((n) => new Step(`consumeTwice(${n})`, (w) => w.consumeTwice(n))),
  fc
    .tuple(shard, fc.integer({ min: 1, max: 10 }), fc.constantFrom<'before' | 'after'>('before', 'after'), fc.nat(1))
    .map(
      ([s, n, mode, skip]) =>
        new Step(`consume(${n}), ${s}'s ${skip ? 'write' : 'load'} failing ${mode} commit`, (w) =>
          w.consumeFailing(s, n, { mode, skip }),
        ),
    ),
  fc
    .tuple(handle, fc.nat(), fc.integer({ min: 1, max: 10 }))
    .map(([k, i, n]) => onHandle(k, `consume(${n}), webhook#${i} crashing once`, (s) => s.consumeCrashingOnce(i, n))),
  fc.constant(new Step('autoDisable', (w) => w.autoDisable())),
  // Retention: everything stored so far expired; a purge alone, or with a redrive and a consumer racing its delete.
  fc.nat(HANDLES - 1).map((k) => onHandle(k, 'purge', (s) => s.purge())),
  fc
    .tuple(handle, fc.nat(), fc.integer({ min: 1, max: 10 }))
    .map(([k, i, n]) =>
      onHandle(k, `purge step, retryDelivery#${i} and consume(${n}) racing its delete`, (s) => s.purge({ i, n })),
    ),
];

// ---------------------------------------------------------------------------------------------------------------
// The checker

interface NotificationRow {
  id: string;
  type: string;
  data: string;
  status: string;
  severity: string;
  source_event_id: string | null;
  open_count: number;
  succeeded_count: number;
  dead_count: number;
}
interface DeliveryRow {
  id: string;
  notification_id: string | null;
  status: string;
  status_reason: string | null;
  recipient_type: string;
  channel: string;
  subscription_id: string | null;
  attempt_count: number;
  retry_base: number;
}
interface AttemptRow {
  id: string;
  delivery_id: string;
  attempt_number: number;
  outcome: string;
  http_status: number | null;
}

/**
 * Check 10, and what the purged archives hold (as D1 rows, for checks 1–9). Every purged archive's object is read back
 * from the real local bucket: its size and SHA-256 are the recorded ones, it gunzips to one JSON object per line, one
 * line per notification of its range, each closed.
 */
async function archivedRows(
  sim: Sim,
  inD1: { notifications: Set<string>; deliveries: Set<string>; attempts: Set<string> },
) {
  const rows = (
    await anyShard
      .prepare(
        `SELECT id, status, object_key, bytes, sha256, first_notification_id AS first, last_notification_id AS last,
         notification_count, delivery_count, attempt_count FROM archives WHERE handle = ? ORDER BY id`,
      )
      .bind(sim.h.handle)
      .all<{
        id: string;
        status: string;
        object_key: string;
        bytes: number;
        sha256: string;
        first: string;
        last: string;
        notification_count: number;
        delivery_count: number;
        attempt_count: number;
      }>()
  ).results;
  const out = { notifications: [] as NotificationRow[], deliveries: [] as DeliveryRow[], attempts: [] as AttemptRow[] };
  const times = new Map<string, number>();
  const once = (id: string) => times.set(id, (times.get(id) ?? 0) + 1);
  for (const row of rows.filter((r) => r.status === 'purged')) {
    const object = await env.ARCHIVE.get(row.object_key);
    expect(object, `archive ${row.id}: no object at ${row.object_key}`).not.toBeNull();
    const bytes = new Uint8Array(await object!.arrayBuffer());
    expect({ bytes: bytes.byteLength, sha256: await sha256Hex(bytes) }, `archive ${row.id} as read back`).toEqual({
      bytes: row.bytes,
      sha256: row.sha256,
    });
    const text = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text();
    expect(text.endsWith('\n'), `archive ${row.id} ends with a newline`).toBe(true);
    const lines = text
      .slice(0, -1)
      .split('\n')
      .map((l) => JSON.parse(l) as { notification: Record<string, any>; deliveries: Array<Record<string, any>> });
    const counts = { notifications: lines.length, deliveries: 0, attempts: 0 };
    for (const { notification: n, deliveries } of lines) {
      expect(n.id >= row.first && n.id <= row.last, `${n.id} outside archive ${row.id}'s range`).toBe(true);
      expect(n.openCount, `${n.id} purged while open`).toBe(0);
      once(n.id);
      out.notifications.push({
        id: n.id,
        type: n.type,
        data: JSON.stringify(n.data),
        status: n.status,
        severity: n.severity,
        source_event_id: n.sourceEventId,
        open_count: n.openCount,
        succeeded_count: n.succeededCount,
        dead_count: n.deadCount,
      });
      for (const d of deliveries) {
        expect(['pending', 'queued', 'retrying'], `${d.id} purged while ${d.status}`).not.toContain(d.status);
        once(d.id);
        counts.deliveries++;
        out.deliveries.push({
          id: d.id,
          notification_id: d.notificationId,
          status: d.status,
          status_reason: d.statusReason,
          recipient_type: d.recipientType,
          channel: d.channel,
          subscription_id: d.subscriptionId,
          attempt_count: d.attemptCount,
          retry_base: d.retryBase,
        });
        for (const a of d.attempts as Array<Record<string, any>>) {
          once(a.id);
          counts.attempts++;
          out.attempts.push({
            id: a.id,
            delivery_id: a.deliveryId,
            attempt_number: a.attemptNumber,
            outcome: a.outcome,
            http_status: a.httpStatus,
          });
        }
      }
    }
    expect(counts, `archive ${row.id}'s lines against its row`).toEqual({
      notifications: row.notification_count,
      deliveries: row.delivery_count,
      attempts: row.attempt_count,
    });
  }
  // Every row that left D1 is in exactly one purged archive; no archived row is still in D1.
  for (const kind of ['notifications', 'deliveries', 'attempts'] as const) {
    for (const id of sim.seen[kind]) {
      if (!inD1[kind].has(id)) expect(times.get(id) ?? 0, `${id} left D1: purged archives holding it`).toBe(1);
    }
  }
  for (const [id, n] of times) {
    expect(n, `${id}: purged archives holding it`).toBe(1);
    const still = inD1.notifications.has(id) || inD1.deliveries.has(id) || inD1.attempts.has(id);
    expect(still, `${id} is in a purged archive and still in D1`).toBe(false);
  }
  return out;
}

/** Runs every check; answers the deliveries of the sequence (in D1 or archived) and how many are dead. */
async function check(sim: Sim): Promise<{ deliveries: number; dead: number }> {
  const handle = sim.h.handle;
  const [nRows, dRows, aRows] = await (await shardOf(handle)).batch([
    (await shardOf(handle))
      .prepare(
        `SELECT id, type, data, status, severity, source_event_id, open_count, succeeded_count, dead_count
         FROM notifications WHERE handle = ?`,
      )
      .bind(handle),
    (await shardOf(handle))
      .prepare(
        `SELECT id, notification_id, status, status_reason, recipient_type, channel, subscription_id, attempt_count,
         retry_base FROM deliveries WHERE handle = ?`,
      )
      .bind(handle),
    (await shardOf(handle))
      .prepare(
        `SELECT a.id, a.delivery_id, a.attempt_number, a.outcome, a.http_status
         FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.handle = ?`,
      )
      .bind(handle),
  ]);
  const d1Notifications = nRows!.results as unknown as NotificationRow[];
  const d1Deliveries = dRows!.results as unknown as DeliveryRow[];
  const d1Attempts = aRows!.results as unknown as AttemptRow[];
  // 10. What the purge took out of D1 is archived, exactly once, closed; from here on archived rows count as present.
  const archived = await archivedRows(sim, {
    notifications: new Set(d1Notifications.map((r) => r.id)),
    deliveries: new Set(d1Deliveries.map((r) => r.id)),
    attempts: new Set(d1Attempts.map((r) => r.id)),
  });
  const notifications = [...d1Notifications, ...archived.notifications];
  const deliveries = [...d1Deliveries, ...archived.deliveries];
  const attempts = [...d1Attempts, ...archived.attempts].sort((a, b) =>
    a.delivery_id === b.delivery_id ? a.attempt_number - b.attempt_number : a.delivery_id < b.delivery_id ? -1 : 1,
  );
  const byId = new Map(notifications.map((n) => [n.id, n]));

  // 1. Accepted events are stored (in D1 or archived); a repeated sourceEventId maps to one notification, or to a new
  // one once the one it answered before was purged (docs/design.md#retention-and-archives), and only then.
  const bySource = new Map<string, string>();
  for (const [i, a] of sim.accepted.entries()) {
    expect(
      byId.has(a.notificationId),
      `accepted event ${a.sourceEventId} → ${a.notificationId} has no notification`,
    ).toBe(true);
    const first = bySource.get(a.sourceEventId) ?? a.notificationId;
    const purgedAt = sim.purgedAt.get(first);
    if (purgedAt === undefined || purgedAt > i) {
      expect(a.notificationId, `sourceEventId ${a.sourceEventId} answered with two notifications`).toBe(first);
    }
    bySource.set(a.sourceEventId, a.notificationId);
  }
  const sourceCounts = new Map<string, number>();
  for (const n of d1Notifications)
    if (n.source_event_id) sourceCounts.set(n.source_event_id, (sourceCounts.get(n.source_event_id) ?? 0) + 1);
  for (const [src, count] of sourceCounts) expect(count, `sourceEventId ${src} stored ${count} times`).toBe(1);

  // 2–3. Every delivery terminal; counters agree with the rows.
  const open = deliveries.filter((d) => ['deferred', 'pending', 'queued', 'retrying'].includes(d.status));
  expect(
    open,
    `open deliveries after the drain (queue ${sim.world.queue.messages.length}, dlq ${sim.world.dlq.length})`,
  ).toEqual([]);
  for (const n of notifications) {
    const mine = deliveries.filter((d) => d.notification_id === n.id);
    const counts = { open: n.open_count, succeeded: n.succeeded_count, dead: n.dead_count };
    expect(counts, `counters of ${n.id}`).toEqual({
      open: 0,
      succeeded: mine.filter((d) => d.status === 'succeeded').length,
      dead: mine.filter((d) => d.status === 'dead').length,
    });
    expect(
      ['delivered', 'partially_failed', 'failed', 'no_recipients', 'undeliverable'],
      `status of ${n.id}`,
    ).toContain(n.status);
  }

  // 4. What the receivers saw, against the attempts recorded. Every send is recorded as exactly one attempt, so a
  // receiver sees a webhook-id as often as it has attempt rows, and never after the attempt that succeeded — unless a
  // fault kept an outcome from being written (then the redelivery is the at-least-once duplicate Queues allows).
  const attemptsOf = new Map<string, typeof attempts>();
  for (const a of attempts) attemptsOf.set(a.delivery_id, [...(attemptsOf.get(a.delivery_id) ?? []), a]);
  const hitsOf = new Map<string, Hit[]>();
  for (const w of sim.webhooks) {
    for (const hit of await hits(w.key)) {
      const id = hit.headers['webhook-id']!;
      expect(() => new Webhook(w.secret).verify(hit.body, hit.headers), `signature of ${id}`).not.toThrow();
      hitsOf.set(id, [...(hitsOf.get(id) ?? []), hit]);
    }
  }
  for (const d of deliveries.filter((x) => x.channel === 'webhook')) {
    const seenBy = hitsOf.get(d.id) ?? [];
    const recorded = attemptsOf.get(d.id) ?? [];
    expect(new Set(seenBy.map((h) => h.body)).size, `different bodies under webhook-id ${d.id}`).toBeLessThanOrEqual(1);
    const succeededAt = recorded.findIndex((a) => a.outcome === 'succeeded');
    if (succeededAt !== -1) expect(succeededAt, `attempts recorded after ${d.id} succeeded`).toBe(recorded.length - 1);
    // An attempt with an HTTP status was answered, so the receiver has it; a timed-out one may not have arrived yet.
    const answered = recorded.filter((a) => a.http_status !== null).length;
    expect(seenBy.length, `${d.id}: fewer requests than answered attempts`).toBeGreaterThanOrEqual(answered);
    if (!sim.world.unrecorded.has(d.id)) {
      expect(
        seenBy.length,
        `${d.id}: ${seenBy.length} requests for ${recorded.length} recorded attempts, no fault to explain it`,
      ).toBeLessThanOrEqual(recorded.length);
    }
    if (d.status === 'succeeded') {
      expect(
        seenBy.some((h) => h.response !== null && h.response.status >= 200 && h.response.status < 300),
        `${d.id} succeeded without a 2xx`,
      ).toBe(true);
    }
  }

  // 5. Critical events reached the owner default email, or are undeliverable.
  for (const n of notifications.filter((x) => x.severity === 'critical')) {
    // Nobody received it and nobody was even tried: that must say `undeliverable`, not `no_recipients`.
    if (n.succeeded_count === 0 && n.dead_count === 0) {
      expect(n.status, `critical notification ${n.id} reached no one`).toBe('undeliverable');
      continue;
    }
    const owner = deliveries.find((d) => d.notification_id === n.id && d.recipient_type === 'owner_default');
    const atIngest = sim.ownerAtIngest.get(n.id);
    // Client events: the owner email set at ingest must have been sent to, unless the owner removed it before the send.
    // System events (endpoint disabled) are the service's own; they are checked whenever they have an owner delivery.
    if (atIngest ? !atIngest.set : owner === undefined) continue;
    if (owner?.status === 'cancelled' && owner.status_reason === 'subscription_deleted') {
      expect(
        atIngest === undefined || sim.ownerRemovals > atIngest.removals,
        `owner delivery of ${n.id} cancelled though the address was never removed`,
      ).toBe(true);
      continue;
    }
    expect(owner?.status, `critical notification ${n.id} did not reach the owner default email`).toBe('succeeded');
  }
  const ownerMails = sim.world.email.sent.filter((m) => m.to === sim.ownerAddress).length;
  expect(ownerMails).toBeGreaterThanOrEqual(
    deliveries.filter((d) => d.recipient_type === 'owner_default' && d.status === 'succeeded').length,
  );

  // 7. Attempt rows are numbered 1…attempt_count: none written without its move, none twice.
  for (const d of deliveries) {
    expect(
      (attemptsOf.get(d.id) ?? []).map((a) => a.attempt_number),
      `attempt rows of ${d.id} (${d.status}, attempt_count ${d.attempt_count})`,
    ).toEqual(Array.from({ length: d.attempt_count }, (_, i) => i + 1));
  }

  // 8. `dead` agrees with the rows: the schedule spent, or a row that crashes every consumer that loads it.
  const corrupted = new Set(sim.webhooks.filter((w) => w.corrupted).map((w) => w.id));
  for (const d of deliveries.filter((x) => x.status === 'dead')) {
    if (d.status_reason === 'retries_exhausted') {
      expect(d.attempt_count - d.retry_base, `${d.id} dead (retries_exhausted) with attempts left`).toBe(
        SCHEDULE_ATTEMPTS,
      );
    } else if (d.status_reason === 'redelivery_exhausted') {
      expect(corrupted.has(d.subscription_id ?? ''), `${d.id} dead (redelivery_exhausted), its row not corrupt`).toBe(
        true,
      );
    }
  }

  // 9. Every webhook the service disabled has its webhook.endpoint_disabled notification, each disable only one.
  const disabledAlerts = new Map<string, number>();
  for (const n of notifications.filter((x) => x.type === 'webhook.endpoint_disabled')) {
    const id = (JSON.parse(n.data) as { subscriptionId: string }).subscriptionId;
    disabledAlerts.set(id, (disabledAlerts.get(id) ?? 0) + 1);
  }
  for (const w of sim.webhooks) {
    const alerts = disabledAlerts.get(w.id) ?? 0;
    expect(alerts, `webhook.endpoint_disabled notifications for ${w.id}`).toBeLessThanOrEqual(
      1 + (sim.reEnables.get(w.id) ?? 0),
    );
    const row = await anyShard
      .prepare('SELECT enabled, disabled_reason FROM webhook_subscriptions WHERE id = ?')
      .bind(w.id)
      .first<{ enabled: number; disabled_reason: string | null }>();
    if (row && !row.enabled && row.disabled_reason !== 'disabled_by_user') {
      expect(alerts, `${w.id} disabled (${row.disabled_reason}) without webhook.endpoint_disabled`).toBeGreaterThan(0);
    }
  }

  // 6. Errors: every 5xx is problem+json with a request id, and only when a fault was armed.
  for (const r of sim.http) {
    if (r.status < 500) continue;
    expect(r.contentType, `${r.what} → ${r.status} without problem+json`).toContain('application/problem+json');
    const problem = JSON.parse(r.body) as { status?: number; requestId?: string };
    expect(problem.status).toBe(r.status);
    expect(problem.requestId).toBeTruthy();
    expect(r.faultArmed, `${r.what} → ${r.status} with no fault injected: ${r.body}`).toBe(true);
    // A storage fault is a 503 (retry), not a 500 that reads like a bug.
    expect(r.status, `${r.what}: ${r.body}`).toBe(503);
  }
  return { deliveries: deliveries.length, dead: deliveries.filter((d) => d.status === 'dead').length };
}

describe('model-based faults: no silent drops', () => {
  it(
    `${RUNS} random sequences of ingests, subscription changes, receiver failures and injected faults drain with nothing lost`,
    async () => {
      console.warn(`fault-model: ${RUNS} runs, seed ${SEED} (replay: FAULT_SEED=${SEED})`);
      const stats = {
        sequences: 0,
        commands: 0,
        accepted: 0,
        batched: 0,
        released: 0,
        deliveries: 0,
        dead: 0,
        unrecorded: 0,
        racedSends: 0,
        twice: 0,
        purgedNotifications: 0,
        fiveHundreds: 0,
        errorLogs: 0,
        handles: { SHARD_0: 0, SHARD_1: 0 },
      };
      // Injected faults make the Worker log an error line each (that is its job); thousands of them would bury the
      // run's output, so they are counted here instead of printed.
      const quiet = () => void stats.errorLogs++;
      const errorSpy = vi.spyOn(console, 'error').mockImplementation(quiet);
      const warnSpy = vi.spyOn(console, 'warn').mockImplementation(quiet);
      await fc
        .assert(
          fc.asyncProperty(fc.commands(commands, { maxCommands: MAX_COMMANDS, size: 'medium' }), async (cmds) => {
            const world = await World.create();
            await fc.asyncModelRun(() => ({ model: {}, real: world }), cmds);
            await world.drain();
            // Every handle checked on its own: nothing lost, terminal exactly once, whichever shard a fault was on.
            for (const sim of world.handles) {
              const counted = await check(sim);
              stats.accepted += sim.accepted.length;
              stats.batched += sim.batched;
              stats.purgedNotifications += sim.purgedAt.size;
              stats.fiveHundreds += sim.http.filter((r) => r.status >= 500).length;
              stats.deliveries += counted.deliveries;
              stats.dead += counted.dead;
              stats.handles[sim.shard]++;
            }
            stats.sequences++;
            stats.commands += [...cmds].length;
            stats.unrecorded += world.unrecorded.size;
            stats.racedSends += world.interleavings.racedSends;
            stats.twice += world.interleavings.twice;
            stats.released += world.released;
          }),
          { numRuns: RUNS, seed: SEED, endOnFailure: false },
        )
        .finally(() => {
          errorSpy.mockRestore();
          warnSpy.mockRestore();
        });
      console.warn(`fault-model: ${JSON.stringify(stats)}`);
      // The sequences did exercise the pipeline (a generator that produced nothing would pass every check).
      expect(stats.accepted).toBeGreaterThan(RUNS);
      expect(stats.deliveries).toBeGreaterThan(RUNS);
      expect(stats.dead).toBeGreaterThan(0);
      // And the interleavings did happen: consumers raced producers, and ran the same messages twice at once.
      expect(stats.racedSends).toBeGreaterThan(0);
      expect(stats.twice).toBeGreaterThan(0);
      // And batches were published, and deferred deliveries released after their window.
      expect(stats.batched).toBeGreaterThan(0);
      expect(stats.released).toBeGreaterThan(0);
      // And purges took notifications out of D1 between deliveries.
      expect(stats.purgedNotifications).toBeGreaterThan(0);
      // And every sequence ran its faults against handles on both shards.
      expect(stats.handles).toEqual({ SHARD_0: RUNS * HANDLES_PER_SHARD, SHARD_1: RUNS * HANDLES_PER_SHARD });
    },
    TIME_BUDGET_MS,
  );
});

/**
 * One shard down (docs/reliability.md#the-model-based-fault-test): while one data shard's D1 is unreachable, its
 * handles' writes answer 503 (problem+json) and their queued messages wait, unacknowledged and without an attempt; the
 * other shard's handles go on untouched — they publish, their deliveries in the SAME consumer batches as the waiting
 * ones succeed at their first attempt and reach their receiver once, and none of their requests answers a 5xx. Once
 * the shard is back, everything drains and every handle passes the checks above. Each shard takes its turn down.
 */
describe('model-based faults: one shard down', () => {
  it("a D1 outage on one shard leaves the other shard's handles untouched, and nothing is lost once it is back", async () => {
    // The outage makes the Worker log an error per failed read (that is its job): kept out of the run's output.
    const errorSpy = vi.spyOn(console, 'error').mockImplementation(() => {});
    onTestFinished(() => errorSpy.mockRestore());
    for (const down of SHARDS) {
      const world = await World.create();
      const onDown = world.handles.filter((s) => s.shard === down);
      const onUp = world.handles.filter((s) => s.shard !== down);
      // The shard that goes down already has messages on the queue.
      for (const s of onDown) await s.ingest('order.paid', null);
      const waiting = world.queue.messages.length;
      expect(waiting, 'messages of the shard about to go down').toBeGreaterThan(0);
      // Attempt rows of the down shard's handles so far (the owner email's test mail at setup is one).
      const attemptRows = async (s: Sim) =>
        (await env[s.shard]
          .prepare(
            `SELECT count(*) AS n FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.handle = ?`,
          )
          .bind(s.h.handle)
          .first<{ n: number }>())!.n;
      const attemptsBefore = await Promise.all(onDown.map(attemptRows));
      world.faulty[down].down = true;
      for (const s of onDown) await s.ingest('order.paid', null);
      for (const s of onUp) {
        await s.ingest('order.paid', null);
        await s.ingest('order.created', null);
      }
      // Two consumer runs over everything queued: each batch mixes the shards' messages.
      const mixed = world.queue.messages.length;
      await world.consume(100);
      await world.consume(100);

      // The shard that stayed up: no 5xx, and each delivery to an answering receiver done once, at its first attempt.
      for (const s of onUp) {
        expect(
          s.http.filter((r) => r.status >= 500).map((r) => `${r.what} → ${r.status}`),
          `${s.h.handle} (${s.shard}) while ${down} was down`,
        ).toEqual([]);
        const ok = s.webhooks[0]!;
        const { results } = await env[s.shard]
          .prepare('SELECT id, status, attempt_count FROM deliveries WHERE subscription_id = ?')
          .bind(ok.id)
          .all<{ id: string; status: string; attempt_count: number }>();
        expect(results.length, `${s.h.handle}: deliveries to its answering webhook`).toBeGreaterThan(0);
        const seen = await hits(ok.key);
        for (const d of results) {
          expect(`${d.status}/${d.attempt_count}`, `${d.id} of ${s.h.handle} while ${down} was down`).toBe(
            'succeeded/1',
          );
          expect(seen.filter((hit) => hit.headers['webhook-id'] === d.id).length, `requests for ${d.id}`).toBe(1);
        }
      }
      // The shard that went down: its writes refused as a retry-able 503, its messages still waiting, no attempt made.
      for (const [i, s] of onDown.entries()) {
        const refused = s.http.filter((r) => r.what.startsWith('ingest') && r.status >= 500);
        expect(
          refused.map((r) => [r.status, r.contentType.split(';')[0]]),
          `${s.h.handle}'s publish while down`,
        ).toEqual([[503, 'application/problem+json']]);
        expect(await attemptRows(s), `attempts of ${s.h.handle} while its shard was down`).toBe(attemptsBefore[i]);
      }
      const stillWaiting = world.queue.messages.filter((m) =>
        onDown.some((s) => s.h.handle === (m.body as { handle?: string }).handle),
      );
      expect(stillWaiting.length, `messages of ${down}'s handles waiting (of ${mixed} consumed twice)`).toBe(waiting);

      // Back up: everything drains; every handle passes every check of the model.
      world.faulty[down].down = false;
      await world.drain();
      for (const s of world.handles) await check(s);
    }
  }, 120_000);
});

/**
 * Pacing and replay under their faults (docs/reliability.md#pacing-and-replay): random sizes, rates and repeats of a
 * replay to a paced webhook — the call retried (also twice at once, as a client racing its own timeout), and
 * duplicate queue messages for some of its deliveries (at-least-once delivery) — through the REAL local queue and
 * consumer. Checked after each: every notification of the range reached the endpoint exactly once with one attempt
 * (nothing lost, nothing twice), and no R + 1 sends came closer together than a second less the 10 % tolerance
 * (nothing sent past the pace), measured where the consumer sends: the attempt rows.
 */
describe('model-based faults: pacing and replay', () => {
  const PACING_RUNS = Math.max(3, Math.round((RUNS * HANDLES) / 50));
  it(`${PACING_RUNS} random replays to a paced webhook, retried and duplicated, deliver each event once at its pace`, async () => {
    let sent = 0;
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          notifications: fc.integer({ min: 3, max: 14 }),
          rate: fc.constantFrom(4, 8),
          repeats: fc.integer({ min: 0, max: 2 }),
          racing: fc.boolean(),
          duplicates: fc.integer({ min: 0, max: 4 }),
        }),
        async ({ notifications, rate, repeats, racing, duplicates }) => {
          // Each run on the other shard in turn; the handle's rows live there (docs/design.md#shards).
          const h = await setupHandle(SHARDS[run++ % SHARDS.length]);
          const d1 = await shardOf(h.handle);
          const base = Date.now() - 3_600_000;
          const ids = Array.from({ length: notifications }, (_, i) => newId('ntf', base + i * 1000));
          await d1.batch(
            ids.map((id, i) =>
              d1
                .prepare(
                  `INSERT INTO notifications (id, handle, type, severity, data, source, occurred_at, status,
                   recipient_count, recipients, created_at, updated_at)
                 VALUES (?1, ?2, 'order.paid', 'info', ?3, 'fault-model', ?4, 'delivered', 0, '{}', ?4, ?4)`,
                )
                .bind(id, h.handle, JSON.stringify({ i }), new Date(base + i * 1000).toISOString()),
            ),
          );
          const key = unique('pace');
          const created = await callJson('POST', `/v2/handles/${h.handle}/webhooks`, {
            token: h.token,
            body: { url: receiverUrl('ok', key), rateLimit: rate },
          });
          const webhookId = created.body.id as string;
          const body = { from: new Date(base - 1000).toISOString(), to: new Date(base + 60_000).toISOString() };
          const call = () =>
            callJson('POST', `/v2/handles/${h.handle}/webhooks/${webhookId}/replay`, { token: h.token, body });
          const first = await (racing ? Promise.all([call(), call()]).then(([a]) => a!) : call());
          expect(first.status).toBe(200);
          for (let i = 0; i < repeats; i++) expect((await call()).status).toBe(200);
          // At-least-once: some deliveries get a second message.
          const dlv = await d1
            .prepare('SELECT id FROM deliveries WHERE subscription_id = ?1 LIMIT ?2')
            .bind(webhookId, duplicates)
            .all<{ id: string }>();
          if (dlv.results.length) {
            // A second message each, on the delivery's own queue.
            await enqueueDeliveries(
              env,
              d1,
              dlv.results.map((d) => ({ deliveryId: d.id, handle: h.handle })),
            );
          }

          const deadline = Date.now() + (notifications / rate) * 1000 * 3 + 20_000;
          let got: Hit[] = [];
          for (;;) {
            got = await hits(key);
            const open = await d1
              .prepare(`SELECT count(*) AS n FROM deliveries WHERE subscription_id = ?1 AND status <> 'succeeded'`)
              .bind(webhookId)
              .first<{ n: number }>();
            if ((got.length >= notifications && !open?.n) || Date.now() > deadline) break;
            await new Promise((r) => setTimeout(r, 200));
          }
          // A duplicate message arriving late would show here: give it its chance.
          await new Promise((r) => setTimeout(r, 1200));
          got = await hits(key);
          const eventIds = got.map((x) => JSON.parse(x.body).id as string).sort();
          expect(eventIds, 'every notification exactly once').toEqual([...ids].sort());
          const rows = await d1
            .prepare('SELECT status, attempt_count FROM deliveries WHERE subscription_id = ?1')
            .bind(webhookId)
            .all<{ status: string; attempt_count: number }>();
          expect(rows.results.map((r) => `${r.status}/${r.attempt_count}`)).toEqual(ids.map(() => 'succeeded/1'));
          // The pace where the consumer sends (each attempt's row time less its duration), as test/delivery/
          // pacer.test.ts measures it: the receiver's clock adds the loopback and its own scheduling under load.
          const attempts = await d1
            .prepare(
              `SELECT a.created_at AS at, a.duration_ms AS ms FROM delivery_attempts a
               JOIN deliveries d ON d.id = a.delivery_id WHERE d.subscription_id = ?1`,
            )
            .bind(webhookId)
            .all<{ at: string; ms: number }>();
          const times = attempts.results.map((r) => Date.parse(r.at) - r.ms).sort((a, b) => a - b);
          expect(times).toHaveLength(notifications);
          for (let i = 0; i + rate < times.length; i++) {
            expect(times[i + rate]! - times[i]!, `sends ${i}..${i + rate} at ${rate}/s`).toBeGreaterThanOrEqual(900);
          }
          sent += got.length;
        },
      ),
      { numRuns: PACING_RUNS, seed: SEED },
    );
    expect(sent).toBeGreaterThan(0);
  }, 300_000);
});
