/**
 * Moving a handle between data shards (docs/design.md#moving-a-handle), one bounded step per call.
 *
 * A Worker request has a bounded number of D1 queries and a bounded time, and a handle may have millions of rows, so
 * the move is a state machine kept on the control plane (`handle_moves`): each `moveStep` does a few pages of work
 * and saves where it stopped; the caller (scripts/move-handle.ts) calls again until it is `done`. Phases:
 *
 * 1. `copying` (writes go on): every handle-scoped table is synced page by page from the source to the target.
 * 2. `sealing`: `moving_since` is set in the directory and on the source's copy of the handle row, so writes answer
 *    503 and queue consumers retry the handle's messages; the step waits until no isolate can still act on a cached
 *    placement from before (the directory TTL) and a consumer batch started before has written its outcome (the
 *    webhook timeout), plus a margin.
 * 3. `syncing`: the same sync again, now on a read-only handle: it writes only what changed (and deletes what went).
 * 4. `verifying`: per-table row counts on both shards; a mismatch aborts (`aborting` → `failed`): the handle stays
 *    on its source, writable again, and the target's partial copy is deleted.
 * 5. The flip: the target's copy of the handle row is made live, then the directory names the target (one batch).
 *    `draining` waits out the directory TTL: an isolate that cached the source (with `moving_since`) still reads it
 *    and refuses writes; none can write it.
 * 6. `deleting`: the source's rows go in bounded batches → `done`.
 *
 * The sync is idempotent (an upsert of each differing row, a delete of each extra one), so a repeated or resumed step
 * does no harm; two concurrent steps are told apart by `version` and the loser writes no state.
 */

import type { HandleMove } from '../db/schema.ts';
import { forgetPlacement, type Placement, placementFromRow, placementStatement, shardAt } from '../db/shards.ts';
import { config } from '../env.ts';
import { problems } from '../lib/problem.ts';

type KeyValue = string | number;
type Key = KeyValue[];
type Row = Record<string, unknown>;

/** A table holding a handle's rows on its shard: the columns its rows are walked by, and its primary key. */
interface TableSpec {
  name: string;
  /** Unique within the handle, in the order pages are walked. */
  key: readonly string[];
  /** The conflict target of the upsert. */
  pk: readonly string[];
}

/**
 * Every handle-scoped table on a shard, parents before children (the foreign keys to `handles`). Delivery attempts
 * have no handle column: they go with their deliveries' pages.
 */
export const MOVED_TABLES: readonly TableSpec[] = [
  { name: 'handles', key: ['handle'], pk: ['handle'] },
  { name: 'notification_settings', key: ['handle'], pk: ['handle'] },
  { name: 'webhook_subscriptions', key: ['id'], pk: ['id'] },
  { name: 'email_subscriptions', key: ['id'], pk: ['id'] },
  { name: 'notifications', key: ['id'], pk: ['id'] },
  { name: 'deliveries', key: ['id'], pk: ['id'] },
  { name: 'archives', key: ['id'], pk: ['id'] },
  { name: 'purge_state', key: ['handle'], pk: ['handle'] },
  { name: 'replays', key: ['id'], pk: ['id'] },
  { name: 'daily_write_counters', key: ['day'], pk: ['handle', 'day'] },
  { name: 'idempotency_keys', key: ['principal', 'key'], pk: ['principal', 'handle', 'key'] },
];
/** Keyed by (delivery, attempt number): the table's primary key, it has no other unique index. */
const ATTEMPTS: TableSpec = {
  name: 'delivery_attempts',
  key: ['delivery_id', 'attempt_number'],
  pk: ['delivery_id', 'attempt_number'],
};

/** Rows per page and table: a page is two reads (source and target, at once) and one write batch. */
export const MOVE_PAGE_ROWS = 100;
/** Pages one step does at most, and the time after which it stops early: well inside one request's limits. */
const PAGES_PER_STEP = 8;
const STEP_BUDGET_MS = 5_000;
/** JSON bound to one statement at most (D1 caps a value and a statement's size): larger pages are split. */
const MAX_JSON_PER_STATEMENT = 400_000;
/** Added to the waits: a request or consumer batch that read the directory just before still finishes its write. */
const WAIT_MARGIN_MS = 2_000;

