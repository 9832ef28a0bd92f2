/**
 * The notifications feed and detail (docs/design.md#api-conventions, #routes): keyset pagination that returns every row exactly once under every
 * filter, reads O(limit) rows on a 100,000-row handle, and keeps tenants apart.
 */
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { getDb } from '../../src/db/client.ts';
import { boundaryId, newId } from '../../src/lib/ids.ts';
import { encodeCursor } from '../../src/lib/pagination.ts';
import {
  COMBINED_FILTER_SCAN,
  type FeedFilter,
  feedPlan,
  feedQuery,
  undeliverableCount,
} from '../../src/routes/notifications/notifications.repo.ts';
import { meterD1, otherShard } from '../support/d1-meter.ts';
import {
  addMember,
  call,
  callJson,
  callWithVars,
  createPat,
  expectProblem,
  provisionHandle,
  shardOf,
  signJwt,
  unique,
} from '../support/helpers.ts';
import {
  insertDeliveries,
  insertNotifications,
  mixedNotifications,
  seededId,
  seedManyNotifications,
  userJwt,
} from '../support/seed.ts';

const ID = /^ntf_[0-9A-HJKMNP-TV-Z]{26}$/;
const feedPath = (h: string) => `/v2/handles/${h}/notifications`;

/** Every id the feed returns for `query`, following nextCursor; asserts page sizes and that paging terminates. */
async function pageAll(handle: string, token: string, query: Record<string, string>, limit: number) {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const params = new URLSearchParams({ ...query, limit: String(limit) });
    if (cursor) params.set('cursor', cursor);
    const { status, body } = await callJson('GET', `${feedPath(handle)}?${params}`, { token });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.data.length).toBeLessThanOrEqual(limit);
    // A page that says there is more is full.
    if (body.nextCursor) expect(body.data.length).toBe(limit);
    ids.push(...body.data.map((n: { id: string }) => n.id));
    cursor = body.nextCursor;
    pages++;
    expect(pages).toBeLessThan(500);
  } while (cursor);
  return { ids, pages };
}

