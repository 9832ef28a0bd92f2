/**
 * What the providers' feedback routes (resend.routes.ts, sns.routes.ts) do with a bounce or complaint: suppress
 * (email/suppression.ts), then raise the owner alert for each owner default email that was suppressed
 * (delivery/alerts.ts `alertOwnerDefaultSuppressed`), once — a redelivered event suppresses nothing new.
 */
import { onEveryShard } from '../../db/shards.ts';
import { alertOwnerDefaultSuppressed } from '../../delivery/alerts.ts';
import { applyFeedback, type Feedback } from '../../email/suppression.ts';
import type { RunContext } from '../../env.ts';

/** Applies one feedback event and alerts the owners it concerns; returns how many subscriptions were suppressed. */
export async function suppressAndAlert(ctx: RunContext, feedback: Feedback): Promise<number> {
  // An address may be subscribed on handles of every shard (docs/design.md#shards).
  const suppressed = (await onEveryShard(ctx.env, (d1) => applyFeedback(d1, feedback))).flat();
  for (const sub of suppressed) {
    if (sub.kind !== 'owner_default') continue;
    // The suppression is stored either way; a failed alert is logged loudly, and the owner default email's status
    // (`suppressed`, with the reason) stays visible in the API, the health report and the settings warnings.
    await alertOwnerDefaultSuppressed(ctx, sub, feedback.provider).catch((err: unknown) =>
      console.error(
        JSON.stringify({ level: 'error', msg: 'system_event_failed', subscriptionId: sub.id, error: String(err) }),
      ),
    );
  }
  return suppressed.length;
}
