/**
 * Retention of the rows deleted without an archive (docs/design.md#retention-and-archives): a handle's event
 * rejections and test sends past its retention, and the service's expired dashboard sessions, in bounded keyset
 * steps whose rows read (D1's `meta.rows_read`) stay proportional to the rows deleted whatever else the tables hold.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { purgeGlobalRows, purgeSideRows, SIDE_READ_SLACK, SIDE_STEP_ROWS } from '../../src/archive/side-rows.ts';
import { purgeHandle } from '../../src/jobs/purge-expired.ts';
import { boundaryId, newId } from '../../src/lib/ids.ts';
import { shardOf } from '../support/helpers.ts';
import { setupHandle } from '../support/pipeline-helpers.ts';
import { seedManyNotifications } from '../support/seed.ts';

const DAY = 86_400_000;

async function countOf(sql: string, ...params: unknown[]): Promise<number> {
  const row = await env.DB.prepare(sql)
    .bind(...params)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

async function run(statements: D1PreparedStatement[]): Promise<void> {
  for (let i = 0; i < statements.length; i += 200) await env.DB.batch(statements.slice(i, i + 200));
}

function rejection(handle: string | null, at: number): D1PreparedStatement {
  return env.DB.prepare(
    `INSERT INTO event_rejections (id, queue, message_id, handle, reason, body, created_at)
     VALUES (?1, 'notify-events', ?2, ?3, 'invalid', '{}', ?4)`,
  ).bind(newId('rej', at), `m-${Math.random()}`, handle, new Date(at).toISOString());
}

/** A test send (no notification) with one attempt when it is terminal. */
function testSend(handle: string, at: number, status: string): D1PreparedStatement[] {
  const id = newId('dlv', at);
  const iso = new Date(at).toISOString();
  const out = [
    env.DB.prepare(
      `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
         status, attempt_count, payload, created_at, updated_at)
       VALUES (?1, ?2, NULL, 'test', 'webhook', 'webhook', NULL, 'https://example.test/hook', ?3, ?4, '{}', ?5, ?5)`,
    ).bind(id, handle, status, status === 'succeeded' ? 1 : 0, iso),
  ];
  if (status === 'succeeded') {
    out.push(
      env.DB.prepare(
        `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, http_status, duration_ms, created_at)
         VALUES (?1, ?2, 1, 'succeeded', 200, 5, ?3)`,
      ).bind(newId('att', at), id, iso),
    );
  }
  return out;
}

/** A delivery a replay made (status given; one attempt when it succeeded), on `d1`, of `notificationId`. */
function replayed(d1: D1Database, handle: string, notificationId: string, at: number, status: string) {
  const id = newId('dlv', at);
  const iso = new Date(at).toISOString();
  const out = [
    d1
      .prepare(
        `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
           status, attempt_count, replay_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'event', 'webhook', 'webhook', ?4, 'https://example.test/hook', ?5, ?6, 'rpl_test', ?7, ?7)`,
      )
      .bind(id, handle, notificationId, newId('whk'), status, status === 'succeeded' ? 1 : 0, iso),
  ];
  if (status === 'succeeded') {
    out.push(
      d1
        .prepare(
          `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, http_status, duration_ms, created_at)
           VALUES (?1, ?2, 1, 'succeeded', 200, 5, ?3)`,
        )
        .bind(newId('att', at), id, iso),
    );
  }
  return out;
}

