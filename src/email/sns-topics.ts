/**
 * The SNS topics this deployment created (docs/design.md#email): every ARN CreateTopic answers is recorded in
 * `sns_topics`, and `POST /v2/providers/sns/events` listens to those ARNs only. Anyone can make SNS sign a message for
 * a topic of their own, so neither a valid signature nor a familiar topic name says a message is ours.
 *
 * A topic must also be in AWS_REGION and, when AWS_ACCOUNT_ID is set, in that account: an ARN outside them is never
 * recorded (CreateTopic answering one means the credentials or the endpoint are not the configured ones).
 */
import type { Config } from '../env.ts';
import { type SnsClient, SnsError, snsClient } from './providers/sns/client.ts';

/**
 * The SES feedback topic's name after SNS_TOPIC_PREFIX. A handle is a DNS label (no `_`), so no handle's topic can
 * have this name.
 */
export const SNS_FEEDBACK_TOPIC = 'ses_feedback';

/** The parts of an SNS topic ARN: `arn:<partition>:sns:<region>:<account>:<name>`. */
export interface TopicArn {
  region: string;
  account: string;
  name: string;
}

/** An SNS topic ARN's parts, or null when `arn` is not one (a subscription ARN has one more part). */
export function parseTopicArn(arn: string): TopicArn | null {
  const m = /^arn:aws(?:-[a-z]+)*:sns:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):(\d{12}):([A-Za-z0-9_-]{1,256})$/.exec(arn);
  return m ? { region: m[1]!, account: m[2]!, name: m[3]! } : null;
}

/** Why `arn` cannot be one of this deployment's topics (not a topic ARN, another region or account), or null. */
export function topicArnProblem(arn: string, aws: Config['aws']): string | null {
  const topic = parseTopicArn(arn);
  if (!topic) return 'not an SNS topic ARN';
  if (topic.region !== aws.region) return `in region ${topic.region}, not AWS_REGION ${aws.region}`;
  if (aws.accountId !== null && topic.account !== aws.accountId)
    return `in account ${topic.account}, not AWS_ACCOUNT_ID ${aws.accountId}`;
  return null;
}

/**
 * Records a topic CreateTopic just answered with. An ARN outside the configured region or account is refused with a
 * permanent SnsError saying what to configure, and nothing is recorded.
 */
export async function recordTopic(env: Env, aws: Config['aws'], arn: string, handle: string | null): Promise<void> {
  const problem = topicArnProblem(arn, aws);
  if (problem) {
    throw new SnsError(
      'InvalidConfiguration',
      `SNS CreateTopic answered ${arn.slice(0, 300)}, ${problem}: ` +
        'check AWS_REGION, AWS_ACCOUNT_ID and the credentials.',
      0,
      true,
      'CreateTopic',
    );
  }
  await env.DB.prepare('INSERT OR IGNORE INTO sns_topics (arn, handle, created_at) VALUES (?1, ?2, ?3)')
    .bind(arn, handle, new Date().toISOString())
    .run();
}

/** The handle's topic (CreateTopic is idempotent), recorded as ours. */
export async function ensureHandleTopic(env: Env, aws: Config['aws'], client: SnsClient, handle: string) {
  const arn = await client.ensureTopic(handle);
  await recordTopic(env, aws, arn, handle);
  return arn;
}

/** Per isolate: the feedback topics already ensured (`endpoint \n region \n prefix`). */
const feedbackEnsured = new Set<string>();

/**
 * Creates (once per isolate) and records `${SNS_TOPIC_PREFIX}ses_feedback`, the topic SES's bounce and complaint
 * notifications are meant to be published to (docs/operations.md#deploying-to-cloudflare).
 */
export async function ensureFeedbackTopic(env: Env, aws: Config['aws']): Promise<void> {
  const key = `${aws.snsApiUrl ?? ''}\n${aws.region}\n${aws.topicPrefix}`;
  if (feedbackEnsured.has(key)) return;
  // ensureTopic names the topic SNS_TOPIC_PREFIX + its argument.
  const arn = await snsClient(env).ensureTopic(SNS_FEEDBACK_TOPIC);
  await recordTopic(env, aws, arn, null);
  feedbackEnsured.add(key);
}

/** Whether `arn` is a topic this deployment created, in the configured region and account. */
export async function isOurTopic(env: Env, aws: Config['aws'], arn: string): Promise<boolean> {
  if (topicArnProblem(arn, aws) !== null) return false;
  const row = await env.DB.prepare('SELECT 1 AS ours FROM sns_topics WHERE arn = ?1').bind(arn).first();
  return row !== null;
}
