/**
 * `npm run db:migrate` (and `npm run dev`, which calls it) applies the migrations of every local database in one
 * process (scripts/db-migrate.ts): the state it leaves must be the state `wrangler d1 migrations apply --local` leaves,
 * so that wrangler itself finds nothing left to apply and `wrangler dev` reads the same databases.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { D1_BINDINGS, migrateAll, openLocalD1 } from '../../scripts/db-migrate.ts';
import { runWrangler } from '../../scripts/wrangler-cli.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('npm run db:migrate', () => {
  it('leaves every local database as wrangler would: wrangler lists nothing to apply, and a second run changes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gharart-notify-migrate-'));
    dirs.push(dir);
    expect(await migrateAll(dir)).toEqual(['DB', 'SHARD_0', 'SHARD_1']);
    await migrateAll(dir);
    const local = await openLocalD1(dir);
    try {
      for (const binding of D1_BINDINGS) {
        const db = await local.database(binding);
        const names = (await db.prepare('SELECT name FROM d1_migrations ORDER BY id').all<{ name: string }>()).results;
        expect(names.map((r) => r.name)[0]).toBe('0000_init.sql');
        expect(new Set(names.map((r) => r.name)).size).toBe(names.length);
        expect(await db.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE name = 'deliveries'`).first('n')).toBe(
          1,
        );
      }
    } finally {
      await local.dispose();
    }
    const listed = await runWrangler('list the migrations of SHARD_1', [
      'd1',
      'migrations',
      'list',
      'SHARD_1',
      '--local',
      '--persist-to',
      dir,
    ]);
    expect(listed).toContain('No migrations to apply');
  });
});
