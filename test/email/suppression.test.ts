/**
 * Bounce and complaint feedback names an address, not a handle (docs/design.md#email): the suppression finds every
 * subscription of that address on the shard through an index, so its rows read (D1's `meta.rows_read`) do not grow
 * with the shard's other subscriptions.
 */
import { describe, expect, it } from 'vitest';
import { applyFeedback } from '../../src/email/suppression.ts';
import { newId } from '../../src/lib/ids.ts';
import { shardOf, unique } from '../support/helpers.ts';
import { setupHandle } from '../support/pipeline-helpers.ts';

/** `d1` with the `rows_read` of every `all()` summed. */
function metered(d1: D1Database): { db: D1Database; rowsRead: () => number } {
  let read = 0;
  const wrap = (stmt: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(stmt, {
      get(target, prop) {
        if (prop === 'bind') return (...values: unknown[]) => wrap(target.bind(...values));
        if (prop === 'all')
          return async () => {
            const r = await target.all();
            read += r.meta.rows_read ?? 0;
            return r;
          };
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  const db = new Proxy(d1, {
    get(target, prop) {
      if (prop === 'prepare') return (query: string) => wrap(target.prepare(query));
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { db, rowsRead: () => read };
}

describe('suppression by address', () => {
  it("a permanent bounce suppresses the address's subscriptions on every handle through an index, whatever else the shard holds (meta)", async () => {
    const [a, b] = [await setupHandle('SHARD_0'), await setupHandle('SHARD_0')];
    const d1 = await shardOf(a.handle);
    const email = `${unique('bounced')}@example.com`;
    const now = new Date().toISOString();
    const insert = (handle: string, address: string) =>
      d1
        .prepare(
          `INSERT INTO email_subscriptions (id, handle, kind, email, email_normalized, event_types, status, provider,
             created_at, updated_at) VALUES (?1, ?2, 'standard', ?3, ?3, '["*"]', 'active', 'send_email', ?4, ?4)`,
        )
        .bind(newId('esub'), handle, address, now);
    // 3,000 subscriptions of other addresses on the same shard, and the bounced address on two handles.
    await d1
      .prepare(
        `WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 3000)
         INSERT INTO email_subscriptions (id, handle, kind, email, email_normalized, event_types, status, provider,
           created_at, updated_at)
         SELECT 'esub_' || ?2 || printf('%010d', n), ?1, 'standard', 'other' || n || '@example.com',
           'other' || n || '@example.com', '["*"]', 'active', 'send_email', ?3, ?3 FROM seq`,
      )
      .bind(a.handle, newId('esub').slice(5, 21), now)
      .run();
    await d1.batch([insert(a.handle, email), insert(b.handle, email)]);

    const m = metered(d1);
    const suppressed = await applyFeedback(m.db, {
      kind: 'bounce',
      email: email.toUpperCase(),
      detail: '550 5.1.1 user unknown',
      provider: 'ses',
    });
    expect(suppressed.map((s) => s.handle).sort()).toEqual([a.handle, b.handle].sort());
    // The two rows (index entry and row each), their index entries rewritten: not the 3,000 others.
    expect(m.rowsRead()).toBeLessThanOrEqual(10);
    // A redelivery of the same bounce changes nothing.
    expect(await applyFeedback(d1, { kind: 'bounce', email, detail: 'again', provider: 'ses' })).toEqual([]);
  });
});