describe('GET …/notifications: paging under every filter (1,000 notifications)', () => {
  const base = Date.parse('2026-02-01T00:00:00.000Z');
  const at = (i: number) => new Date(base + i * 1000).toISOString();
  let handle: string;
  let owner: string;

  beforeAll(async () => {
    owner = unique('u');
    handle = await provisionHandle(owner);
    await insertNotifications(handle, mixedNotifications(1000, base));
    // Another handle's notifications in the same time range must never show up.
    const other = await provisionHandle(unique('u'));
    await insertNotifications(other, mixedNotifications(50, base + 500));
  });

  /** What the feed should hold, computed independently from the columns (created_at for the time bounds). */
  async function expected(f: { status?: string; type?: string; severity?: string; since?: string; until?: string }) {
    const where = ['handle = ?'];
    const params: string[] = [handle];
    if (f.status) {
      where.push('status = ?');
      params.push(f.status);
    }
    if (f.type) {
      where.push('type = ?');
      params.push(f.type);
    }
    if (f.severity) {
      where.push('severity = ?');
      params.push(f.severity);
    }
    if (f.since) {
      where.push('created_at >= ?');
      params.push(new Date(f.since).toISOString());
    }
    if (f.until) {
      where.push('created_at < ?');
      params.push(new Date(f.until).toISOString());
    }
    const { results } = await (await shardOf(handle))
      .prepare(`SELECT id FROM notifications WHERE ${where.join(' AND ')}`)
      .bind(...params)
      .all<{ id: string }>();
    return results
      .map((r) => r.id)
      .sort()
      .reverse();
  }

  const filters: Array<[string, Record<string, string>]> = [
    ['no filter', {}],
    ['status', { status: 'failed' }],
    ['type', { type: 'order.paid' }],
    ['severity', { severity: 'critical' }],
    ['since (inclusive, on a notification)', { since: at(300) }],
    ['until (exclusive, on a notification)', { until: at(700) }],
    [
      'since + until (between notifications)',
      { since: new Date(base + 250_500).toISOString(), until: new Date(base + 612_500).toISOString() },
    ],
    ['since with a time-zone offset', { since: '2026-02-01T01:10:00+01:00' }],
    ['status + severity', { status: 'delivered', severity: 'warning' }],
    ['type + since + until', { type: 'payment.failed', since: at(100), until: at(900) }],
    ['status + type', { status: 'undeliverable', type: 'order.created' }],
    ['a type nobody sent', { type: 'campaign.completed' }],
  ];

  it('the seed is what the test thinks it is', async () => {
    const all = await expected({});
    expect(all).toHaveLength(1000);
    for (const id of all) expect(id).toMatch(ID);
    // Every filter value above selects a real, partial subset (so the filter tests can fail).
    for (const [, q] of filters.slice(1, -1)) {
      const n = (await expected(q)).length;
      expect(n, JSON.stringify(q)).toBeGreaterThan(0);
      expect(n, JSON.stringify(q)).toBeLessThan(1000);
    }
  });

  // 50 (the default) and a small odd size whose pages never line up with the seed's cycles. Each page is one API call,
  // so the size also sets the test's work: 7 walked 143 pages for the unfiltered feed, 6.5 s on a loaded 2-core machine.
  for (const limit of [50, 17]) {
    for (const [name, query] of filters) {
      it(`${name}, limit ${limit}: every notification exactly once, newest first`, async () => {
        // A fresh reader per run: the read throttle (300/min per principal and handle) must not interfere.
        const reader = unique('reader');
        await addMember(handle, reader, 'viewer');
        const { ids, pages } = await pageAll(handle, await userJwt(reader), query, limit);
        const want = await expected(query);
        expect(new Set(ids).size).toBe(ids.length);
        expect(ids).toEqual(want);
        expect(pages).toBe(Math.max(1, Math.ceil(want.length / limit)));
      });
    }
  }

  // No partial index holds these values: each page reads a slice of limit × COMBINED_FILTER_SCAN rows of the handle's
  // index (7 × 20 = 140 of the 1,000), so a page may be short and the cursor resumes after the slice.
  for (const [name, query, where] of [
    ['status=delivered', { status: 'delivered' }, "status = 'delivered'"],
    ['severity=info', { severity: 'info' }, "severity = 'info'"],
    [
      'status=delivering + a type prefix',
      { status: 'delivering', type: 'order.*' },
      "status = 'delivering' AND type LIKE 'order.%'",
    ],
  ] as const) {
    it(`${name} over more rows than one slice, limit 7: every match exactly once, newest first, across pages`, async () => {
      const reader = unique('reader');
      await addMember(handle, reader, 'viewer');
      const token = await userJwt(reader);
      const ids: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const params = new URLSearchParams({ ...query, limit: '7' });
        if (cursor) params.set('cursor', cursor);
        const { status, body } = await callJson('GET', `${feedPath(handle)}?${params}`, { token });
        expect(status, JSON.stringify(body)).toBe(200);
        expect(body.data.length).toBeLessThanOrEqual(7);
        ids.push(...body.data.map((n: { id: string }) => n.id));
        cursor = body.nextCursor;
        pages++;
        expect(pages).toBeLessThan(200);
      } while (cursor);
      const { results } = await (await shardOf(handle))
        .prepare(`SELECT id FROM notifications WHERE handle = ?1 AND ${where} ORDER BY id DESC`)
        .bind(handle)
        .all<{ id: string }>();
      const want = results.map((r) => r.id);
      expect(want.length).toBeGreaterThan(3 * 7);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toEqual(want);
      // At most one page per `limit` matches plus one per slice that ended a page early: never an endless walk.
      expect(pages).toBeLessThanOrEqual(Math.ceil(want.length / 7) + Math.ceil(1000 / 140));
    });
  }

  it('each item has its aggregate status and deliveries, and nothing else (no data, no handle, no raw recipients)', async () => {
    const { body } = await callJson('GET', `${feedPath(handle)}?limit=3`, { token: await userJwt(owner) });
    expect(body.data).toHaveLength(3);
    for (const item of body.data) {
      expect(Object.keys(item).sort()).toEqual(
        [
          'createdAt',
          'deliveries',
          'deliveryCounts',
          'id',
          'occurredAt',
          'recipientCount',
          'severity',
          'source',
          'sourceEventId',
          'status',
          'type',
          'updatedAt',
        ].sort(),
      );
      expect(item.deliveries).toEqual([]);
    }
  });

  it('the default page size is 50', async () => {
    const { body } = await callJson('GET', feedPath(handle), { token: await userJwt(owner) });
    expect(body.data).toHaveLength(50);
    expect(body.nextCursor).toEqual(expect.any(String));
  });
});

