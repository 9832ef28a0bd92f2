/**
 * Vitest globalSetup: starts the webhook receivers (./receivers.ts) once per run, provides their port as
 * `receiverPort` (tests read it with `inject('receiverPort')`, see test/worker/receivers.ts), and stops them when the
 * run ends.
 */
import type { TestProject } from 'vitest/node';
import { startReceivers } from './receivers.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Port of the webhook receivers on 127.0.0.1. */
    receiverPort: number;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const receivers = await startReceivers();
  project.provide('receiverPort', receivers.port);
  return () => receivers.close();
}
