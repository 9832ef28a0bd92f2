/**
 * A fake AWS SNS for the tests: one real HTTP server on 127.0.0.1 speaking SNS's Query API wire format (house rule —
 * providers are real servers, never mocks). Started once per run by `global-setup.ts`, which provides its port as
 * `snsFakePort`; workers under test reach it through `SNS_API_URL=http://127.0.0.1:<port>/`.
 *
 * Like SNS it takes `POST /` with a form-encoded body `Action=…&Version=2010-03-31&…` and answers XML in AWS's
 * shapes (`<XResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><XResult>…</XResult><ResponseMetadata>…`,
 * errors as `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`).
 *
 * Authentication is checked for real: the request must carry `X-Amz-Date` and a SigV4 `Authorization:
 * AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/sns/aws4_request, SignedHeaders=…, Signature=…` whose signature
 * verifies with the secret of {@link SNS_FAKE_CREDENTIALS} — 400 MissingAuthenticationToken / IncompleteSignature,
 * 403 InvalidClientTokenId (unknown key) / SignatureDoesNotMatch otherwise. ARNs use the region of the credential
 * scope and account 123456789012.
 *
 * Actions: CreateTopic, Subscribe (email/email-json; FilterPolicy validated like SNS's: ≤ 5 keys, ≤ 150
 * combinations, known operators), GetSubscriptionAttributes, Unsubscribe, Publish (Subject and Message checked
 * against SNS's limits; the message is "delivered" to every confirmed subscription of the topic whose filter policy
 * matches its message attributes, recorded in `deliveredTo`). Unknown subscription/topic → 404 NotFound.
 *
 * Control API (JSON):
 *   POST /_control/confirm?arn=      confirm a pending subscription (PendingConfirmation → false)
 *   POST /_control/delete?arn=       delete a subscription as SNS would (expired, unsubscribed by the recipient)
 *   POST /_control/delete-topic?arn= delete a topic and its subscriptions, as DeleteTopic does
 *   POST /_control/throttle?n=       the next n API calls answer 400 Throttling
 *   GET  /_control/state             topics, subscriptions, messages and every request received (with its headers)
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveOnLoopback } from './http.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Port of the SNS fake on 127.0.0.1 (test/support/node/sns-fake.ts). */
    snsFakePort: number;
  }
}

/** The credentials the fake accepts (tests configure AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY with them). */
export const SNS_FAKE_CREDENTIALS = {
  accessKeyId: 'AKIAFAKESNS000000001',
  secretAccessKey: 'fake/SNS+secret/key0123456789abcdefghij',
} as const;

export const SNS_FAKE_ACCOUNT = '123456789012';
const XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';
/** SigV4: how far X-Amz-Date may be from the fake's clock. */
const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_BODY_BYTES = 1024 * 1024;

export interface FakeTopic {
  arn: string;
  name: string;
  region: string;
  createdAt: string;
}

export interface FakeSubscription {
  arn: string;
  topicArn: string;
  protocol: string;
  endpoint: string;
  /** As received (the JSON text), or null. */
  filterPolicy: string | null;
  filterPolicyScope: string | null;
  pendingConfirmation: boolean;
  createdAt: string;
}

export interface FakeMessageAttribute {
  dataType: string;
  stringValue: string;
}

export interface FakeMessage {
  messageId: string;
  topicArn: string;
  subject: string | null;
  message: string;
  attributes: Record<string, FakeMessageAttribute>;
  /** Subscription ARNs the message went to: confirmed, and the filter policy matched. */
  deliveredTo: string[];
  publishedAt: string;
}

export interface FakeRequest {
  seq: number;
  method: string;
  path: string;
  /** Lower-cased names. */
  headers: Record<string, string>;
  /** The decoded form parameters. */
  params: Record<string, string>;
  action: string | null;
  status: number;
  /** The error code answered, or null on success. */
  errorCode: string | null;
  receivedAt: string;
}

export interface SnsFakeState {
  topics: FakeTopic[];
  subscriptions: FakeSubscription[];
  messages: FakeMessage[];
  requests: FakeRequest[];
  throttleRemaining: number;
}