describe('GET …/notifications: cost on 100,000 notifications', () => {
  const base = Date.parse('2026-03-01T00:00:00.000Z');
  const N = 100_000;
  let handle: string;
  let owner: string;
  let tag: string;
  const id = (n: number) => seededId(base, tag, n);

  beforeAll(async () => {
    owner = unique('u');
    handle = await provisionHandle(owner);
    ({ tag } = await seedManyNotifications(handle, N, base));
  }, 60_000);

  /** Runs the route's own SQL: rows returned, rows read, and the query plan. */
  async function measure(filter: FeedFilter) {
    const q = feedQuery(getDb(await shardOf(handle)), handle, filter, 51).toSQL();
    const run = await (await shardOf(handle))
      .prepare(q.sql)
      .bind(...q.params)
      .all<{ id: string }>();
    const plan = await (await shardOf(handle))
      .prepare(`EXPLAIN QUERY PLAN ${q.sql}`)
      .bind(...q.params)
      .all<{ detail: string }>();
    return { ids: run.results.map((r) => r.id), rowsRead: run.meta.rows_read, plan: plan.results.map((p) => p.detail) };
  }

  function expectIndexedPlan(plan: string[]) {
    expect(
      plan.some((d) => /^SEARCH notifications USING (COVERING )?INDEX notifications_handle\w*_idx/.test(d)),
      plan.join(' | '),
    ).toBe(true);
    // No full scan of the table or of an index, and no sort of all matches (which would read every one of them).
    expect(
      plan.some((d) => /^SCAN notifications/.test(d)),
      plan.join(' | '),
    ).toBe(false);
    expect(
      plan.some((d) => /TEMP B-TREE/.test(d)),
      plan.join(' | '),
    ).toBe(false);
  }

  async function routeIds(query: Record<string, string>) {
    const { status, body } = await callJson(
      'GET',
      `${feedPath(handle)}?${new URLSearchParams({ limit: '50', ...query })}`,
      {
        token: await userJwt(owner),
      },
    );
    expect(status).toBe(200);
    return {
      ids: body.data.map((n: { id: string }) => n.id) as string[],
      nextCursor: body.nextCursor as string | null,
    };
  }

  it('the seed has 100,000 valid ids in creation order', async () => {
    const row = await (await shardOf(handle))
      .prepare('SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM notifications WHERE handle = ?')
      .bind(handle)
      .first<{ n: number; lo: string; hi: string }>();
    expect(row).toEqual({ n: N, lo: id(1), hi: id(N) });
    expect(id(1)).toMatch(ID);
    expect(id(N)).toMatch(ID);
    const at = await (await shardOf(handle))
      .prepare('SELECT created_at FROM notifications WHERE id = ?')
      .bind(id(12345))
      .first<{ created_at: string }>();
    expect(at!.created_at).toBe(new Date(base + 12345).toISOString());
    // The service's own id boundary for that millisecond sits right below it.
    expect(boundaryId('ntf', base + 12345) < id(12345)).toBe(true);
    expect(boundaryId('ntf', base + 12346) > id(12345)).toBe(true);
  });

  it('first page: ≤ 60 rows read on an index, and the route answers the same 50', async () => {
    const m = await measure({});
    expect(m.rowsRead).toBeLessThanOrEqual(60);
    expectIndexedPlan(m.plan);
    expect(m.ids).toEqual(Array.from({ length: 51 }, (_, k) => id(N - k)));
    const route = await routeIds({});
    expect(route.ids).toEqual(m.ids.slice(0, 50));
  });

  it('a deep page (after 50,000 rows): ≤ 60 rows read, and the route answers the same', async () => {
    const cursorId = id(N - 50_000 + 1); // the 50,000th newest
    const m = await measure({ beforeId: cursorId });
    expect(m.rowsRead).toBeLessThanOrEqual(60);
    expectIndexedPlan(m.plan);
    expect(m.ids).toEqual(Array.from({ length: 51 }, (_, k) => id(N - 50_000 - k)));
    const route = await routeIds({ cursor: encodeCursor(cursorId) });
    expect(route.ids).toEqual(m.ids.slice(0, 50));
    // Its next cursor continues right after the page.
    const next = await routeIds({ cursor: route.nextCursor! });
    expect(next.ids[0]).toBe(id(N - 50_000 - 50));
  });

  const single: Array<[string, Record<string, string>, (n: number) => boolean, FeedFilter]> = [
    ['status', { status: 'failed' }, (n) => Math.floor(n / 3) % 6 === 3, { status: 'failed' }],
    ['type', { type: 'payment.failed' }, (n) => n % 5 === 3, { type: 'payment.failed' }],
    ['severity', { severity: 'warning' }, (n) => n % 3 === 1, { severity: 'warning' }],
    ['since', { since: new Date(base + 60_000).toISOString() }, (n) => n >= 60_000, {}],
    ['until', { until: new Date(base + 40_000).toISOString() }, (n) => n < 40_000, {}],
  ];

  for (const [name, query, matches, filter] of single) {
    it(`filter ${name}: ≤ 60 rows read on an index; the route answers the same page`, async () => {
      const f: FeedFilter = { ...filter };
      if (query.since) f.minId = boundaryId('ntf', Date.parse(query.since));
      if (query.until) f.beforeId = boundaryId('ntf', Date.parse(query.until));
      const m = await measure(f);
      expect(m.rowsRead).toBeLessThanOrEqual(60);
      expectIndexedPlan(m.plan);
      const want: string[] = [];
      for (let n = N; n >= 1 && want.length < 51; n--) if (matches(n)) want.push(id(n));
      expect(m.ids).toEqual(want);
      const route = await routeIds(query);
      expect(route.ids).toEqual(want.slice(0, 50));
    });
  }

  it('a filter on a deep page: ≤ 60 rows read; the route answers the same', async () => {
    const cursorId = id(30_000);
    const m = await measure({ severity: 'critical', beforeId: cursorId });
    expect(m.rowsRead).toBeLessThanOrEqual(60);
    expectIndexedPlan(m.plan);
    const want: string[] = [];
    for (let n = 29_999; want.length < 51; n--) if (n % 3 === 2) want.push(id(n));
    expect(m.ids).toEqual(want);
    const route = await routeIds({ severity: 'critical', cursor: encodeCursor(cursorId) });
    expect(route.ids).toEqual(want.slice(0, 50));
  });

  it('the status and severity indexes are partial, and every filter on a value they hold is a SEARCH of that index, also once D1 has statistics', async () => {
    const d1 = await shardOf(handle);
    // With statistics (D1 may gather them; the bench does), a partial index written `severity IN ('warning', …)` lost
    // to the handle's index for `severity=critical`, which then read every row until 51 matched (3 × 51 here).
    await d1.prepare('ANALYZE').run();
    const { results: defs } = await d1
      .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN (?1, ?2) ORDER BY name")
      .bind('notifications_handle_severity_idx', 'notifications_handle_status_idx')
      .all<{ name: string; sql: string }>();
    // Only the outcomes that need attention and warning/critical: delivering → delivered and info write no entry.
    expect(defs.map((d) => d.sql.replace(/^.* WHERE /s, ''))).toEqual([
      "severity <> 'info'",
      "status NOT IN ('delivering', 'delivered')",
    ]);
    const statuses = ['delivering', 'delivered', 'partially_failed', 'failed', 'no_recipients', 'undeliverable'];
    const indexed: Array<[FeedFilter, string, (n: number) => boolean]> = [
      ...statuses
        .slice(2)
        .map((status): [FeedFilter, string, (n: number) => boolean] => [
          { status: status as FeedFilter['status'] },
          'notifications_handle_status_idx (handle=? AND status=?',
          (n) => statuses[Math.floor(n / 3) % 6] === status,
        ]),
      [{ severity: 'warning' }, 'notifications_handle_severity_idx (handle=? AND severity=?', (n) => n % 3 === 1],
      [{ severity: 'critical' }, 'notifications_handle_severity_idx (handle=? AND severity=?', (n) => n % 3 === 2],
    ];
    for (const [filter, index, matches] of indexed) {
      const m = await measure(filter);
      expect(m.plan, JSON.stringify(filter)).toEqual([`SEARCH notifications USING INDEX ${index})`]);
      expect(m.rowsRead, JSON.stringify(filter)).toBeLessThanOrEqual(60);
      const want: string[] = [];
      for (let n = N; n >= 1 && want.length < 51; n--) if (matches(n)) want.push(id(n));
      expect(m.ids, JSON.stringify(filter)).toEqual(want);
    }
    // The doctor's count of the last day's undeliverable notifications reads the same index, not the handle's rows.
    const { spy, last } = await recording();
    undeliverableCount(spy, handle, id(N - 599));
    const count = await last();
    expect(count.plan).toEqual([
      'SEARCH notifications USING COVERING INDEX notifications_handle_status_idx (handle=? AND status=? AND id>?)',
    ]);
    let undeliverable = 0;
    for (let n = N - 599; n <= N; n++) if (Math.floor(n / 3) % 6 === 5) undeliverable++;
    expect(count.results).toEqual([{ n: undeliverable }]);
    expect(count.rowsRead).toBeLessThanOrEqual(undeliverable + 10);
  });

  /** The seeded handle's shard, recording the last statement bound on it: its rows read and query plan on demand. */
  async function recording() {
    const d1 = await shardOf(handle);
    let sent: { sql: string; params: unknown[] } | undefined;
    const spy = {
      prepare: (sql: string) => ({
        bind: (...params: unknown[]) => {
          sent = { sql, params };
          return d1.prepare(sql).bind(...params);
        },
      }),
    } as unknown as D1Database;
    const last = async () => {
      const run = await d1
        .prepare(sent!.sql)
        .bind(...sent!.params)
        .all();
      const eqp = await d1
        .prepare(`EXPLAIN QUERY PLAN ${sent!.sql}`)
        .bind(...sent!.params)
        .all<{ detail: string }>();
      return { rowsRead: run.meta.rows_read, plan: eqp.results.map((p) => p.detail), results: run.results };
    };
    return { spy, last };
  }

  /** What `feedPlan` reads for `filter` on the seeded handle: its page, and its one statement's rows read and plan. */
  async function planned(filter: FeedFilter, limit: number) {
    const { spy, last } = await recording();
    const plan = feedPlan(spy, handle, filter, limit);
    const page = plan.page(await plan.read());
    return { page, ...(await last()) };
  }

  const unheld: Array<[string, FeedFilter, (n: number) => boolean]> = [
    ['status=delivered', { status: 'delivered' }, (n) => Math.floor(n / 3) % 6 === 1],
    ['status=delivering', { status: 'delivering' }, (n) => Math.floor(n / 3) % 6 === 0],
    ['severity=info', { severity: 'info' }, (n) => n % 3 === 0],
  ];
  for (const [name, filter, matches] of unheld) {
    it(`filter ${name}, which no partial index holds: one bounded slice of notifications_handle_idx; the route answers the same page`, async () => {
      const m = await planned(filter, 50);
      expect(m.plan).toEqual(['SEARCH notifications USING INDEX notifications_handle_idx (handle=?)']);
      expect(m.rowsRead).toBeLessThanOrEqual(50 * COMBINED_FILTER_SCAN + 10);
      // 1,000 rows hold a sixth (a third) matches: the page is full and the next one starts right after it.
      const want: string[] = [];
      for (let n = N; n >= 1 && want.length < 50; n--) if (matches(n)) want.push(id(n));
      expect(m.page.items.map((r) => r.id)).toEqual(want);
      expect(m.page.nextCursor).toBe(encodeCursor(want[49]!));
      expect(await routeIds(filter as Record<string, string>)).toEqual({ ids: want, nextCursor: m.page.nextCursor });
    });
  }

  it('combined filters narrow by a filter whose index holds its value, whichever comes first', async () => {
    const cases: Array<[FeedFilter, string]> = [
      [{ status: 'delivered', severity: 'critical' }, 'notifications_handle_severity_idx (handle=? AND severity=?)'],
      [{ status: 'failed', severity: 'info' }, 'notifications_handle_status_idx (handle=? AND status=?)'],
      [{ status: 'delivering', type: 'order.paid' }, 'notifications_handle_type_idx (handle=? AND type=?)'],
      [{ severity: 'info', type: 'order.*' }, 'notifications_handle_idx (handle=?)'],
      [{ status: 'delivered', severity: 'info' }, 'notifications_handle_idx (handle=?)'],
    ];
    for (const [filter, index] of cases) {
      const m = await planned(filter, 50);
      expect(m.plan, JSON.stringify(filter)).toEqual([`SEARCH notifications USING INDEX ${index}`]);
      expect(m.rowsRead, JSON.stringify(filter)).toBeLessThanOrEqual(50 * COMBINED_FILTER_SCAN + 10);
      expect(m.page.items.length, JSON.stringify(filter)).toBeGreaterThan(0);
      const { type, ...exact } = filter;
      for (const r of m.page.items) {
        expect(r).toMatchObject(exact);
        expect(type === undefined || r.type === type || r.type.startsWith(type.slice(0, -1))).toBe(true);
      }
    }
  });

  it('until combined with a cursor uses the lower of the two bounds', async () => {
    const until = new Date(base + 10_000).toISOString();
    const later = encodeCursor(id(90_000));
    const earlier = encodeCursor(id(5_000));
    expect((await routeIds({ until, cursor: later })).ids[0]).toBe(id(9_999));
    expect((await routeIds({ until, cursor: earlier })).ids[0]).toBe(id(4_999));
  });
});

