/**
 * A small typed client of the AWS SNS Query API (docs/design.md#email), signed with SigV4 by aws4fetch: what the SNS
 * email provider (provider.ts) and the subscription bookkeeping (email/sns-subscriptions.ts) ask of SNS.
 *
 * Wire format: `POST` form-encoded `Action=…&Version=2010-03-31&…` to `https://sns.<region>.amazonaws.com/` (or
 * `SNS_API_URL`), answers are XML; errors are `<ErrorResponse><Error><Type/><Code/><Message/></Error>` and become an
 * {@link SnsError} whose `permanent` says whether the same request could ever succeed. aws4fetch's own retry loop is
 * switched off: the delivery queue owns retries (docs/design.md#retry-schedule), so a request is made exactly once
 * per call.
 *
 * The subject of a Publish is reduced here to what SNS accepts ({@link snsSubject}).
 */
import { AwsClient } from 'aws4fetch';
import { config } from '../../../env.ts';
import { errorText, isTimeout } from '../../../lib/errors.ts';
import { readCappedText } from '../../../lib/response-body.ts';
import { utf8Length } from '../../../lib/utf8.ts';

/** The Query API version every request names. */
export const SNS_API_VERSION = '2010-03-31';
/** How long one request may take before it is a transient `Timeout`. */
export const SNS_TIMEOUT_MS = 10_000;
/** SNS's limit for Message plus message attributes (256 KiB). */
export const SNS_MAX_MESSAGE_BYTES = 262_144;
/** SNS: the subject is "less than 100 characters". */
export const SNS_MAX_SUBJECT_CHARS = 99;
/**
 * The message attribute that addresses one subscription of ours: {@link SnsClient.publish} sends it, and the
 * FilterPolicy of filter-policy.ts names it as a key.
 */
export const SNS_SUBSCRIPTION_ATTRIBUTE = 'subscription';
/** How much of an answer is read: SNS answers are a few hundred bytes; anything bigger is not SNS. */
const MAX_RESPONSE_BYTES = 1024 * 1024;
/** The longest error message kept, in an {@link SnsError} and in a send outcome. */
export const SNS_ERROR_MESSAGE_MAX = 500;

export interface SnsClient {
  /** CreateTopic is idempotent: the handle's topic ARN, created on first use. Name: `${topicPrefix}${handle}`. */
  ensureTopic(handle: string): Promise<string>;
  /**
   * Subscribe protocol=email with Attributes FilterPolicy (JSON) and FilterPolicyScope=MessageAttributes;
   * ReturnSubscriptionArn=true; returns the ARN (SNS returns an ARN even while pending confirmation when
   * ReturnSubscriptionArn is true) and whether it is pending (asked with GetSubscriptionAttributes: an address that is
   * already subscribed with the same policy gets its existing, possibly confirmed, subscription back).
   */
  subscribe(
    topicArn: string,
    email: string,
    filterPolicy: Record<string, unknown> | null,
  ): Promise<{ subscriptionArn: string; pendingConfirmation: boolean }>;
  /** Unsubscribe; a subscription that no longer exists (NotFound) is not an error. */
  unsubscribe(subscriptionArn: string): Promise<void>;
  /** GetSubscriptionAttributes: 'confirmed' | 'pending' | 'not_found' (NotFound error); other errors throw SnsError. */
  checkSubscription(subscriptionArn: string): Promise<'confirmed' | 'pending' | 'not_found'>;
  /**
   * Publish with Subject, Message (plain text) and MessageAttributes type and severity (DataType String), plus
   * `subscription` when given. Returns the MessageId.
   */
  publish(
    topicArn: string,
    input: { subject: string; message: string; attributes: { type: string; severity: string; subscription?: string } },
  ): Promise<string>;
}

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

