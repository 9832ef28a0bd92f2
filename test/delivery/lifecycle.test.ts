/**
 * A delivery's life after ingest (docs/reliability.md): a test send orphaned by its request, and a critical
 * notification that leaves `undeliverable` when a recovered delivery succeeds, or becomes `undeliverable` after ingest.
 * Deliveries are driven through the production consumer by hand (their messages kept from the background consumer),
 * receivers are real HTTP servers on 127.0.0.1.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { callJson, callWithVars, unique } from '../support/helpers.ts';
import {
  attemptsOf,
  createWebhook,
  d1FailingBatchesMatching,
  deliveryRow,
  runDeliveries,
  setupHandle,
} from '../support/pipeline-helpers.ts';
import { hits, receiverUrl, waitForHits } from '../support/receivers.ts';

describe('an orphaned test send', () => {
  it('a test send whose final write failed is ended by the consumer (test_send_interrupted): no retry schedule, no request to the disabled endpoint', async () => {
    const h = await setupHandle();
    const key = unique('k');
    const wh = await createWebhook(h, { url: receiverUrl('fail', key) });
    // The test's request sends, then loses its final write: its `pending` row is left for the sweeper.
    const failing = d1FailingBatchesMatching(env.DB, /INSERT INTO delivery_attempts/);
    const res = await callWithVars({ DB: failing.db }, 'POST', `/v2/handles/${h.handle}/webhooks/${wh.id}/test`, {
      token: h.token,
      body: {},
    });
    expect(res.status).toBe(503);
    expect(failing.failures()).toBe(1);
    await waitForHits(key, 1);
    const orphan = await env.DB.prepare("SELECT id, status FROM deliveries WHERE subscription_id = ? AND kind = 'test'")
      .bind(wh.id)
      .first<{ id: string; status: string }>();
    expect(orphan).toMatchObject({ status: 'pending' });
    // The owner disables the endpoint; then the sweeper hands the orphan to the queue.
    const off = await callJson('PATCH', `/v2/handles/${h.handle}/webhooks/${wh.id}`, {
      token: h.token,
      body: { enabled: false },
    });
    expect(off.status).toBe(200);

    const { fb, report } = await runDeliveries([orphan!.id]);
    expect(fb.outcomes[0]!.calls).toEqual(['ack']);
    expect(report.attempts).toBe(0);
    expect(await deliveryRow(orphan!.id)).toMatchObject({
      kind: 'test',
      status: 'cancelled',
      status_reason: 'test_send_interrupted',
      attempt_count: 0,
      next_attempt_at: null,
    });
    expect(await attemptsOf(orphan!.id)).toEqual([]);
    // The request the test made is the only one the endpoint ever got.
    expect(await hits(key)).toHaveLength(1);
  });
});