export interface SnsFake {
  port: number;
  /** Stops the server; idempotent. */
  close(): Promise<void>;
}

class SnsFault extends Error {
  readonly status: number;
  readonly code: string;
  readonly type: 'Sender' | 'Receiver';
  constructor(status: number, code: string, message: string, type: 'Sender' | 'Receiver' = 'Sender') {
    super(message);
    this.status = status;
    this.code = code;
    this.type = type;
  }
}

function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function success(action: string, result: string, requestId: string): string {
  return (
    `<${action}Response xmlns="${XMLNS}">\n` +
    `  <${action}Result>${result}</${action}Result>\n` +
    `  <ResponseMetadata>\n    <RequestId>${requestId}</RequestId>\n  </ResponseMetadata>\n` +
    `</${action}Response>\n`
  );
}

/** Unsubscribe answers with no Result element, as SNS does. */
function successWithoutResult(action: string, requestId: string): string {
  return (
    `<${action}Response xmlns="${XMLNS}">\n` +
    `  <ResponseMetadata>\n    <RequestId>${requestId}</RequestId>\n  </ResponseMetadata>\n` +
    `</${action}Response>\n`
  );
}

function errorXml(fault: SnsFault, requestId: string): string {
  return (
    `<ErrorResponse xmlns="${XMLNS}">\n` +
    `  <Error>\n    <Type>${fault.type}</Type>\n    <Code>${xmlEscape(fault.code)}</Code>\n` +
    `    <Message>${xmlEscape(fault.message)}</Message>\n  </Error>\n` +
    `  <RequestId>${requestId}</RequestId>\n` +
    `</ErrorResponse>\n`
  );
}

// ---------------------------------------------------------------------------------------------------------------
// SigV4 verification
// ---------------------------------------------------------------------------------------------------------------

const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