describe('rows deleted without an archive', () => {
  it('rejections and test sends past the retention go in bounded keyset steps; open test sends wait (meta)', async () => {
    const h = await setupHandle();
    const other = await setupHandle();
    const now = Date.now();
    const old = now - 40 * DAY;
    const seed: D1PreparedStatement[] = [];
    for (let i = 0; i < 700; i++) seed.push(rejection(h.handle, old + i * 1000));
    for (let i = 0; i < 400; i++) seed.push(...testSend(h.handle, old + i * 1000 + 1, 'succeeded'));
    seed.push(...testSend(h.handle, old + 10, 'queued'));
    for (let i = 0; i < 3; i++) {
      seed.push(rejection(h.handle, now - i * 1000));
      seed.push(...testSend(h.handle, now - i * 1000, 'succeeded'));
    }
    // Another handle's old rows share the same indexes: a step must not read them.
    for (let i = 0; i < 2000; i++) seed.push(rejection(other.handle, old - DAY + i));
    for (let i = 0; i < 500; i++) seed.push(...testSend(other.handle, old - DAY + i, 'succeeded'));
    await run(seed);
    const testSendsOf = (handle: string) =>
      countOf('SELECT count(*) AS n FROM deliveries WHERE handle = ?1 AND notification_id IS NULL', handle);
    // 1,900 expired rows: more than one step reads. Each step reads at most the step size plus a constant.
    expect(700 + 400 * 2).toBeGreaterThan(SIDE_STEP_ROWS / 2);
    const total = { rejections: 0, testSends: 0, testAttempts: 0 };
    let steps = 0;
    for (; steps < 20; steps++) {
      const step = await purgeSideRows(env.DB, h.handle, 30, new Date(now));
      expect(step.rowsRead, JSON.stringify(step)).toBeLessThanOrEqual(SIDE_STEP_ROWS + SIDE_READ_SLACK);
      if (step.rejections + step.testSends === 0) break;
      total.rejections += step.rejections;
      total.testSends += step.testSends;
      total.testAttempts += step.testAttempts;
    }
    expect(total).toEqual({ rejections: 700, testSends: 400, testAttempts: 400 });
    expect(steps).toBeGreaterThan(1);

    // The job's per-handle run does the same: nothing expired and closed is left, so it deletes nothing more.
    await purgeHandle(env, h.handle, 30, new Date(now));
    expect(await countOf('SELECT count(*) AS n FROM event_rejections WHERE handle = ?1', h.handle)).toBe(3);
    // The 3 recent test sends and the old one still queued remain, with the recent ones' attempts.
    expect(await testSendsOf(h.handle)).toBe(4);
    expect(
      await countOf(
        `SELECT count(*) AS n FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.handle = ?1`,
        h.handle,
      ),
    ).toBe(3);
    expect(
      await countOf(`SELECT count(*) AS n FROM deliveries WHERE handle = ?1 AND status = 'queued'`, h.handle),
    ).toBe(1);
    // The other handle (its own retention not applied here) is untouched.
    expect(await countOf('SELECT count(*) AS n FROM event_rejections WHERE handle = ?1', other.handle)).toBe(2000);
    expect(await testSendsOf(other.handle)).toBe(500);
  });

  it('expired dashboard sessions and handle-less rejections go by their indexes, bounded; live ones stay (meta)', async () => {
    const now = Date.now();
    const seed: D1PreparedStatement[] = [];
    const mark = `sess-${now}-`;
    for (let i = 0; i < 600; i++) {
      seed.push(
        env.DB.prepare('INSERT INTO dashboard_sessions (id, expires_at, created_at) VALUES (?1, ?2, ?2)').bind(
          `${mark}old-${i}`,
          new Date(now - DAY - i * 1000).toISOString(),
        ),
      );
    }
    for (let i = 0; i < 3; i++) {
      seed.push(
        env.DB.prepare('INSERT INTO dashboard_sessions (id, expires_at, created_at) VALUES (?1, ?2, ?3)').bind(
          `${mark}live-${i}`,
          new Date(now + DAY).toISOString(),
          new Date(now).toISOString(),
        ),
      );
    }
    for (let i = 0; i < 10; i++) seed.push(rejection(null, now - 40 * DAY + i));
    seed.push(rejection(null, now));
    await run(seed);

    // 600 expired sessions: more than one step deletes. Each step reads at most the step size plus a constant.
    let sessions = 0;
    let steps = 0;
    for (; steps < 20; steps++) {
      const step = await purgeGlobalRows(env.DB, 30, new Date(now));
      expect(step.rowsRead, JSON.stringify(step)).toBeLessThanOrEqual(SIDE_STEP_ROWS + SIDE_READ_SLACK);
      if (step.sessions + step.rejections === 0) break;
      sessions += step.sessions;
    }
    expect(steps).toBeGreaterThan(1);
    expect(sessions).toBeGreaterThanOrEqual(600);
    expect(await countOf(`SELECT count(*) AS n FROM dashboard_sessions WHERE id LIKE ?1`, `${mark}%`)).toBe(3);
    // The recent handle-less rejection stays.
    const recent = boundaryId('rej', now - 1000);
    expect(await countOf('SELECT count(*) AS n FROM event_rejections WHERE handle IS NULL AND id >= ?1', recent)).toBe(
      1,
    );
  });
  it("a replay's deliveries of archived notifications go after the retention; those of notifications still here wait for the archive (meta)", async () => {
    const h = await setupHandle();
    const other = await setupHandle();
    const d1 = await shardOf(h.handle);
    const now = Date.now();
    const old = now - 40 * DAY;
    // Two old notifications still in D1 (not archived yet): their replayed deliveries go with them, in the archive.
    await seedManyNotifications(h.handle, 2, old - DAY);
    const here = await d1
      .prepare('SELECT id FROM notifications WHERE handle = ?1 ORDER BY id')
      .bind(h.handle)
      .all<{ id: string }>();
    expect(here.results).toHaveLength(2);
    const gone = () => newId('ntf', old - 2 * DAY);
    const seed: D1PreparedStatement[] = [];
    for (let i = 0; i < 300; i++) seed.push(...replayed(d1, h.handle, gone(), old + i * 1000, 'succeeded'));
    for (const n of here.results) seed.push(...replayed(d1, h.handle, n.id, old + 500, 'succeeded'));
    seed.push(...replayed(d1, h.handle, gone(), old + 700, 'queued'));
    for (let i = 0; i < 2; i++) seed.push(...replayed(d1, h.handle, gone(), now - i * 1000, 'succeeded'));
    // Another handle's old replayed deliveries share the index: a step must not read them.
    for (let i = 0; i < 500; i++) seed.push(...replayed(d1, other.handle, gone(), old - DAY + i, 'succeeded'));
    for (let i = 0; i < seed.length; i += 200) await d1.batch(seed.slice(i, i + 200));
    const replayedOf = (handle: string) =>
      d1
        .prepare('SELECT count(*) AS n FROM deliveries WHERE handle = ?1 AND replay_id IS NOT NULL')
        .bind(handle)
        .first<{ n: number }>();

    const total = { replayed: 0, replayedAttempts: 0 };
    let steps = 0;
    for (; steps < 20; steps++) {
      const step = await purgeSideRows(d1, h.handle, 30, new Date(now));
      expect(step.rowsRead, JSON.stringify(step)).toBeLessThanOrEqual(SIDE_STEP_ROWS + SIDE_READ_SLACK);
      // Within its own third, so a step that also has rejections and test sends to delete stays within the whole.
      const [, , select = 0, , , , attempts = 0, deletes = 0] = step.reads;
      expect(select + attempts + deletes, JSON.stringify(step)).toBeLessThanOrEqual(
        Math.floor(SIDE_STEP_ROWS / 3) + SIDE_READ_SLACK,
      );
      if (step.replayed === 0) break;
      total.replayed += step.replayed;
      total.replayedAttempts += step.replayedAttempts;
    }
    expect(total).toEqual({ replayed: 300, replayedAttempts: 300 });
    expect(steps).toBeGreaterThan(1);
    // Left: the two of notifications still here, the open one, the two recent ones; the other handle's untouched.
    expect((await replayedOf(h.handle))!.n).toBe(5);
    expect((await replayedOf(other.handle))!.n).toBe(500);
  });
});
