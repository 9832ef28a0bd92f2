/**
 * Retention and archives (docs/design.md#retention-and-archives): the per-handle retention on the control-plane route,
 * the purge step (archive to the real local R2 bucket, verify, then delete, in keyset order with bounded rows read),
 * its guards (open deliveries wait, a crash between archive and delete, a delivery racing the purge), the archive
 * routes, the 410 for an archived notification, and the storage report of the doctor.
 */

import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { purgeStep, STEP_READ_SLACK, STEP_ROWS } from '../../src/archive/purge.ts';
import { purgeHandle } from '../../src/jobs/purge-expired.ts';
import { checkStorageBudget } from '../../src/jobs/storage-alert.ts';
import { newId } from '../../src/lib/ids.ts';
import {
  addMember,
  anyShard,
  call,
  callJson,
  createPat,
  expectProblem,
  serviceJwt,
  shardOf,
  unique,
} from '../support/helpers.ts';
import { createWebhook, eventually, recordingEmail, setupHandle } from '../support/pipeline-helpers.ts';
import { receiverUrl, setMode } from '../support/receivers.ts';
import { insertNotifications, seedManyNotifications } from '../support/seed.ts';

const DAY = 86_400_000;
/** A moment at which everything created by this run is past a 30-day retention. */
const later = () => new Date(Date.now() + 31 * DAY);

/** Expired notifications of one UTC day, each with `perN` delivered deliveries of `attemptsPer` attempts. */
async function seedExpired(
  handle: string,
  n: number,
  opts: { baseMs?: number; perN?: number; attemptsPer?: number } = {},
): Promise<string[]> {
  const d1 = await shardOf(handle);
  const baseMs = opts.baseMs ?? Date.parse('2026-03-10T01:00:00Z');
  const perN = opts.perN ?? 2;
  const attemptsPer = opts.attemptsPer ?? 2;
  const ids = Array.from({ length: n }, (_, i) => newId('ntf', baseMs + i * 1000));
  await insertNotifications(
    handle,
    ids.map((id, i) => ({
      id,
      type: 'order.paid',
      severity: 'info',
      status: 'delivered',
      createdAt: new Date(baseMs + i * 1000).toISOString(),
      data: { i },
    })),
  );
  const statements: D1PreparedStatement[] = [
    d1.prepare('UPDATE notifications SET recipient_count = ?2 WHERE handle = ?1').bind(handle, perN),
  ];
  for (const [i, nid] of ids.entries()) {
    const at = new Date(baseMs + i * 1000 + 10).toISOString();
    for (let d = 0; d < perN; d++) {
      const did = newId('dlv', baseMs + i * 1000 + d);
      statements.push(
        d1
          .prepare(
            `INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
             status, attempt_count, created_at, updated_at)
           VALUES (?1, ?2, ?3, 'event', 'webhook', 'webhook', NULL, 'https://example.test/hook', 'succeeded', ?4, ?5, ?5)`,
          )
          .bind(did, handle, nid, attemptsPer, at),
      );
      for (let a = 1; a <= attemptsPer; a++) {
        statements.push(
          d1
            .prepare(
              `INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, http_status, duration_ms,
               created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 12, ?6)`,
            )
            .bind(newId('att', baseMs + i * 1000 + a), did, a, a === attemptsPer ? 'succeeded' : 'failed', 200, at),
        );
      }
    }
  }
  for (let i = 0; i < statements.length; i += 200) await d1.batch(statements.slice(i, i + 200));
  return ids;
}

/**
 * `n` expired, delivered notifications of one UTC day with `perN` succeeded deliveries of `attemptsPer` attempts each,
 * written by three set-based statements (fast enough for thousands of rows).
 */
