/**
 * Vitest globalSetup: starts the webhook receivers (./receivers.ts) and the fake Resend API (./resend-fake.ts) once
 * per run, provides their ports as `receiverPort` and `resendFakePort` (tests read them with `inject(…)`, see
 * test/support/receivers.ts and test/email/resend.test.ts), and stops them when the run ends.
 */
import type { TestProject } from 'vitest/node';
import { startDohStub } from './doh-stub.ts';
import { startReceivers } from './receivers.ts';
import { startResendFake } from './resend-fake.ts';
import { startSnsFake } from './sns-fake.ts';
import { startSnsNotifier } from './sns-notifier.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Port of the webhook receivers on 127.0.0.1. */
    receiverPort: number;
    /** Port of the fake Resend API on 127.0.0.1. */
    resendFakePort: number;
    /** Port of the DNS-over-HTTPS resolver stub on 127.0.0.1 (./doh-stub.ts). */
    dohPort: number;
    /** Generated-test sizes and seeds, from FUZZ_RUNS / FUZZ_SEED / FAULT_RUNS / FAULT_SEED (vitest.config.ts). */
    fuzzRuns: number;
    fuzzSeed: number;
    faultRuns: number;
    faultSeed: number;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const receivers = await startReceivers();
  const resend = await startResendFake();
  project.provide('receiverPort', receivers.port);
  project.provide('resendFakePort', resend.port);
  // The SNS fake (./sns-fake.ts): its port reaches tests as `inject('snsFakePort')`; closed when Vitest closes.
  const snsFake = await startSnsFake();
  project.provide('snsFakePort', snsFake.port);
  project.vitest.onClose(() => snsFake.close());
  // The SNS notifier (./sns-notifier.ts): signing certificate, SubscribeURL and `/_sign`, as `inject('snsNotifierPort')`.
  const snsNotifier = await startSnsNotifier();
  project.provide('snsNotifierPort', snsNotifier.port);
  project.vitest.onClose(() => snsNotifier.close());
  // The DNS-over-HTTPS resolver stub (./doh-stub.ts) for the send-time SSRF check, as `inject('dohPort')`.
  const doh = await startDohStub();
  project.provide('dohPort', doh.port);
  project.vitest.onClose(() => doh.close());
  return async () => {
    await Promise.all([receivers.close(), resend.close()]);
  };
}
