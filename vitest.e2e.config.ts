import { defineConfig } from 'vitest/config';

/**
 * `npm run test:e2e`: the dashboard in headless Chromium (test/e2e). Separate from `npm test` because it needs the
 * system's Chromium (scripts/ensure-chromium.sh) and starts its own Worker; one file, steps in order.
 */
export default defineConfig({
  test: {
    name: 'e2e',
    include: ['test/e2e/**/*.e2e.ts'],
    environment: 'node',
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // The steps build on each other (sign in, create, break, redrive): stop at the first failure.
    bail: 1,
    onConsoleLog: (log: string, type: 'stdout' | 'stderr') => type === 'stderr' || !log.includes('"level":"info"'),
  },
});