async function seedExpiredBulk(handle: string, n: number, baseMs: number, perN: number, attemptsPer: number) {
  const d1 = await shardOf(handle);
  await seedManyNotifications(handle, n, baseMs);
  const seq = (k: number) => `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${k})`;
  await d1.batch([
    d1
      .prepare(`UPDATE notifications SET status = 'delivered', open_count = 0, recipient_count = ?2 WHERE handle = ?1`)
      .bind(handle, perN),
    d1
      .prepare(
        `${seq(perN)}
       INSERT INTO deliveries (id, handle, notification_id, kind, channel, recipient_type, subscription_id, target,
         status, attempt_count, created_at, updated_at)
       SELECT 'dlv_' || substr(n.id, 5) || s.i, n.handle, n.id, 'event', 'webhook', 'webhook', NULL,
         'https://example.test/hook', 'succeeded', ?2, n.created_at, n.created_at
       FROM notifications n, s WHERE n.handle = ?1`,
      )
      .bind(handle, attemptsPer),
    d1
      .prepare(
        `${seq(attemptsPer)}
       INSERT INTO delivery_attempts (id, delivery_id, attempt_number, outcome, http_status, duration_ms, created_at)
       SELECT 'att_' || substr(d.id, 5) || s.i, d.id, s.i, 'succeeded', 200, 12, d.created_at
       FROM deliveries d, s WHERE d.handle = ?1`,
      )
      .bind(handle),
  ]);
}

