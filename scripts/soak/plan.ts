/**
 * What the soak sends, decided up front from a seed so that a run can be repeated: the webhooks (which fail, which
 * event types each takes) and the ordered list of ingest requests with their duplicates. Pure: no I/O.
 */
import { EVENT_CATALOG } from '../../src/lib/event-catalog.ts';

/** A small seeded PRNG (mulberry32): the same seed gives the same plan. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The types a client may publish (system types are the service's own). */
export const PUBLISHABLE = EVENT_CATALOG.filter((e) => !e.system);

/** How many webhooks take each event type: webhook i takes type t when (t + i) % SPREAD === 0. */
const SPREAD = 4;

export interface WebhookPlan {
  /** Stable name, also the receiver key. */
  name: string;
  /** The receiver answers 500 to every request. */
  failing: boolean;
  eventTypes: string[];
  /** Changed halfway through the load: deleted (its open deliveries become `cancelled`) or disabled (`skipped`). */
  churn?: 'delete' | 'disable';
}

const typesFor = (i: number) => PUBLISHABLE.filter((_, t) => (t + i) % SPREAD === 0).map((e) => e.type);

/**
 * `count` webhooks, `round(count × failingShare)` of them failing (spread evenly), each subscribed to about
 * 1/SPREAD of the publishable types so that an event fans out to a few webhooks rather than to all of them. With
 * `churn`, two more: one answering 200 that is deleted halfway, one answering 500 that is disabled halfway.
 */
export function planWebhooks(count: number, failingShare: number, churn: boolean): WebhookPlan[] {
  const failing = Math.round(count * failingShare);
  const failingIndexes = new Set(Array.from({ length: failing }, (_, k) => Math.floor(((k + 0.5) * count) / failing)));
  const steady = Array.from({ length: count }, (_, i) => ({
    name: `soak-wh-${String(i + 1).padStart(2, '0')}`,
    failing: failingIndexes.has(i),
    eventTypes: typesFor(i),
  }));
  if (!churn) return steady;
  return [
    ...steady,
    { name: 'soak-wh-deleted', failing: false, eventTypes: typesFor(count), churn: 'delete' },
    { name: 'soak-wh-disabled', failing: true, eventTypes: typesFor(count + 1), churn: 'disable' },
  ];
}

/**
 * - `original`: the first publication of an event (with an Idempotency-Key and a sourceEventId);
 * - `duplicate_source_id`: the same event again from another publisher, other key → the first notification;
 * - `idempotent_replay`: the same request again, same key, same publisher → the stored answer (or 409 while running).
 */
export type IngestKind = 'original' | 'duplicate_source_id' | 'idempotent_replay';

export interface PlannedIngest {
  kind: IngestKind;
  /** Index of the event (its sourceEventId is derived from it). */
  event: number;
  /** Which publisher identity sends it (each has its own token and its own throttle budget). */
  publisher: number;
  idempotencyKey: string;
  body: { type: string; data: Record<string, unknown>; sourceEventId: string; occurredAt: string };
}

export interface IngestPlanOptions {
  requests: number;
  duplicateShare: number;
  publishers: number;
  /** Duplicates land within this many requests after their original, so many race with it. */
  window: number;
  runId: string;
  seed: number;
}

/** Picks an event type: critical types are rarer than the rest (about 1 in 10 events). */
function typePicker(random: () => number) {
  const weighted = PUBLISHABLE.flatMap((e) => Array<string>(e.defaultSeverity === 'critical' ? 1 : 3).fill(e.type));
  return () => weighted[Math.floor(random() * weighted.length)]!;
}

/** The ingest requests in the order they are sent: originals, with each duplicate shortly after its original. */
export function planIngest(o: IngestPlanOptions): PlannedIngest[] {
  const random = prng(o.seed);
  const pickType = typePicker(random);
  const duplicates = Math.round(o.requests * o.duplicateShare);
  const originals = o.requests - duplicates;
  const base = Date.UTC(2026, 10, 1);
  const keyed: Array<{ at: number; request: PlannedIngest }> = [];
  const events: PlannedIngest[] = [];
  for (let i = 0; i < originals; i++) {
    const type = pickType();
    const sample = PUBLISHABLE.find((e) => e.type === type)!.sample;
    const request: PlannedIngest = {
      kind: 'original',
      event: i,
      publisher: i % o.publishers,
      idempotencyKey: `${o.runId}-evt-${i}`,
      body: {
        type,
        data: {
          ...sample,
          ...('orderId' in sample ? { orderId: `ord_soak_${i}` } : { campaignId: `cmp_soak_${i}` }),
          soakSeq: i,
        },
        sourceEventId: `${o.runId}-src-${i}`,
        occurredAt: new Date(base + i * 1000).toISOString(),
      },
    };
    events.push(request);
    keyed.push({ at: i, request });
  }
  for (let d = 0; d < duplicates; d++) {
    const original = events[Math.floor(random() * events.length)]!;
    const kind: IngestKind = d % 2 === 0 ? 'duplicate_source_id' : 'idempotent_replay';
    const request: PlannedIngest =
      kind === 'idempotent_replay'
        ? { ...original, kind }
        : {
            ...original,
            kind,
            publisher: (original.publisher + 1) % o.publishers,
            idempotencyKey: `${o.runId}-dup-${d}`,
          };
    keyed.push({ at: original.event + 0.5 + random() * o.window, request });
  }
  return keyed.sort((a, b) => a.at - b.at).map((k) => k.request);
}
