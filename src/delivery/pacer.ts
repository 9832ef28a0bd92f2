/**
 * Pacing of webhooks with a `rateLimit` (docs/design.md#pacing): the consumer's side of the EndpointPacer. Before a
 * batch's attempts, the deliveries of each paced webhook ask its pacer for send times — one call per webhook and
 * batch. A delivery granted a time waits for it in the invocation (at most {@link HORIZON_MS}) and sends only if it is
 * on time ({@link onTime}); one held for later is put back on its queue to come back before its turn: no attempt
 * used, no D1 write for the wait, and not a retry of its message (`requeueDeliveries`), so waiting never spends the
 * queue's `max_retries`. A wait's delay runs from the end of the invocation, after the batch's own sends: counted
 * from there, or every held message would be back that much later. Only a wait past {@link NOTE_WAIT_AFTER_MS} is
 * written, once, as the delivery's `next_attempt_at` (in the batch's one write), so the minute sweeper does not take
 * a long wait for a lost message and the API shows when it will go.
 *
 * A pacer that cannot be reached paces everything it was asked about: the messages come back in
 * {@link PACER_DOWN_WAIT_SECONDS}, and nothing is sent past the endpoint's pace.
 */
import { HORIZON_MS, type PacerStatus } from './endpoint-pacer.ts';

/** The highest `rateLimit` a webhook may set, deliveries per second. */
export const MAX_RATE_LIMIT = 1000;
/** Queues' longest `delaySeconds` (12 h): a longer wait comes back at this and asks again. */
const MAX_QUEUE_DELAY_SECONDS = 43_200;
/** A wait longer than this is written as the delivery's `next_attempt_at` (below the sweeper's 5 min grace). */
export const NOTE_WAIT_AFTER_MS = 60_000;
/** When the pacer could not be asked. */
const PACER_DOWN_WAIT_SECONDS = 5;
/**
 * A send may start at most this long after its grant; a later one does not go (its delivery waits again, at the
 * front). Grants are `1000 / rate` ms apart, so any second then holds the sends of at most 1.08 s of grants: within
 * the 10 % tolerance of the pace, however late a stalled invocation, a full connection limiter or a loaded machine
 * makes them (docs/performance.md#pacing).
 */
export const LATE_AFTER_MS = 80;

/** One delivery that wants to go to a paced webhook. */
export interface PaceRequest {
  deliveryId: string;
  webhookId: string;
  rateLimit: number;
}

/** Go at `at` (epoch ms, waited for in the invocation), or wait on the queue and come back at the turn held for it. */
export type PaceVerdict = { go: true; at: number } | { go: false; delaySeconds: number; slotAt: string | null };

/** The pacer namespace as the consumer needs it (the binding, or a test's stand-in). */
export type PacerNamespace = Env['PACER'];

/** The verdict for each delivery (by id) of these requests, one pacer call per webhook, all at once. */
export async function pace(
  ns: PacerNamespace,
  requests: readonly PaceRequest[],
  now: number = Date.now(),
): Promise<Map<string, PaceVerdict>> {
  const byWebhook = new Map<string, PaceRequest[]>();
  for (const r of requests) byWebhook.set(r.webhookId, [...(byWebhook.get(r.webhookId) ?? []), r]);
  const slots = new Map<string, { at: number; go: boolean }>();
  const out = new Map<string, PaceVerdict>();
  await Promise.all(
    [...byWebhook].map(async ([webhookId, list]) => {
      const ids = list.map((r) => r.deliveryId);
      try {
        const got = await ns.get(ns.idFromName(webhookId)).admit(list[0]!.rateLimit, ids, now);
        ids.forEach((id, i) => {
          slots.set(id, got[i]!);
        });
      } catch (err) {
        console.error(JSON.stringify({ level: 'error', msg: 'pacer_unreachable', webhookId, error: String(err) }));
        for (const id of ids) out.set(id, { go: false, delaySeconds: PACER_DOWN_WAIT_SECONDS, slotAt: null });
      }
    }),
  );
  // The invocation ends after its last granted send: the held messages' delays start there.
  let end = now;
  for (const slot of slots.values()) if (slot.go) end = Math.max(end, slot.at);
  for (const [id, slot] of slots) {
    out.set(
      id,
      slot.go
        ? { go: true, at: slot.at }
        : {
            go: false,
            // Back when its turn comes within the horizon, counted from the invocation's end, to wait the rest in
            // the next invocation; rounded to the nearest second, so it is not back after its turn.
            delaySeconds: Math.min(
              MAX_QUEUE_DELAY_SECONDS,
              Math.max(0, Math.round((slot.at - end - HORIZON_MS) / 1000)),
            ),
            slotAt: slot.at - now > NOTE_WAIT_AFTER_MS ? new Date(slot.at).toISOString() : null,
          },
    );
  }
  return out;
}

/** Thrown by {@link onTime} for a send that would start too late for its grant: it does not go. */
export class LateForGrant extends Error {
  constructor(readonly lateMs: number) {
    super(`late for its grant by ${lateMs} ms`);
  }
}

/**
 * Called right before a paced request is made: waits for its grant if it is early, throws {@link LateForGrant} if it
 * is more than {@link LATE_AFTER_MS} late. Nothing async runs between this and the request, so the attempt's start
 * (its row's time less its duration) is the time checked here.
 */
export async function onTime(at: number): Promise<void> {
  const early = at - Date.now();
  if (early > 0) await new Promise((resolve) => setTimeout(resolve, early));
  const late = Date.now() - at;
  if (late > LATE_AFTER_MS) throw new LateForGrant(late);
}

/**
 * The one statement (for the batch's write) that notes long waits: each delivery's slot as its `next_attempt_at`,
 * on rows still open. It changes no status and no attempt count, so no guard of a later move is affected.
 */
export function notedWaitsStatement(
  d1: D1Database,
  slots: ReadonlyMap<string, string>,
  now: string,
): D1PreparedStatement | null {
  if (!slots.size) return null;
  return d1
    .prepare(
      `UPDATE deliveries SET next_attempt_at = (SELECT value FROM json_each(?1) WHERE key = deliveries.id),
         updated_at = ?2
       WHERE id IN (SELECT key FROM json_each(?1)) AND status IN ('pending', 'queued', 'retrying')`,
    )
    .bind(JSON.stringify(Object.fromEntries(slots)), now);
}

/** What a pacer says about its endpoint (null when it could not be asked): for the doctor and the dashboard. */
export async function pacerStatus(ns: PacerNamespace, webhookId: string): Promise<PacerStatus | null> {
  try {
    return await ns.get(ns.idFromName(webhookId)).status();
  } catch {
    return null;
  }
}
