/**
 * Replay of past events to one webhook (docs/design.md#replay): `POST …/webhooks/{id}/replay` turns every matching
 * notification of a time range — in D1 and in the R2 archives — into a new delivery marked with the replay, once per
 * (webhook, notification) however often the call is repeated, one bounded step per call with a cursor, its progress
 * visible at `GET …/replays/{replayId}`.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { purgeHandle } from '../../src/jobs/purge-expired.ts';
import { newId } from '../../src/lib/ids.ts';
import { anyShard, call, callJson, expectProblem, unique } from '../support/helpers.ts';
import {
  createWebhook,
  eventually,
  notificationRow,
  setupHandle,
  type TestHandle,
} from '../support/pipeline-helpers.ts';
import { hits, receiverUrl, waitForHits } from '../support/receivers.ts';
import { insertNotifications } from '../support/seed.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Notifications of `handle` received at `baseMs + i s`, of the given types, with no deliveries. */
async function seed(handle: string, baseMs: number, types: string[]): Promise<string[]> {
  const ids = types.map((_, i) => newId('ntf', baseMs + i * 1000));
  await insertNotifications(
    handle,
    ids.map((id, i) => ({
      id,
      type: types[i]!,
      severity: 'info' as const,
      status: 'delivered' as const,
      createdAt: new Date(baseMs + i * 1000).toISOString(),
      data: { seq: i },
    })),
  );
  return ids;
}

const replay = (h: TestHandle, webhookId: string, body: unknown) =>
  callJson('POST', `/v2/handles/${h.handle}/webhooks/${webhookId}/replay`, { token: h.token, body });

const iso = (ms: number) => new Date(ms).toISOString();

