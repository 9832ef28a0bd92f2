import { applyD1Migrations } from 'cloudflare:test';
import { env } from 'cloudflare:workers';

// Applies only the migrations not yet applied, so running once per test file is cheap and safe.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
