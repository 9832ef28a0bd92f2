/**
 * The handle directory and the data shards (docs/design.md#shards): the ONE place that decides which D1 database holds
 * a handle's rows. The control plane `DB` keeps handles (with the directory column `shard`), memberships, tokens,
 * sessions and platform-wide rows; `SHARD_0 … SHARD_{N-1}` keep everything of a handle. Nothing joins across them.
 *
 * Each isolate caches the directory (at most DIRECTORY_CACHE_MAX entries, each trusted DIRECTORY_CACHE_TTL_SECONDS),
 * so an authenticated request costs one round trip: the access lookup on `DB` and the data query on the shard run at
 * once. Only the placement is cached, never access: a revoked token or membership is refused on its next request. A
 * move (src/archive/move.ts) waits out the TTL before its last pass and again before deleting the source, so no isolate
 * writes on a stale entry.
 */
import { problems } from '../lib/problem.ts';
import { type Db, getDb } from './client.ts';

/** Entries one isolate keeps; the least recently used goes first. */
export const DIRECTORY_CACHE_MAX = 10_000;

/** Where a handle lives, as the directory said when it was read. */
export interface Placement {
  /** Index of its shard (`SHARD_<n>`). */
  shard: number;
  /** Set while the handle moves between shards: its writes wait (docs/design.md#moving-a-handle). */
  movingSince: string | null;
}

interface Entry extends Placement {
  expiresAt: number;
}

/** One directory cache per control-plane binding (a test may run an isolated environment beside the real one). */
const directories = new WeakMap<D1Database, Map<string, Entry>>();
const shardLists = new WeakMap<object, D1Database[]>();

/** Counts the control-plane directory reads of this isolate (tests and the bench check the cache works). */
export const directoryStats = { lookups: 0 };

function directory(env: Pick<Env, 'DB'>): Map<string, Entry> {
  let map = directories.get(env.DB);
  if (!map) {
    map = new Map();
    directories.set(env.DB, map);
  }
  return map;
}

/** The binding name of shard `index`: `SHARD_<index>`. */
export function shardBindingName(index: number): string {
  return `SHARD_${index}`;
}

/**
 * The data shards bound to this Worker, in order: `SHARD_0`, `SHARD_1`, … up to the first missing one. A deployment
 * without any keeps its data in `DB` (one database, as before sharding).
 */
export function shardBindings(env: Pick<Env, 'DB'>): D1Database[] {
  let list = shardLists.get(env);
  if (list) return list;
  list = [];
  const bindings = env as unknown as Record<string, D1Database | undefined>;
  for (let i = 0; bindings[shardBindingName(i)]; i++) list.push(bindings[shardBindingName(i)]!);
  if (!list.length) list.push(env.DB);
  shardLists.set(env, list);
  return list;
}

/** The shard with this index; a directory naming a shard that is not bound is a deployment error. */
export function shardAt(env: Pick<Env, 'DB'>, index: number): D1Database {
  const shard = shardBindings(env)[index];
  if (!shard) throw new Error(`The directory names SHARD_${index}, which this Worker does not bind.`);
  return shard;
}

function ttlMs(env: Pick<Env, 'DB'>): number {
  const raw = Number.parseInt((env as { DIRECTORY_CACHE_TTL_SECONDS?: string }).DIRECTORY_CACHE_TTL_SECONDS ?? '', 10);
  return (Number.isFinite(raw) && raw >= 0 ? raw : 30) * 1000;
}

/** The cached placement, if still fresh (no D1 read). */
export function cachedPlacement(env: Pick<Env, 'DB'>, handle: string): Placement | undefined {
  const map = directory(env);
  const entry = map.get(handle);
  if (!entry) return undefined;
  if (entry.expiresAt <= Date.now()) {
    map.delete(handle);
    return undefined;
  }
  // Least recently used first out: a hit moves the entry to the end of the Map's order.
  map.delete(handle);
  map.set(handle, entry);
  return entry;
}

/** Remembers a placement read from the directory. */
export function rememberPlacement(env: Pick<Env, 'DB'>, handle: string, placement: Placement): void {
  const map = directory(env);
  map.delete(handle);
  map.set(handle, { ...placement, expiresAt: Date.now() + ttlMs(env) });
  while (map.size > DIRECTORY_CACHE_MAX) map.delete(map.keys().next().value!);
}

/** Drops a handle's cached placement (after a move or a new handle in this isolate). */
export function forgetPlacement(env: Pick<Env, 'DB'>, handle: string): void {
  directory(env).delete(handle);
}

/** The directory row of one handle as a statement (zero or one row), to ride in a control-plane batch. */
export function placementStatement(env: Pick<Env, 'DB'>, handle: string): D1PreparedStatement {
  return env.DB.prepare('SELECT shard, moving_since FROM handles WHERE handle = ?1').bind(handle);
}

/** Reads a `placementStatement` answer into the cache; null when the handle does not exist. */
export function placementFromRow(
  env: Pick<Env, 'DB'>,
  handle: string,
  row: Record<string, unknown> | undefined,
): Placement | null {
  if (!row) return null;
  const placement = { shard: Number(row.shard), movingSince: (row.moving_since as string | null) ?? null };
  rememberPlacement(env, handle, placement);
  return placement;
}

