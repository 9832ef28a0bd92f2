/**
 * Deferred deliveries (docs/design.md#peak-campaign-windows): the campaign window a `campaign.started` opens and a
 * `campaign.completed` closes, and the release of deferred deliveries whose time came. A release is the guarded move
 * `deferred → pending` with its notification's transition (both open in the ledger, so the counts stay), then the
 * ordinary enqueue; each delivery carries its own release time, spread after its window's end, so a window's backlog
 * leaves over minutes instead of as one burst.
 */
import { and, asc, eq, lte, sql } from 'drizzle-orm';
import { getDb } from '../db/client.ts';
import { deliveries } from '../db/schema.ts';
import { fromJsonColumn } from '../lib/json.ts';
import { MAX_DEFERRAL_MS, type PeakWindows, RELEASE_SPREAD_MS } from '../lib/peak-windows.ts';
import { type DeliveryQueuesEnv, enqueueDeliveries } from './enqueue.ts';
import type { SettingsRow } from './match-context.ts';
import { NOT_MOVING } from './overdue.ts';
import { moveDelivery } from './store.ts';

/** Status reasons of a deferred delivery: which window holds it. */
export const PEAK_WINDOW_REASON = 'peak_window';
export const CAMPAIGN_WINDOW_REASON = 'campaign_window';

/** Releases per sweeper run: a larger backlog goes over the following minutes. */
export const RELEASE_BATCH = 200;

/**
 * The settings' campaign window, when `peakWindows.campaignEvents` is on: `campaign.started` opens it (for at most
 * MAX_DEFERRAL_MS), `campaign.completed` closes it and brings the deliveries it deferred forward, spread over
 * `spreadMs` (the configured release spread, RELEASE_SPREAD_MS by default) from now. Statements for the batch that
 * stores the event, so they apply exactly when it is stored.
 */
export function campaignWindowStatements(
  d1: D1Database,
  event: { handle: string; type: string },
  settings: SettingsRow,
  at: Date,
  spreadMs = RELEASE_SPREAD_MS,
): D1PreparedStatement[] {
  if (!fromJsonColumn<PeakWindows>(settings.peakWindows)?.campaignEvents) return [];
  const now = at.toISOString();
  if (event.type === 'campaign.started') {
    const until = new Date(at.getTime() + MAX_DEFERRAL_MS).toISOString();
    return [
      d1
        .prepare('UPDATE notification_settings SET campaign_window_until = ?2 WHERE handle = ?1')
        .bind(event.handle, until),
    ];
  }
  if (event.type !== 'campaign.completed') return [];
  return [
    d1.prepare('UPDATE notification_settings SET campaign_window_until = NULL WHERE handle = ?1').bind(event.handle),
    d1
      .prepare(
        `UPDATE deliveries SET
           next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', ?2, '+' || (abs(random()) % ?4) || ' seconds'),
           updated_at = ?2
         WHERE handle = ?1 AND status = 'deferred' AND status_reason = ?3 AND next_attempt_at > ?2`,
      )
      .bind(event.handle, now, CAMPAIGN_WINDOW_REASON, Math.max(1, Math.round(spreadMs / 1000))),
  ];
}

/**
 * Moves one shard's deferred deliveries due at `now` (at most RELEASE_BATCH, earliest first) to `pending` and enqueues
 * them; the sweeper runs it on every shard (docs/design.md#shards). A handle whose copy on the shard is moving
 * (`moving_since`) is left for after the move: on the source its rows are being copied, on the target not yet live.
 * A row changed meanwhile (cancelled by a delete) is not moved: the guard sees it. A failed enqueue leaves the rows
 * `pending`, which the sweeper sends again a minute later.
 */
export async function releaseDeferred(
  env: DeliveryQueuesEnv,
  d1: D1Database,
  now: Date,
): Promise<{ released: number; failed: number }> {
  const due = await getDb(d1)
    .select()
    .from(deliveries)
    .where(
      and(
        eq(deliveries.status, 'deferred'),
        lte(deliveries.nextAttemptAt, now.toISOString()),
        // A handle moving between shards is read-only here (docs/design.md#moving-a-handle): released after the move.
        sql.raw(NOT_MOVING),
      ),
    )
    .orderBy(asc(deliveries.nextAttemptAt))
    .limit(RELEASE_BATCH);
  if (!due.length) return { released: 0, failed: 0 };
  const at = new Date().toISOString();
  const moves = due.map((d) => moveDelivery(d1, d, 'pending', { statusReason: null, attempted: false, now: at }));
  const results = await d1.batch(moves.flat());
  // Each move is its UPDATE (the first statement) and its notification's transition.
  const moved: { deliveryId: string; handle: string }[] = [];
  let i = 0;
  for (const [k, statements] of moves.entries()) {
    if ((results[i]?.meta.changes ?? 0) > 0) moved.push({ deliveryId: due[k]!.id, handle: due[k]!.handle });
    i += statements.length;
  }
  const sent = await enqueueDeliveries(env, d1, moved);
  return { released: moved.length, failed: sent.failed.length };
}