async function countOf(sql: string, ...params: unknown[]): Promise<number> {
  const row = await anyShard
    .prepare(sql)
    .bind(...params)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

const notificationsOf = (handle: string) =>
  countOf('SELECT count(*) AS n FROM notifications WHERE handle = ?1', handle);

/** The archive object as its lines, read back from the real local bucket with gunzip. */
async function archiveLines(key: string): Promise<any[]> {
  const object = await env.ARCHIVE.get(key);
  if (!object) throw new Error(`no object at ${key}`);
  const text = await new Response(object.body.pipeThrough(new DecompressionStream('gzip'))).text();
  expect(text.endsWith('\n')).toBe(true);
  return text
    .slice(0, -1)
    .split('\n')
    .map((l) => JSON.parse(l));
}

async function archiveRow(id: string): Promise<Record<string, any>> {
  return (await anyShard.prepare('SELECT * FROM archives WHERE id = ?1').bind(id).first())!;
}

describe('retentionDays on the handle', () => {
  it('is 30 by default, set through the control-plane route (1–400), shown on GET /v2/handles/{h}', async () => {
    const h = await setupHandle();
    const svc = await serviceJwt();
    const get = () => callJson('GET', `/v2/handles/${h.handle}`, { token: h.token });
    expect((await get()).body.retentionDays).toBe(30);

    const put = await callJson('PUT', `/v2/internal/handles/${h.handle}`, {
      token: svc,
      body: { displayName: 'Store', retentionDays: 90 },
    });
    expect(put.status).toBe(200);
    expect(put.body.retentionDays).toBe(90);
    expect((await get()).body.retentionDays).toBe(90);

    // Omitted: unchanged.
    await callJson('PUT', `/v2/internal/handles/${h.handle}`, { token: svc, body: { displayName: 'Renamed' } });
    expect((await get()).body.retentionDays).toBe(90);

    for (const bad of [0, 401, 1.5, '30']) {
      const res = await call('PUT', `/v2/internal/handles/${h.handle}`, {
        token: svc,
        body: { displayName: 'Store', retentionDays: bad },
      });
      const problem = await expectProblem(res, 400);
      expect(problem.errors.map((e: { path: string }) => e.path)).toEqual(['body.retentionDays']);
    }
    expect((await get()).body.retentionDays).toBe(90);

    const created = await callJson('PUT', `/v2/internal/handles/${unique('h')}`, {
      token: svc,
      body: { displayName: 'New', retentionDays: 7 },
    });
    expect(created.status).toBe(201);
    expect(created.body.retentionDays).toBe(7);
  });
});

describe('purge step: archive to R2, verify, then delete', () => {
  it('a real purged handle: its archive gunzips to one JSON object per line, and the rows are gone', async () => {
    const h = await setupHandle();
    const key = unique('arch');
    await createWebhook(h, { url: receiverUrl('ok', key) });
    const published: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await callJson('POST', `/v2/handles/${h.handle}/events`, {
        token: h.token,
        body: { type: 'order.paid', data: { orderId: `o-${i}` } },
      });
      expect(res.status).toBe(202);
      published.push(res.body.notificationId);
    }
    await eventually(
      () => countOf(`SELECT count(*) AS n FROM notifications WHERE handle = ?1 AND status = 'delivered'`, h.handle),
      (n) => n === 3,
      20_000,
      'three delivered notifications',
    );

    const step = await purgeStep(env, h.handle, 30, later());
    expect(step).toMatchObject({ outcome: 'purged', notifications: 3, deliveries: 3, attempts: 3 });
    expect(await notificationsOf(h.handle)).toBe(0);
    expect(await countOf(`SELECT count(*) AS n FROM deliveries WHERE handle = ?1 AND kind = 'event'`, h.handle)).toBe(
      0,
    );

    const row = await archiveRow(step.archiveId!);
    expect(row).toMatchObject({ status: 'purged', notification_count: 3, delivery_count: 3, attempt_count: 3 });
    const object = await env.ARCHIVE.get(row.object_key);
    const bytes = new Uint8Array(await object!.arrayBuffer());
    expect(bytes.byteLength).toBe(row.bytes);
    const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (b) =>
      b.toString(16).padStart(2, '0'),
    ).join('');
    expect(digest).toBe(row.sha256);
    // gzip magic number: the object is a gzip file.
    expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b]);

    const lines = await archiveLines(row.object_key);
    expect(lines.map((l) => l.notification.id)).toEqual([...published].sort());
    for (const line of lines) {
      expect(line.notification).toMatchObject({ handle: h.handle, type: 'order.paid', status: 'delivered' });
      expect(line.notification.data.orderId).toMatch(/^o-\d$/);
      expect(line.deliveries).toHaveLength(1);
      expect(line.deliveries[0]).toMatchObject({ status: 'succeeded', notificationId: line.notification.id });
      expect(line.deliveries[0].attempts).toHaveLength(1);
      expect(line.deliveries[0].attempts[0]).toMatchObject({ outcome: 'succeeded', httpStatus: 200 });
    }

    // Nothing left: the next step is idle.
    expect((await purgeStep(env, h.handle, 30, later())).outcome).toBe('idle');
  });

  it('keeps what is within the retention, and moves in keyset order, one UTC day per archive', async () => {
    const h = await setupHandle();
    // 23:59:58, 23:59:59 and 00:00:00: two days.
    const old = await seedExpired(h.handle, 3, { baseMs: Date.parse('2026-03-10T23:59:58Z') });
    const fresh = await seedExpired(h.handle, 2, { baseMs: Date.now() - 1000 });
    const now = new Date();
    const first = await purgeStep(env, h.handle, 30, now);
    expect(first).toMatchObject({ outcome: 'purged', notifications: 2 });
    expect(await archiveRow(first.archiveId!)).toMatchObject({
      period: '2026-03-10',
      first_notification_id: old[0],
      last_notification_id: old[1],
      object_key: `${h.handle}/2026-03-10/${old[0]}.ndjson.gz`,
    });
    const second = await purgeStep(env, h.handle, 30, now);
    expect(second).toMatchObject({ outcome: 'purged', notifications: 1 });
    expect(await archiveRow(second.archiveId!)).toMatchObject({ period: '2026-03-11', first_notification_id: old[2] });
    // The fresh notifications stay: they are within the 30 days.
    expect((await purgeStep(env, h.handle, 30, now)).outcome).toBe('idle');
    expect(await notificationsOf(h.handle)).toBe(fresh.length);
  });

  // Far more expired rows than one step reads, in three shapes (deliveries × attempts per notification), the handle
  // behind 1,000 newer notifications of its own while 3,000 of another handle share the same id range.
  it.each([
    { n: 300, perN: 2, attemptsPer: 2 },
    { n: 80, perN: 7, attemptsPer: 3 },
    { n: 700, perN: 1, attemptsPer: 1 },
  ])(
    'rows read per step stay within the step size plus a constant, whatever else the tables hold (meta): $n × $perN × $attemptsPer',
    async (shape) => {
      const base = Date.parse('2026-04-02T08:00:00Z');
      const other = await setupHandle();
      await seedManyNotifications(other.handle, 3000, base);
      const h = await setupHandle();
      await seedExpiredBulk(h.handle, shape.n, base, shape.perN, shape.attemptsPer);
      await seedManyNotifications(h.handle, 1000, Date.now() - 60_000);
      expect(shape.n * (1 + shape.perN * (1 + shape.attemptsPer))).toBeGreaterThan(STEP_ROWS);
      // A crash between archive and delete on the first step: the re-export stays within the bound too.
      const crash = new Error('crash');
      await expect(
        purgeStep(env, h.handle, 30, new Date(), {
          beforeDelete: async () => {
            throw crash;
          },
        }),
      ).rejects.toBe(crash);
      let purged = 0;
      const reads: number[] = [];
      for (let i = 0; i < 20; i++) {
        const step = await purgeStep(env, h.handle, 30, new Date());
        const why = JSON.stringify({ shape, step: i, reads: step.reads });
        expect(step.rowsRead, why).toBeLessThanOrEqual(STEP_ROWS + STEP_READ_SLACK);
        reads.push(step.rowsRead);
        if (step.outcome === 'idle') break;
        expect(step.outcome, why).toBe('purged');
        purged += step.notifications;
      }
      expect(purged).toBe(shape.n);
      // Several steps were needed, and they used most of their budget (the cut is not needlessly small).
      expect(reads.length).toBeGreaterThan(2);
      expect(Math.max(...reads)).toBeGreaterThan(STEP_ROWS * 0.75);
      expect(await notificationsOf(h.handle)).toBe(1000);
      expect(await notificationsOf(other.handle)).toBe(3000);
    },
  );
});