/** Where the handle lives (cached); null when it does not exist. */
export async function placementOf(env: Pick<Env, 'DB'>, handle: string): Promise<Placement | null> {
  const cached = cachedPlacement(env, handle);
  if (cached) return cached;
  directoryStats.lookups++;
  const row = await placementStatement(env, handle).first<Record<string, unknown>>();
  return placementFromRow(env, handle, row ?? undefined);
}

/**
 * `items` by the shard of their handle (docs/design.md#shards), the placements of the distinct handles looked up at
 * once (cached) — a queue consumer's batch names a few handles many times. An item of a handle that is moving comes
 * back apart, in `moving`: its writes wait for the move. An item that names no handle (a message from before sharding)
 * or a handle gone from the directory goes with SHARD_0's.
 */
export async function byShard<T>(
  env: Pick<Env, 'DB'>,
  items: readonly T[],
  handleOf: (item: T) => string | null | undefined,
): Promise<{ groups: Map<D1Database, T[]>; moving: T[] }> {
  const handles = [...new Set(items.flatMap((item) => handleOf(item) ?? []))];
  const placements = new Map(await Promise.all(handles.map(async (h) => [h, await placementOf(env, h)] as const)));
  const groups = new Map<D1Database, T[]>();
  const moving: T[] = [];
  for (const item of items) {
    const handle = handleOf(item);
    const placement = handle ? placements.get(handle) : undefined;
    if (placement?.movingSince) {
      moving.push(item);
      continue;
    }
    const d1 = shardAt(env, placement?.shard ?? 0);
    const group = groups.get(d1);
    if (group) group.push(item);
    else groups.set(d1, [item]);
  }
  return { groups, moving };
}

/**
 * The D1 database holding the handle's rows: every handle-scoped query goes through here (or {@link shardDbFor}).
 * An unknown handle answers 404, as a handle the caller may not see does.
 */
export async function shardFor(env: Pick<Env, 'DB'>, handle: string): Promise<D1Database> {
  const placement = await placementOf(env, handle);
  if (!placement) throw problems.notFound();
  return shardAt(env, placement.shard);
}

/** {@link shardFor} as a drizzle client. */
export async function shardDbFor(env: Pick<Env, 'DB'>, handle: string): Promise<Db> {
  return getDb(await shardFor(env, handle));
}

/**
 * 503 with Retry-After while the handle moves between shards (docs/design.md#moving-a-handle): writes wait until the
 * directory is flipped; reads go on from the source.
 */
export async function requireWritable(env: Pick<Env, 'DB'>, handle: string): Promise<void> {
  const placement = await placementOf(env, handle);
  if (placement?.movingSince) {
    throw problems.moving();
  }
}

/**
 * A database's size in bytes as D1 itself reports it: `meta.size_after` of one statement that reads no row. The one
 * place that measures a shard (placement below, the storage budget, the handle's placement report). `PRAGMA
 * page_count` is no alternative: D1 refuses it (it allows only the schema PRAGMAs), while every answer carries this.
 */
export async function reportedSize(d1: D1Database): Promise<number> {
  return (await d1.prepare('SELECT 1').run()).meta.size_after ?? 0;
}

/**
 * The shard a new handle goes to: the smallest by D1's own reported size ({@link reportedSize}), a tie to any of the
 * smallest at random. Fresh shards report the same size until a handle's rows fill a page, so ties to the lowest index
 * put every handle created in a row on SHARD_0. One statement per shard, all at once.
 */
export async function leastLoadedShard(env: Pick<Env, 'DB'>): Promise<number> {
  const shards = shardBindings(env);
  if (shards.length === 1) return 0;
  const sizes = await Promise.all(shards.map(reportedSize));
  const least = Math.min(...sizes);
  const smallest = sizes.flatMap((size, i) => (size === least ? [i] : []));
  return smallest[Math.floor(Math.random() * smallest.length)]!;
}

/** Runs `work` on every shard at once (jobs walk all of them); the results in shard order. */
export function onEveryShard<T>(
  env: Pick<Env, 'DB'>,
  work: (d1: D1Database, index: number) => Promise<T>,
): Promise<T[]> {
  return Promise.all(shardBindings(env).map((d1, i) => work(d1, i)));
}

/**
 * Finds a row known only by a key no handle goes with (a confirmation token from a mail link, a provider's reference):
 * asks every shard at once and answers the first that has it, with its shard. Such lookups are rare (a user's click, a
 * provider's callback), so one round trip to each shard costs less than a directory of every token. A row that names
 * its `handle` is taken from the shard the directory names when a move left a copy on another.
 */
export async function findOnShards<T>(
  env: Pick<Env, 'DB'>,
  find: (d1: D1Database) => Promise<T | null | undefined>,
): Promise<{ d1: D1Database; found: T } | null> {
  const found = await onEveryShard(env, async (d1, index) => ({ d1, index, found: await find(d1) }));
  const hits = found.filter((f) => f.found !== null && f.found !== undefined);
  let hit = hits[0];
  // Two shards have it while its handle moves (docs/design.md#moving-a-handle): the directory's shard is the live one.
  const handle = (hit?.found as { handle?: unknown } | undefined)?.handle;
  if (hits.length > 1 && typeof handle === 'string') {
    const placement = await placementOf(env, handle);
    hit = hits.find((h) => h.index === placement?.shard) ?? hit;
  }
  return hit ? { d1: hit.d1, found: hit.found as T } : null;
}