describe('replay to one webhook', () => {
  it('delivers every notification of the range once, as new deliveries marked replay; a retried call sends nothing twice', async () => {
    const h = await setupHandle();
    const base = Date.now() - 2 * DAY;
    const [before] = await seed(h.handle, base - HOUR, ['order.paid']);
    const inRange = await seed(h.handle, base, ['order.paid', 'order.created', 'order.paid', 'order.fulfilled']);
    const [after] = await seed(h.handle, base + HOUR, ['order.paid']);
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('ok', key) });
    const body = { from: iso(base - 1000), to: iso(base + 10_000) };

    const first = await replay(h, wh.id, body);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toMatchObject({
      webhookId: wh.id,
      status: 'complete',
      matched: 4,
      created: 4,
      nextCursor: null,
    });
    // The client never saw that answer and sends the same request again: a new replay, which sends nothing.
    const retried = await replay(h, wh.id, body);
    expect(retried.body).toMatchObject({ status: 'complete', matched: 4, created: 0 });

    const got = await waitForHits(key, 4, 15_000);
    const ids = got.map((hit) => JSON.parse(hit.body).id as string).sort();
    expect(ids).toEqual([...inRange].sort());
    expect(ids).not.toContain(before);
    expect(ids).not.toContain(after);
    // Nothing more arrives (the repeat made no delivery): still 4 a moment later.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await hits(key)).toHaveLength(4);

    const rows = await anyShard
      .prepare(`SELECT notification_id, replay_id, status_reason FROM deliveries WHERE subscription_id = ?1`)
      .bind(wh.id)
      .all<{ notification_id: string; replay_id: string; status_reason: string | null }>();
    expect(rows.results).toHaveLength(4);
    expect(new Set(rows.results.map((r) => r.replay_id))).toEqual(new Set([first.body.id]));
    // Each notification counts the replay as one more recipient, once.
    expect(await notificationRow(inRange[0]!)).toMatchObject({ recipient_count: 1 });

    const progress = await eventually(
      () => callJson('GET', `/v2/handles/${h.handle}/webhooks/${wh.id}/replays/${first.body.id}`, { token: h.token }),
      (r) => r.body.done === true,
      15_000,
      'replay done',
    );
    expect(progress.body.deliveries).toEqual({ succeeded: 4 });
    const delivery = await callJson('GET', `/v2/handles/${h.handle}/webhooks/${wh.id}/deliveries`, { token: h.token });
    expect(delivery.body.data.map((d: { replayId: string }) => d.replayId)).toEqual(Array(4).fill(first.body.id));
  });

  it('takes only what the webhook and the request want: eventTypes of both, and the webhook’s filterPolicy', async () => {
    const h = await setupHandle();
    const base = Date.now() - DAY;
    const ids = await seed(h.handle, base, ['order.paid', 'order.created', 'payment.failed', 'order.paid']);
    const wh = await createWebhook(h, { url: receiverUrl('ok', unique('k')), eventTypes: ['order.*'] });
    const res = await replay(h, wh.id, {
      from: iso(base - 1000),
      to: iso(base + 10_000),
      eventTypes: ['order.paid', 'payment.failed'],
    });
    expect(res.body).toMatchObject({ status: 'complete', matched: 2, created: 2 });
    const rows = await anyShard
      .prepare('SELECT notification_id FROM deliveries WHERE subscription_id = ?1 ORDER BY 1')
      .bind(wh.id)
      .all<{ notification_id: string }>();
    expect(rows.results.map((r) => r.notification_id)).toEqual([ids[0], ids[3]]);
  });

  it('is bounded per call: 450 notifications take three calls of at most 200, continued with the cursor', async () => {
    const h = await setupHandle();
    const base = Date.now() - 3 * DAY;
    await seed(h.handle, base, Array(450).fill('order.paid'));
    const wh = await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const steps: Array<Record<string, any>> = [];
    let res = await replay(h, wh.id, { from: iso(base - 1000), to: iso(base + 500_000) });
    steps.push(res.body);
    while (res.body.nextCursor) {
      res = await replay(h, wh.id, { cursor: res.body.nextCursor });
      steps.push(res.body);
    }
    expect(steps.map((s) => s.matched)).toEqual([200, 400, 450]);
    expect(steps.map((s) => s.status)).toEqual(['running', 'running', 'complete']);
    expect(new Set(steps.map((s) => s.id)).size).toBe(1);
    const n = await anyShard
      .prepare(
        'SELECT count(DISTINCT notification_id) AS n, count(*) AS all_rows FROM deliveries WHERE subscription_id = ?1',
      )
      .bind(wh.id)
      .first<{ n: number; all_rows: number }>();
    expect(n).toEqual({ n: 450, all_rows: 450 });
    // A complete replay continued again does nothing.
    const again = await replay(h, wh.id, { cursor: steps[0]!.id });
    expect(again.body).toMatchObject({ status: 'complete', created: 450 });
  }, 60_000);

  it('replays notifications already purged into an R2 archive, with their original event', async () => {
    const h = await setupHandle();
    const base = Date.parse('2026-01-15T10:00:00Z');
    const archived = await seed(h.handle, base, ['order.paid', 'order.created']);
    // 30-day retention: they are archived to R2 and deleted from D1.
    await purgeHandle(env, h.handle, 30, new Date());
    const left = await anyShard
      .prepare('SELECT count(*) AS n FROM notifications WHERE handle = ?1')
      .bind(h.handle)
      .first<{ n: number }>();
    expect(left?.n).toBe(0);
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('ok', key) });
    const res = await replay(h, wh.id, { from: iso(base - DAY), to: iso(base + DAY) });
    expect(res.body).toMatchObject({ status: 'complete', matched: 2, created: 2 });
    const got = await waitForHits(key, 2, 15_000);
    const bodies = got.map((hit) => JSON.parse(hit.body)).sort((a, b) => (a.id < b.id ? -1 : 1));
    expect(bodies.map((b) => [b.id, b.type, b.data])).toEqual([
      [archived[0], 'order.paid', { seq: 0 }],
      [archived[1], 'order.created', { seq: 1 }],
    ]);
    // Repeated: nothing twice.
    expect((await replay(h, wh.id, { from: iso(base - DAY), to: iso(base + DAY) })).body.created).toBe(0);
  });

  it('refuses what it cannot do with a 422 that says why: no range, an empty range, a disabled webhook, an unknown cursor', async () => {
    const h = await setupHandle();
    const wh = await createWebhook(h, { url: receiverUrl('ok', unique('k')) });
    const path = `/v2/handles/${h.handle}/webhooks/${wh.id}/replay`;
    const now = Date.now();
    const cases: Array<[unknown, RegExp]> = [
      [{}, /Send from and to/],
      [{ from: iso(now - HOUR), to: iso(now - 2 * HOUR) }, /from must be before to/],
      [{ cursor: 'rpl_01JD3Q7X9T0000000000000000' }, /No replay rpl_01JD3Q7X9T0000000000000000/],
    ];
    for (const [body, detail] of cases) {
      const p = await expectProblem(await call('POST', path, { token: h.token, body }), 422);
      expect(p.detail, JSON.stringify(body)).toMatch(detail);
    }
    await callJson('PATCH', `/v2/handles/${h.handle}/webhooks/${wh.id}`, { token: h.token, body: { enabled: false } });
    const p = await expectProblem(
      await call('POST', path, { token: h.token, body: { from: iso(now - HOUR), to: iso(now) } }),
      422,
    );
    expect(p.detail).toMatch(/disabled/);
  });
});
