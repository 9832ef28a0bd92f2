/**
 * Per-handle count limits (≤ 50 webhooks, ≤ 200 email subscriptions) checked and enforced in the INSERT itself:
 * `INSERT … SELECT … WHERE (SELECT count(*) …) < limit`. D1 runs each statement atomically, so concurrent creates
 * at the limit cannot overshoot it, which a count-then-insert in two round trips would.
 */
import { getTableColumns, getTableName } from 'drizzle-orm';
import type { SQLiteTable } from 'drizzle-orm/sqlite-core';

export type InsertOutcome = 'inserted' | 'limit_reached' | 'conflict';

/**
 * Inserts `row` unless the rows matching `scope` already number `limit` or more, or the row conflicts with a unique
 * index (then nothing is written). `alongside` statements run in the same `db.batch`, right after the INSERT (e.g. an
 * Idempotency-Key's completion, guarded by `changes() > 0` so it applies only when the row was inserted).
 */
export async function insertWithinLimit<T extends SQLiteTable>(
  d1: D1Database,
  table: T,
  row: T['$inferInsert'],
  scope: { where: string; params: unknown[] },
  limit: number,
  alongside: D1PreparedStatement[] = [],
): Promise<InsertOutcome> {
  const columns = getTableColumns(table) as Record<string, { name: string }>;
  const entries = Object.entries(row as Record<string, unknown>).filter(([, v]) => v !== undefined);
  const names = entries.map(([k]) => `"${columns[k]!.name}"`);
  // D1 binds booleans as-is; SQLite stores drizzle's boolean mode as 0/1.
  const values = entries.map(([, v]) => (typeof v === 'boolean' ? (v ? 1 : 0) : v));
  const tableName = `"${getTableName(table)}"`;
  const placeholders = values.map((_, i) => `?${i + 1}`);
  const scopeSql = scope.where.replace(/\?(\d+)/g, (_, n) => `?${values.length + Number(n)}`);
  const limitParam = `?${values.length + scope.params.length + 1}`;
  const insert = d1
    .prepare(
      `INSERT INTO ${tableName} (${names.join(', ')})
       SELECT ${placeholders.join(', ')}
       WHERE (SELECT count(*) FROM ${tableName} WHERE ${scopeSql}) < ${limitParam}
       ON CONFLICT DO NOTHING`,
    )
    .bind(...values, ...scope.params, limit);
  const result = alongside.length ? (await d1.batch([insert, ...alongside]))[0]! : await insert.run();
  if ((result.meta.changes ?? 0) > 0) return 'inserted';
  const count = await d1
    .prepare(`SELECT count(*) AS n FROM ${tableName} WHERE ${scope.where}`)
    .bind(...scope.params)
    .first<{ n: number }>();
  return (count?.n ?? 0) >= limit ? 'limit_reached' : 'conflict';
}
