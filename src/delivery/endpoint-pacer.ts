/**
 * The pacer of one paced webhook (docs/design.md#pacing): a Durable Object per endpoint (`idFromName(webhook id)`)
 * that hands out send slots `1000 / rate` ms apart. Every consumer invocation asks the same object, so the pace holds
 * across the queue's concurrent consumers; one object per endpoint, so endpoints never wait on each other.
 *
 * A slot is held for its delivery: the consumer retries a message whose slot is later to just inside the horizon, and
 * when it comes back the object recognises the delivery and lets it go — no second slot, no place lost at the back.
 * Grants (a slot handed out as "go now") are at least `1000 / rate` ms apart, whatever happens: a message back late
 * (a slow queue, a consumer outage) takes the next grant after the last one, never a burst of the slots it missed.
 * The state (the next free slot, the last grant, the held slots) is in the object's own SQLite storage, so an
 * evicted object keeps its pace; nothing is written to D1 for a wait.
 */
import { DurableObject } from 'cloudflare:workers';

/**
 * A slot this close (or already past) goes now: the consumer waits for it in the invocation. Three seconds, so that
 * one batch carries a few seconds of an endpoint's slots: the queue starts the next batch only after a batch
 * timeout, and with a horizon of one second a paced endpoint would get a batch's worth every two seconds.
 */
export const SLOT_NOW_MS = 3000;
/** A held slot whose message never came back (its delivery ended meanwhile) is forgotten this long after its time. */
const HELD_SLOT_TTL_MS = 3_600_000;

/** What the doctor and the dashboard show of a pacer. */
export interface PacerStatus {
  /** Deliveries holding a slot in the future. */
  waiting: number;
  /** The time of the last held slot (ISO), null when none is held: until then the endpoint is being paced. */
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
       CREATE TABLE IF NOT EXISTS pace (id INTEGER PRIMARY KEY CHECK (id = 1), next_free REAL NOT NULL,
         last_grant REAL NOT NULL);`,
    );
  }

  /**
   * The slot (epoch ms) of each delivery, in order. A slot within {@link SLOT_NOW_MS} of `now` is a grant: its
   * delivery goes at that time. A later one is held for the delivery (a new one after every slot handed out so far,
   * or the one it already holds), to be asked for again when its message comes back.
   */
  admit(ratePerSecond: number, deliveryIds: readonly string[], now: number = Date.now()): number[] {
    const interval = 1000 / ratePerSecond;
    this.sql.exec('DELETE FROM held WHERE at < ?', now - HELD_SLOT_TTL_MS);
    const state = this.sql.exec<{ next_free: number; last_grant: number }>('SELECT * FROM pace').toArray()[0];
    let next = state?.next_free ?? 0;
    let lastGrant = state?.last_grant ?? Number.NEGATIVE_INFINITY;
    const slots = deliveryIds.map((id) => {
      const held = this.sql.exec<{ at: number }>('SELECT at FROM held WHERE delivery_id = ?', id).toArray()[0];
      // Never in the past (a late message goes now, not at the slot it missed, or late ones would go together),
      // never sooner than one interval after the last grant; a new delivery also queues behind every held slot.
      let at = Math.max(now, held ? held.at : next, lastGrant + interval);
      if (!held) next = at + interval;
      if (at <= now + SLOT_NOW_MS) {
        lastGrant = at;
        next = Math.max(next, at + interval);
        if (held) this.sql.exec('DELETE FROM held WHERE delivery_id = ?', id);
      } else {
        at = Math.round(at);
        this.sql.exec(
          'INSERT INTO held (delivery_id, at) VALUES (?, ?) ON CONFLICT (delivery_id) DO UPDATE SET at = excluded.at',
          id,
          at,
        );
      }
      return Math.round(at);
    });
    this.sql.exec(
      `INSERT INTO pace (id, next_free, last_grant) VALUES (1, ?, ?)
       ON CONFLICT (id) DO UPDATE SET next_free = excluded.next_free, last_grant = excluded.last_grant`,
      next,
      Number.isFinite(lastGrant) ? lastGrant : 0,
    );
    return slots;
  }

  /** How many deliveries wait for a slot, and until when. */
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