/** Codes that mean "try the same request again later". */
const TRANSIENT_CODES = new Set([
  'Throttling',
  'ThrottlingException',
  'Throttled',
  'ThrottledException',
  'RequestThrottled',
  'TooManyRequestsException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalError',
  'InternalFailure',
  'InternalErrorException',
  'RequestTimeout',
  'RequestTimeoutException',
  // Clock skew at signing time: a new attempt signs with a new date.
  'RequestExpired',
  'KMSThrottling',
  // Ours: the request never got an SNS answer.
  'NetworkError',
  'Timeout',
  'MalformedResponse',
]);

/**
 * An SNS failure. `code` is SNS's error code (`NotFound`, `InvalidParameter`, `Throttling`, …) or one of ours
 * (`MissingCredentials`, `NetworkError`, `Timeout`, `MalformedResponse`); `httpStatus` is 0 when no answer came.
 * `permanent`: the same request will never succeed (InvalidParameter, NotFound, AuthorizationError,
 * InvalidClientTokenId, SignatureDoesNotMatch, any other 4xx); throttling, 5xx and network problems are transient.
 */
export class SnsError extends Error {
  code: string;
  httpStatus: number;
  permanent: boolean;
  /** The SNS action that failed (`Publish`, …), or null for failures before any action. */
  action: string | null;

  constructor(code: string, message: string, httpStatus: number, permanent: boolean, action: string | null = null) {
    super(message);
    this.name = 'SnsError';
    this.code = code;
    this.httpStatus = httpStatus;
    this.permanent = permanent;
    this.action = action;
  }
}

