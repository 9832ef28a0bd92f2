import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';

/** Values the worker tests run with: fixed secrets, and the issuer/audience checks switched on. */
export const TEST_BINDINGS = {
  ENVIRONMENT: 'test',
  JWT_SECRET: 'test-secret-that-is-long-enough-for-hs256-0123456789',
  JWT_ISSUER: 'https://auth.gharart.test',
  JWT_AUDIENCE: 'gharart-notify',
  // base64 of 32 bytes
  ENCRYPTION_KEY: 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
  ALLOW_INSECURE_WEBHOOK_TARGETS: 'true',
  // The send-time DNS check is off by default here (no internet); the SSRF tests turn it on against a loopback stub.
  DNS_OVER_HTTPS_URL: '',
  // The minute job's retention purge stays off: the database is shared by every test file, many of which seed
  // back-dated notifications on handles with the default retention. test/archive/ runs the purge on its own handles.
  PURGE_ENABLED: 'false',
};

export default defineConfig(async () => {
  const migrations = await readD1Migrations('migrations');
  return {
    test: {
      // Webhook receivers on 127.0.0.1, once per run; their port reaches tests as `inject('receiverPort')`.
      globalSetup: ['test/support/node/global-setup.ts'],
      // The Worker logs one JSON line per request: right in production, noise in a test run of hundreds of calls.
      // Errors and warnings still print.
      onConsoleLog: (log: string, type: 'stdout' | 'stderr') => type === 'stderr' || !log.includes('"level":"info"'),
      projects: [
        {
          plugins: [
            cloudflareTest({
              wrangler: { configPath: './wrangler.toml' },
              miniflare: {
                bindings: { ...TEST_BINDINGS, TEST_MIGRATIONS: migrations },
                // A database of its own for tests that run the sweeper on a simulated clock hours ahead: on the shared
                // one it would also sweep every other test's deliveries (test/jobs/sweeper.test.ts).
                d1Databases: {
                  SWEEPER_TEST_DB: 'sweeper-test-db',
                  // Two shards of their own for the placement test (test/routes/internal.test.ts): on the shared
                  // shards, which one is smaller depends on every other test file.
                  PLACEMENT_TEST_A: 'placement-test-a',
                  PLACEMENT_TEST_B: 'placement-test-b',
                  // Migrated step by step by test/delivery/summary.test.ts: rows written before a migration, then it.
                  MIGRATION_TEST_DB: 'migration-test-db',
                },
                // Tests play Cloudflare Email Sending: they publish its lifecycle events to the real local queue the
                // Worker consumes (test/email/email-sending-events.test.ts). The Worker itself never produces to it.
                queueProducers: { EMAIL_EVENTS_TEST_QUEUE: { queueName: 'notify-email-events' } },
              },
            }),
          ],
          test: {
            name: 'worker',
            // Every test beside the Node and browser ones runs inside workerd, in folders that mirror src/.
            include: ['test/**/*.test.ts'],
            exclude: ['test/node/**', 'test/e2e/**'],
            setupFiles: ['test/support/setup.ts'],
            // Widen or replay the generated tests: FUZZ_RUNS / FUZZ_SEED (test/app/fuzz.test.ts), FAULT_RUNS / FAULT_SEED
            // (test/delivery/fault-model.test.ts). Provided, not read from import.meta.env: a cached transform can keep stale values.
            provide: {
              fuzzRuns: Number(process.env.FUZZ_RUNS ?? 100),
              fuzzSeed: Number(process.env.FUZZ_SEED ?? 20261126),
              faultRuns: Number(process.env.FAULT_RUNS ?? 50),
              faultSeed: Number(process.env.FAULT_SEED ?? 20261127),
            },
          },
        },
        {
          test: {
            name: 'node',
            include: ['test/node/**/*.test.ts'],
            environment: 'node',
            testTimeout: 120_000,
            hookTimeout: 120_000,
          },
        },
      ],
    },
  };
});