export type MovePhase = HandleMove['phase'];
const FINISHED: readonly MovePhase[] = ['done', 'failed'];

/** What a caller sees of a move (the API's `HandleMove`). */
export interface MoveProgress {
  handle: string;
  fromShard: number;
  toShard: number;
  phase: MovePhase;
  /** The table the current phase is at, when it walks tables. */
  table: string | null;
  rowsCopied: number;
  rowsRemoved: number;
  counts: Record<string, { source: number; target: number }> | null;
  /** Seconds until a waiting phase goes on (0 otherwise): the driver sleeps this long before the next step. */
  retryAfterSeconds: number;
  error: string | null;
  startedAt: string;
  readOnlyAt: string | null;
  flippedAt: string | null;
  finishedAt: string | null;
  done: boolean;
}

const q = (name: string) => `"${name}"`;
const encoder = new TextEncoder();

/** SQLite's order of keys (BINARY collation: UTF-8 bytes; numbers by value), so pages of both shards line up. */
export function compareKeys(a: Key, b: Key): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (typeof x === 'number' && typeof y === 'number') {
      if (x !== y) return x < y ? -1 : 1;
      continue;
    }
    const bx = encoder.encode(String(x));
    const by = encoder.encode(String(y));
    const n = Math.min(bx.length, by.length);
    for (let j = 0; j < n; j++) if (bx[j] !== by[j]) return bx[j]! - by[j]!;
    if (bx.length !== by.length) return bx.length - by.length;
  }
  return 0;
}

const keyOf = (t: TableSpec, row: Row): Key => t.key.map((c) => row[c] as KeyValue);

/** The handle's next `limit` rows of a table after `after`, in key order. */
function pageStatement(d1: D1Database, t: TableSpec, handle: string, after: Key | null, limit: number) {
  const keys = t.key.map(q).join(', ');
  const params: unknown[] = [handle];
  let where = 'handle = ?1';
  if (after) {
    where += ` AND (${keys}) > (${after.map((_, i) => `?${i + 2}`).join(', ')})`;
    params.push(...after);
  }
  params.push(limit);
  return d1
    .prepare(`SELECT * FROM ${q(t.name)} WHERE ${where} ORDER BY ${keys} LIMIT ?${params.length}`)
    .bind(...params);
}

/** The attempts of the handle's deliveries with ids in (after, upper] (upper null: no bound). */
function attemptsStatement(d1: D1Database, handle: string, after: Key | null, upper: Key | null) {
  return d1
    .prepare(
      `SELECT * FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE handle = ?1
         AND id > ?2 AND (?3 IS NULL OR id <= ?3)) ORDER BY delivery_id, attempt_number`,
    )
    .bind(handle, after ? String(after[0]) : '', upper ? String(upper[0]) : null);
}

/** Splits rows into JSON arrays small enough for one statement each. */
function chunks(rows: readonly unknown[][]): string[] {
  const out: string[] = [];
  let current: string[] = [];
  let size = 0;
  for (const row of rows) {
    const json = JSON.stringify(row);
    if (current.length && size + json.length > MAX_JSON_PER_STATEMENT) {
      out.push(`[${current.join(',')}]`);
      current = [];
      size = 0;
    }
    current.push(json);
    size += json.length + 1;
  }
  if (current.length) out.push(`[${current.join(',')}]`);
  return out;
}

/** Upserts of whole rows, bound as one JSON array per statement (one bind parameter, whatever the page size). */
function upsertStatements(d1: D1Database, t: TableSpec, rows: readonly Row[]): D1PreparedStatement[] {
  if (!rows.length) return [];
  const cols = Object.keys(rows[0]!);
  const values = cols.map((_, i) => `json_extract(value, '$[${i}]')`).join(', ');
  const set = cols.filter((c) => !t.pk.includes(c)).map((c) => `${q(c)} = excluded.${q(c)}`);
  const sql =
    `INSERT INTO ${q(t.name)} (${cols.map(q).join(', ')}) SELECT ${values} FROM json_each(?1) WHERE true ` +
    `ON CONFLICT (${t.pk.map(q).join(', ')}) DO ${set.length ? `UPDATE SET ${set.join(', ')}` : 'NOTHING'}`;
  return chunks(rows.map((r) => cols.map((c) => r[c] ?? null))).map((json) => d1.prepare(sql).bind(json));
}

