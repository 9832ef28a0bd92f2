/**
 * The minute job's SNS reconciliation (docs/design.md#email, #debug-playbooks (playbook 2)): a bounded number of SNS
 * subscriptions per run, the ones checked longest ago first, so a deleted ARN is found — and the owner told — before
 * anyone misses a mail. It also creates the SES feedback topic (email/sns-topics.ts) the first time it runs.
 */

import { onEveryShard } from '../db/shards.ts';
import { alertSubscriptionStale } from '../delivery/alerts.ts';
import { checkAtSns } from '../email/sns-subscriptions.ts';
import { ensureFeedbackTopic } from '../email/sns-topics.ts';
import { runContext } from '../env.ts';

const PER_RUN = 25;

export async function reconcileSnsSubscriptions(
  env: Env,
  _now: Date,
): Promise<{ checked: number; stale: number; errors: number }> {
  const ctx = runContext(env);
  if (ctx.cfg.emailProvider !== 'sns') return { checked: 0, stale: 0, errors: 0 };
  // The SES feedback topic exists from the first minute on, so SES can be pointed at it (once per isolate).
  await ensureFeedbackTopic(env, ctx.cfg.aws).catch((err: unknown) =>
    console.warn(JSON.stringify({ level: 'warn', msg: 'sns_feedback_topic_failed', error: String(err) })),
  );
  // Every shard's longest-unchecked subscriptions; PER_RUN of them in all, the longest unchecked first.
  const perShard = await onEveryShard(env, async (d1) => {
    const { results } = await d1
      .prepare(
        `SELECT id, handle, email_normalized AS emailNormalized, provider_ref AS providerRef,
           provider_checked_at AS checkedAt FROM email_subscriptions
         WHERE provider = 'sns' AND provider_ref IS NOT NULL AND status IN ('pending_confirmation', 'active')
         ORDER BY provider_checked_at NULLS FIRST LIMIT ?1`,
      )
      .bind(PER_RUN)
      .all<{ id: string; handle: string; emailNormalized: string; providerRef: string; checkedAt: string | null }>();
    return results;
  });
  const results = perShard
    .flat()
    .sort((a, b) => (a.checkedAt ?? '').localeCompare(b.checkedAt ?? ''))
    .slice(0, PER_RUN);
  let stale = 0;
  let errors = 0;
  for (const sub of results) {
    try {
      const check = await checkAtSns(env, sub);
      if (check.becameStale) await alertSubscriptionStale(ctx, sub);
      if (check.state === 'not_found') stale++;
    } catch (err) {
      // Throttled or down: the row keeps its old check time and comes first next minute.
      errors++;
      console.warn(
        JSON.stringify({ level: 'warn', msg: 'sns_check_failed', subscriptionId: sub.id, error: String(err) }),
      );
    }
  }
  return { checked: results.length, stale, errors };
}
