/**
 * The pacer of one paced webhook (docs/design.md#pacing): a Durable Object per endpoint (`idFromName(webhook id)`)
 * that hands out send times ("grants") `1000 / rate` ms apart. Every consumer invocation asks the same object, so the
 * pace holds across the queue's concurrent consumers; one object per endpoint, so endpoints never wait on each other.
 *
 * The grants are work-conserving: they go, one interval after the last, to the deliveries that are there to take
 * them — whose messages are in an invocation now — never to a place kept for a message still on its way back. Every
 * delivery also has a turn (its place in line): a delivery whose turn is more than {@link HORIZON_MS} away is held
 * (its turn kept, no grant) and its message comes back before it; one back late is granted the next send, never the
 * one it missed. So a message that is late leaves no hole in the pace, and a backlog never leaves as a burst.
 * The state (the last grant, the back of the line, the turns held and the grants made) is in the object's own SQLite
 * storage, so an evicted object keeps its pace; nothing is written to D1 for a wait.
 */
import { DurableObject } from 'cloudflare:workers';

/**
 * One call's grants span at most this (from its first). With the horizon twice as long, a second invocation asking
 * while a first holds the next three seconds is granted the three after them: two batches then alternate without a
 * gap even where a queue starts an invocation only after the previous one ended (docs/performance.md#pacing).
 */
export const GRANT_SPAN_MS = 3000;
/** No grant is further than this from its call (the longest wait in an invocation); nor is a turn held closer. */
export const HORIZON_MS = 2 * GRANT_SPAN_MS;
/** A held turn whose message never came back (its delivery ended meanwhile) is forgotten this long after its time. */
const HELD_TURN_TTL_MS = 3_600_000;
/** A grant is remembered this long, so a delivery that could not use it in time comes back at the front. */
const GRANT_TTL_MS = 300_000;

/** A delivery's answer: go at `at` (a grant, epoch ms), or come back before `at`, its turn. */
export interface Slot {
  at: number;
  go: boolean;
}

/** What the doctor and the dashboard show of a pacer. */
export interface PacerStatus {
  /** Deliveries holding a turn in the future. */
  waiting: number;
  /** The time of the last held turn (ISO), null when none is held: until then the endpoint is being paced. */
  pacedUntil: string | null;
}

export class EndpointPacer extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS held (delivery_id TEXT PRIMARY KEY, at REAL NOT NULL);
       CREATE INDEX IF NOT EXISTS held_at ON held (at);
       CREATE TABLE IF NOT EXISTS granted (delivery_id TEXT PRIMARY KEY, at REAL NOT NULL);
       CREATE INDEX IF NOT EXISTS granted_at ON granted (at);
       CREATE TABLE IF NOT EXISTS pace (id INTEGER PRIMARY KEY CHECK (id = 1), next_free REAL NOT NULL,
         last_grant REAL NOT NULL);`,
    );
  }

  /**
   * The answer for each delivery, in order. The deliveries whose turn is within {@link HORIZON_MS} are granted the
   * next sends — earliest turn first, at least `1000 / rate` ms after the last grant, never in the past — as far as
   * {@link GRANT_SPAN_MS} from this call's first grant and {@link HORIZON_MS} from `now`. The others are held: a
   * delivery seen before keeps its turn, a new one takes the back of the line. A delivery granted before and asking
   * again (it could not send in time) is at the front.
   */
  admit(ratePerSecond: number, deliveryIds: readonly string[], now: number = Date.now()): Slot[] {
    const interval = 1000 / ratePerSecond;
    this.sql.exec('DELETE FROM held WHERE at < ?', now - HELD_TURN_TTL_MS);
    this.sql.exec('DELETE FROM granted WHERE at < ?', now - GRANT_TTL_MS);
    const state = this.sql.exec<{ next_free: number; last_grant: number }>('SELECT * FROM pace').toArray()[0];
    let next = Math.max(now, state?.next_free ?? 0);
    let frontier = Math.max(now, (state?.last_grant ?? Number.NEGATIVE_INFINITY) + interval);
    let lastGrant = state?.last_grant ?? 0;
    const grantUntil = Math.min(frontier + GRANT_SPAN_MS, now + HORIZON_MS);
    const asked = [...new Set(deliveryIds)].map((id, order) => ({ id, order, turn: this.turnOf(id) }));
    // Known turns first, earliest first; then new deliveries in the order asked (each takes the back of the line).
    asked.sort(
      (a, b) => (a.turn ?? Number.POSITIVE_INFINITY) - (b.turn ?? Number.POSITIVE_INFINITY) || a.order - b.order,
    );
    const answers = new Map<string, Slot>();
    let heldFrom = frontier;
    for (const a of asked) {
      const turn = a.turn ?? next;
      if (turn <= now + HORIZON_MS && frontier <= grantUntil) {
        lastGrant = frontier;
        frontier += interval;
        next = Math.max(next, frontier);
        heldFrom = frontier;
        this.sql.exec('DELETE FROM held WHERE delivery_id = ?', a.id);
        this.keep('granted', a.id, lastGrant);
        answers.set(a.id, { at: Math.round(lastGrant), go: true });
        continue;
      }
      // Held: never before the sends already granted, one interval apart, so its message comes back in time.
      const at = Math.max(turn, heldFrom);
      heldFrom = at + interval;
      if (a.turn === undefined) next = at + interval;
      this.keep('held', a.id, at);
      answers.set(a.id, { at: Math.round(at), go: false });
    }
    this.sql.exec(
      `INSERT INTO pace (id, next_free, last_grant) VALUES (1, ?, ?)
       ON CONFLICT (id) DO UPDATE SET next_free = excluded.next_free, last_grant = excluded.last_grant`,
      next,
      lastGrant,
    );
    return deliveryIds.map((id) => answers.get(id)!);
  }

  /** Writes a delivery's held turn, or its grant. */
  private keep(table: 'held' | 'granted', id: string, at: number): void {
    this.sql.exec(
      `INSERT INTO ${table} (delivery_id, at) VALUES (?, ?) ON CONFLICT (delivery_id) DO UPDATE SET at = excluded.at`,
      id,
      at,
    );
  }

  /** A delivery's turn: the one it holds, or now for one granted before (it comes back at the front); else none. */
  private turnOf(id: string): number | undefined {
    const held = this.sql.exec<{ at: number }>('SELECT at FROM held WHERE delivery_id = ?', id).toArray()[0];
    if (held) return held.at;
    const granted = this.sql.exec<{ at: number }>('SELECT at FROM granted WHERE delivery_id = ?', id).toArray()[0];
    return granted ? Number.NEGATIVE_INFINITY : undefined;
  }

  /** How many deliveries wait for their turn, and until when. */
  status(now: number = Date.now()): PacerStatus {
    const row = this.sql
      .exec<{ n: number; last: number | null }>('SELECT count(*) AS n, max(at) AS last FROM held WHERE at > ?', now)
      .toArray()[0];
    return {
      waiting: row?.n ?? 0,
      pacedUntil: row?.last ? new Date(row.last).toISOString() : null,
    };
  }
}
