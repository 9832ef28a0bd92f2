import type { D1Migration } from 'cloudflare:test';

declare global {
  namespace Cloudflare {
    interface Env {
      /** Provided by vitest.config.ts for the setup file. */
      TEST_MIGRATIONS: D1Migration[];
      /** A second local D1, only for test/jobs/sweeper.test.ts (vitest.config.ts says why). */
      SWEEPER_TEST_DB: D1Database;
      /** Two more, only for the placement test in test/routes/internal.test.ts (vitest.config.ts says why). */
      PLACEMENT_TEST_A: D1Database;
      PLACEMENT_TEST_B: D1Database;
      /** One more, only for the summary migration test in test/delivery/summary.test.ts. */
      MIGRATION_TEST_DB: D1Database;
      /** Producer of `notify-email-events` for tests only, standing in for Email Sending's event subscription. */
      EMAIL_EVENTS_TEST_QUEUE: Queue<unknown>;
    }
  }
}