describe('what a purge never does', () => {
  it('never purges a notification with an open delivery: it and every later one wait, and the doctor says so', async () => {
    const h = await setupHandle();
    const d1 = await shardOf(h.handle);
    const ids = await seedExpired(h.handle, 3, { baseMs: Date.parse('2026-05-01T10:00:00Z') });
    const [oldest] = ids;
    // The oldest one is still retrying (as the consumer leaves it between attempts).
    await d1.batch([
      d1.prepare(`UPDATE notifications SET open_count = 1, status = 'delivering' WHERE id = ?1`).bind(oldest),
      d1
        .prepare(`UPDATE deliveries SET status = 'retrying' WHERE id IN
        (SELECT id FROM deliveries WHERE notification_id = ?1 ORDER BY id LIMIT 1)`)
        .bind(oldest),
    ]);
    const waiting = await purgeHandle(env, h.handle, 30, new Date());
    expect(waiting).toMatchObject({ archives: 0, waitingOn: oldest, error: null });
    expect(await notificationsOf(h.handle)).toBe(3);
    const doctor = await callJson('GET', `/v2/handles/${h.handle}/health`, { token: h.token });
    expect(doctor.body.storage.purge.waitingOn).toBe(oldest);
    expect(doctor.body.storage.action).toContain(oldest);

    // The counters say closed but a delivery row is open: the delivery rows decide.
    await d1.prepare(`UPDATE notifications SET open_count = 0, status = 'delivered' WHERE id = ?1`).bind(oldest).run();
    const step = await purgeStep(env, h.handle, 30, new Date());
    expect(step).toMatchObject({ outcome: 'waiting', waitingOn: oldest });
    expect(await notificationsOf(h.handle)).toBe(3);

    // Once it ends, all three go.
    await d1
      .prepare(`UPDATE deliveries SET status = 'dead' WHERE notification_id = ?1 AND status = 'retrying'`)
      .bind(oldest)
      .run();
    const done = await purgeHandle(env, h.handle, 30, new Date());
    expect(done).toMatchObject({ archives: 1, waitingOn: null, totals: { notifications: 3, deliveries: 6 } });
    expect(await notificationsOf(h.handle)).toBe(0);
  });

  it('a crash between archive and delete: rows stay, and the next step re-exports to the same key, no line twice', async () => {
    const h = await setupHandle();
    const ids = await seedExpired(h.handle, 4, { baseMs: Date.parse('2026-05-02T10:00:00Z') });
    const crash = new Error('worker died between archive and delete');
    await expect(
      purgeStep(env, h.handle, 30, new Date(), {
        beforeDelete: async () => {
          throw crash;
        },
      }),
    ).rejects.toBe(crash);
    expect(await notificationsOf(h.handle)).toBe(4);
    const [first] = (
      await anyShard.prepare('SELECT * FROM archives WHERE handle = ?1').bind(h.handle).all<Record<string, any>>()
    ).results;
    expect(first).toMatchObject({ status: 'verified', notification_count: 4 });

    const again = await purgeStep(env, h.handle, 30, new Date());
    expect(again).toMatchObject({ outcome: 'purged', archiveId: first!.id, notifications: 4 });
    expect(await archiveRow(first!.id)).toMatchObject({ status: 'purged', object_key: first!.object_key });
    const listed = await env.ARCHIVE.list({ prefix: `${h.handle}/` });
    expect(listed.objects.map((o) => o.key)).toEqual([first!.object_key]);
    const lines = await archiveLines(first!.object_key);
    expect(lines.map((l) => l.notification.id)).toEqual(ids);
    expect(await notificationsOf(h.handle)).toBe(0);
  });

  it('a purge racing a delivery: a redrive between archive and delete makes it delete nothing; later it archives the end state', async () => {
    const h = await setupHandle();
    const key = unique('race');
    await setMode(key, { status: 413 });
    await createWebhook(h, { url: receiverUrl('mode', key) });
    const published = await callJson('POST', `/v2/handles/${h.handle}/events`, {
      token: h.token,
      body: { type: 'order.paid', data: { orderId: 'race' } },
    });
    const notificationId = published.body.notificationId as string;
    const deliveryId = published.body.recipients[0].deliveryId as string;
    const status = () =>
      anyShard.prepare('SELECT status FROM deliveries WHERE id = ?1').bind(deliveryId).first('status');
    await eventually(status, (s) => s === 'dead', 20_000, 'the delivery dead (413)');
    await setMode(key, { status: 200 });

    const raced = await purgeStep(env, h.handle, 30, later(), {
      beforeDelete: async () => {
        const retry = await call('POST', `/v2/handles/${h.handle}/deliveries/${deliveryId}/retry`, { token: h.token });
        expect(retry.status).toBe(202);
      },
    });
    expect(raced.outcome).toBe('refused');
    expect(await notificationsOf(h.handle)).toBe(1);
    expect(await countOf('SELECT count(*) AS n FROM deliveries WHERE id = ?1', deliveryId)).toBe(1);

    await eventually(status, (s) => s === 'succeeded', 20_000, 'the redriven delivery succeeded');
    const step = await purgeStep(env, h.handle, 30, later());
    expect(step).toMatchObject({ outcome: 'purged', archiveId: raced.archiveId, notifications: 1, attempts: 2 });
    const [line] = await archiveLines((await archiveRow(step.archiveId!)).object_key);
    expect(line.notification.id).toBe(notificationId);
    expect(line.deliveries[0]).toMatchObject({ id: deliveryId, status: 'succeeded', attemptCount: 2 });
    expect(line.deliveries[0].attempts.map((a: { httpStatus: number }) => a.httpStatus)).toEqual([413, 200]);
  });
});

