/**
 * Replay of past notifications to one webhook (docs/design.md#replay): every notification of the handle received in
 * a time range (and of the given types, and that the webhook's own types and filter let through) becomes a NEW
 * delivery to that webhook, marked with the replay's id — from the R2 archives first (notifications already purged
 * from D1), then from D1. Each call does one bounded step from the replay's cursor and stores the cursor in the same
 * batch as the deliveries it made, so a client continues with the replay's id until it is `complete`.
 *
 * Idempotent per (webhook, notification): the unique index `deliveries_replay_uq` lets a notification be replayed to
 * a webhook once, so a retried call, a repeated step or a second replay of the same range sends nothing twice. The new
 * deliveries go through the queue like any other: paced by the webhook's rateLimit, retried on its retry policy.
 */
import { readArchiveLines } from '../archive/objects.ts';
import type { replays } from '../db/schema.ts';
import { shardFor } from '../db/shards.ts';
import type { RunContext } from '../env.ts';
import { evaluateFilterPolicy, type FilterPolicy, matchesEventTypes } from '../lib/filter-policy.ts';
import { boundaryId, newId } from '../lib/ids.ts';
import { fromJsonColumn } from '../lib/json.ts';
import type { DeliveredEvent, WebhookRow } from './attempt.ts';
import { enqueueDeliveries } from './enqueue.ts';
import { addedDeliveryStatement } from './summary.ts';

export type ReplayRow = typeof replays.$inferSelect;

/** Notifications (D1 rows or archive lines) one call looks at, at most. */
export const REPLAY_STEP = 200;

/** A notification a step may replay: still in D1 (its row is updated), or from an archive (its event is stored). */
interface Candidate {
  event: DeliveredEvent;
  source: string;
  archived: boolean;
}

/** Where a replay goes on: in an archive (by its first notification id, and a line), or in D1 after an id. */
type Position = { in: 'archive'; first: string; line: number } | { in: 'd1'; after: string | null };

function readCursor(cursor: string | null): Position | null {
  if (!cursor) return null;
  const [kind, a, b] = cursor.split(':');
  if (kind === 'a' && a) return { in: 'archive', first: a, line: Number(b ?? 0) };
  return { in: 'd1', after: a || null };
}

const writeCursor = (p: Position) => (p.in === 'archive' ? `a:${p.first}:${p.line}` : `n:${p.after ?? ''}`);

/** The replay's range as notification ids: ids are time-ordered, so the range is one keyset scan. */
function idRange(r: ReplayRow) {
  return { from: boundaryId('ntf', Date.parse(r.fromAt)), to: boundaryId('ntf', Date.parse(r.toAt)) };
}

/** The next purged archive of the range after `after` (its first notification id), if any. */
async function nextArchive(d1: D1Database, r: ReplayRow, after: string | null) {
  const { from, to } = idRange(r);
  return d1
    .prepare(
      `SELECT first_notification_id AS first, object_key AS key FROM archives
       WHERE handle = ?1 AND status = 'purged' AND first_notification_id > ?2 AND first_notification_id < ?3
         AND last_notification_id >= ?4
       ORDER BY first_notification_id LIMIT 1`,
    )
    .bind(r.handle, after ?? '', to, from)
    .first<{ first: string; key: string }>();
}

/** Whether the replay and the webhook want this notification. */
function wanted(r: ReplayRow, w: WebhookRow, n: Candidate): boolean {
  const { from, to } = idRange(r);
  const e = n.event;
  if (e.id < from || e.id >= to) return false;
  if (!matchesEventTypes(fromJsonColumn<string[]>(r.eventTypes), e.type)) return false;
  if (!matchesEventTypes(fromJsonColumn<string[]>(w.eventTypes), e.type)) return false;
  const filter = fromJsonColumn<FilterPolicy>(w.filterPolicy);
  return evaluateFilterPolicy(filter, { type: e.type, severity: e.severity, source: n.source, data: e.data }).match;
}