/** Whether SNS answering `code` with `status` means the same request can never succeed. */
export function isPermanentSnsError(code: string, status: number): boolean {
  if (TRANSIENT_CODES.has(code)) return false;
  if (status === 429 || status >= 500) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// XML: the few elements SNS answers carry. Not a parser: the first <Tag>…</Tag> (SNS never nests a tag in itself),
// entities and CDATA decoded. Tag names are constants of this module.
// ---------------------------------------------------------------------------------------------------------------

const TAG_NAME = /^[A-Za-z][A-Za-z0-9]*$/;

function element(xml: string, tag: string): string | null {
  if (!TAG_NAME.test(tag)) throw new Error(`bad tag name ${tag}`);
  const m = new RegExp(`<${tag}(?:\\s[^<>]*)?(?:/>|>([\\s\\S]*?)</${tag}\\s*>)`).exec(xml);
  if (!m) return null;
  return m[1] ?? '';
}

/** The decoded text of the first `<tag>` in `xml`, or null when there is none. */
export function xmlText(xml: string, tag: string): string | null {
  const raw = element(xml, tag);
  return raw === null ? null : decodeXml(raw);
}

/** The `<entry><key>K</key><value>V</value></entry>` pairs of an SNS attribute map (first `<tag>`, e.g. Attributes). */
export function xmlEntries(xml: string, tag: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  const block = element(xml, tag);
  if (block === null) return out;
  for (const m of block.matchAll(/<entry(?:\s[^<>]*)?>([\s\S]*?)<\/entry\s*>/g)) {
    const key = xmlText(m[1] ?? '', 'key');
    if (key !== null) out[key] = xmlText(m[1] ?? '', 'value') ?? '';
  }
  return out;
}

const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  return s.replace(/&(#[xX][0-9A-Fa-f]{1,6}|#[0-9]{1,7}|amp|lt|gt|quot|apos);/g, (whole, name: string) => {
    if (name[0] !== '#') return NAMED_ENTITIES[name] ?? whole;
    const cp =
      name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number.parseInt(name.slice(1), 10);
    // Not a character (surrogates, beyond Unicode, NUL): left as written rather than producing broken text.
    if (!Number.isInteger(cp) || cp <= 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return whole;
    return String.fromCodePoint(cp);
  });
}

/** Text content: entities decoded outside CDATA sections, CDATA taken literally. */
export function decodeXml(s: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const start = s.indexOf('<![CDATA[', i);
    if (start === -1) return out + decodeEntities(s.slice(i));
    out += decodeEntities(s.slice(i, start));
    const end = s.indexOf(']]>', start + 9);
    if (end === -1) return out + s.slice(start + 9);
    out += s.slice(start + 9, end);
    i = end + 3;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------------------------

const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;
/** SNS standard topic names. */
const TOPIC_NAME = /^[A-Za-z0-9_-]{1,256}$/;

/** The endpoint the client posts to: `SNS_API_URL` when set (tests, LocalStack), else SNS's regional endpoint. */
export function snsEndpoint(env: Env): string {
  const { region, snsApiUrl } = config(env).aws;
  return snsApiUrl ? new URL(snsApiUrl).href : `https://sns.${region}.amazonaws.com/`;
}

/** `${SNS_TOPIC_PREFIX}${handle}`. */
export function snsTopicName(env: Env, handle: string): string {
  return `${config(env).aws.topicPrefix}${handle}`;
}

type Params = Record<string, string>;

/**
 * The client for this deployment's configuration. Credentials, region and endpoint are checked on the first request:
 * what is missing or wrong is then a permanent {@link SnsError} saying what to configure.
 */
export function snsClient(env: Env): SnsClient {
  const { region } = config(env).aws;
  let aws: AwsClient | null = null;
  let endpoint = '';

  /** The signer, or a permanent error saying what to configure. Never throws anything but SnsError. */
  function signer(): AwsClient {
    if (aws) return aws;
    const accessKeyId = typeof env.AWS_ACCESS_KEY_ID === 'string' ? env.AWS_ACCESS_KEY_ID.trim() : '';
    const secretAccessKey = typeof env.AWS_SECRET_ACCESS_KEY === 'string' ? env.AWS_SECRET_ACCESS_KEY.trim() : '';
    if (!accessKeyId || !secretAccessKey) {
      const missing = [!accessKeyId && 'AWS_ACCESS_KEY_ID', !secretAccessKey && 'AWS_SECRET_ACCESS_KEY']
        .filter(Boolean)
        .join(' and ');
      const both = missing.includes(' and ');
      throw new SnsError(
        'MissingCredentials',
        `EMAIL_PROVIDER=sns but ${missing} ${both ? 'are' : 'is'} not set: ` +
          `configure ${both ? 'them' : 'it'} with wrangler secret put.`,
        0,
        true,
      );
    }
    if (!REGION.test(region)) {
      throw new SnsError(
        'InvalidConfiguration',
        `AWS_REGION ${JSON.stringify(region.slice(0, 40))} is not an AWS region such as eu-west-1.`,
        0,
        true,
      );
    }
    try {
      endpoint = snsEndpoint(env);
    } catch {
      throw new SnsError('InvalidConfiguration', 'SNS_API_URL is not a valid URL.', 0, true);
    }
    // retries: 0 — aws4fetch would otherwise retry 5xx/429 up to 10 times inside one delivery attempt.
    aws = new AwsClient({ accessKeyId, secretAccessKey, service: 'sns', region, retries: 0 });
    return aws;
  }

  /** One Query API call; the XML answer of a 2xx, else an SnsError. */
  async function call(action: string, params: Params): Promise<string> {
    const client = signer();
    const body = new URLSearchParams({ Action: action, Version: SNS_API_VERSION, ...params }).toString();
    let res: Response;
    try {
      res = await client.fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body,
        signal: AbortSignal.timeout(SNS_TIMEOUT_MS),
      });
    } catch (err) {
      const timedOut = isTimeout(err);
      const message = timedOut
        ? `SNS ${action} did not answer within ${SNS_TIMEOUT_MS / 1000} s.`
        : `SNS ${action} could not be reached: ${errorText(err)}`;
      throw new SnsError(
        timedOut ? 'Timeout' : 'NetworkError',
        message.slice(0, SNS_ERROR_MESSAGE_MAX),
        0,
        false,
        action,
      );
    }
    let text: string;
    try {
      text = await readCappedText(res, MAX_RESPONSE_BYTES);
    } catch (err) {
      throw new SnsError(
        'NetworkError',
        `SNS ${action}: the answer broke off (${errorText(err)}).`.slice(0, SNS_ERROR_MESSAGE_MAX),
        res.status,
        false,
        action,
      );
    }
    if (res.ok) return text;
    const code = xmlText(text, 'Code')?.trim() || `HTTP${res.status}`;
    const detail = xmlText(text, 'Message')?.trim() || text.trim().slice(0, 200) || 'no error message';
    throw new SnsError(
      code,
      `SNS ${action} failed: ${code}: ${detail}`.replace(/\s+/g, ' ').slice(0, SNS_ERROR_MESSAGE_MAX),
      res.status,
      isPermanentSnsError(code, res.status),
      action,
    );
  }

  /** The text of a required element of a 2xx answer. */
  function required(xml: string, tag: string, action: string): string {
    const v = xmlText(xml, tag)?.trim();
    if (!v)
      throw new SnsError(
        'MalformedResponse',
        `SNS ${action} answered without <${tag}>: ${xml.slice(0, 200)}`,
        200,
        false,
        action,
      );
    return v;
  }

  async function checkSubscription(subscriptionArn: string): Promise<'confirmed' | 'pending' | 'not_found'> {
    let xml: string;
    try {
      xml = await call('GetSubscriptionAttributes', { SubscriptionArn: subscriptionArn });
    } catch (err) {
      if (err instanceof SnsError && err.code === 'NotFound') return 'not_found';
      throw err;
    }
    const pending = xmlEntries(xml, 'Attributes').PendingConfirmation;
    if (pending === undefined) {
      throw new SnsError(
        'MalformedResponse',
        `SNS GetSubscriptionAttributes answered without PendingConfirmation: ${xml.slice(0, 200)}`,
        200,
        false,
        'GetSubscriptionAttributes',
      );
    }
    return pending === 'true' ? 'pending' : 'confirmed';
  }

  return {
    async ensureTopic(handle) {
      const name = snsTopicName(env, handle);
      if (!TOPIC_NAME.test(name)) {
        throw new SnsError(
          'InvalidParameter',
          `${JSON.stringify(name.slice(0, 300))} is not a valid SNS topic name ` +
            '(1–256 letters, digits, - and _): check SNS_TOPIC_PREFIX.',
          0,
          true,
          'CreateTopic',
        );
      }
      const xml = await call('CreateTopic', { Name: name });
      return required(xml, 'TopicArn', 'CreateTopic');
    },

    async subscribe(topicArn, email, filterPolicy) {
      const params: Params = {
        TopicArn: topicArn,
        Protocol: 'email',
        Endpoint: email,
        ReturnSubscriptionArn: 'true',
      };
      if (filterPolicy !== null) {
        params['Attributes.entry.1.key'] = 'FilterPolicy';
        params['Attributes.entry.1.value'] = JSON.stringify(filterPolicy);
        params['Attributes.entry.2.key'] = 'FilterPolicyScope';
        params['Attributes.entry.2.value'] = 'MessageAttributes';
      }
      const xml = await call('Subscribe', params);
      const subscriptionArn = required(xml, 'SubscriptionArn', 'Subscribe');
      if (!subscriptionArn.startsWith('arn:')) {
        // "pending confirmation" is what SNS says without ReturnSubscriptionArn: nothing could be stored or checked.
        throw new SnsError(
          'MalformedResponse',
          `SNS Subscribe returned ${JSON.stringify(subscriptionArn.slice(0, 100))} instead of an ARN.`,
          200,
          false,
          'Subscribe',
        );
      }
      // A new email subscription is always pending; an address already subscribed (same policy) gets its existing
      // subscription back, which may be confirmed. When the check itself fails, pending is the safe answer: the
      // caller re-checks later, and nothing but the confirmation goes to a pending address anyway.
      let pendingConfirmation = true;
      try {
        pendingConfirmation = (await checkSubscription(subscriptionArn)) !== 'confirmed';
      } catch {
        pendingConfirmation = true;
      }
      return { subscriptionArn, pendingConfirmation };
    },

    async unsubscribe(subscriptionArn) {
      try {
        await call('Unsubscribe', { SubscriptionArn: subscriptionArn });
      } catch (err) {
        if (err instanceof SnsError && err.code === 'NotFound') return;
        throw err;
      }
    },

    checkSubscription,

    async publish(topicArn, input) {
      const attributes: Array<[string, string]> = [
        ['type', input.attributes.type],
        ['severity', input.attributes.severity],
      ];
      if (input.attributes.subscription) attributes.push([SNS_SUBSCRIPTION_ATTRIBUTE, input.attributes.subscription]);
      const params: Params = { TopicArn: topicArn, Message: input.message };
      const subject = snsSubject(input.subject);
      if (subject) params.Subject = subject;
      attributes.forEach(([name, value], i) => {
        params[`MessageAttributes.entry.${i + 1}.Name`] = name;
        params[`MessageAttributes.entry.${i + 1}.Value.DataType`] = 'String';
        params[`MessageAttributes.entry.${i + 1}.Value.StringValue`] = value;
      });
      const bytes =
        utf8Length(input.message) +
        attributes.reduce((n, [name, value]) => n + utf8Length(name) + utf8Length(value) + 6, 0);
      if (bytes > SNS_MAX_MESSAGE_BYTES) {
        throw new SnsError(
          'InvalidParameter',
          `The message is ${bytes} bytes with its attributes; SNS accepts at most ${SNS_MAX_MESSAGE_BYTES}.`,
          0,
          true,
          'Publish',
        );
      }
      if (input.message.length === 0) {
        throw new SnsError('InvalidParameter', 'SNS does not publish an empty message.', 0, true, 'Publish');
      }
      const xml = await call('Publish', params);
      return required(xml, 'MessageId', 'Publish');
    },
  };
}