/** RFC 3986 escaping of what encodeURIComponent leaves alone (`!'()*`). */
function escapeReserved(s: string): string {
  return s.replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function rfc3986(s: string): string {
  return escapeReserved(encodeURIComponent(s));
}

/** Verifies the request's signature; returns the credential scope's region. Throws SnsFault. */
function verifySigV4(req: IncomingMessage, body: Buffer): string {
  const authorization = req.headers.authorization;
  if (!authorization) {
    throw new SnsFault(400, 'MissingAuthenticationToken', 'Request is missing Authentication Token');
  }
  const amzDate = req.headers['x-amz-date'];
  if (typeof amzDate !== 'string' || !/^\d{8}T\d{6}Z$/.test(amzDate)) {
    throw new SnsFault(
      400,
      'IncompleteSignature',
      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    );
  }
  const m = AUTH.exec(authorization);
  if (!m) {
    throw new SnsFault(
      400,
      'IncompleteSignature',
      `Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters. Authorization=${authorization.slice(0, 40)}`,
    );
  }
  const [, accessKeyId, scopeDate, region, service, signedHeaders, signature] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (accessKeyId !== SNS_FAKE_CREDENTIALS.accessKeyId) {
    throw new SnsFault(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.');
  }
  if (service !== 'sns') {
    throw new SnsFault(403, 'SignatureDoesNotMatch', `Credential should be scoped to correct service: 'sns'. `);
  }
  if (!/^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/.test(region)) {
    throw new SnsFault(
      403,
      'SignatureDoesNotMatch',
      `Credential should be scoped to a valid region, not '${region}'. `,
    );
  }
  if (scopeDate !== amzDate.slice(0, 8)) {
    throw new SnsFault(
      403,
      'SignatureDoesNotMatch',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${amzDate.slice(0, 8)}'`,
    );
  }
  const when = Date.parse(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  if (!Number.isFinite(when) || Math.abs(Date.now() - when) > MAX_SKEW_MS) {
    throw new SnsFault(
      403,
      'SignatureDoesNotMatch',
      `Signature expired: ${amzDate} is now earlier or later than the allowed 15 minutes.`,
    );
  }
  const names = signedHeaders.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) {
    throw new SnsFault(
      403,
      'SignatureDoesNotMatch',
      'The request signature must cover the host and x-amz-date headers.',
    );
  }

  const url = new URL(req.url ?? '/', 'http://fake');
  // Non-S3 services encode the (already URL-encoded) path once more, slashes kept.
  const canonicalUri = escapeReserved(encodeURIComponent(url.pathname.replace(/\/+/g, '/')).replace(/%2F/g, '/'));
  const canonicalQuery = [...url.searchParams]
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([k1, v1], [k2, v2]) => (k1 < k2 ? -1 : k1 > k2 ? 1 : v1 < v2 ? -1 : v1 > v2 ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalHeaders = names
    .map((name) => {
      const raw = req.headers[name];
      const value = Array.isArray(raw) ? raw.join(',') : (raw ?? '');
      return `${name}:${value.trim().replace(/\s+/g, ' ')}\n`;
    })
    .join('');
  const payloadHash = createHash('sha256').update(body).digest('hex');
  const canonicalRequest = [
    req.method ?? 'POST',
    canonicalUri,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders,
    payloadHash,
  ].join('\n');
  const scope = `${scopeDate}/${region}/${service}/aws4_request`;
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scope,
    createHash('sha256').update(canonicalRequest).digest('hex'),
  ].join('\n');
  let key: Buffer = createHmac('sha256', `AWS4${SNS_FAKE_CREDENTIALS.secretAccessKey}`).update(scopeDate).digest();
  for (const part of [region, service, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const expected = createHmac('sha256', key).update(stringToSign).digest('hex');
  if (expected !== signature) {
    throw new SnsFault(
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n' +
        `The Canonical String for this request should have been\n'${canonicalRequest}'\n\nThe String-to-Sign should have been\n'${stringToSign}'\n`,
    );
  }
  return region;
}

// ---------------------------------------------------------------------------------------------------------------
// Filter policies (SNS semantics on String message attributes)
// ---------------------------------------------------------------------------------------------------------------

const KNOWN_OPERATORS = new Set([
  'prefix',
  'suffix',
  'anything-but',
  'exists',
  'numeric',
  'equals-ignore-case',
  'cidr',
]);

function invalidPolicy(reason: string): SnsFault {
  return new SnsFault(400, 'InvalidParameter', `Invalid parameter: FilterPolicy: ${reason}`);
}

/** Validates a FilterPolicy the way SNS does for the MessageAttributes scope (flat, ≤ 5 keys, ≤ 150 combinations). */
function validateFilterPolicy(text: string): Record<string, unknown[]> {
  let policy: unknown;
  try {
    policy = JSON.parse(text);
  } catch {
    throw invalidPolicy('Filter policy is not valid JSON');
  }
  if (typeof policy !== 'object' || policy === null || Array.isArray(policy))
    throw invalidPolicy('Filter policy must be a JSON object');
  const keys = Object.keys(policy);
  if (keys.length === 0) throw invalidPolicy('Filter policy can not be empty');
  if (keys.length > 5) throw invalidPolicy('Filter policy can not have more than 5 keys');
  let combinations = 1;
  for (const key of keys) {
    const values = (policy as Record<string, unknown>)[key];
    if (!Array.isArray(values))
      throw invalidPolicy(`Match value must be String, number, true, false, or null\n at [Source: (String)"${key}"]`);
    if (values.length === 0) throw invalidPolicy(`Empty arrays are not allowed\n at [Source: (String)"${key}"]`);
    combinations *= values.length;
    for (const v of values) {
      if (v === null || typeof v !== 'object') continue;
      if (Array.isArray(v)) throw invalidPolicy('Match value must be String, number, true, false, or null');
      const ops = Object.keys(v);
      if (ops.length !== 1 || !KNOWN_OPERATORS.has(ops[0]!))
        throw invalidPolicy(`Unrecognized match type ${ops.join(',')}`);
      const operand = (v as Record<string, unknown>)[ops[0]!];
      if (ops[0] === 'anything-but' && typeof operand === 'object' && operand !== null && !Array.isArray(operand)) {
        const inner = Object.keys(operand);
        // Only a prefix is accepted inside anything-but on SNS.
        if (inner.length !== 1 || inner[0] !== 'prefix')
          throw invalidPolicy(`Unsupported anything-but pattern: ${inner.join(',')}`);
      }
      if ((ops[0] === 'prefix' || ops[0] === 'suffix') && (typeof operand !== 'string' || operand === '')) {
        throw invalidPolicy(`${ops[0]} match pattern must be a non-empty string`);
      }
      if (ops[0] === 'exists' && typeof operand !== 'boolean')
        throw invalidPolicy('exists match pattern must be either true or false.');
    }
  }
  if (combinations > 150) throw invalidPolicy('Filter policy is too complex');
  return policy as Record<string, unknown[]>;
}

function conditionHolds(c: unknown, attr: FakeMessageAttribute): boolean {
  const value = attr.stringValue;
  if (typeof c === 'string') return attr.dataType.startsWith('String') && c === value;
  if (typeof c === 'number') return attr.dataType === 'Number' && Number(value) === c;
  if (c === null || typeof c !== 'object') return false;
  const [op, operand] = Object.entries(c)[0] ?? [];
  switch (op) {
    case 'prefix':
      return typeof operand === 'string' && value.startsWith(operand);
    case 'suffix':
      return typeof operand === 'string' && value.endsWith(operand);
    case 'equals-ignore-case':
      return typeof operand === 'string' && value.toLowerCase() === operand.toLowerCase();
    case 'exists':
      return operand === true;
    case 'anything-but':
      if (Array.isArray(operand)) return !operand.includes(value) && !operand.includes(Number(value));
      if (typeof operand === 'object' && operand !== null) {
        const p = (operand as { prefix?: unknown }).prefix;
        return typeof p === 'string' && !value.startsWith(p);
      }
      return operand !== value && operand !== Number(value);
    default:
      return false;
  }
}

function policyMatches(policy: Record<string, unknown[]>, attributes: Record<string, FakeMessageAttribute>): boolean {
  for (const [key, conditions] of Object.entries(policy)) {
    const attr = attributes[key];
    const ok = attr
      ? conditions.some((c) => conditionHolds(c, attr))
      : conditions.some((c) => typeof c === 'object' && c !== null && (c as { exists?: unknown }).exists === false);
    if (!ok) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------------------------

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const TOPIC_NAME = /^[A-Za-z0-9_-]{1,256}$/;
const SUBSCRIPTION_ATTRIBUTES = new Set([
  'FilterPolicy',
  'FilterPolicyScope',
  'RawMessageDelivery',
  'DeliveryPolicy',
  'RedrivePolicy',
  'SubscriptionRoleArn',
  'ReplayPolicy',
]);

/** `Prefix.entry.N.<k>` / `.<v>` pairs of a Query API map. */
function entries(
  params: Record<string, string>,
  prefix: string,
  k: string,
  v: string,
): Array<[string, string | undefined]> {
  const out: Array<[string, string | undefined]> = [];
  for (let n = 1; params[`${prefix}.entry.${n}.${k}`] !== undefined; n++) {
    out.push([params[`${prefix}.entry.${n}.${k}`]!, params[`${prefix}.entry.${n}.${v}`]]);
  }
  return out;
}

function required(params: Record<string, string>, name: string): string {
  const v = params[name];
  if (v === undefined || v === '') throw new SnsFault(400, 'InvalidParameter', `Invalid parameter: ${name}`);
  return v;
}

export async function startSnsFake(): Promise<SnsFake> {
  const topics = new Map<string, FakeTopic>();
  const subscriptions = new Map<string, FakeSubscription>();
  const messages: FakeMessage[] = [];
  const requests: FakeRequest[] = [];
  let throttleRemaining = 0;
  let seq = 0;

  function handleAction(action: string, params: Record<string, string>, region: string, requestId: string): string {
    switch (action) {
      case 'CreateTopic': {
        const name = required(params, 'Name');
        if (!TOPIC_NAME.test(name)) {
          throw new SnsFault(400, 'InvalidParameter', 'Invalid parameter: Topic Name');
        }
        const arn = `arn:aws:sns:${region}:${SNS_FAKE_ACCOUNT}:${name}`;
        if (!topics.has(arn)) topics.set(arn, { arn, name, region, createdAt: new Date().toISOString() });
        return success(action, `\n    <TopicArn>${xmlEscape(arn)}</TopicArn>\n  `, requestId);
      }
      case 'Subscribe': {
        const topicArn = required(params, 'TopicArn');
        const protocol = required(params, 'Protocol');
        const endpoint = params.Endpoint ?? '';
        if (!topics.has(topicArn)) throw new SnsFault(404, 'NotFound', 'Topic does not exist');
        if (protocol !== 'email' && protocol !== 'email-json')
          throw new SnsFault(400, 'InvalidParameter', 'Invalid parameter: Protocol');
        if (!EMAIL.test(endpoint)) throw new SnsFault(400, 'InvalidParameter', 'Invalid parameter: Email address');
        let filterPolicy: string | null = null;
        let filterPolicyScope: string | null = null;
        for (const [key, value] of entries(params, 'Attributes', 'key', 'value')) {
          if (!SUBSCRIPTION_ATTRIBUTES.has(key))
            throw new SnsFault(
              400,
              'InvalidParameter',
              `Invalid parameter: Attributes Reason: Unknown attribute ${key}`,
            );
          if (key === 'FilterPolicy') {
            validateFilterPolicy(value ?? '');
            filterPolicy = value ?? null;
          } else if (key === 'FilterPolicyScope') {
            if (value !== 'MessageAttributes' && value !== 'MessageBody') {
              throw new SnsFault(
                400,
                'InvalidParameter',
                'Invalid parameter: Attributes Reason: FilterPolicyScope: Invalid value',
              );
            }
            filterPolicyScope = value;
          }
        }
        if (filterPolicy !== null && filterPolicyScope === null) filterPolicyScope = 'MessageAttributes';
        const existing = [...subscriptions.values()].find(
          (s) => s.topicArn === topicArn && s.protocol === protocol && s.endpoint === endpoint,
        );
        let sub: FakeSubscription;
        if (existing) {
          if (existing.filterPolicy !== filterPolicy || existing.filterPolicyScope !== filterPolicyScope) {
            throw new SnsFault(
              400,
              'InvalidParameter',
              'Invalid parameter: Attributes Reason: Subscription already exists with different attributes',
            );
          }
          sub = existing;
        } else {
          sub = {
            arn: `${topicArn}:${randomUUID()}`,
            topicArn,
            protocol,
            endpoint,
            filterPolicy,
            filterPolicyScope,
            pendingConfirmation: true,
            createdAt: new Date().toISOString(),
          };
          subscriptions.set(sub.arn, sub);
        }
        const shown =
          sub.pendingConfirmation && params.ReturnSubscriptionArn !== 'true' ? 'pending confirmation' : sub.arn;
        return success(action, `\n    <SubscriptionArn>${xmlEscape(shown)}</SubscriptionArn>\n  `, requestId);
      }
      case 'GetSubscriptionAttributes': {
        const sub = subscriptions.get(required(params, 'SubscriptionArn'));
        if (!sub) throw new SnsFault(404, 'NotFound', 'Subscription does not exist');
        const attrs: Array<[string, string]> = [
          ['Owner', SNS_FAKE_ACCOUNT],
          ['RawMessageDelivery', 'false'],
          ['TopicArn', sub.topicArn],
          ['Endpoint', sub.endpoint],
          ['Protocol', sub.protocol],
          ['PendingConfirmation', String(sub.pendingConfirmation)],
          ['ConfirmationWasAuthenticated', String(!sub.pendingConfirmation)],
          ['SubscriptionArn', sub.arn],
          ['SubscriptionPrincipal', `arn:aws:iam::${SNS_FAKE_ACCOUNT}:user/fake`],
        ];
        if (sub.filterPolicy !== null) attrs.push(['FilterPolicy', sub.filterPolicy]);
        if (sub.filterPolicyScope !== null) attrs.push(['FilterPolicyScope', sub.filterPolicyScope]);
        const body = attrs
          .map(
            ([k, v]) =>
              `\n      <entry>\n        <key>${xmlEscape(k)}</key>\n        <value>${xmlEscape(v)}</value>\n      </entry>`,
          )
          .join('');
        return success(action, `\n    <Attributes>${body}\n    </Attributes>\n  `, requestId);
      }
      case 'Unsubscribe': {
        const arn = required(params, 'SubscriptionArn');
        if (!subscriptions.delete(arn)) throw new SnsFault(404, 'NotFound', 'Subscription does not exist');
        return successWithoutResult(action, requestId);
      }
      case 'Publish': {
        const topicArn = params.TopicArn ?? params.TargetArn;
        if (!topicArn)
          throw new SnsFault(
            400,
            'InvalidParameter',
            'Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter',
          );
        if (!topics.has(topicArn)) throw new SnsFault(404, 'NotFound', 'Topic does not exist');
        const message = params.Message;
        if (message === undefined || message === '')
          throw new SnsFault(400, 'InvalidParameter', 'Invalid parameter: Empty message');
        const subject = params.Subject ?? null;
        if (
          subject !== null &&
          (subject === '' ||
            subject.length >= 100 ||
            !/^[\x21-\x7e][\x20-\x7e]*$/.test(subject) ||
            !/^[A-Za-z0-9\p{P}]/u.test(subject))
        ) {
          throw new SnsFault(400, 'InvalidParameter', 'Invalid parameter: Subject');
        }
        const attributes: Record<string, FakeMessageAttribute> = {};
        let attributeBytes = 0;
        for (let n = 1; params[`MessageAttributes.entry.${n}.Name`] !== undefined; n++) {
          const name = params[`MessageAttributes.entry.${n}.Name`]!;
          const dataType = params[`MessageAttributes.entry.${n}.Value.DataType`];
          const stringValue = params[`MessageAttributes.entry.${n}.Value.StringValue`];
          if (!/^[A-Za-z0-9_.-]{1,256}$/.test(name) || /^(?:aws\.|amazon\.)/i.test(name)) {
            throw new SnsFault(
              400,
              'InvalidParameter',
              `Invalid parameter: MessageAttributes Reason: invalid name ${name}`,
            );
          }
          if (!dataType || !/^(?:String|Number|Binary|String\.Array)(?:\..+)?$/.test(dataType)) {
            throw new SnsFault(
              400,
              'InvalidParameter',
              `Invalid parameter: MessageAttributes Reason: The message attribute '${name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String.`,
            );
          }
          if (stringValue === undefined || stringValue === '') {
            throw new SnsFault(
              400,
              'InvalidParameter',
              `Invalid parameter: MessageAttributes Reason: The message attribute '${name}' must contain non-empty message attribute value for message attribute type '${dataType}'.`,
            );
          }
          attributes[name] = { dataType, stringValue };
          attributeBytes += Buffer.byteLength(name) + Buffer.byteLength(dataType) + Buffer.byteLength(stringValue);
        }
        if (Object.keys(attributes).length > 10)
          throw new SnsFault(
            400,
            'InvalidParameter',
            'Invalid parameter: MessageAttributes Reason: Number of message attributes [11] exceeds the allowed maximum [10].',
          );
        if (Buffer.byteLength(message) + attributeBytes > 262_144) {
          throw new SnsFault(400, 'InvalidParameter', 'Invalid parameter: Message too long');
        }
        const deliveredTo = [...subscriptions.values()]
          .filter((s) => s.topicArn === topicArn && !s.pendingConfirmation)
          .filter(
            (s) =>
              s.filterPolicy === null ||
              s.filterPolicyScope !== 'MessageAttributes' ||
              policyMatches(JSON.parse(s.filterPolicy) as Record<string, unknown[]>, attributes),
          )
          .map((s) => s.arn);
        const messageId = randomUUID();
        messages.push({
          messageId,
          topicArn,
          subject,
          message,
          attributes,
          deliveredTo,
          publishedAt: new Date().toISOString(),
        });
        return success(action, `\n    <MessageId>${messageId}</MessageId>\n  `, requestId);
      }
      default:
        throw new SnsFault(400, 'InvalidAction', `The action ${action} is not valid for this web service.`);
    }
  }

  function json(res: ServerResponse, status: number, body: unknown) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  function control(req: IncomingMessage, res: ServerResponse, url: URL) {
    const what = url.pathname.slice('/_control/'.length);
    if (req.method === 'GET' && what === 'state') {
      const state: SnsFakeState = {
        topics: [...topics.values()],
        subscriptions: [...subscriptions.values()],
        messages,
        requests,
        throttleRemaining,
      };
      return json(res, 200, state);
    }
    if (req.method !== 'POST') return json(res, 405, { error: `${req.method} /_control/${what} is not supported` });
    switch (what) {
      case 'confirm': {
        const sub = subscriptions.get(url.searchParams.get('arn') ?? '');
        if (!sub) return json(res, 404, { error: 'no such subscription' });
        sub.pendingConfirmation = false;
        return json(res, 200, sub);
      }
      case 'delete': {
        const arn = url.searchParams.get('arn') ?? '';
        if (!subscriptions.delete(arn)) return json(res, 404, { error: 'no such subscription' });
        return json(res, 200, { deleted: arn });
      }
      case 'delete-topic': {
        // As DeleteTopic does: the topic and every subscription on it.
        const arn = url.searchParams.get('arn') ?? '';
        if (!topics.delete(arn)) return json(res, 404, { error: 'no such topic' });
        for (const sub of [...subscriptions.values()]) if (sub.topicArn === arn) subscriptions.delete(sub.arn);
        return json(res, 200, { deleted: arn });
      }
      case 'throttle': {
        const n = Number.parseInt(url.searchParams.get('n') ?? '', 10);
        if (!Number.isInteger(n) || n < 0) return json(res, 400, { error: 'n must be a non-negative integer' });
        throttleRemaining = n;
        return json(res, 200, { throttleRemaining });
      }
      default:
        return json(res, 404, { error: `unknown control ${what}` });
    }
  }

  async function readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of req) {
      total += (chunk as Buffer).length;
      if (total > MAX_BODY_BYTES) throw new SnsFault(413, 'RequestEntityTooLarge', 'Request body too large');
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  const served = await serveOnLoopback('sns-fake', (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (url.pathname.startsWith('/_control/')) return control(req, res, url);

      const requestId = randomUUID();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers))
        if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      const record: FakeRequest = {
        seq: ++seq,
        method: req.method ?? '',
        path: url.pathname,
        headers,
        params: {},
        action: null,
        status: 0,
        errorCode: null,
        receivedAt: new Date().toISOString(),
      };
      requests.push(record);
      let status = 200;
      let xml: string;
      try {
        const body = await readBody(req);
        record.params = Object.fromEntries(new URLSearchParams(body.toString('utf8')));
        record.action = record.params.Action ?? null;
        if (req.method !== 'POST')
          throw new SnsFault(
            400,
            'InvalidAction',
            `${req.method} is not supported by this fake; SNS's Query API is POSTed.`,
          );
        const region = verifySigV4(req, body);
        if (throttleRemaining > 0) {
          throttleRemaining--;
          throw new SnsFault(400, 'Throttling', 'Rate exceeded');
        }
        if (!record.action) throw new SnsFault(400, 'MissingAction', 'Missing Action');
        if (record.params.Version !== '2010-03-31') {
          throw new SnsFault(
            400,
            'InvalidParameterValue',
            `Version ${record.params.Version ?? '(none)'} is not supported; use 2010-03-31.`,
          );
        }
        xml = handleAction(record.action, record.params, region, requestId);
      } catch (err) {
        const fault =
          err instanceof SnsFault
            ? err
            : new SnsFault(500, 'InternalError', err instanceof Error ? err.message : String(err), 'Receiver');
        status = fault.status;
        record.errorCode = fault.code;
        xml = errorXml(fault, requestId);
      }
      record.status = status;
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId });
      res.end(xml);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  return { port: served.port, close: served.close };
}