/** One stretch of a step: candidates from where `at` says, at most `budget` looked at, and where to go on. */
async function stretch(
  { env }: RunContext,
  r: ReplayRow,
  at: Position,
  budget: number,
): Promise<{ candidates: Candidate[]; next: Position | null; looked: number }> {
  // The handle's notifications and archive index live on its shard (docs/design.md#shards).
  const d1 = await shardFor(env, r.handle);
  if (at.in === 'archive') {
    const archive = await d1
      .prepare(`SELECT object_key AS key FROM archives WHERE handle = ?1 AND first_notification_id = ?2`)
      .bind(r.handle, at.first)
      .first<{ key: string }>();
    const lines = archive ? ((await readArchiveLines(env.ARCHIVE, archive.key)) ?? []) : [];
    const slice = lines.slice(at.line, at.line + budget);
    const candidates = slice.map(({ notification: n }) => ({
      event: {
        id: n.id as string,
        handle: n.handle as string,
        type: n.type as string,
        severity: n.severity as DeliveredEvent['severity'],
        occurredAt: n.occurredAt as string,
        data: n.data as Record<string, unknown>,
        test: false,
      },
      source: n.source as string,
      archived: true,
    }));
    const end = at.line + slice.length;
    if (end < lines.length) {
      return { candidates, next: { in: 'archive', first: at.first, line: end }, looked: slice.length };
    }
    const following = await nextArchive(d1, r, at.first);
    const next: Position = following ? { in: 'archive', first: following.first, line: 0 } : { in: 'd1', after: null };
    return { candidates, next, looked: slice.length };
  }
  const { from, to } = idRange(r);
  const { results } = await d1
    .prepare(
      `SELECT id, handle, type, severity, data, source, occurred_at FROM notifications
       WHERE handle = ?1 AND id >= ?2 AND id > ?3 AND id < ?4 ORDER BY id LIMIT ?5`,
    )
    .bind(r.handle, from, at.after ?? '', to, budget)
    .all<Record<string, string>>();
  const candidates = results.map((n) => ({
    event: {
      id: n.id!,
      handle: n.handle!,
      type: n.type!,
      severity: n.severity as DeliveredEvent['severity'],
      occurredAt: n.occurred_at!,
      data: JSON.parse(n.data!) as Record<string, unknown>,
      test: false,
    },
    source: n.source!,
    archived: false,
  }));
  const last = results.at(-1)?.id;
  const next: Position | null = results.length < budget ? null : { in: 'd1', after: last ?? at.after };
  return { candidates, next, looked: results.length };
}

/**
 * One step's candidates and where the next step starts (null: the replay is complete): stretches from the cursor on,
 * archives first, until {@link REPLAY_STEP} notifications were looked at or nothing is left.
 */
async function step(ctx: RunContext, r: ReplayRow): Promise<{ candidates: Candidate[]; next: Position | null }> {
  let at = readCursor(r.cursor);
  if (!at) {
    const first = await nextArchive(await shardFor(ctx.env, r.handle), r, null);
    at = first ? { in: 'archive', first: first.first, line: 0 } : { in: 'd1', after: null };
  }
  const candidates: Candidate[] = [];
  let budget = REPLAY_STEP;
  let next: Position | null = at;
  // Each stretch either uses up the budget or moves on to the next archive or to D1; a bounded number of them.
  for (let stretches = 0; next && budget > 0 && stretches < 10; stretches++) {
    const s = await stretch(ctx, r, next, budget);
    candidates.push(...s.candidates);
    budget -= s.looked;
    next = s.next;
  }
  return { candidates, next };
}

/** What one call did. */
export interface ReplayStepResult {
  replay: ReplayRow;
  /** Notifications this step matched, and the deliveries it made for them (fewer when some were replayed before). */
  matched: number;
  created: number;
}

/**
 * One bounded step of the replay `r` to webhook `w` (`isNew`: the replay's row is written with it). The deliveries,
 * their notifications' counts and the replay's new cursor are ONE batch; the deliveries it made are then enqueued
 * (a failed send leaves them `pending` for the minute sweeper, like any delivery).
 */
