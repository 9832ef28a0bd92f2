/**
 * Moving a handle between shards (docs/design.md#moving-a-handle): `POST /v2/internal/handles/{handle}/move`, driven
 * step by step as scripts/move-handle.ts does, against the real local shards, queues and a receiver on 127.0.0.1.
 *
 * The waits of a move (the read-only settle, the drain after the flip) follow the directory TTL and the webhook
 * timeout. The route runs here with both short (MOVE_VARS): every request, the queue consumers and the move share
 * this one isolate, whose directory cache the move itself invalidates, and the receiver answers well inside the
 * settle time, so the short waits bound the same things the long ones bound in production.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it, vi } from 'vitest';
import { findOnShards } from '../../src/db/shards.ts';
import { releaseDeferred } from '../../src/delivery/deferral.ts';
import { claimOverdue } from '../../src/delivery/overdue.ts';
import { decodeRecipients } from '../../src/delivery/summary.ts';
import { unsubscribeToken } from '../../src/email/unsubscribe.ts';
import { newId } from '../../src/lib/ids.ts';
import {
  call,
  callJson,
  callWithVars,
  expectProblem,
  provisionHandleOn,
  serviceJwt,
  shardOf as shardOfHandle,
  unique,
} from '../support/helpers.ts';
import { createWebhook, setupHandle, type TestHandle } from '../support/pipeline-helpers.ts';
import { hits, receiverUrl, setMode } from '../support/receivers.ts';

const MOVE_VARS = { DIRECTORY_CACHE_TTL_SECONDS: '1', WEBHOOK_TIMEOUT_MS: '1000' } as Partial<Env>;
/** For a receiver that answers in 3 s: the settle time covers an attempt under way (docs/design.md#moving-a-handle). */
const SLOW_VARS = { ...MOVE_VARS, WEBHOOK_TIMEOUT_MS: '4000' } as Partial<Env>;
const TABLES = [
  'handles',
  'notification_settings',
  'webhook_subscriptions',
  'email_subscriptions',
  'notifications',
  'deliveries',
  'delivery_attempts',
  'archives',
  'purge_state',
  'replays',
  'daily_write_counters',
  'idempotency_keys',
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface MoveState {
  phase: string;
  done: boolean;
  retryAfterSeconds: number;
  error: string | null;
  counts: Record<string, { source: number; target: number }> | null;
  fromShard: number;
  toShard: number;
  readOnlyAt: string | null;
  flippedAt: string | null;
}

async function moveStep(
  handle: string,
  toShard: number,
  vars = MOVE_VARS,
): Promise<{ status: number; body: any; res: Response }> {
  const res = await callWithVars(vars, 'POST', `/v2/internal/handles/${handle}/move`, {
    token: await serviceJwt(),
    body: { toShard },
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, res };
}

/** Calls the step until `stop` says so (default: done), sleeping as told; every answer 200. */
async function driveMove(
  handle: string,
  toShard: number,
  stop: (s: MoveState) => boolean = (s) => s.done,
  vars = MOVE_VARS,
): Promise<MoveState> {
  for (let i = 0; i < 500; i++) {
    const { status, body } = await moveStep(handle, toShard, vars);
    expect(status, JSON.stringify(body)).toBe(200);
    if (stop(body) || body.done) return body;
    if (body.retryAfterSeconds) await sleep(body.retryAfterSeconds * 1000);
  }
  throw new Error('the move did not end in 500 steps');
}

/** Rows of the handle per table on one shard (attempts through their deliveries). */
async function rowCounts(d1: D1Database, handle: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of TABLES) {
    const sql =
      t === 'delivery_attempts'
        ? 'SELECT COUNT(*) AS n FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE handle = ?1)'
        : `SELECT COUNT(*) AS n FROM ${t} WHERE handle = ?1`;
    out[t] = (await d1.prepare(sql).bind(handle).first<{ n: number }>())!.n;
  }
  return out;
}

const empty = Object.fromEntries(TABLES.map((t) => [t, 0]));

async function directory(handle: string) {
  return env.DB.prepare('SELECT shard, moving_since FROM handles WHERE handle = ?1')
    .bind(handle)
    .first<{ shard: number; moving_since: string | null }>();
}

async function publish(h: TestHandle, data: Record<string, unknown> = {}) {
  const res = await callJson('POST', `/v2/handles/${h.handle}/events`, {
    token: h.token,
    body: { type: 'order.paid', data: { orderId: unique('ord'), ...data } },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body as { notificationId: string; recipients: Array<{ deliveryId: string }> };
}

/** What a token for the handle reads: the feed, the webhooks, the settings, one notification's deliveries. */
async function reads(h: TestHandle, notificationId: string) {
  const get = async (path: string) => {
    const res = await callJson('GET', `/v2/handles/${h.handle}${path}`, { token: h.token });
    expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(200);
    return res.body;
  };
  return {
    feed: await get('/notifications?limit=200'),
    webhooks: await get('/webhooks'),
    settings: await get('/notification-settings'),
    notification: await get(`/notifications/${notificationId}`),
  };
}

async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)}`);
    await sleep(200);
  }
}

describe('moving a handle between shards', () => {
  it('moves every row: a token for the handle reads the same data after the move, nothing is left on the source', async () => {
    const h = await setupHandle('SHARD_0');
    const key = unique('mv');
    await createWebhook(h, { url: receiverUrl('ok', key) });
    const put = await call('PUT', `/v2/internal/handles/${h.handle}`, {
      token: await serviceJwt(),
      body: { displayName: 'Moved store', retentionDays: 77 },
    });
    expect(put.status).toBe(200);
    let last = '';
    for (let i = 0; i < 5; i++) last = (await publish(h, { i })).notificationId;
    // Every delivery done before the snapshot, so the reads compare like with like.
    await eventually(
      async () => (await hits(key)).filter((x) => x.response?.status === 200).length,
      (n) => n >= 5,
      20_000,
      'deliveries',
    );
    await eventually(
      () => rowCounts(env.SHARD_0, h.handle),
      (c) => c.delivery_attempts === 5,
      10_000,
      'attempts recorded',
    );
    const before = await reads(h, last);
    const sourceBefore = await rowCounts(env.SHARD_0, h.handle);
    expect(sourceBefore).toMatchObject({ handles: 1, notifications: 5, deliveries: 5, webhook_subscriptions: 1 });

    const done = await driveMove(h.handle, 1);
    expect(done).toMatchObject({ phase: 'done', fromShard: 0, toShard: 1, error: null });
    for (const [table, c] of Object.entries(done.counts!)) expect(c.target, table).toBe(c.source);

    expect(await directory(h.handle)).toEqual({ shard: 1, moving_since: null });
    expect(await rowCounts(env.SHARD_1, h.handle)).toEqual(sourceBefore);
    expect(await rowCounts(env.SHARD_0, h.handle)).toEqual(empty);
    // The target's own copy of the handle row is live: its shard, no moving mark, the retention the purge reads.
    const copy = await env.SHARD_1.prepare('SELECT * FROM handles WHERE handle = ?1').bind(h.handle).first();
    expect(copy).toMatchObject({ shard: 1, moving_since: null, retention_days: 77, display_name: 'Moved store' });

    expect(await reads(h, last)).toEqual(before);
    // And it takes writes again, on the target.
    const after = await publish(h, { after: true });
    const row = await env.SHARD_1.prepare('SELECT handle FROM notifications WHERE id = ?1')
      .bind(after.notificationId)
      .first();
    expect(row).toEqual({ handle: h.handle });
    const progress = await callJson('GET', `/v2/internal/handles/${h.handle}/move`, { token: await serviceJwt() });
    expect(progress.status).toBe(200);
    expect(progress.body).toMatchObject({ phase: 'done', done: true, toShard: 1 });
  }, 90_000);

  it('deliveries in flight during a move end terminal exactly once, in the target ledger', async () => {
    const h = await setupHandle('SHARD_0');
    const key = unique('inflight');
    // Each answer takes 3 s: the attempts under way when the handle turns read-only finish inside the settle time
    // (the webhook timeout of SLOW_VARS plus the TTL and the margin), and their outcomes reach the last pass.
    await setMode(key, { status: 200, delayMs: 3_000 });
    await createWebhook(h, { url: receiverUrl('mode', key) });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(...(await publish(h, { wave: 'a', i })).recipients.map((r) => r.deliveryId));
    await eventually(
      async () => (await hits(key)).length,
      (n) => n >= 1,
      15_000,
      'first attempt under way',
    );
    // One step of the copy, then more events while the handle is still writable: the last pass must bring them.
    expect((await moveStep(h.handle, 1, SLOW_VARS)).body.phase).toBe('copying');
    for (let i = 0; i < 4; i++) ids.push(...(await publish(h, { wave: 'b', i })).recipients.map((r) => r.deliveryId));
    const done = await driveMove(h.handle, 1, undefined, SLOW_VARS);
    expect(done.phase).toBe('done');

    const terminal = await eventually(
      async () =>
        (
          await env.SHARD_1.prepare(
            `SELECT id, status FROM deliveries WHERE handle = ?1 AND status IN ('succeeded', 'dead', 'cancelled')`,
          )
            .bind(h.handle)
            .all<{ id: string; status: string }>()
        ).results,
      (rows) => rows.length === ids.length,
      60_000,
      'every delivery terminal on the target',
    );
    expect(new Set(terminal.map((r) => r.id))).toEqual(new Set(ids));
    expect(terminal.every((r) => r.status === 'succeeded')).toBe(true);
    // Exactly one succeeded attempt per delivery in the ledger, and one 200 answered per delivery at the receiver.
    const attempts = (
      await env.SHARD_1.prepare(
        `SELECT delivery_id, COUNT(*) AS n FROM delivery_attempts WHERE outcome = 'succeeded'
         AND delivery_id IN (SELECT id FROM deliveries WHERE handle = ?1) GROUP BY delivery_id`,
      )
        .bind(h.handle)
        .all<{ delivery_id: string; n: number }>()
    ).results;
    expect(attempts.map((a) => [a.delivery_id, a.n]).sort()).toEqual(ids.map((id) => [id, 1]).sort());
    const answered = (await hits(key)).filter((x) => x.response?.status === 200);
    for (const id of ids)
      expect(
        answered.filter((x) => x.headers['webhook-id'] === id),
        id,
      ).toHaveLength(1);
    // The case this test is about happened: an attempt sent before the handle turned read-only, answered after.
    const sealedAt = Date.parse(done.readOnlyAt!);
    expect(answered.some((x) => x.receivedAt < sealedAt && x.response!.answeredAt > sealedAt)).toBe(true);
    const notifications = (
      await env.SHARD_1.prepare('SELECT status, recipients FROM notifications WHERE handle = ?1').bind(h.handle).all()
    ).results;
    expect(notifications.map((n) => n.status)).toEqual(ids.map(() => 'delivered'));
    // The copied summaries took the moves on the target: every entry succeeded, one per delivery.
    const entries = notifications.flatMap((n) => decodeRecipients(n.recipients as string));
    expect(entries.map((e) => e.deliveryId).sort()).toEqual([...ids].sort());
    expect(entries.every((e) => e.status === 'succeeded' && e.attempts === 1)).toBe(true);
    expect(await rowCounts(env.SHARD_0, h.handle)).toEqual(empty);
  }, 90_000);

  it('writes during the read-only pass answer 503 with Retry-After as problem+json; reads go on', async () => {
    const h = await setupHandle('SHARD_1');
    const { notificationId } = await publish(h);
    const wh = await createWebhook(h, { url: receiverUrl('ok', unique('ro')) });
    const sealed = await driveMove(h.handle, 0, (s) => s.phase === 'sealing');
    expect(sealed.phase).toBe('sealing');
    expect((await directory(h.handle))?.moving_since).not.toBeNull();
    // A lookup by a key that names no handle (a mail link's token, a provider's message id) finds the row on both
    // shards now, and takes the live one: the source, still in the directory (SHARD_0 would be asked first).
    const found = await findOnShards(env, (d1) =>
      d1.prepare('SELECT id, handle FROM notifications WHERE id = ?1').bind(notificationId).first(),
    );
    expect(
      await env.SHARD_0.prepare('SELECT id FROM notifications WHERE id = ?1').bind(notificationId).first(),
    ).not.toBeNull();
    expect(found?.d1).toBe(env.SHARD_1);

    const writes = [
      call('POST', `/v2/handles/${h.handle}/events`, {
        token: h.token,
        body: { type: 'order.paid', data: { orderId: 'o-ro' } },
      }),
      call('POST', `/v2/handles/${h.handle}/webhooks/${wh.id}/replay`, {
        token: h.token,
        body: { from: '2026-01-01T00:00:00Z', to: new Date().toISOString() },
      }),
      call('PATCH', `/v2/handles/${h.handle}/webhooks/${wh.id}`, { token: h.token, body: { description: 'x' } }),
    ];
    const logged = vi.spyOn(console, 'log');
    const answers = await Promise.all(writes);
    const requestLines = logged.mock.calls
      .map(([line]) => (typeof line === 'string' && line.startsWith('{') ? JSON.parse(line) : null))
      .filter((l) => l?.msg === 'request' && l.path.startsWith(`/v2/handles/${h.handle}/`) && l.status === 503);
    logged.mockRestore();
    for (const res of answers) {
      const problem = await expectProblem(res, 503);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(problem.detail).toMatch(/moving/);
    }
    // A planned 503: logged as a warning, so the Worker's errors stay what someone should look at.
    expect(requestLines.map((l) => l.level)).toEqual(writes.map(() => 'warn'));
    const feed = await callJson('GET', `/v2/handles/${h.handle}/notifications/${notificationId}`, { token: h.token });
    expect(feed.status).toBe(200);
    for (const path of ['/usage', '/delivery-stats']) {
      const res = await callJson('GET', `/v2/handles/${h.handle}${path}`, { token: h.token });
      expect(res.status, path).toBe(200);
    }

    expect((await driveMove(h.handle, 0)).phase).toBe('done');
    expect((await publish(h)).notificationId).toBeTruthy();
  }, 90_000);

  it("a mail's confirmation or unsubscribe link used during the read-only pass changes nothing (503, a page for a browser); it works after the move", async () => {
    const h = await setupHandle('SHARD_1');
    const vars = { ...MOVE_VARS, ENVIRONMENT: 'development' } as Partial<Env>;
    const subs = `/v2/handles/${h.handle}/notifications/email-subscriptions`;
    const pending = `${unique('pending')}@example.com`;
    const created = await callWithVars(vars, 'POST', subs, { token: h.token, body: { email: pending } });
    expect(created.status).toBe(201);
    const pendingId = ((await created.json()) as { id: string }).id;
    const box = await callWithVars(vars, 'GET', `/dev/mailbox?format=json&to=${encodeURIComponent(pending)}`);
    const mail = ((await box.json()) as { data: Array<{ text: string }> }).data[0]!;
    const confirm = `/v2/email/confirm?token=${/\/v2\/email\/confirm\?token=(\S+)/.exec(mail.text)![1]}`;
    // An active subscription to unsubscribe (its link's token is the one its mails carry).
    const active = `${unique('active')}@example.com`;
    const activeId = newId('esub');
    const now = new Date().toISOString();
    await env.SHARD_1.prepare(
      `INSERT INTO email_subscriptions (id, handle, kind, email, email_normalized, event_types, status, provider,
         created_at, updated_at) VALUES (?1, ?2, 'standard', ?3, ?3, '["*"]', 'active', 'send_email', ?4, ?4)`,
    )
      .bind(activeId, h.handle, active, now)
      .run();
    const unsubscribe = `/v2/email/unsubscribe?token=${await unsubscribeToken(env.ENCRYPTION_KEY, activeId, active)}`;
    const statuses = async () =>
      Object.fromEntries(
        (
          await (
            await shardOfHandle(h.handle)
          )
            .prepare('SELECT id, status FROM email_subscriptions WHERE id IN (?1, ?2)')
            .bind(pendingId, activeId)
            .all<{ id: string; status: string }>()
        ).results.map((r) => [r.id, r.status]),
      );

    expect((await driveMove(h.handle, 0, (s) => s.phase === 'sealing')).phase).toBe('sealing');
    const logged = vi.spyOn(console, 'log');
    // An API client gets the problem; a browser gets a page with the same status and Retry-After.
    const api = await callWithVars(vars, 'POST', confirm);
    await expectProblem(api, 503);
    expect(Number(api.headers.get('retry-after'))).toBeGreaterThan(0);
    for (const path of [confirm, unsubscribe]) {
      const page = await callWithVars(vars, 'POST', path, { headers: { accept: 'text/html' } });
      expect(page.status, path).toBe(503);
      expect(page.headers.get('content-type'), path).toMatch(/text\/html/);
      expect(Number(page.headers.get('retry-after')), path).toBeGreaterThan(0);
      expect(await page.text(), path).toMatch(/moving/);
    }
    // Planned answers: logged as warnings, like every write refused during a move.
    const levels = logged.mock.calls
      .map(([line]) => (typeof line === 'string' && line.startsWith('{') ? JSON.parse(line) : null))
      .filter((l) => l?.msg === 'request' && l.path.startsWith('/v2/email/') && l.status === 503)
      .map((l) => l.level);
    logged.mockRestore();
    expect(levels).toEqual(['warn', 'warn', 'warn']);
    // Nothing was written on the source while its rows were being copied.
    expect(await statuses()).toEqual({ [pendingId]: 'pending_confirmation', [activeId]: 'active' });

    expect((await driveMove(h.handle, 0)).phase).toBe('done');
    expect((await callWithVars(vars, 'POST', confirm, { headers: { accept: 'text/html' } })).status).toBe(200);
    expect((await callWithVars(vars, 'POST', unsubscribe, { headers: { accept: 'text/html' } })).status).toBe(200);
    expect(await statuses()).toEqual({ [pendingId]: 'active', [activeId]: 'unsubscribed' });
    expect(
      await env.SHARD_1.prepare('SELECT id FROM email_subscriptions WHERE handle = ?1').bind(h.handle).all(),
    ).toMatchObject({ results: [] });
  }, 90_000);

  it('a copy whose counts do not match fails safely: the handle stays on its source, readable and writable', async () => {
    const h = await setupHandle('SHARD_0');
    const first = await publish(h);
    await publish(h);
    const before = await reads(h, first.notificationId);
    const verifying = await driveMove(h.handle, 1, (s) => s.phase === 'verifying');
    expect(verifying.phase).toBe('verifying');
    // The target loses a row between the last pass and the check.
    const gone = await env.SHARD_1.prepare('DELETE FROM notifications WHERE id = ?1').bind(first.notificationId).run();
    expect(gone.meta.changes).toBe(1);

    const failed = await driveMove(h.handle, 1);
    expect(failed.phase).toBe('failed');
    expect(failed.error).toMatch(/notifications: 2 on the source, 1 on the target/);
    expect(failed.counts!.notifications).toEqual({ source: 2, target: 1 });
    expect(await directory(h.handle)).toEqual({ shard: 0, moving_since: null });
    const sourceCopy = await env.SHARD_0.prepare('SELECT shard, moving_since FROM handles WHERE handle = ?1')
      .bind(h.handle)
      .first();
    expect(sourceCopy).toEqual({ shard: 0, moving_since: null });
    expect(await rowCounts(env.SHARD_1, h.handle)).toEqual(empty);
    expect(await reads(h, first.notificationId)).toEqual(before);
    await publish(h);
    expect((await rowCounts(env.SHARD_0, h.handle)).notifications).toBe(3);
  }, 90_000);

  it('a move to the same shard, an unknown shard or an unknown handle is a clear 4xx problem', async () => {
    const h = await setupHandle('SHARD_0');
    const same = await moveStep(h.handle, 0);
    expect(same.status).toBe(422);
    expect(same.res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(same.body.detail).toMatch(/already on shard 0/);
    const unknownShard = await moveStep(h.handle, 7);
    expect(unknownShard.status).toBe(422);
    expect(unknownShard.body.detail).toMatch(/no shard 7/);
    const unknownHandle = await moveStep(unique('nohandle'), 1);
    expect(unknownHandle.status).toBe(404);
    expect(unknownHandle.body.requestId).toBeTruthy();
    const bad = await callWithVars(MOVE_VARS, 'POST', `/v2/internal/handles/${h.handle}/move`, {
      token: await serviceJwt(),
      body: { toShard: 'one' },
    });
    expect(bad.status).toBe(400);
    const never = await callJson('GET', `/v2/internal/handles/${h.handle}/move`, { token: await serviceJwt() });
    expect(never.status).toBe(404);
    expect(await directory(h.handle)).toEqual({ shard: 0, moving_since: null });
  }, 90_000);

  it('a move under way to one shard refuses another target with 409', async () => {
    const h = await setupHandle('SHARD_0');
    await publish(h);
    const started = await moveStep(h.handle, 1);
    expect(started.status).toBe(200);
    expect(started.body.done).toBe(false);
    // Only two shards here: the "other" target is the source itself, refused as a second move, not a same-shard one.
    const other = await moveStep(h.handle, 0);
    expect(other.status).toBe(409);
    expect(other.body.detail).toMatch(/already moving to shard 1/);
    expect((await driveMove(h.handle, 1)).phase).toBe('done');
  }, 90_000);

  it('the sweeper leaves a moving handle alone: no deferred release, no overdue claim', async () => {
    const owner = unique('owner');
    const handle = await provisionHandleOn('SHARD_1', owner);
    const d1 = env.SHARD_1;
    const longAgo = '2000-01-01T00:00:00.000Z';
    const [deferred, overdue] = [newId('dlv'), newId('dlv')];
    const insert = `INSERT INTO deliveries (id, handle, kind, channel, recipient_type, target, status, status_reason,
        next_attempt_at, created_at, updated_at)
      VALUES (?1, ?2, 'event', 'webhook', 'webhook', 'http://127.0.0.1:9/x', ?3, ?4, ?5, ?5, ?5)`;
    await d1.batch([
      d1.prepare(insert).bind(deferred, handle, 'deferred', 'peak_window', longAgo),
      d1.prepare(insert).bind(overdue, handle, 'queued', null, longAgo),
      d1.prepare('UPDATE handles SET moving_since = ?2 WHERE handle = ?1').bind(handle, new Date().toISOString()),
    ]);
    const sent: unknown[] = [];
    const queue = {
      send: async (m: unknown) => void sent.push(m),
      sendBatch: async (b: unknown[]) => void sent.push(...b),
    };
    const queues = { DELIVERIES_QUEUE_0: queue, DELIVERIES_QUEUE_1: queue } as unknown as Env;
    await releaseDeferred({ ...env, ...queues }, d1, new Date());
    // Due since 2000: without the moving check, the first row any claim or release takes.
    const claimed = (await claimOverdue(d1, new Date(), 300, 50).all<{ id: string }>()).results.map((r) => r.id);
    expect(claimed).not.toContain(overdue);
    const rows = await d1
      .prepare('SELECT id, status, requeued_updated_at FROM deliveries WHERE id IN (?1, ?2) ORDER BY id')
      .bind(deferred, overdue)
      .all();
    expect(rows.results).toEqual([
      { id: deferred, status: 'deferred', requeued_updated_at: null },
      { id: overdue, status: 'queued', requeued_updated_at: null },
    ]);
    expect(JSON.stringify(sent)).not.toContain(deferred);
    await d1.prepare('DELETE FROM deliveries WHERE id IN (?1, ?2)').bind(deferred, overdue).run();
  });
});