// Typographic characters our templates use, spelled in ASCII.
const ASCII_SPELLING: Record<string, string> = {
  '\u2014': '-', // —
  '\u2013': '-', // –
  '\u2012': '-',
  '\u2010': '-',
  '\u2011': '-',
  '\u2212': '-',
  '\u2026': '...', // …
  '\u2018': "'",
  '\u2019': "'",
  '\u201a': "'",
  '\u201c': '"',
  '\u201d': '"',
  '\u201e': '"',
  '\u00a0': ' ',
  '\u00ab': '"',
  '\u00bb': '"',
  '\u2022': '*',
  '\u00b7': '-',
};

const TYPOGRAPHIC = new RegExp(`[${Object.keys(ASCII_SPELLING).join('')}]`, 'g');

/**
 * The subject as SNS accepts it: printable ASCII only, no line breaks or controls, beginning with a letter, number
 * or punctuation mark, fewer than 100 characters. Typographic dashes, quotes and ellipses get ASCII spellings,
 * accents are dropped (é → e), anything else non-ASCII becomes `?`; a long subject is cut and ends with `...`.
 * Empty when nothing is left (then no Subject is sent and SNS uses its default).
 */
export function snsSubject(subject: string): string {
  let s = subject
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .replace(TYPOGRAPHIC, (c) => ASCII_SPELLING[c] ?? '?')
    .replace(/[\p{Cc}\u2028\u2029\s]+/gu, ' ')
    .replace(/[^\x20-\x7e]/gu, '?')
    .replace(/ {2,}/g, ' ')
    // SNS: "must begin with a letter, number or punctuation mark" (symbols such as $ + < = > ^ ` | ~ are not).
    .replace(/^[^A-Za-z0-9!"#%&'()*,\-./:;?@[\\\]_{}]+/, '')
    .trim();
  if (s.length > SNS_MAX_SUBJECT_CHARS) s = `${s.slice(0, SNS_MAX_SUBJECT_CHARS - 3).trimEnd()}...`;
  return s;
}