/** Deletes of rows by key (of this handle). */
function deleteStatements(d1: D1Database, t: TableSpec, handle: string, keys: readonly Key[]): D1PreparedStatement[] {
  if (!keys.length) return [];
  const cols = t.key.map(q).join(', ');
  const values = t.key.map((_, i) => `json_extract(value, '$[${i}]')`).join(', ');
  // Attempts have no handle column; their key (delivery, number) names one attempt on its own.
  const scope = t === ATTEMPTS ? '' : 'handle = ?2 AND ';
  const sql = `DELETE FROM ${q(t.name)} WHERE ${scope}(${cols}) IN (SELECT ${values} FROM json_each(?1))`;
  return chunks(keys).map((json) => (scope ? d1.prepare(sql).bind(json, handle) : d1.prepare(sql).bind(json)));
}

/** What the target lacks or has differently (upserts), and what it has that the source no longer has (deletes). */
function diff(t: TableSpec, source: readonly Row[], target: readonly Row[]): { upserts: Row[]; deletes: Key[] } {
  const there = new Map(target.map((r) => [JSON.stringify(keyOf(t, r)), JSON.stringify(r)]));
  const here = new Set<string>();
  const upserts: Row[] = [];
  for (const row of source) {
    const k = JSON.stringify(keyOf(t, row));
    here.add(k);
    if (there.get(k) !== JSON.stringify(row)) upserts.push(row);
  }
  const deletes = target.filter((r) => !here.has(JSON.stringify(keyOf(t, r)))).map((r) => keyOf(t, r));
  return { upserts, deletes };
}

interface PageResult {
  /** The last key done; null when the table is done. */
  next: Key | null;
  written: number;
}

/**
 * Makes one page of a table on the target equal to the source: the next rows after `after` on either side, up to
 * the smaller of the two pages' last keys, so a row only on the target is found as surely as one only on the source.
 */
async function syncPage(
  move: HandleMove,
  source: D1Database,
  target: D1Database,
  t: TableSpec,
  after: Key | null,
): Promise<PageResult> {
  const { handle } = move;
  const [src, dst] = await Promise.all([
    pageStatement(source, t, handle, after, MOVE_PAGE_ROWS).all<Row>(),
    pageStatement(target, t, handle, after, MOVE_PAGE_ROWS).all<Row>(),
  ]);
  let upper: Key | null = null;
  if (src.results.length === MOVE_PAGE_ROWS) upper = keyOf(t, src.results.at(-1)!);
  if (dst.results.length === MOVE_PAGE_ROWS) {
    const k = keyOf(t, dst.results.at(-1)!);
    if (!upper || compareKeys(k, upper) < 0) upper = k;
  }
  const within = (r: Row) => !upper || compareKeys(keyOf(t, r), upper) <= 0;
  let sourceRows = src.results.filter(within);
  // The target's copy of the handle row stays read-only for every job on its shard until the flip.
  if (t.name === 'handles') {
    sourceRows = sourceRows.map((r) => ({ ...r, moving_since: r.moving_since ?? move.startedAt }));
  }
  const rows = diff(t, sourceRows, dst.results.filter(within));
  const statements = [...deleteStatements(target, t, handle, rows.deletes)];
  let written = rows.upserts.length + rows.deletes.length;
  let attemptUpserts: D1PreparedStatement[] = [];
  if (t.name === 'deliveries') {
    const [sa, da] = await Promise.all([
      attemptsStatement(source, handle, after, upper).all<Row>(),
      attemptsStatement(target, handle, after, upper).all<Row>(),
    ]);
    const attempts = diff(ATTEMPTS, sa.results, da.results);
    statements.unshift(...deleteStatements(target, ATTEMPTS, handle, attempts.deletes));
    attemptUpserts = upsertStatements(target, ATTEMPTS, attempts.upserts);
    written += attempts.upserts.length + attempts.deletes.length;
  }
  statements.push(...upsertStatements(target, t, rows.upserts), ...attemptUpserts);
  if (statements.length) await target.batch(statements);
  return { next: upper, written };
}

