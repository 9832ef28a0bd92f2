/**
 * Generated sequences of creates under storage faults (docs/reliability.md#scenarios): webhook creates, email
 * subscription creates and secret rotations, each sent with an Idempotency-Key while D1 drops the connection before
 * the write, loses the answer after the commit, or behaves, then retried with the same key until it answers 2xx.
 *
 * Rules checked after every sequence:
 * 1. Every answer is a 2xx, or a 503 problem while a fault was armed; nothing else.
 * 2. A key's 2xx answers are identical (a replay is byte for byte the first answer).
 * 3. Each logical create made exactly one row: webhooks and email subscriptions counted per handle equal the creates.
 * 4. The secret a client ends up holding signs: a webhook's current secret is the one its last answer showed, and
 *    each rotation kept the secret the client held before as the previous one.
 *
 * `FAULT_RUNS` / `FAULT_SEED` widen or replay it, as for test/delivery/fault-model.test.ts.
 */

import { env } from 'cloudflare:workers';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { decryptSecret, importEncryptionKey } from '../../src/lib/crypto.ts';
import { answerLostD1 } from '../support/faulty-d1.ts';
import { faultRuns } from '../support/generated-runs.ts';
import { anyShard, callWithVars, shardName, shardOf, unique } from '../support/helpers.ts';
import { setupHandle } from '../support/pipeline-helpers.ts';

// A tenth of the fault model's runs: each run is a handful of requests.
const RUNS = Math.max(5, Math.round(faultRuns().runs / 10));
const SEED = faultRuns().seed;

type Fault = 'none' | 'before' | 'after';
type Op = { kind: 'webhook' | 'email' | 'rotate'; fault: Fault; extraRetries: number };

const WRITES: Record<Op['kind'], RegExp> = {
  webhook: /insert into "webhook_subscriptions"/i,
  email: /insert into "email_subscriptions"/i,
  rotate: /update "?webhook_subscriptions"? set "?secret_encrypted/i,
};

const op = fc.record({
  kind: fc.constantFrom<Op['kind']>('webhook', 'email', 'rotate'),
  fault: fc.constantFrom<Fault>('none', 'before', 'after'),
  extraRetries: fc.integer({ min: 0, max: 2 }),
});

async function currentSecrets(id: string): Promise<{ current: string; previous: string | null }> {
  const row = await anyShard
    .prepare('SELECT secret_encrypted, previous_secret_encrypted FROM webhook_subscriptions WHERE id = ?')
    .bind(id)
    .first<{ secret_encrypted: string; previous_secret_encrypted: string | null }>();
  const key = await importEncryptionKey(env.ENCRYPTION_KEY);
  return {
    current: await decryptSecret(row!.secret_encrypted, key),
    previous: row!.previous_secret_encrypted ? await decryptSecret(row!.previous_secret_encrypted, key) : null,
  };
}

describe('ambiguous creates under storage faults (generated)', () => {
  it('every create retried with its Idempotency-Key ends in exactly one resource and one answer, whatever D1 lost', async () => {
    // Every injected fault logs a storage error by design; keep the run's output readable.
    const errorSpy = vi.spyOn(console, 'error').mockImplementation(() => {});
    let faults = 0;
    await fc
      .assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 6 }), async (ops) => {
          const h = await setupHandle();
          const d1 = answerLostD1(await shardOf(h.handle));
          const vars = { [await shardName(h.handle)]: d1.db } as Partial<Env>;
          const hooks = `/v2/handles/${h.handle}/webhooks`;
          /** Webhooks created so far, with the secret the client holds for each. */
          const webhooks: Array<{ id: string; secret: string }> = [];
          let emails = 0;
          for (const o of ops) {
            if (o.kind === 'rotate' && webhooks.length === 0) continue;
            const target = webhooks[webhooks.length - 1];
            const [path, body] =
              o.kind === 'webhook'
                ? [hooks, { url: `http://127.0.0.1:9/${unique('gen')}` }]
                : o.kind === 'email'
                  ? [
                      `/v2/handles/${h.handle}/notifications/email-subscriptions`,
                      { email: `${unique('gen')}@example.com` },
                    ]
                  : [`${hooks}/${target!.id}/rotate-secret`, { graceHours: 24 }];
            const key = crypto.randomUUID();
            if (o.fault !== 'none') d1.loseAnswerOf(WRITES[o.kind], o.fault);
            const lostBefore = d1.lost();
            const answers: string[] = [];
            let armed = o.fault !== 'none';
            for (let attempt = 0; answers.length <= o.extraRetries; attempt++) {
              expect(attempt, `${o.kind}: no 2xx after ${attempt} attempts`).toBeLessThan(10);
              const res = await callWithVars(vars, 'POST', path, {
                token: h.token,
                body,
                headers: { 'idempotency-key': key },
              });
              const text = await res.text();
              const faulted = armed && d1.lost() > lostBefore;
              if (faulted) armed = false;
              if (res.status === 503 && faulted) {
                faults++;
                expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
                continue;
              }
              expect(res.status, `rule 1: ${o.kind} (${o.fault}) → ${res.status} ${text.slice(0, 200)}`).toBeLessThan(
                300,
              );
              answers.push(text);
            }
            // Rule 2: one answer per key.
            expect(new Set(answers).size, `rule 2: ${o.kind} (${o.fault})`).toBe(1);
            const answer = JSON.parse(answers[0]!) as { id: string; secret?: string };
            if (o.kind === 'webhook') webhooks.push({ id: answer.id, secret: answer.secret! });
            if (o.kind === 'email') emails++;
            if (o.kind === 'rotate') {
              // Rule 4: rotated once, from the secret the client held.
              const stored = await currentSecrets(target!.id);
              expect(stored.current, 'rule 4: current secret').toBe(answer.secret);
              expect(stored.previous, 'rule 4: previous secret').toBe(target!.secret);
              target!.secret = answer.secret!;
            }
          }
          // Rule 3: one row per create.
          const count = async (table: string, where = '') =>
            (await (
              await shardOf(h.handle)
            )
              .prepare(`SELECT count(*) AS n FROM ${table} WHERE handle = ? ${where}`)
              .bind(h.handle)
              .first<{ n: number }>())!.n;
          expect(await count('webhook_subscriptions'), 'rule 3: webhooks').toBe(webhooks.length);
          expect(await count('email_subscriptions', "AND kind = 'standard'"), 'rule 3: emails').toBe(emails);
          for (const w of webhooks) expect((await currentSecrets(w.id)).current, 'rule 4').toBe(w.secret);
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: false },
      )
      .finally(() => errorSpy.mockRestore());
    // The sequences did lose answers (a generator that never faulted would pass every rule).
    expect(faults).toBeGreaterThan(0);
  }, 300_000);
});
