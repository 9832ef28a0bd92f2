/**
 * Validation messages a person can act on: which field, what was expected, and an example — instead of zod's
 * "Invalid input: expected string, received undefined". Only zod's own wording is replaced; a message a schema wrote
 * itself (a refine, a `message:` option) already says what to do and is kept.
 */

/** The parts of a zod issue the messages read (zod 4's issue shapes). */
export interface ValidationIssue {
  code?: string;
  message: string;
  path: readonly PropertyKey[];
  expected?: string;
  input?: unknown;
  values?: readonly unknown[];
  origin?: string;
  format?: string;
  minimum?: number | bigint;
  maximum?: number | bigint;
  inclusive?: boolean;
  keys?: readonly string[];
}

/** zod's default wording; anything else was written by a schema and is kept. */
const ZOD_DEFAULT =
  /^(Invalid (input|option|string|email|URL|value|key|element|union)|Too (big|small)|Unrecognized key)/;

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'an array',
  object: 'a JSON object',
  record: 'a JSON object',
  null: 'null',
  bigint: 'a whole number',
  date: 'a date',
};

const EXAMPLES: Record<string, string> = {
  string: '"…"',
  number: '10',
  int: '10',
  boolean: 'true',
  array: '["…"]',
  object: '{ … }',
  record: '{ … }',
  email: '"ops@example.com"',
  url: '"https://crm.example.com/hooks"',
  datetime: '"2026-01-31T12:00:00Z"',
  uuid: '"4b3f2a1e-9c8d-4e7f-a6b5-0c1d2e3f4a5b"',
};

const FORMAT_NAMES: Record<string, string> = {
  email: 'an email address',
  url: 'a URL',
  datetime: 'an ISO 8601 date and time',
  uuid: 'a UUID',
};

/** A string example that fits the field's name where the name says what it holds. */
function stringExample(name: string): string {
  if (/url$/i.test(name)) return EXAMPLES.url!;
  if (/email$/i.test(name)) return EXAMPLES.email!;
  if (/At$/.test(name)) return EXAMPLES.datetime!;
  return EXAMPLES.string!;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return Number.isInteger(value) ? 'a whole number' : 'a number';
  return typeof value;
}

function quoted(value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : String(value);
}

function bound(issue: ValidationIssue, side: 'minimum' | 'maximum'): string {
  const n = Number(issue[side]);
  const exclusive = issue.inclusive === false;
  const limit =
    side === 'minimum'
      ? exclusive
        ? `more than ${n}`
        : `at least ${n}`
      : exclusive
        ? `less than ${n}`
        : `at most ${n}`;
  if (issue.origin === 'string') return `${limit} character${n === 1 ? '' : 's'} long`;
  if (issue.origin === 'array' || issue.origin === 'set') return `${limit} item${n === 1 ? '' : 's'}`;
  if (issue.origin === 'file') return `${limit} bytes`;
  return limit;
}

/**
 * One sentence for a zod issue at `field` (its dotted request path, e.g. `body.url`). Unknown codes and messages the
 * schema wrote itself are returned unchanged.
 */
export function humanValidationMessage(issue: ValidationIssue, field: string): string {
  if (!ZOD_DEFAULT.test(issue.message)) return issue.message;
  switch (issue.code) {
    case 'invalid_type': {
      const expected = TYPE_NAMES[issue.expected ?? ''] ?? issue.expected ?? 'a value';
      const name = field.split('.').at(-1) ?? field;
      const example = issue.expected === 'string' ? stringExample(name) : EXAMPLES[issue.expected ?? ''];
      const forExample = example ? `, for example "${name}": ${example}` : '';
      // Issues carry no input unless asked for; zod's message says what it received.
      const received = 'input' in issue ? typeOf(issue.input) : /received (\w+)$/.exec(issue.message)?.[1];
      if (received === undefined || received === 'undefined') return `${field} is required: ${expected}${forExample}.`;
      return `${field} must be ${expected}, not ${TYPE_NAMES[received] ?? received}${forExample}.`;
    }
    case 'invalid_value':
      if (issue.values?.length === 1) return `${field} must be ${quoted(issue.values[0])}.`;
      if (issue.values?.length) return `${field} must be one of ${issue.values.map(quoted).join(', ')}.`;
      return `${field} has a value that is not allowed.`;
    case 'too_small':
      return `${field} must be ${bound(issue, 'minimum')}.`;
    case 'too_big':
      return `${field} must be ${bound(issue, 'maximum')}.`;
    case 'invalid_format': {
      const name = FORMAT_NAMES[issue.format ?? ''];
      const example = EXAMPLES[issue.format ?? ''];
      if (name) return `${field} must be ${name}${example ? `, for example ${example}` : ''}.`;
      return `${field} does not have the expected format${issue.format ? ` (${issue.format})` : ''}.`;
    }
    case 'unrecognized_keys':
      return `${field} is not a known field: remove it (or check its spelling against the API reference at /docs).`;
    case 'invalid_union':
      return `${field} does not match any of the accepted shapes; see the API reference at /docs.`;
    default:
      return issue.message;
  }
}

/**
 * `message` with the value at `path` in `example` (a catalog sample) as its example, when the sample has a plain value
 * there: what a publisher can copy, instead of a generic placeholder.
 */
export function withExampleFrom(
  example: Record<string, unknown>,
  path: readonly PropertyKey[],
  message: string,
): string {
  let value: unknown = example;
  for (const key of path) {
    value = value && typeof value === 'object' ? (value as Record<string, unknown>)[String(key)] : undefined;
  }
  if (value === undefined || (value !== null && typeof value === 'object')) return message;
  const copy = `for example "${String(path.at(-1))}": ${JSON.stringify(value)}`;
  const generic = /for example "[^"]*": .*\.$/;
  return generic.test(message) ? message.replace(generic, `${copy}.`) : `${message.replace(/\.$/, '')} (${copy}).`;
}
