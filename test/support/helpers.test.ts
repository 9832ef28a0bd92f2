/**
 * The cross-shard read helpers (test/support/helpers.ts `anyShard`, `allShards`): many tests read rows by an id whose
 * handle's shard they do not know, so what those helpers answer for an aggregate is pinned here, with the handle on
 * SHARD_1 (behind SHARD_0 in their order, where a per-shard answer hides it).
 */
import { describe, expect, it } from 'vitest';
import { allShards, anyShard, provisionHandleOn, unique } from './helpers.ts';

describe('anyShard and allShards over both shards', () => {
  it('all() answers a count over both shards as one row, the sum, with the handle on SHARD_1', async () => {
    const handle = await provisionHandleOn('SHARD_1', unique('u'));
    const count = anyShard.prepare('SELECT count(*) AS n FROM handles WHERE handle = ?1').bind(handle);
    expect((await count.all<{ n: number }>()).results).toEqual([{ n: 1 }]);
    expect(await count.first()).toEqual({ n: 1 });
    expect(await count.first('n')).toBe(1);
    expect(await allShards.all('SELECT count(*) AS n FROM handles WHERE handle = ?1', handle)).toEqual([{ n: 1 }]);
    expect(await allShards.first('SELECT count(*) AS n FROM handles WHERE handle = ?1', handle)).toEqual({ n: 1 });
  });

  it('combines count, sum, min and max of rows on both shards column by column', async () => {
    const a = await provisionHandleOn('SHARD_0', unique('u'), `${unique('h')}-a`);
    const b = await provisionHandleOn('SHARD_1', unique('u'), `${unique('h')}-b`);
    const { results } = await anyShard
      .prepare(
        `SELECT count(*) AS n, sum(shard) AS shards, min(handle) AS low, max(handle) AS high, count(handle)
         FROM handles WHERE handle IN (?1, ?2)`,
      )
      .bind(a, b)
      .all();
    expect(results).toEqual([{ n: 2, shards: 1, low: a, high: b, 'count(handle)': 2 }]);
    // A sum over no row is NULL on every shard, and so is the combined one.
    const none = await anyShard
      .prepare('SELECT sum(shard) AS s FROM handles WHERE handle = ?1')
      .bind(unique('x'))
      .all();
    expect(none.results).toEqual([{ s: null }]);
  });

  it('refuses an aggregate it cannot combine, naming the handle’s own shard, before asking any', () => {
    expect(() => anyShard.prepare('SELECT avg(shard) AS a FROM handles WHERE handle = ?1')).toThrow(
      /avg\(shard\).*shardOf\(handle\)/,
    );
    expect(() => anyShard.prepare('SELECT count(*) + 1 AS n FROM handles')).toThrow(/`count\(\*\) \+ 1`/);
    expect(() => allShards.first('SELECT group_concat(handle) FROM handles')).toThrow(/shardOf\(handle\)/);
  });

  it('leaves rows, grouped rows and subqueries per shard', async () => {
    const a = await provisionHandleOn('SHARD_0', unique('u'));
    const b = await provisionHandleOn('SHARD_1', unique('u'));
    const grouped = await anyShard
      .prepare('SELECT handle, count(*) AS n FROM handles WHERE handle IN (?1, ?2) GROUP BY handle')
      .bind(a, b)
      .all();
    expect(grouped.results).toEqual([
      { handle: a, n: 1 },
      { handle: b, n: 1 },
    ]);
    const rows = await anyShard.prepare('SELECT handle FROM handles WHERE handle IN (?1, ?2)').bind(a, b).all();
    expect(rows.results).toEqual([{ handle: a }, { handle: b }]);
    // An aggregate inside a subquery leaves the outer query a plain one: a row per shard that has one.
    const outer = await anyShard
      .prepare('SELECT handle, (SELECT count(*) FROM handles) > 0 AS any FROM handles WHERE handle = ?1')
      .bind(b)
      .all();
    expect(outer.results).toEqual([{ handle: b, any: 1 }]);
  });
});
