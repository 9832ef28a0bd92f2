/**
 * Pacing of webhooks with a `rateLimit` (docs/design.md#pacing): the consumer's side of the EndpointPacer. Before a
 * batch's attempts, the deliveries of each paced webhook ask its pacer for their slots — one call per webhook and
 * batch. A slot due within three seconds is waited for in the invocation; a later one is held for its delivery, and
 * the message is retried to it with `delaySeconds`: no attempt used, no D1 write for the wait. A retry's delay runs
 * from the end of the invocation, after the batch's own waits: it is counted from there, or every held message would
 * be back that much past its slot and leave a hole in the pace (docs/performance.md#pacing). Only a wait past
 * {@link NOTE_WAIT_AFTER_MS} is written, once, as the delivery's `next_attempt_at` (in the batch's one write), so the
 * minute sweeper does not take a long wait for a lost message and the API shows when it will go.
 *
 * A pacer that cannot be reached paces everything it was asked about: the messages come back in
 * {@link PACER_DOWN_RETRY_SECONDS}, and nothing is sent past the endpoint's pace.
 */
import { type PacerStatus, SLOT_NOW_MS } from './endpoint-pacer.ts';

/** The highest `rateLimit` a webhook may set, deliveries per second. */
export const MAX_RATE_LIMIT = 1000;
/** Queues' longest `delaySeconds` (12 h): a longer wait is retried to this and asks again. */
const MAX_QUEUE_DELAY_SECONDS = 43_200;
/** A wait longer than this is written as the delivery's `next_attempt_at` (below the sweeper's 5 min grace). */
export const NOTE_WAIT_AFTER_MS = 60_000;
/** When the pacer could not be asked. */
const PACER_DOWN_RETRY_SECONDS = 5;

/** One delivery that wants to go to a paced webhook. */
export interface PaceRequest {
  deliveryId: string;
  webhookId: string;
  rateLimit: number;
}

/** Go at `at` (epoch ms, waited for in the invocation), or come back at the slot held for it. */
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
  const slots = new Map<string, number>();
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
        for (const id of ids) out.set(id, { go: false, delaySeconds: PACER_DOWN_RETRY_SECONDS, slotAt: null });
      }
    }),
  );
  // The invocation ends after its last granted send: the held messages' delays start there.
  let end = now;
  for (const slot of slots.values()) if (slot - now <= SLOT_NOW_MS) end = Math.max(end, slot);
  for (const [id, slot] of slots) out.set(id, verdictOf(slot, now, end));
  return out;
}

function verdictOf(slot: number, now: number, end: number): PaceVerdict {
  const wait = slot - now;
  if (wait <= SLOT_NOW_MS) return { go: true, at: Math.max(now, slot) };
  return {
    go: false,
    // Back about when its slot comes within the horizon, counted from the invocation's end, to wait the rest in the
    // next invocation: sends keep their spacing rather than bunching up on the queue's whole seconds, and a message
    // is not back after its slot (a hole in the pace) for a delay counted from too early or rounded up.
    delaySeconds: Math.min(MAX_QUEUE_DELAY_SECONDS, Math.max(0, Math.round((slot - end - SLOT_NOW_MS) / 1000))),
    slotAt: wait > NOTE_WAIT_AFTER_MS ? new Date(slot).toISOString() : null,
  };
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