export async function replayStep(
  ctx: RunContext,
  r: ReplayRow,
  w: WebhookRow,
  isNew: boolean,
  now: Date = new Date(),
): Promise<ReplayStepResult> {
  const d1 = await shardFor(ctx.env, r.handle);
  const at = now.toISOString();
  const { candidates, next } = await step(ctx, r);
  const matches = candidates.filter((n) => wanted(r, w, n));
  const statements: D1PreparedStatement[] = [];
  if (isNew) {
    statements.push(
      d1
        .prepare(
          `INSERT INTO replays (id, handle, subscription_id, from_at, to_at, event_types, cursor, matched, created,
             status, created_at, updated_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, 0, 0, 'running', ?7, ?7)`,
        )
        .bind(r.id, r.handle, r.subscriptionId, r.fromAt, r.toAt, r.eventTypes, at),
    );
  }
  const inserts = new Map<number, string>();
  for (const n of matches) {
    const id = newId('dlv', now.getTime());
    inserts.set(statements.length, id);
    statements.push(
      d1
        .prepare(
          `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
             status, status_reason, attempt_count, retry_base, payload, replay_id, created_at, updated_at)
           VALUES (?1, ?2, ?3, 'event', 'webhook', 'webhook', ?4, ?5, 'pending', 'replay', 0, 0, ?6, ?7, ?8, ?8)
           ON CONFLICT DO NOTHING RETURNING id`,
        )
        // An archived notification has no row to read its event from: the delivery carries it.
        .bind(id, r.handle, n.event.id, w.id, w.url, n.archived ? JSON.stringify(n.event) : null, r.id, at),
    );
    if (!n.archived) statements.push(addedDeliveryStatement(d1, n.event.id, at));
  }
  const ids = JSON.stringify([...inserts.values()]);
  statements.push(
    d1
      .prepare(
        `UPDATE replays SET cursor = ?2, status = ?3, matched = matched + ?4,
           created = created + (SELECT count(*) FROM deliveries WHERE id IN (SELECT value FROM json_each(?5))),
           updated_at = ?6
         WHERE id = ?1 AND cursor IS ?7`,
      )
      .bind(r.id, next ? writeCursor(next) : null, next ? 'running' : 'complete', matches.length, ids, at, r.cursor),
  );
  const results = await d1.batch(statements);
  const created = [...inserts].filter(([i]) => (results[i]?.results.length ?? 0) > 0).map(([, id]) => id);
  if (created.length) {
    await enqueueDeliveries(
      ctx.env,
      d1,
      created.map((deliveryId) => ({ deliveryId, handle: r.handle })),
    );
  }
  const stored = await d1.prepare('SELECT * FROM replays WHERE id = ?1').bind(r.id).first<Record<string, unknown>>();
  return { replay: stored ? replayFromRow(stored) : r, matched: matches.length, created: created.length };
}

/** A `replays` row as drizzle would read it, from a raw `SELECT *`. */
export function replayFromRow(row: Record<string, unknown>): ReplayRow {
  return {
    id: row.id as string,
    handle: row.handle as string,
    subscriptionId: row.subscription_id as string,
    fromAt: row.from_at as string,
    toAt: row.to_at as string,
    eventTypes: (row.event_types as string | null) ?? null,
    cursor: (row.cursor as string | null) ?? null,
    matched: row.matched as number,
    created: row.created as number,
    status: row.status as ReplayRow['status'],
    createdAt: row.created_at as string,
    updatedAt: row.updated_at as string,
  };
}

/** A replay's deliveries by status: its progress. */
export async function replayProgress(d1: D1Database, replayId: string): Promise<Record<string, number>> {
  const { results } = await d1
    .prepare('SELECT status, count(*) AS n FROM deliveries WHERE replay_id = ?1 GROUP BY status')
    .bind(replayId)
    .all<{ status: string; n: number }>();
  return Object.fromEntries(results.map((r) => [r.status, r.n]));
}

/** A new replay's row (not yet written: its first step writes it). */
export function newReplay(
  handle: string,
  webhookId: string,
  range: { from: string; to: string; eventTypes: string[] | null },
  now: Date = new Date(),
): ReplayRow {
  const at = now.toISOString();
  return {
    id: newId('rpl', now.getTime()),
    handle,
    subscriptionId: webhookId,
    fromAt: range.from,
    toAt: range.to,
    eventTypes: range.eventTypes ? JSON.stringify(range.eventTypes) : null,
    cursor: null,
    matched: 0,
    created: 0,
    status: 'running',
    createdAt: at,
    updatedAt: at,
  };
}