describe('GET …/notifications/{id}', () => {
  it('returns the data and the deliveries (sorted by delivery id)', async () => {
    const owner = unique('u');
    const handle = await provisionHandle(owner);
    const notificationId = newId('ntf');
    const { ids, recipients } = await insertDeliveries(
      handle,
      [
        {
          notificationId,
          channel: 'webhook',
          subscriptionId: newId('whk'),
          target: 'https://crm.example.com/h',
          status: 'succeeded',
          attempts: 2,
        },
        {
          notificationId,
          channel: 'email',
          recipientType: 'email',
          subscriptionId: newId('esub'),
          target: 'ops@example.com',
          status: 'dead',
          attempts: 8,
        },
      ],
      'webhook',
    );
    const data = { orderId: 'ord_1', total: 1234.5, items: [{ sku: 'a', qty: 2 }], note: 'ünïcødé' };
    const createdAt = new Date().toISOString();
    await insertNotifications(handle, [
      {
        id: notificationId,
        type: 'order.paid',
        severity: 'warning',
        status: 'partially_failed',
        createdAt,
        data,
        recipients,
        sourceEventId: 'src-1',
      },
    ]);
    const { status, body } = await callJson('GET', `${feedPath(handle)}/${notificationId}`, {
      token: await userJwt(owner),
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      id: notificationId,
      type: 'order.paid',
      severity: 'warning',
      status: 'partially_failed',
      sourceEventId: 'src-1',
      recipientCount: 2,
      createdAt,
      data,
    });
    expect(body).not.toHaveProperty('handle');
    expect(body).not.toHaveProperty('recipients');
    expect(body.deliveries).toEqual([...ids].sort().map((d) => recipients[d]));
    // The feed shows the same deliveries for it, without the data.
    const feed = await callJson('GET', `${feedPath(handle)}?limit=1`, { token: await userJwt(owner) });
    expect(feed.body.data[0].id).toBe(notificationId);
    expect(feed.body.data[0].deliveries).toEqual(body.deliveries);
    expect(feed.body.data[0]).not.toHaveProperty('data');
  });

  it("another handle's id → 404 (even for a member of both); an unknown id → 404; a malformed id → 404", async () => {
    const owner = unique('u');
    const a = await provisionHandle(owner);
    const b = await provisionHandle(owner);
    const notificationId = newId('ntf');
    await insertNotifications(a, [
      {
        id: notificationId,
        type: 'order.paid',
        severity: 'info',
        status: 'delivered',
        createdAt: new Date().toISOString(),
      },
    ]);
    const token = await userJwt(owner);
    expect((await call('GET', `${feedPath(a)}/${notificationId}`, { token })).status).toBe(200);
    await expectProblem(await call('GET', `${feedPath(b)}/${notificationId}`, { token }), 404);
    await expectProblem(await call('GET', `${feedPath(a)}/${newId('ntf')}`, { token }), 404);
    for (const bad of [
      'ntf_123',
      'esub_01JD3Q7X9T0000000000000000',
      'ntf_01JD3Q7X9T00000000000000IL',
      'ntf_01jd3q7x9t0000000000000000',
    ]) {
      await expectProblem(await call('GET', `${feedPath(a)}/${bad}`, { token }), 404);
    }
    // B's feed does not list it either.
    const feed = await callJson('GET', feedPath(b), { token });
    expect(feed.body.data).toEqual([]);
  });

  it('a non-member → 404 for the feed and the detail; a member without notifications:read → 403', async () => {
    const owner = unique('u');
    const handle = await provisionHandle(owner);
    const notificationId = newId('ntf');
    await insertNotifications(handle, [
      {
        id: notificationId,
        type: 'order.paid',
        severity: 'info',
        status: 'delivered',
        createdAt: new Date().toISOString(),
      },
    ]);
    const stranger = await userJwt(unique('stranger'));
    await expectProblem(await call('GET', feedPath(handle), { token: stranger }), 404);
    await expectProblem(await call('GET', `${feedPath(handle)}/${notificationId}`, { token: stranger }), 404);
    const noScope = await signJwt({ sub: owner, scope: 'webhooks:read notifications:write' });
    const p = await expectProblem(await call('GET', feedPath(handle), { token: noScope }), 403);
    expect(p.missingScopes).toEqual(['notifications:read']);
    await expectProblem(await call('GET', `${feedPath(handle)}/${notificationId}`, { token: noScope }), 403);
  });
});

