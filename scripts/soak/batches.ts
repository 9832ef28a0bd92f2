/**
 * The soak's batch publish and peak window part (docs/design.md#batch-publish, docs/design.md#peak-campaign-windows):
 * a one-off peak window opened in the handle's settings for the first part of the load, batches of events sent
 * through `POST …/events/batch` (every other one `off_peak`, so its deliveries wait out the window), with repeats:
 * each batch carries some events of the one before (same sourceEventId → duplicates) and every other batch is sent
 * twice with one Idempotency-Key (a replay). The minute jobs release the deferred deliveries after the window during
 * the run; the reconciliation counts them.
 */
import type { Answer, Client } from './client.ts';
import { type PlannedIngest, PUBLISHABLE, prng } from './plan.ts';
import type { Check } from './report.ts';

/** Events of one batch (the route's maximum). */
export const BATCH_SIZE = 100;
/** Events of the batch before that each batch repeats (same sourceEventId): duplicates within the run. */
const REPEATS_PER_BATCH = 10;
/** How long the peak window stays open from when it is set: the off_peak batches are all sent within it. */
export const PEAK_WINDOW_SECONDS = 60;
/** The release spread the soak gives the Worker (RELEASE_SPREAD_SECONDS), so the window's backlog leaves in the run. */
export const SOAK_RELEASE_SPREAD_SECONDS = 30;

export interface PlannedBatch {
  index: number;
  idempotencyKey: string;
  delivery: 'off_peak' | 'now';
  /** Sent a second time with the same Idempotency-Key once answered. */
  replay: boolean;
  items: PlannedIngest[];
}

/** `count` batches of BATCH_SIZE events; from the second on, REPEATS_PER_BATCH of them repeat the batch before. */
export function planBatches(count: number, runId: string, seed: number): PlannedBatch[] {
  const random = prng(seed + 7919);
  const base = Date.UTC(2026, 10, 2);
  const batches: PlannedBatch[] = [];
  let event = 0;
  for (let b = 0; b < count; b++) {
    const key = `${runId}-batch-${b}`;
    const repeats =
      b === 0 ? [] : batches[b - 1]!.items.filter((i) => i.kind === 'original').slice(0, REPEATS_PER_BATCH);
    const items: PlannedIngest[] = repeats.map((r, k) => ({
      ...r,
      kind: 'duplicate_source_id',
      idempotencyKey: `${key}#${k}`,
    }));
    while (items.length < BATCH_SIZE) {
      const i = event++;
      const e = PUBLISHABLE[Math.floor(random() * PUBLISHABLE.length)]!;
      const sample = e.sample;
      items.push({
        kind: 'original',
        event: i,
        publisher: 0,
        idempotencyKey: `${key}#${items.length}`,
        body: {
          type: e.type,
          data: {
            ...sample,
            ...('orderId' in sample ? { orderId: `ord_soak_b${i}` } : { campaignId: `cmp_soak_b${i}` }),
            soakBatchSeq: i,
          },
          sourceEventId: `${runId}-bsrc-${i}`,
          occurredAt: new Date(base + i * 1000).toISOString(),
        },
      });
    }
    batches.push({
      index: b,
      idempotencyKey: key,
      delivery: b % 2 === 0 ? 'off_peak' : 'now',
      replay: b % 2 === 0,
      items,
    });
  }
  return batches;
}

/** Opens a one-off peak window from a minute ago to PEAK_WINDOW_SECONDS from now; returns its end. */
export async function openPeakWindow(client: Client, target: string, token: string): Promise<string> {
  const now = Date.now();
  const end = new Date(now + PEAK_WINDOW_SECONDS * 1000).toISOString();
  const res = await client.request('write: settings (peak window)', 'PUT', target, {
    token,
    body: {
      channels: { email: { enabled: true }, webhook: { enabled: true } },
      eventFilter: null,
      ownerFallback: 'critical',
      peakWindows: {
        timeZone: 'UTC',
        weekly: [],
        oneOff: [{ start: new Date(now - 60_000).toISOString(), end, label: 'soak campaign' }],
        campaignEvents: false,
      },
    },
    expected: [200],
  });
  if (res.status !== 200) throw new Error(`Could not open the peak window: ${res.status} ${JSON.stringify(res.body)}`);
  return end;
}

