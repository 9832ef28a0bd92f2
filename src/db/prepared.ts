/**
 * Hot queries built once per isolate (docs/performance.md#what-changed-for-speed): drizzle turns a query into SQL by
 * walking its builder objects on every call, which the profile showed as a tenth of a feed read's CPU. A hot query is
 * written once with drizzle and `sql.placeholder(...)` for its values, its SQL kept by a key; each call binds the
 * values to a D1 statement and maps the raw rows with the selected columns' own decoders, as drizzle would.
 * The SQL is the one drizzle builds (same text, same indexes), only not rebuilt per request.
 */
import { Column, fillPlaceholders, is } from 'drizzle-orm';

/** A query built once: its SQL, its parameters (placeholders among them) and how to decode a raw row. */
export interface Compiled<T> {
  sql: string;
  params: unknown[];
  decode(row: unknown[]): T;
}

const compiledByKey = new Map<string, Compiled<unknown>>();

/** Counts queries compiled in this isolate (a test checks they are built once, not per call). */
export const compiledStats = { built: 0 };

/**
 * The compiled form of the query `build()` returns, kept under `key` for the isolate's life. `fields` is the query's
 * selection in its order (the object given to `select(...)`, or the table's columns for `select()`): columns are
 * decoded with their own `mapFromDriverValue`, other expressions are passed through.
 */
export function compiled<T>(
  key: string,
  fields: Record<string, unknown>,
  build: () => { toSQL(): { sql: string; params: unknown[] } },
): Compiled<T> {
  let c = compiledByKey.get(key) as Compiled<T> | undefined;
  if (c) return c;
  const { sql, params } = build().toSQL();
  const decoders = Object.entries(fields).map(
    ([name, field]) =>
      [name, is(field, Column) ? (v: unknown) => (v === null ? null : field.mapFromDriverValue(v)) : null] as const,
  );
  c = {
    sql,
    params,
    decode(row) {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < decoders.length; i++) {
        const [name, decode] = decoders[i]!;
        out[name] = decode ? decode(row[i]) : row[i];
      }
      return out as T;
    },
  };
  compiledStats.built++;
  compiledByKey.set(key, c as Compiled<unknown>);
  return c;
}

/** A statement of `c` on `d1` with the placeholders filled from `values`. */
export function bindCompiled(
  d1: D1Database,
  c: Compiled<unknown>,
  values: Record<string, unknown>,
): D1PreparedStatement {
  return d1.prepare(c.sql).bind(...fillPlaceholders(c.params, values));
}

/** Runs a compiled query: every row, decoded. */
export async function allCompiled<T>(d1: D1Database, c: Compiled<T>, values: Record<string, unknown>): Promise<T[]> {
  const rows = await bindCompiled(d1, c, values).raw();
  return rows.map((r) => c.decode(r));
}

/** Compiled reads sent together in one `d1.batch` (one round trip), each answer decoded by its own query. */
export interface ReadBatch {
  statements: [D1PreparedStatement, ...D1PreparedStatement[]];
  queries: Compiled<unknown>[];
}

/** A {@link ReadBatch} of these compiled queries with their values, on `d1`. */
export function readBatch(
  d1: D1Database,
  items: ReadonlyArray<readonly [Compiled<unknown>, Record<string, unknown>]>,
): ReadBatch {
  return {
    statements: items.map(([c, values]) => bindCompiled(d1, c, values)) as ReadBatch['statements'],
    queries: items.map(([c]) => c),
  };
}

/** Runs a {@link ReadBatch}: the decoded rows of each query, in order. */
export async function runReadBatch(d1: D1Database, reads: ReadBatch): Promise<unknown[][]> {
  const results = await d1.batch<Record<string, unknown>>(reads.statements);
  // A batch answers rows as objects in the SELECT's column order; every compiled SELECT names each column once.
  return results.map((r, i) => r.results.map((row) => reads.queries[i]!.decode(Object.values(row))));
}
