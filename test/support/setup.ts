import { applyD1Migrations } from 'cloudflare:test';
import { env } from 'cloudflare:workers';

// Applies only the migrations not yet applied, so running once per test file is cheap and safe. Every database (the
// control plane and each shard) gets the same migrations (docs/design.md#shards).
for (const d1 of [env.DB, env.SHARD_0, env.SHARD_1]) await applyD1Migrations(d1, env.TEST_MIGRATIONS);
