/**
 * Sizes and seeds of the generated tests, provided by vitest.config.ts from the environment (FUZZ_RUNS, FUZZ_SEED,
 * FAULT_RUNS, FAULT_SEED), so a run can be widened or replayed without editing a file.
 */
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    fuzzRuns: number;
    fuzzSeed: number;
    faultRuns: number;
    faultSeed: number;
  }
}

/** The API fuzzer's cases per operation and base seed. */
export const fuzzRuns = () => ({ runs: inject('fuzzRuns'), seed: inject('fuzzSeed') });
/** The fault model's number of sequences and seed. */
export const faultRuns = () => ({ runs: inject('faultRuns'), seed: inject('faultSeed') });