describe('GET …/notifications: query validation', () => {
  it('each bad parameter → 400 naming it', async () => {
    const owner = unique('u');
    const handle = await provisionHandle(owner);
    const token = await userJwt(owner);
    const cases: Array<[string, string]> = [
      ['status=bogus', 'query.status'],
      ['status=DELIVERED', 'query.status'],
      ['severity=urgent', 'query.severity'],
      ['since=yesterday', 'query.since'],
      ['since=2026-02-30', 'query.since'],
      ['since=2026-02-01T00:00:00', 'query.since'],
      ['until=2026-13-01T00:00:00Z', 'query.until'],
      [`type=${'a'.repeat(101)}`, 'query.type'],
      ['limit=0', 'query.limit'],
      ['limit=201', 'query.limit'],
      ['cursor=garbage', 'query.cursor'],
      [`cursor=${encodeCursor('whk_01JD3Q7X9T0000000000000000')}`, 'query.cursor'],
      [`cursor=${btoa('v2:ntf_01JD3Q7X9T0000000000000000')}`, 'query.cursor'],
    ];
    for (const [qs, path] of cases) {
      const problem = await expectProblem(await call('GET', `${feedPath(handle)}?${qs}`, { token }), 400);
      expect(
        problem.errors.map((e: { path: string }) => e.path),
        qs,
      ).toContain(path);
    }
  });

  it('a valid but empty handle answers an empty page', async () => {
    const owner = unique('u');
    const handle = await provisionHandle(owner);
    const { status, body } = await callJson('GET', `${feedPath(handle)}?status=failed&since=2020-01-01T00:00:00Z`, {
      token: await userJwt(owner),
    });
    expect(status).toBe(200);
    expect(body).toEqual({ data: [], nextCursor: null });
  });
});