/** One batch item's answer, in the shape the soak keeps per sourceEventId. */
export interface BatchItemAnswer {
  request: PlannedIngest;
  status: number;
  body: any;
  replayed: boolean;
}

/** What the batches did, for the reconciliation and the summary line. */
export interface BatchRun {
  /** Batch requests answered 200 (replays included). */
  requests: number;
  /** Events sent in batches (repeats and replays included). */
  events: number;
  /** notificationId → deferredUntil, for every stored event whose deliveries wait out the window. */
  deferred: Map<string, string>;
  /** Items refused with a status (e.g. 429 past the daily limit): nothing of them is written. */
  refused: number;
}

/**
 * Sends the batches one after another (each replay right after its batch answered) and hands every item's answer to
 * `record`. The `Idempotency-Key` replay must come back marked and identical.
 */
export async function publishBatches(
  client: Client,
  target: string,
  token: string,
  batches: PlannedBatch[],
  record: (answer: BatchItemAnswer) => void,
): Promise<BatchRun> {
  const run: BatchRun = { requests: 0, events: 0, deferred: new Map(), refused: 0 };
  const send = async (batch: PlannedBatch, kind: string) => {
    const res: Answer = await client.request(kind, 'POST', target, {
      token,
      body: { delivery: batch.delivery, events: batch.items.map((i) => i.body) },
      headers: { 'idempotency-key': batch.idempotencyKey },
      expected: [200],
    });
    if (res.status !== 200) return;
    run.requests++;
    run.events += batch.items.length;
    const replayed = res.headers['idempotent-replayed'] === 'true';
    for (const r of res.body.results as Array<{
      index: number;
      status: number;
      notificationId?: string;
      duplicate?: boolean;
      deferredUntil?: string | null;
    }>) {
      const request = batch.items[r.index]!;
      const item = replayed ? { ...request, kind: 'idempotent_replay' as const } : request;
      record({ request: item, status: r.status, body: r, replayed });
      if (r.status === 202 && r.deferredUntil && r.notificationId) run.deferred.set(r.notificationId, r.deferredUntil);
      if (r.status >= 400 && !replayed) run.refused++;
    }
  };
  for (const batch of batches) {
    await send(batch, `ingest: batch of ${BATCH_SIZE} (${batch.delivery})`);
    if (batch.replay) await send(batch, 'ingest: batch, same Idempotency-Key');
  }
  return run;
}

/** A delivery row as the reconciliation reads it. */
interface DeliveryRow {
  id: string;
  notification_id: string;
  status: string;
}

/**
 * The batch and deferral checks, on the D1 file with the archived rows put back: every deferred delivery was released
 * (attempted, never before its window ended) or cancelled by its webhook's delete; none is left `deferred`.
 * `firstAttempts` maps a delivery id to its first attempt's time.
 */
export function deferralChecks(
  run: BatchRun,
  windowEnd: string,
  deliveries: DeliveryRow[],
  firstAttempts: Map<string, string>,
): { checks: Check[]; released: number } {
  const held = deliveries.filter((d) => run.deferred.has(d.notification_id));
  const released = held.filter((d) => firstAttempts.has(d.id));
  const early = released.filter((d) => firstAttempts.get(d.id)! < windowEnd);
  const stillDeferred = held.filter((d) => d.status === 'deferred');
  const unaccounted = held.filter((d) => !firstAttempts.has(d.id) && !['cancelled', 'skipped'].includes(d.status));
  return {
    released: released.length,
    checks: [
      {
        name: 'off_peak batch events deferred by the peak window (answers with deferredUntil)',
        expected: '> 0',
        actual: run.deferred.size,
        ok: run.deferred.size > 0,
      },
      {
        name: 'deferred deliveries released by the minute jobs (attempted) / attempted before the window ended',
        expected: '> 0 / 0',
        actual: `${released.length} / ${early.length}`,
        ok: released.length > 0 && early.length === 0,
      },
      {
        name: 'deferred deliveries left deferred, or neither attempted nor cancelled',
        expected: '0 / 0',
        actual: `${stillDeferred.length} / ${unaccounted.length}`,
        ok: stillDeferred.length === 0 && unaccounted.length === 0,
      },
    ],
  };
}
