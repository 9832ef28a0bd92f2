/**
 * Hot queries built once per isolate (src/db/prepared.ts, docs/performance.md#what-changed-for-speed): the feed, the
 * PAT lookup and the match context answer exactly what drizzle's own queries answer, on a real local D1, and a second
 * call builds no SQL.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { patLookup, patQuery } from '../../src/auth/queries.ts';
import { getDb } from '../../src/db/client.ts';
import { compiledStats, runReadBatch } from '../../src/db/prepared.ts';
import { ingestReads } from '../../src/delivery/ingest.ts';
import { matchContextQueries } from '../../src/delivery/match-context.ts';
import { sha256Hex } from '../../src/lib/crypto.ts';
import { type FeedFilter, feedQuery, readFeed } from '../../src/routes/notifications/notifications.repo.ts';
import { createPat, provisionHandle, shardOf, unique } from '../support/helpers.ts';
import { createWebhook, setupHandle } from '../support/pipeline-helpers.ts';
import { insertNotifications, mixedNotifications } from '../support/seed.ts';

describe('hot queries built once per isolate', () => {
  it('the feed, the PAT lookup and the match context answer what drizzle answers, and a second call builds no SQL', async () => {
    const owner = unique('owner');
    const handle = await provisionHandle(owner);
    const rows = mixedNotifications(30, Date.parse('2026-03-01T00:00:00Z'));
    await insertNotifications(handle, rows);
    const d1 = await shardOf(handle);
    const db = getDb(d1);
    const filters: FeedFilter[] = [
      {},
      { status: rows[3]!.status as FeedFilter['status'] },
      { type: rows[5]!.type, beforeId: rows[20]!.id },
      { severity: 'critical', minId: rows[2]!.id },
    ];
    for (const filter of filters) {
      const expected = await feedQuery(db, handle, filter, 11).all();
      expect(expected.length, JSON.stringify(filter)).toBeGreaterThan(0);
      expect(await readFeed(d1, handle, filter, 11), JSON.stringify(filter)).toEqual(expected);
    }

    const pat = await createPat(owner, { scopes: ['notifications:read'] });
    const hash = await sha256Hex(pat.token);
    for (const h of [handle, null]) {
      const expected = await patQuery(getDb(env.DB), hash, h).all();
      expect(expected).toHaveLength(1);
      expect(await patLookup(env.DB, hash, h)).toEqual(expected);
    }

    const t = await setupHandle();
    await createWebhook(t, { url: 'https://example.com/hook' });
    const shard = await shardOf(t.handle);
    const expectedContext = await getDb(shard).batch(matchContextQueries(getDb(shard), t.handle));
    const [seen, ...context] = await runReadBatch(
      shard,
      ingestReads(shard, { handle: t.handle, sourceEventId: unique('src') }),
    );
    expect(seen).toEqual([]);
    expect(context).toEqual(expectedContext);
    expect((context[1] as unknown[]).length).toBe(1);

    // Everything above was built by now: doing it all again builds nothing.
    const built = compiledStats.built;
    for (const filter of filters) await readFeed(d1, handle, filter, 11);
    await patLookup(env.DB, hash, handle);
    await runReadBatch(shard, ingestReads(shard, { handle: t.handle, sourceEventId: unique('src') }));
    expect(compiledStats.built).toBe(built);
  });
});
