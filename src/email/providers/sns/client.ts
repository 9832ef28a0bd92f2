/**
 * AWS SNS (`EMAIL_PROVIDER=sns`, docs/design.md#email): a small typed client of the SNS Query API, signed with SigV4 by
 * aws4fetch, and the email provider built on it.
 *
 * The model: one standard topic per handle (`${SNS_TOPIC_PREFIX}${handle}`); an email subscription of ours is an SNS
 * `email` subscription on that topic with a filter policy on message attributes ({@link toSnsFilterPolicy}); its ARN
 * is stored as the subscription's `provider_ref` and checked with GetSubscriptionAttributes ({@link
 * SnsClient.checkSubscription}: `not_found` → the caller marks it `stale`). A mail is a Publish to the topic with the
 * message attributes `type`, `severity` and — when the mail is for one subscription — `subscription`; SNS delivers it
 * to every confirmed subscription whose filter policy matches. SNS, not us, writes the mail: `mail.text` becomes the
 * body, the subject is reduced to what SNS accepts (printable ASCII, < 100 characters), and HTML, custom headers,
 * From and To are not used (the recipient is whoever is subscribed; SNS adds its own unsubscribe link).
 *
 * Wire format: `POST` form-encoded `Action=…&Version=2010-03-31&…` to `https://sns.<region>.amazonaws.com/` (or
 * `SNS_API_URL`), answers are XML; errors are `<ErrorResponse><Error><Type/><Code/><Message/></Error>` and become an
 * {@link SnsError} whose `permanent` says whether the same request could ever succeed. aws4fetch's own retry loop is
 * switched off: the delivery queue owns retries (docs/design.md#retry-schedule), so a request is made exactly once per call.
 */
import { AwsClient } from 'aws4fetch';
import { config } from '../../env.ts';
import { isPlainObject } from '../../lib/json.ts';
import { readCappedText } from '../../lib/response-body.ts';
import type { OutgoingMail } from '../mime.ts';
import type { EmailProvider, SendMeta, SendOutcome } from '../provider.ts';

