/**
 * The Worker as `npm run dev` runs it, for end-to-end tests in Node: built and started from wrangler.toml by wrangler
 * itself (`unstable_startWorker`), every binding local, D1 persisted to a throw-away directory with the migrations
 * applied as `npm run db:migrate` applies them (scripts/db-migrate.ts; and optional seed SQL), listening on 127.0.0.1.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unstable_startWorker } from 'wrangler';
import { migrateAll, seedLocal } from '../../../scripts/db-migrate.ts';
import { ROOT } from '../../../scripts/wrangler-cli.ts';

/** A free TCP port on 127.0.0.1 (known before start-up, so vars such as PUBLIC_BASE_URL can name it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface LocalWorker {
  port: number;
  fetch: Awaited<ReturnType<typeof unstable_startWorker>>['fetch'];
  dispose(): Promise<void>;
}

/**
 * Starts the Worker with `vars` and `secrets` overriding wrangler.toml and .dev.vars; after the migrations `seedSql`
 * runs on the control plane `DB` and `shardSeedSql` on `SHARD_0` (where scripts/dev-seed.ts puts the demo handle's
 * rows: docs/design.md#shards).
 */
export async function startLocalWorker(opts: {
  vars: Record<string, string>;
  secrets: Record<string, string>;
  seedSql?: string;
  shardSeedSql?: string;
  port?: number;
}): Promise<LocalWorker> {
  const persistDir = await mkdtemp(join(tmpdir(), 'gharart-notify-worker-'));
  const previousLogLevel = process.env.WRANGLER_LOG;
  // One "[wrangler:info] GET …" line per request and queue batch would bury the test output; warnings still print.
  process.env.WRANGLER_LOG = 'warn';
  const cleanup = async () => {
    await rm(persistDir, { recursive: true, force: true });
    if (previousLogLevel === undefined) delete process.env.WRANGLER_LOG;
    else process.env.WRANGLER_LOG = previousLogLevel;
  };
  try {
    await migrateAll(persistDir);
    await seedLocal(persistDir, {
      ...(opts.seedSql ? { DB: opts.seedSql } : {}),
      ...(opts.shardSeedSql ? { SHARD_0: opts.shardSeedSql } : {}),
    });
    const port = opts.port ?? (await freePort());
    const worker = await unstable_startWorker({
      config: join(ROOT, 'wrangler.toml'),
      bindings: {
        ...Object.fromEntries(
          Object.entries(opts.vars).map(([k, v]) => [k, { type: 'plain_text' as const, value: v }]),
        ),
        ...Object.fromEntries(
          Object.entries(opts.secrets).map(([k, v]) => [k, { type: 'secret_text' as const, value: v }]),
        ),
      },
      dev: { server: { hostname: '127.0.0.1', port }, inspector: false, persist: persistDir, watch: false },
    });
    await worker.ready;
    return {
      port,
      fetch: worker.fetch.bind(worker),
      async dispose() {
        await worker.dispose();
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