describe('feed reads: token, membership and data in one D1 round trip', () => {
  it('a PAT reading a feed page or one notification costs one round trip, on the control plane and its shard only', async () => {
    const owner = unique('u');
    const handle = await provisionHandle(owner);
    await insertNotifications(handle, mixedNotifications(60, Date.parse('2026-02-01T00:00:00Z')));
    const { token } = await createPat(owner, { scopes: ['notifications:read'] });
    const mine = (await shardOf(handle)) === env.SHARD_0 ? 'SHARD_0' : 'SHARD_1';
    // The first use records the token's last use (a write, once a minute) and caches the handle's shard in this
    // isolate; measure the reads after it.
    expect((await callWithVars(meterD1().vars, 'GET', feedPath(handle), { token })).status).toBe(200);

    for (const path of [`${feedPath(handle)}?limit=50`, `${feedPath(handle)}?limit=10&severity=critical`]) {
      const meter = meterD1();
      const res = await callWithVars(meter.vars, 'GET', path, { token });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(((await res.json()) as { data: unknown[] }).data.length).toBeGreaterThan(0);
      // Token and membership on the control plane, the page on the handle's shard, at the same time.
      expect(meter.counts, path).toEqual({ DB: 1, [mine]: 1, [otherShard(mine)]: 0 });
      expect(meter.peakInFlight, path).toBe(2);
    }
    const page = await callJson('GET', `${feedPath(handle)}?limit=1`, { token });
    const meter = meterD1();
    const one = await callWithVars(meter.vars, 'GET', `${feedPath(handle)}/${page.body.data[0].id}`, { token });
    expect(one.status).toBe(200);
    expect(meter.counts).toEqual({ DB: 1, [mine]: 1, [otherShard(mine)]: 0 });
    expect(meter.peakInFlight).toBe(2);
  });

  it('the data never reaches a caller the batched check refuses, and 401/404 still come before 400', async () => {
    const owner = unique('u');
    const handle = await provisionHandle(owner);
    const [row] = mixedNotifications(1, Date.parse('2026-02-02T00:00:00Z'));
    await insertNotifications(handle, [row!]);
    const stranger = await createPat(unique('stranger'), { scopes: ['notifications:read'] });
    const revoked = await createPat(owner, { scopes: ['notifications:read'] });
    const revoke = await call('DELETE', `/v2/tokens/${revoked.id}`, {
      token: await signJwt({ sub: owner, scope: 'notifications:read' }),
    });
    expect(revoke.status).toBe(204);

    // Not a member: the same 404 as an unknown handle, for the page and for the one notification — no data.
    const page = await expectProblem(await call('GET', feedPath(handle), { token: stranger.token }), 404);
    expect(JSON.stringify(page)).not.toContain(row!.id);
    await expectProblem(await call('GET', `${feedPath(handle)}/${row!.id}`, { token: stranger.token }), 404);
    // Revoked: 401, even with a malformed cursor or an invalid limit (checked before them).
    await expectProblem(await call('GET', `${feedPath(handle)}?cursor=not-a-cursor`, { token: revoked.token }), 401);
    await expectProblem(await call('GET', `${feedPath(handle)}?limit=0`, { token: revoked.token }), 401);
    // Not a member and a malformed cursor: 404, not a verdict on the cursor.
    await expectProblem(await call('GET', `${feedPath(handle)}?cursor=not-a-cursor`, { token: stranger.token }), 404);
    // A member's bad cursor is still a 400.
    const member = await createPat(owner, { scopes: ['notifications:read'] });
    await expectProblem(await call('GET', `${feedPath(handle)}?cursor=not-a-cursor`, { token: member.token }), 400);
  });
});