export const SNS_API_VERSION = '2010-03-31';
export const SNS_TIMEOUT_MS = 10_000;
/** SNS's limit for Message plus message attributes (256 KiB). */
export const SNS_MAX_MESSAGE_BYTES = 262_144;
/** SNS: the subject is "less than 100 characters". */
export const SNS_MAX_SUBJECT_CHARS = 99;
/** The message attribute (and filter policy key) that addresses one subscription of ours; see {@link toSnsFilterPolicy}. */
export const SNS_SUBSCRIPTION_ATTRIBUTE = 'subscription';
/** How much of an answer is read: SNS answers are a few hundred bytes; anything bigger is not SNS. */
const MAX_RESPONSE_BYTES = 1024 * 1024;
const MESSAGE_MAX = 500;

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
      throw new SnsError(
        'MissingCredentials',
        `EMAIL_PROVIDER=sns but ${missing} ${missing.includes(' and ') ? 'are' : 'is'} not set: configure ${missing.includes(' and ') ? 'them' : 'it'} with wrangler secret put.`,
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
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      const message = timedOut
        ? `SNS ${action} did not answer within ${SNS_TIMEOUT_MS / 1000} s.`
        : `SNS ${action} could not be reached: ${err instanceof Error ? err.message : String(err)}`;
      throw new SnsError(timedOut ? 'Timeout' : 'NetworkError', message.slice(0, MESSAGE_MAX), 0, false, action);
    }
    let text: string;
    try {
      text = await readCappedText(res, MAX_RESPONSE_BYTES);
    } catch (err) {
      throw new SnsError(
        'NetworkError',
        `SNS ${action}: the answer broke off (${err instanceof Error ? err.message : String(err)}).`.slice(
          0,
          MESSAGE_MAX,
        ),
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
      `SNS ${action} failed: ${code}: ${detail}`.replace(/\s+/g, ' ').slice(0, MESSAGE_MAX),
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
      const name = `${config(env).aws.topicPrefix}${handle}`;
      if (!TOPIC_NAME.test(name)) {
        throw new SnsError(
          'InvalidParameter',
          `${JSON.stringify(name.slice(0, 300))} is not a valid SNS topic name (1–256 letters, digits, - and _): check SNS_TOPIC_PREFIX.`,
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

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
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
    .replace(
      /[\u2010-\u2012\u2013\u2014\u2212\u2026\u2018\u2019\u201a\u201c\u201d\u201e\u00a0\u00ab\u00bb\u2022\u00b7]/g,
      (c) => ASCII_SPELLING[c] ?? '?',
    )
    .replace(/[\p{Cc}\u2028\u2029\s]+/gu, ' ')
    .replace(/[^\x20-\x7e]/gu, '?')
    .replace(/ {2,}/g, ' ')
    // SNS: "must begin with a letter, number or punctuation mark" (symbols such as $ + < = > ^ ` | ~ are not).
    .replace(/^[^A-Za-z0-9!"#%&'()*,\-./:;?@[\\\]_{}]+/, '')
    .trim();
  if (s.length > SNS_MAX_SUBJECT_CHARS) s = `${s.slice(0, SNS_MAX_SUBJECT_CHARS - 3).trimEnd()}...`;
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Filter policy conversion
// ---------------------------------------------------------------------------------------------------------------

const SEVERITIES = ['info', 'warning', 'critical'] as const;
const SNS_MAX_COMBINATIONS = 150;

type SnsCondition = string | Record<string, unknown>;

/**
 * Our filter policy → an SNS FilterPolicy on message attributes (the scope {@link SnsClient.subscribe} sets).
 *
 * - `type` and `severity` map directly: our conditions on them are SNS's own syntax. (`anything-but` with a suffix,
 *   or with numbers, has no SNS equivalent on a string attribute; `severity` is then listed exactly — it has three
 *   values — and `type` is widened, see below.)
 * - `eventTypes` (exact or `prefix.*`; `*`/empty/null = all) become a `type` condition list: exact strings and
 *   `{prefix: 'x.'}`. With a `type` key in the policy as well, the two are intersected; where a pair cannot be
 *   intersected in one SNS condition (a prefix pattern and a suffix or anything-but condition), the event-type prefix
 *   alone is kept — wider than ours — and `type` is reported in `unsupportedKeys`.
 * - `criticalOnly` narrows severity to `critical` (intersected with the policy's own severity conditions).
 * - `data.*` and `source` keys cannot be expressed on message attributes (we publish only type, severity and
 *   subscription): they are left out and returned in `unsupportedKeys` so the caller can explain.
 * - `subscriptionId` adds `subscription: [id]`, which {@link snsProvider} publishes with every mail: each publish
 *   then reaches exactly the one subscription it is for, and our own matching (which does enforce `data.*`) decides
 *   who gets what. Without it a publish reaches every subscription on the handle's topic whose type/severity
 *   conditions match — see the module comment of the provider.
 *
 * The SNS policy is never narrower than ours: when it would exceed SNS's 150 combinations, `type` is dropped (and
 * reported). No condition left → `policy: null` (no filter: every message of the topic).
 */
export function toSnsFilterPolicy(input: {
  eventTypes: string[] | null;
  filterPolicy: Record<string, unknown[]> | null;
  criticalOnly?: boolean;
  subscriptionId?: string | null;
}): { policy: Record<string, unknown> | null; unsupportedKeys: string[] } {
  const unsupported: string[] = [];
  const policy: Record<string, SnsCondition[]> = {};
  const ours = input.filterPolicy ?? {};

  for (const key of Object.keys(ours)) {
    if (key !== 'type' && key !== 'severity') unsupported.push(key);
  }

  // type
  const patterns = (input.eventTypes ?? []).filter((p) => typeof p === 'string' && p.length > 0);
  const fromEventTypes: SnsCondition[] | null =
    patterns.length === 0 || patterns.includes('*') ? null : dedupe(patterns.map(patternCondition));
  const typeConditions = Array.isArray(ours.type) ? ours.type : null;
  if (fromEventTypes && typeConditions) {
    const { conditions, exact } = intersectTypes(patterns, typeConditions);
    if (!exact) unsupported.push('type');
    // Nothing satisfies both: `exists: false` on an attribute every publish carries never matches, as ours wouldn't.
    policy.type = conditions.length > 0 ? conditions : [{ exists: false }];
  } else if (fromEventTypes) {
    policy.type = fromEventTypes;
  } else if (typeConditions) {
    if (typeConditions.every(isSnsStringCondition)) policy.type = typeConditions as SnsCondition[];
    else unsupported.push('type');
  }

  // severity
  const severityConditions = Array.isArray(ours.severity) ? ours.severity : null;
  if (severityConditions && !input.criticalOnly && severityConditions.every(isSnsStringCondition)) {
    policy.severity = severityConditions as SnsCondition[];
  } else if (severityConditions || input.criticalOnly) {
    // Exactly the severities both allow, listed.
    const allowed = SEVERITIES.filter(
      (s) =>
        (!input.criticalOnly || s === 'critical') &&
        (!severityConditions || severityConditions.some((c) => stringConditionHolds(c, s))),
    );
    policy.severity = allowed.length > 0 ? [...allowed] : [{ exists: false }];
  }

  if (input.subscriptionId) policy[SNS_SUBSCRIPTION_ATTRIBUTE] = [input.subscriptionId];

  if (combinations(policy) > SNS_MAX_COMBINATIONS && policy.type) {
    delete policy.type;
    if (!unsupported.includes('type')) unsupported.push('type');
  }

  return { policy: Object.keys(policy).length > 0 ? policy : null, unsupportedKeys: [...new Set(unsupported)] };
}

function combinations(policy: Record<string, unknown[]>): number {
  let n = 1;
  for (const key of Object.keys(policy)) n *= policy[key]?.length ?? 1;
  return n;
}

/** `order.*` → `{prefix: 'order.'}`; `order.paid` → `'order.paid'`. */
function patternCondition(p: string): SnsCondition {
  return p.endsWith('.*') ? { prefix: p.slice(0, -1) } : p;
}

function dedupe(conditions: SnsCondition[]): SnsCondition[] {
  const seen = new Set<string>();
  return conditions.filter((c) => {
    const k = JSON.stringify(c);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** A condition SNS evaluates on a String attribute exactly as our evaluator does on a string field. */
function isSnsStringCondition(c: unknown): boolean {
  if (typeof c === 'string') return true;
  if (!isPlainObject(c)) return false;
  const ops = Object.keys(c);
  if (ops.length !== 1) return false;
  const v = c[ops[0]!];
  switch (ops[0]) {
    case 'prefix':
    case 'suffix':
      return typeof v === 'string';
    case 'exists':
      return typeof v === 'boolean';
    case 'anything-but':
      if (typeof v === 'string') return true;
      if (Array.isArray(v)) return v.length > 0 && v.every((x) => typeof x === 'string');
      return isPlainObject(v) && Object.keys(v).length === 1 && typeof v.prefix === 'string';
    default:
      return false;
  }
}

/** Our semantics of one condition on a present string value (mirrors lib/filter-policy.ts for string fields). */
function stringConditionHolds(c: unknown, value: string): boolean {
  if (typeof c === 'string') return c === value;
  if (!isPlainObject(c)) return false;
  if ('exists' in c) return c.exists === true;
  if (typeof c.prefix === 'string') return value.startsWith(c.prefix);
  if (typeof c.suffix === 'string') return value.endsWith(c.suffix);
  if ('anything-but' in c) {
    const ab = c['anything-but'];
    if (Array.isArray(ab)) return !ab.includes(value);
    if (isPlainObject(ab)) {
      if (typeof ab.prefix === 'string') return !value.startsWith(ab.prefix);
      if (typeof ab.suffix === 'string') return !value.endsWith(ab.suffix);
      return true;
    }
    return ab !== value;
  }
  return false;
}

/**
 * eventTypes ∧ type conditions as one SNS condition list. `exact` is false when some pair had to be widened to the
 * event-type prefix alone.
 */
function intersectTypes(patterns: string[], conditions: unknown[]): { conditions: SnsCondition[]; exact: boolean } {
  const out: SnsCondition[] = [];
  let exact = true;
  for (const p of patterns) {
    if (!p.endsWith('.*')) {
      // An exact type: keep it when any condition holds for it.
      if (conditions.some((c) => stringConditionHolds(c, p))) out.push(p);
      continue;
    }
    const prefix = p.slice(0, -1);
    for (const c of conditions) {
      if (typeof c === 'string') {
        if (c.length > prefix.length && c.startsWith(prefix)) out.push(c);
      } else if (isPlainObject(c) && typeof c.prefix === 'string' && Object.keys(c).length === 1) {
        if (c.prefix.startsWith(prefix)) out.push({ prefix: c.prefix });
        else if (prefix.startsWith(c.prefix)) out.push({ prefix });
      } else if (isPlainObject(c) && 'exists' in c) {
        if (c.exists === true) out.push({ prefix });
      } else {
        // suffix / anything-but under a prefix: SNS has no AND within a key; keep the wider prefix.
        out.push({ prefix });
        exact = false;
      }
    }
  }
  return { conditions: dedupe(out), exact };
}

// ---------------------------------------------------------------------------------------------------------------
// Provider
// ---------------------------------------------------------------------------------------------------------------

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
export function snsProvider(env: Env): EmailProvider {
  const client = snsClient(env);
  const fail = (message: string, permanent = true): SendOutcome => ({
    ok: false,
    permanent,
    message: message.slice(0, MESSAGE_MAX),
  });

  function cacheKey(handle: string): string {
    const { snsApiUrl, region } = config(env).aws;
    return `${snsApiUrl ?? ''}\n${region}\n${snsTopicName(env, handle)}`;
  }

  async function topicArn(handle: string): Promise<string> {
    const cached = topicArns.get(cacheKey(handle));
    if (cached) return cached;
    const arn = await client.ensureTopic(handle);
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
          `EMAIL_PROVIDER=sns delivers only to addresses subscribed to the handle's SNS topic; ${mail.to.email} has no subscription (platform alert or support mail), so nothing was published.`,
        );
      }
      if (meta.eventType === 'email.confirmation') {
        return fail(
          'EMAIL_PROVIDER=sns: AWS SNS sends its own confirmation mail when the subscription is created and delivers nothing to a pending address, so our confirmation mail was not published.',
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
