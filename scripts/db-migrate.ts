/**
 * `npm run db:migrate`: applies the migrations to every local D1 database of wrangler.toml — the control plane `DB` and
 * each shard `SHARD_<n>` (docs/design.md#shards) — in `.wrangler/state`, or `--persist-to <dir>`.
 *
 * Locally this does what `wrangler d1 migrations apply <binding> --local` does, in one process: the same databases
 * (wrangler.toml's ids, under `<persist>/v3/d1`), the same `d1_migrations` table and rows, each migration and its
 * row in one batch, so wrangler sees them applied afterwards. wrangler starts a local runtime per migration file per
 * database (45 for 3 databases), which took 17 s of a loaded 2-core machine for one database; this starts one.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readD1Migrations } from '@cloudflare/vitest-plugin';
import { convertV4MiniflareOptions, Miniflare } from 'miniflare';
import { d1Bindings } from './dev-seed.ts';
import { ROOT } from './wrangler-cli.ts';

const TOML = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');

/** The D1 bindings of wrangler.toml: the control plane and the shards (docs/design.md#shards). */
export const D1_BINDINGS = d1Bindings(TOML);

/** The table wrangler keeps applied migrations in (wrangler.toml sets no `migrations_table`). */
const MIGRATIONS_TABLE = 'd1_migrations';

/** Each binding's local database id, as wrangler picks it: `preview_database_id`, else `database_id`. */
function localIds(toml: string): Record<string, string> {
  const ids: Record<string, string> = {};
  for (const block of toml.split('[[d1_databases]]').slice(1)) {
    const field = (name: string) => new RegExp(`^${name}\\s*=\\s*"([^"]+)"`, 'm').exec(block.split(/^\[/m)[0]!)?.[1];
    const binding = field('binding');
    const id = field('preview_database_id') ?? field('database_id');
    if (binding && id) ids[binding] = id;
  }
  return ids;
}

/** The local D1 databases, opened where `wrangler dev` and `wrangler d1 … --local` find them; dispose when done. */
export async function openLocalD1(persistTo?: string) {
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: '',
      resourcePersistencePath: join(persistTo ? resolve(persistTo) : join(ROOT, '.wrangler', 'state'), 'v3'),
      d1Databases: localIds(TOML),
    }),
  );
  await mf.ready;
  return { database: (binding: string) => mf.getD1Database(binding), dispose: () => mf.dispose() };
}

/** Applies the migrations not yet applied to each local database; resolves with the bindings migrated. */
export async function migrateAll(persistTo?: string): Promise<string[]> {
  const migrations = await readD1Migrations(join(ROOT, 'migrations'));
  const local = await openLocalD1(persistTo);
  try {
    for (const binding of D1_BINDINGS) {
      const db = await local.database(binding);
      await db
        .prepare(
          `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE}(
             id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)`,
        )
        .run();
      const applied = new Set(
        (await db.prepare(`SELECT name FROM ${MIGRATIONS_TABLE}`).all<{ name: string }>()).results.map((r) => r.name),
      );
      for (const m of migrations.filter((x) => !applied.has(x.name))) {
        try {
          await db.batch([
            ...m.queries.map((q) => db.prepare(q)),
            db.prepare(`INSERT INTO ${MIGRATIONS_TABLE} (name) VALUES (?1)`).bind(m.name),
          ]);
        } catch (err) {
          throw new Error(`migration ${m.name} failed on ${binding}: ${err instanceof Error ? err.message : err}`);
        }
      }
    }
  } finally {
    await local.dispose();
  }
  return D1_BINDINGS;
}

/**
 * Runs each database's seed SQL (statements ending in `;` at a line end, as scripts/dev-seed.ts writes them) in one
 * batch per database.
 */
export async function seedLocal(persistTo: string | undefined, sqlByBinding: Record<string, string>): Promise<void> {
  const local = await openLocalD1(persistTo);
  try {
    for (const [binding, sql] of Object.entries(sqlByBinding)) {
      const db = await local.database(binding);
      const statements = sql
        .split(/;\s*$/m)
        .map((q) => q.trim())
        .filter(Boolean);
      await db.batch(statements.map((q) => db.prepare(q)));
    }
  } finally {
    await local.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { 'persist-to': { type: 'string' } } });
  migrateAll(values['persist-to']).then(
    (done) => console.log(`✔ migrated ${done.join(', ')}`),
    (err: unknown) => {
      console.error(`✖ ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
