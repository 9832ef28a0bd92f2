/**
 * AWS SNS as the email provider (`EMAIL_PROVIDER=sns`, docs/design.md#email), built on the Query API client of
 * client.ts.
 *
 * The model: one standard topic per handle (`${SNS_TOPIC_PREFIX}${handle}`); an email subscription of ours is an SNS
 * `email` subscription on that topic with a filter policy on message attributes (filter-policy.ts); its ARN is stored
 * as the subscription's `provider_ref` and checked with GetSubscriptionAttributes (`SnsClient.checkSubscription`:
 * `not_found` → the caller marks it `stale`). A mail is a Publish to the topic with the message attributes `type`,
 * `severity` and — when the mail is for one subscription — `subscription`; SNS delivers it to every confirmed
 * subscription whose filter policy matches. SNS, not us, writes the mail: `mail.text` becomes the body, the subject is
 * reduced to what SNS accepts (printable ASCII, < 100 characters), and HTML, custom headers, From and To are not used
 * (the recipient is whoever is subscribed; SNS adds its own unsubscribe link).
 */
import type { RunContext } from '../../../env.ts';
import type { OutgoingMail } from '../../message.ts';
import type { EmailProvider, SendMeta, SendOutcome } from '../../provider.ts';
import { ensureHandleTopic } from '../../sns-topics.ts';
import { SNS_ERROR_MESSAGE_MAX, SnsError, snsClient, snsTopicName } from './client.ts';

/** Topic ARNs per isolate (`endpoint \n region \n topic name` → ARN): CreateTopic once, not once per mail. */
const topicArns = new Map<string, string>();
const TOPIC_CACHE_MAX = 1000;

/**
 * An EmailProvider whose send() publishes to the handle's topic, mapping SnsError to the permanent/transient
 * outcome.
 *
 * What SNS cannot do, refused as permanent failures rather than sent somewhere else:
 * - a mail for no subscription (platform alert, support mail: `meta.subscriptionId` null) — SNS mails only
 *   addresses subscribed to the topic, and a publish would reach the handle's subscribers instead;
 * - our own double opt-in mail (`email.confirmation`) — SNS sends its own confirmation when the subscription is
 *   created, and delivers nothing to a pending address; publishing ours would at best vanish and at worst (a
 *   subscription without the `subscription` key in its filter) hand the confirmation link to other subscribers.
 */
export function snsProvider({ env, cfg }: RunContext): EmailProvider {
  const client = snsClient(env);
  const fail = (message: string, permanent = true): SendOutcome => ({
    ok: false,
    permanent,
    message: message.slice(0, SNS_ERROR_MESSAGE_MAX),
  });

  function cacheKey(handle: string): string {
    const { snsApiUrl, region } = cfg.aws;
    return `${snsApiUrl ?? ''}\n${region}\n${snsTopicName(env, handle)}`;
  }

  async function topicArn(handle: string): Promise<string> {
    const cached = topicArns.get(cacheKey(handle));
    if (cached) return cached;
    const arn = await ensureHandleTopic(env, cfg.aws, client, handle);
    if (topicArns.size >= TOPIC_CACHE_MAX) topicArns.clear();
    topicArns.set(cacheKey(handle), arn);
    return arn;
  }

  function forgetTopicArn(handle: string): void {
    topicArns.delete(cacheKey(handle));
  }

  return {
    name: 'sns',
    async send(mail: OutgoingMail, meta: SendMeta): Promise<SendOutcome> {
      if (!meta.subscriptionId) {
        return fail(
          "EMAIL_PROVIDER=sns delivers only to addresses subscribed to the handle's SNS topic; " +
            `${mail.to.email} has no subscription (platform alert or support mail), so nothing was published.`,
        );
      }
      if (meta.eventType === 'email.confirmation') {
        return fail(
          'EMAIL_PROVIDER=sns: AWS SNS sends its own confirmation mail when the subscription is created and delivers ' +
            'nothing to a pending address, so our confirmation mail was not published.',
        );
      }
      const input = {
        subject: mail.subject,
        message: mail.text,
        attributes: { type: meta.eventType, severity: meta.severity, subscription: meta.subscriptionId },
      };
      try {
        const arn = await topicArn(meta.handle);
        try {
          return { ok: true, providerMessageId: await client.publish(arn, input) };
        } catch (err) {
          if (err instanceof SnsError && err.code === 'NotFound') {
            // The topic was deleted behind our back, and every subscription with it. Re-creating it here would make
            // the publish "succeed" to nobody: fail loudly instead (the subscriptions' ARN checks will say stale).
            forgetTopicArn(meta.handle);
            return fail(`${err.message} — the handle's SNS topic no longer exists, so neither do its subscriptions.`);
          }
          throw err;
        }
      } catch (err) {
        if (err instanceof SnsError) return fail(err.message, err.permanent);
        return fail(`SNS send failed: ${err instanceof Error ? err.message : String(err)}`, false);
      }
    },
  };
}