/** Row counts of every moved table for the handle on one shard, one batch. */
async function countRows(d1: D1Database, handle: string): Promise<Record<string, number>> {
  const statements = [
    ...MOVED_TABLES.map((t) => d1.prepare(`SELECT COUNT(*) AS n FROM ${q(t.name)} WHERE handle = ?1`).bind(handle)),
    d1
      .prepare(
        `SELECT COUNT(*) AS n FROM delivery_attempts
         WHERE delivery_id IN (SELECT id FROM deliveries WHERE handle = ?1)`,
      )
      .bind(handle),
  ];
  const results = await d1.batch<{ n: number }>(statements);
  const names = [...MOVED_TABLES.map((t) => t.name), ATTEMPTS.name];
  return Object.fromEntries(names.map((name, i) => [name, Number(results[i]!.results[0]?.n ?? 0)]));
}

/**
 * Deletes one bounded batch of the handle's rows of a table on a shard (children before parents: called in reverse
 * table order); the number deleted, 0 when none are left. A delivery goes with its attempts, in one batch.
 */
async function deletePage(d1: D1Database, t: TableSpec, handle: string): Promise<number> {
  if (t.name === 'deliveries') {
    const ids = (
      await d1
        .prepare('SELECT id FROM deliveries WHERE handle = ?1 ORDER BY id LIMIT ?2')
        .bind(handle, MOVE_PAGE_ROWS)
        .all<{ id: string }>()
    ).results.map((r) => [r.id]);
    if (!ids.length) return 0;
    const json = JSON.stringify(ids);
    const [attempts] = await d1.batch([
      d1
        .prepare(`DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT value ->> '$[0]' FROM json_each(?1))`)
        .bind(json),
      d1.prepare(`DELETE FROM deliveries WHERE id IN (SELECT value ->> '$[0]' FROM json_each(?1))`).bind(json),
    ]);
    return ids.length + (attempts?.meta.changes ?? 0);
  }
  // A source that is the control plane's own database (docs/design.md#shards, upgrading) keeps its handles row: it
  // is the directory's. Only that database has a handle_moves row.
  const keep = t.name === 'handles' ? ' AND NOT EXISTS (SELECT 1 FROM handle_moves WHERE handle = ?1)' : '';
  const result = await d1
    .prepare(
      `DELETE FROM ${q(t.name)} WHERE rowid IN (SELECT rowid FROM ${q(t.name)} WHERE handle = ?1${keep} LIMIT ?2)`,
    )
    .bind(handle, MOVE_PAGE_ROWS)
    .run();
  return result.meta.changes ?? 0;
}

/** The handle's move as the API shows it. */
export function moveProgress(move: HandleMove, now = Date.now()): MoveProgress {
  const walking = ['copying', 'syncing', 'deleting', 'aborting'].includes(move.phase);
  const order = move.phase === 'deleting' || move.phase === 'aborting' ? [...MOVED_TABLES].reverse() : MOVED_TABLES;
  const waiting = (move.phase === 'sealing' || move.phase === 'draining') && move.waitUntil;
  return {
    handle: move.handle,
    fromShard: move.fromShard,
    toShard: move.toShard,
    phase: move.phase,
    table: walking ? (order[move.tableIndex]?.name ?? null) : null,
    rowsCopied: move.rowsCopied,
    rowsRemoved: move.rowsRemoved,
    counts: move.counts ? JSON.parse(move.counts) : null,
    retryAfterSeconds: waiting ? Math.max(0, Math.ceil((Date.parse(move.waitUntil!) - now) / 1000)) : 0,
    error: move.error,
    startedAt: move.startedAt,
    readOnlyAt: move.readOnlyAt,
    flippedAt: move.flippedAt,
    finishedAt: move.finishedAt,
    done: FINISHED.includes(move.phase),
  };
}

