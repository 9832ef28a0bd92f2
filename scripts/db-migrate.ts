/**
 * `npm run db:migrate`: applies the migrations to every local D1 database of wrangler.toml — the control plane `DB` and
 * each shard `SHARD_<n>` (docs/design.md#shards) — in `.wrangler/state`, or `--persist-to <dir>`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { d1Bindings } from './dev-seed.ts';
import { ROOT, runWrangler } from './wrangler-cli.ts';

/** The D1 bindings of wrangler.toml: the control plane and the shards (docs/design.md#shards). */
export const D1_BINDINGS = d1Bindings(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8'));

/**
 * Applies the migrations to every database at once (each is its own SQLite file, so the wrangler runs do not contend
 * for a lock); `extra` are wrangler arguments (`--local`, …). One after the other, `npm run dev` started three wrangler
 * processes in a row and took three times as long to come up.
 */
export async function migrateAll(extra: readonly string[]): Promise<string[]> {
  const bindings = D1_BINDINGS;
  await Promise.all(
    bindings.map((binding) =>
      runWrangler(`apply the D1 migrations to ${binding}`, ['d1', 'migrations', 'apply', binding, ...extra], {
        timeoutMs: 120_000,
      }),
    ),
  );
  return bindings;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { 'persist-to': { type: 'string' } } });
  const persist = values['persist-to'] ? ['--persist-to', values['persist-to']] : [];
  migrateAll(['--local', ...persist]).then(
    (done) => console.log(`✔ migrated ${done.join(', ')}`),
    (err: unknown) => {
      console.error(`✖ ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
