import type { D1Migration } from 'cloudflare:test';

declare global {
  namespace Cloudflare {
    interface Env {
      /** Provided by vitest.config.ts for the setup file. */
      TEST_MIGRATIONS: D1Migration[];
    }
  }
}