describe('archives in the API', () => {
  it('lists archives in keyset pages, streams one (gzip NDJSON, Repr-Digest), members with notifications:read only', async () => {
    const h = await setupHandle();
    await seedExpired(h.handle, 2, { baseMs: Date.parse('2026-06-01T12:00:00Z') });
    await seedExpired(h.handle, 2, { baseMs: Date.parse('2026-06-02T12:00:00Z') });
    const outcome = await purgeHandle(env, h.handle, 30, new Date());
    expect(outcome.archives).toBe(2);

    const page1 = await callJson('GET', `/v2/handles/${h.handle}/archives?limit=1`, { token: h.token });
    expect(page1.status).toBe(200);
    expect(page1.body.data).toHaveLength(1);
    expect(page1.body.data[0]).toMatchObject({ period: '2026-06-02', status: 'purged', notifications: 2 });
    const page2 = await callJson('GET', `/v2/handles/${h.handle}/archives?limit=1&cursor=${page1.body.nextCursor}`, {
      token: h.token,
    });
    expect(page2.body.data.map((a: { period: string }) => a.period)).toEqual(['2026-06-01']);
    expect(page2.body.nextCursor).toBeNull();

    const archive = page1.body.data[0];
    const res = await call('GET', `/v2/handles/${h.handle}/archives/${archive.id}`, { token: h.token });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/gzip');
    expect(res.headers.get('content-disposition')).toContain('.ndjson.gz');
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes.byteLength).toBe(archive.bytes);
    const digest = btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))));
    expect(res.headers.get('repr-digest')).toBe(`sha-256=:${digest}:`);
    const text = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text();
    expect(
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).notification.handle),
    ).toEqual([h.handle, h.handle]);

    // A viewer reads; a stranger gets the 404 of a missing handle; a token without notifications:read a 403.
    const viewer = unique('viewer');
    await addMember(h.handle, viewer, 'viewer');
    const viewerPat = await createPat(viewer, { scopes: ['notifications:read'] });
    expect(
      (await call('GET', `/v2/handles/${h.handle}/archives/${archive.id}`, { token: viewerPat.token })).status,
    ).toBe(200);
    const stranger = await setupHandle();
    await expectProblem(
      await call('GET', `/v2/handles/${h.handle}/archives/${archive.id}`, { token: stranger.token }),
      404,
    );
    await expectProblem(
      await call('GET', `/v2/handles/${stranger.handle}/archives/${archive.id}`, { token: stranger.token }),
      404,
    );
    const webhooksOnly = await createPat(viewer, { scopes: ['webhooks:read'] });
    await expectProblem(await call('GET', `/v2/handles/${h.handle}/archives`, { token: webhooksOnly.token }), 403);
    await expectProblem(await call('GET', `/v2/handles/${h.handle}/archives/${newId('arc')}`, { token: h.token }), 404);
  });

  it('a notification past the retention answers 410 Gone naming the archive that holds it', async () => {
    const h = await setupHandle();
    const ids = await seedExpired(h.handle, 3, { baseMs: Date.parse('2026-06-05T12:00:00Z') });
    const step = await purgeStep(env, h.handle, 30, new Date());
    const problem = await expectProblem(
      await call('GET', `/v2/handles/${h.handle}/notifications/${ids[1]}`, { token: h.token }),
      410,
    );
    expect(problem).toMatchObject({ archiveId: step.archiveId, archivePeriod: '2026-06-05' });
    expect(problem.detail).toContain(step.archiveId);
    // An id in no archive is still a plain 404; so is the id on another handle.
    await expectProblem(
      await call('GET', `/v2/handles/${h.handle}/notifications/${newId('ntf', Date.parse('2026-07-01T00:00:00Z'))}`, {
        token: h.token,
      }),
      404,
    );
    const other = await setupHandle();
    await expectProblem(
      await call('GET', `/v2/handles/${other.handle}/notifications/${ids[1]}`, { token: other.token }),
      404,
    );
  });
});