function moveFromRow(row: Row): HandleMove {
  return {
    handle: row.handle as string,
    fromShard: Number(row.from_shard),
    toShard: Number(row.to_shard),
    phase: row.phase as MovePhase,
    tableIndex: Number(row.table_index),
    cursor: (row.cursor as string | null) ?? null,
    rowsCopied: Number(row.rows_copied),
    rowsRemoved: Number(row.rows_removed),
    counts: (row.counts as string | null) ?? null,
    waitUntil: (row.wait_until as string | null) ?? null,
    error: (row.error as string | null) ?? null,
    version: Number(row.version),
    startedAt: row.started_at as string,
    readOnlyAt: (row.read_only_at as string | null) ?? null,
    flippedAt: (row.flipped_at as string | null) ?? null,
    finishedAt: (row.finished_at as string | null) ?? null,
    updatedAt: row.updated_at as string,
  };
}

/** The handle's current or last move; null when it never moved. */
export async function findMove(env: Pick<Env, 'DB'>, handle: string): Promise<HandleMove | null> {
  const row = await env.DB.prepare('SELECT * FROM handle_moves WHERE handle = ?1').bind(handle).first<Row>();
  return row ? moveFromRow(row) : null;
}

/** The directory's row of the handle, read fresh (a move never trusts a cached placement). */
async function freshPlacement(env: Pick<Env, 'DB'>, handle: string): Promise<Placement | null> {
  forgetPlacement(env, handle);
  const row = await placementStatement(env, handle).first<Row>();
  return row ? { shard: Number(row.shard), movingSince: (row.moving_since as string | null) ?? null } : null;
}

/** Writes the move's new state, with `extra` control-plane statements, only if no other step wrote it meanwhile. */
async function save(env: Pick<Env, 'DB'>, before: HandleMove, after: HandleMove, extra: D1PreparedStatement[] = []) {
  const now = new Date().toISOString();
  const result = await env.DB.batch([
    ...extra,
    env.DB.prepare(
      `UPDATE handle_moves SET phase = ?3, table_index = ?4, cursor = ?5, rows_copied = ?6, rows_removed = ?7,
         counts = ?8, wait_until = ?9, error = ?10, read_only_at = ?11, flipped_at = ?12, finished_at = ?13,
         updated_at = ?14, version = version + 1
       WHERE handle = ?1 AND version = ?2`,
    ).bind(
      after.handle,
      before.version,
      after.phase,
      after.tableIndex,
      after.cursor,
      after.rowsCopied,
      after.rowsRemoved,
      after.counts,
      after.waitUntil,
      after.error,
      after.readOnlyAt,
      after.flippedAt,
      after.finishedAt,
      now,
    ),
  ]);
  if ((result.at(-1)?.meta.changes ?? 0) === 0) {
    throw problems.conflict('Another step of this move ran at the same time; call again to go on.');
  }
  return { ...after, version: before.version + 1, updatedAt: now };
}

/** A control-plane statement that runs only while the move is still at `version` (it rides in `save`'s batch). */
function guarded(env: Pick<Env, 'DB'>, move: HandleMove, sql: string, ...params: unknown[]): D1PreparedStatement {
  const n = params.length;
  return env.DB.prepare(
    `${sql} AND EXISTS (SELECT 1 FROM handle_moves WHERE handle = ?${n + 1} AND version = ?${n + 2})`,
  ).bind(...params, move.handle, move.version);
}

/**
 * Starts a move of `handle` to shard `toShard`, or goes on with the one under way; then does one bounded step.
 * 404: no such handle; 422: no such shard, or the handle is already there; 409: a move to another shard is under way.
 */
