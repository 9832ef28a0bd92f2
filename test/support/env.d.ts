import type { D1Migration } from 'cloudflare:test';

declare global {
  namespace Cloudflare {
    interface Env {
      /** Provided by vitest.config.ts for the setup file. */
      TEST_MIGRATIONS: D1Migration[];
      /** A second local D1, only for test/jobs/sweeper.test.ts (vitest.config.ts says why). */
      SWEEPER_TEST_DB: D1Database;
    }
  }
}