describe('storage you can see', () => {
  it('the doctor reports retention, what the purge did, the archives and the database size; /v2/health the size', async () => {
    const h = await setupHandle();
    await seedExpired(h.handle, 5, { baseMs: Date.parse('2026-06-10T12:00:00Z'), perN: 1, attemptsPer: 3 });
    await purgeHandle(env, h.handle, 30, new Date());
    const { status, body } = await callJson('GET', `/v2/handles/${h.handle}/health`, { token: h.token });
    expect(status).toBe(200);
    expect(body.storage).toMatchObject({
      retentionDays: 30,
      oldestNotificationAt: null,
      purge: { waitingOn: null, lastError: null, purged: { notifications: 5, deliveries: 5, attempts: 15 } },
      archives: { count: 1, latestPeriod: '2026-06-10' },
    });
    expect(body.storage.archives.bytes).toBeGreaterThan(0);
    expect(body.storage.database.sizeBytes).toBeGreaterThan(0);
    expect(body.storage.database.limitBytes).toBe(10_000_000_000);

    const live = await callJson('GET', '/v2/health');
    expect(live.body.d1.sizeBytes).toBeGreaterThan(0);
    expect(live.body.d1.usedPercent).toBeCloseTo((live.body.d1.sizeBytes / 10_000_000_000) * 100, 2);
  });

  it('past 80 % of the limit the platform alert goes out, once a day', async () => {
    const mail = recordingEmail();
    const over = {
      ...env,
      D1_SIZE_LIMIT_BYTES: '1000',
      PLATFORM_ALERT_EMAIL: 'ops@gharart.test',
      EMAIL: mail.binding,
    } as Env;
    // A day of its own: the alert key is per day and the database is shared.
    const day = new Date(Date.UTC(2090, 0, 1 + Math.floor(Math.random() * 3000)));
    const first = await checkStorageBudget(over, day);
    expect(first.alerted).toBe(true);
    expect(first.usedPercent).toBeGreaterThanOrEqual(80);
    expect(mail.sent.map((m) => m.to)).toEqual(['ops@gharart.test']);
    expect(mail.sent[0]!.subject).toContain('D1 database at');
    expect((await checkStorageBudget(over, new Date(day.getTime() + 60_000))).alerted).toBe(false);
    expect(mail.sent).toHaveLength(1);

    // Under the threshold: nothing.
    const under = { ...over, D1_SIZE_LIMIT_BYTES: '10000000000000' } as Env;
    expect((await checkStorageBudget(under, new Date(day.getTime() + 2 * DAY))).alerted).toBe(false);
  });
});