export async function moveHandleStep(env: Env, handle: string, toShard: number): Promise<MoveProgress> {
  const [placement, existing] = await Promise.all([freshPlacement(env, handle), findMove(env, handle)]);
  if (!placement) throw problems.notFound('No such handle.');
  try {
    shardAt(env, toShard);
  } catch {
    throw problems.unprocessable(`There is no shard ${toShard}: this Worker binds no SHARD_${toShard}.`, {
      field: 'toShard',
    });
  }
  let move = existing;
  if (move && !FINISHED.includes(move.phase)) {
    if (move.toShard !== toShard) {
      throw problems.conflict(`This handle is already moving to shard ${move.toShard}; finish that move first.`, {
        toShard: move.toShard,
      });
    }
  } else {
    if (placement.shard === toShard) {
      throw problems.unprocessable(`The handle is already on shard ${toShard}.`, { field: 'toShard' });
    }
    move = await begin(env, handle, placement.shard, toShard, existing);
    // Only the control plane has handle_moves rows: a target that sees this one IS the control plane's database.
    const aliased = await shardAt(env, toShard)
      .prepare('SELECT 1 FROM handle_moves WHERE handle = ?1')
      .bind(handle)
      .first();
    if (aliased) {
      const error = `Shard ${toShard} is the control plane's own database: a handle cannot move onto it.`;
      await save(env, move, { ...move, phase: 'failed', error, finishedAt: new Date().toISOString() });
      throw problems.unprocessable(error, { field: 'toShard' });
    }
  }
  return moveProgress(await step(env, move));
}

async function begin(
  env: Env,
  handle: string,
  fromShard: number,
  toShard: number,
  previous: HandleMove | null,
): Promise<HandleMove> {
  const now = new Date().toISOString();
  // A previous (finished) move is replaced only if it is still the one read: two starts at once make one move.
  const result = await env.DB.prepare(
    `INSERT INTO handle_moves (handle, from_shard, to_shard, phase, started_at, updated_at, version)
     VALUES (?1, ?2, ?3, 'copying', ?4, ?4, ?5)
     ON CONFLICT (handle) DO UPDATE SET from_shard = ?2, to_shard = ?3, phase = 'copying', table_index = 0,
       cursor = NULL, rows_copied = 0, rows_removed = 0, counts = NULL, wait_until = NULL, error = NULL,
       started_at = ?4, read_only_at = NULL, flipped_at = NULL, finished_at = NULL, updated_at = ?4,
       version = version + 1
     WHERE handle_moves.version = ?6`,
  )
    .bind(handle, fromShard, toShard, now, 0, previous?.version ?? -1)
    .run();
  if ((result.meta.changes ?? 0) === 0) throw problems.conflict('A move of this handle was started at the same time.');
  const move = await findMove(env, handle);
  return move!;
}

/** Settle time after the handle turned read-only (docs/design.md#moving-a-handle). */
function settleMs(env: Env): number {
  const cfg = config(env);
  return cfg.directoryCacheTtlMs + cfg.webhookTimeoutMs + WAIT_MARGIN_MS;
}

/** One bounded step: pages of the current table walk, or one phase change, until the budget is spent. */
async function step(env: Env, start: HandleMove): Promise<HandleMove> {
  let move = start;
  const source = shardAt(env, move.fromShard);
  const target = shardAt(env, move.toShard);
  const began = Date.now();
  for (let pages = 0; pages < PAGES_PER_STEP && Date.now() - began < STEP_BUDGET_MS; pages++) {
    const before = move;
    const now = new Date().toISOString();
    switch (move.phase) {
      case 'copying':
      case 'syncing': {
        const t = MOVED_TABLES[move.tableIndex];
        if (!t) {
          // Either ends the step: the seal waits, and the check runs on a step of its own.
          return move.phase === 'copying' ? seal(env, source, move) : save(env, move, verifying(move));
        }
        const page = await syncPage(move, source, target, t, move.cursor ? (JSON.parse(move.cursor) as Key) : null);
        move = await save(env, before, {
          ...move,
          tableIndex: page.next ? move.tableIndex : move.tableIndex + 1,
          cursor: page.next ? JSON.stringify(page.next) : null,
          rowsCopied: move.rowsCopied + page.written,
        });
        continue;
      }
      case 'sealing':
        if (Date.parse(move.waitUntil!) > Date.now()) return move;
        move = await save(env, move, { ...move, phase: 'syncing', tableIndex: 0, cursor: null, waitUntil: null });
        continue;
      case 'verifying':
        return verifyAndFlip(env, source, target, move);
      case 'draining':
        if (Date.parse(move.waitUntil!) > Date.now()) return move;
        move = await save(env, move, { ...move, phase: 'deleting', tableIndex: 0, cursor: null, waitUntil: null });
        continue;
      case 'deleting':
      case 'aborting': {
        const order = [...MOVED_TABLES].reverse();
        const t = order[move.tableIndex];
        const from = move.phase === 'deleting' ? source : target;
        if (!t) {
          move = await save(env, move, {
            ...move,
            phase: move.phase === 'deleting' ? 'done' : 'failed',
            finishedAt: now,
          });
          return move;
        }
        const removed = await deletePage(from, t, move.handle);
        move = await save(env, before, {
          ...move,
          tableIndex: removed ? move.tableIndex : move.tableIndex + 1,
          rowsRemoved: move.rowsRemoved + removed,
        });
        continue;
      }
      default:
        return move;
    }
  }
  return move;
}

const verifying = (move: HandleMove): HandleMove => ({ ...move, phase: 'verifying', tableIndex: 0, cursor: null });

/** The handle turns read-only: the source's copy first (its jobs), then the directory, with the move's state. */
async function seal(env: Env, source: D1Database, move: HandleMove): Promise<HandleMove> {
  const now = new Date().toISOString();
  await source.prepare('UPDATE handles SET moving_since = ?2 WHERE handle = ?1').bind(move.handle, now).run();
  const sealed = await save(
    env,
    move,
    {
      ...move,
      phase: 'sealing',
      tableIndex: 0,
      cursor: null,
      readOnlyAt: now,
      waitUntil: new Date(Date.now() + settleMs(env)).toISOString(),
    },
    [guarded(env, move, 'UPDATE handles SET moving_since = ?1 WHERE handle = ?2', now, move.handle)],
  );
  forgetPlacement(env, move.handle);
  return sealed;
}

/** Counts on both shards; equal → the flip, else the abort (the handle stays where it is, writable). */
async function verifyAndFlip(env: Env, source: D1Database, target: D1Database, move: HandleMove): Promise<HandleMove> {
  const [here, there] = await Promise.all([countRows(source, move.handle), countRows(target, move.handle)]);
  const counts = Object.fromEntries(
    Object.keys(here).map((name) => [name, { source: here[name]!, target: there[name] ?? 0 }]),
  );
  const wrong = Object.entries(counts).filter(([, c]) => c.source !== c.target);
  const now = new Date().toISOString();
  if (wrong.length) {
    const error =
      'Row counts differ after the copy (' +
      wrong.map(([name, c]) => `${name}: ${c.source} on the source, ${c.target} on the target`).join('; ') +
      '): the handle stays on its source shard; the target copy is deleted.';
    console.error(JSON.stringify({ level: 'error', msg: 'handle_move_verify_failed', handle: move.handle, error }));
    await source.prepare('UPDATE handles SET moving_since = NULL WHERE handle = ?1').bind(move.handle).run();
    const aborted = await save(
      env,
      move,
      { ...move, phase: 'aborting', tableIndex: 0, cursor: null, counts: JSON.stringify(counts), error },
      [
        guarded(
          env,
          move,
          'UPDATE handles SET moving_since = NULL WHERE handle = ?1 AND shard = ?2',
          move.handle,
          move.fromShard,
        ),
      ],
    );
    forgetPlacement(env, move.handle);
    return aborted;
  }
  // The target's copy goes live first: a handle in the directory always has its rows, and its jobs see it.
  await target
    .prepare('UPDATE handles SET shard = ?2, moving_since = NULL WHERE handle = ?1')
    .bind(move.handle, move.toShard)
    .run();
  const flipped = await save(
    env,
    move,
    {
      ...move,
      phase: 'draining',
      counts: JSON.stringify(counts),
      flippedAt: now,
      waitUntil: new Date(Date.now() + config(env).directoryCacheTtlMs + WAIT_MARGIN_MS).toISOString(),
    },
    [
      guarded(
        env,
        move,
        'UPDATE handles SET shard = ?1, moving_since = NULL WHERE handle = ?2',
        move.toShard,
        move.handle,
      ),
    ],
  );
  forgetPlacement(env, move.handle);
  placementFromRow(env, move.handle, { shard: move.toShard, moving_since: null });
  return flipped;
}
