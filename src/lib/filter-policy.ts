/**
 * Filter policies (docs/design.md#filter-policies): the subset of AWS SNS filter policies users already know, and the
 * one evaluator that settings, subscriptions, the `evaluate` dry run, the test-send diagnosis and the SNS FilterPolicy
 * translation (email/providers/sns/filter-policy.ts) all share. Pure.
 *
 * A policy is `{ key: [condition, …], … }`: conditions on a key are OR-ed, keys are AND-ed. Keys are `type`,
 * `severity`, `source` or `data.<path>`. Validation happens once, at write time ({@link validateFilterPolicy});
 * evaluation ({@link evaluateFilterPolicy}) runs per recipient per event, so it compiles nothing and allocates little.
 *
 * Value semantics, as in SNS: when the event's value is an array the key matches if any element matches; a missing
 * value matches only `{"exists": false}`. A data path that crosses an array of objects (`data.items.sku` over
 * `items: [{sku}, …]`) collects the field from every element, as EventBridge does, so "any item" filters work.
 */
import { FORBIDDEN_JSON_KEYS, isPlainObject } from './json.ts';

export type NumericOp = '=' | '<' | '<=' | '>' | '>=';

/** The operand of `anything-but`: one value, a list of values, or a prefix/suffix to exclude. */
export type AnythingBut = string | number | Array<string | number> | { prefix: string } | { suffix: string };

export type Condition =
  | string
  | number
  | boolean
  | { prefix: string }
  | { suffix: string }
  | { 'anything-but': AnythingBut }
  | { exists: boolean }
  | { numeric: [NumericOp, number] | [NumericOp, number, NumericOp, number] };

/** A validated policy: each key maps to a non-empty list of conditions. */
export type FilterPolicy = Record<string, Condition[]>;

/** The fields a policy can look at. */
export interface FilterableEvent {
  type: string;
  severity: string;
  source?: string | null;
  data: Record<string, unknown>;
}

/** One problem with a policy: `path` is relative to the policy (`"data.amount.0"`, or `""` for the whole policy). */
export interface PolicyError {
  path: string;
  message: string;
}

/** The limits of docs/design.md#filter-policies (the first two are SNS's own), enforced when a policy is written. */
export const FILTER_POLICY_LIMITS = {
  maxKeys: 5,
  maxCombinations: 150,
  maxConditionsPerKey: 150,
  maxStringLength: 256,
  maxPathDepth: 10,
} as const;

/** Beyond this many, errors are summarised: a hostile 256 KB body must not become a multi-megabyte problem. */
const MAX_ERRORS = 50;

const STRING_FIELDS = new Set(['type', 'severity', 'source']);
const SEVERITIES = new Set(['info', 'warning', 'critical']);
const SEGMENT = /^[A-Za-z0-9_-]+$/;
const NUMERIC_OPS = new Set<string>(['=', '<', '<=', '>', '>=']);
const OPERATORS = 'prefix, suffix, anything-but, exists or numeric';
/** SNS operators users may paste in from AWS docs: named, so the error says "not supported" rather than "unknown". */
const UNSUPPORTED_SNS_OPERATORS = new Set(['equals-ignore-case', 'cidr', 'wildcard']);

// ---------------------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------------------

/** Validates untrusted JSON; returns the typed policy or every error found. */
export function validateFilterPolicy(
  input: unknown,
): { ok: true; policy: FilterPolicy } | { ok: false; errors: PolicyError[] } {
  const errors: PolicyError[] = [];
  if (!isPlainObject(input)) {
    const got = input === null ? 'null' : Array.isArray(input) ? 'an array' : `a ${typeof input}`;
    return {
      ok: false,
      errors: [
        { path: '', message: `A filter policy must be a JSON object such as {"severity": ["critical"]}; got ${got}.` },
      ],
    };
  }

  const keys = Object.keys(input);
  const { maxKeys, maxCombinations, maxConditionsPerKey } = FILTER_POLICY_LIMITS;
  if (keys.length > maxKeys) {
    errors.push({ path: '', message: `A filter policy has at most ${maxKeys} keys; this one has ${keys.length}.` });
  }

  const policy: FilterPolicy = {};
  // Every list of conditions as written, valid key or not, is what the combination limit counts. No prototype: an
  // own `__proto__` key of parsed JSON stays a key.
  const lists = Object.create(null) as Record<string, unknown[]>;
  for (const key of keys) {
    const keyError = checkKey(key);
    if (keyError) errors.push({ path: key, message: keyError });

    const value = input[key];
    if (!Array.isArray(value)) {
      const hint = isScalar(value) ? ` Wrap it in an array: [${JSON.stringify(value)}].` : '';
      errors.push({
        path: key,
        message: `The conditions for ${key} must be a non-empty array, e.g. ["eu"] or [{"prefix": "eu-"}].${hint}`,
      });
      continue;
    }
    lists[key] = value;
    if (value.length === 0) {
      errors.push({ path: key, message: `${key} needs at least one condition; remove the key to not filter on it.` });
      continue;
    }
    if (value.length > maxConditionsPerKey) {
      errors.push({
        path: key,
        message: `A key has at most ${maxConditionsPerKey} conditions; ${key} has ${value.length}.`,
      });
      continue;
    }
    const conditions: Condition[] = [];
    value.forEach((raw, i) => {
      const condition = checkCondition(raw, key, `${key}.${i}`, errors);
      if (condition !== undefined) conditions.push(condition);
    });
    if (!keyError) policy[key] = conditions;
  }

  const combinations = combinationCount(lists);
  if (combinations > maxCombinations) {
    errors.push({
      path: '',
      message:
        `A filter policy allows at most ${maxCombinations} combinations (the product of the number of conditions ` +
        `of each key); this one has ${combinations}. Split it across subscriptions or use prefix/numeric conditions.`,
    });
  }

  if (errors.length === 0) return { ok: true, policy };
  if (errors.length > MAX_ERRORS) {
    const more = errors.length - MAX_ERRORS;
    errors.length = MAX_ERRORS;
    errors.push({ path: '', message: `…and ${more} more errors; fix the ones above first.` });
  }
  return { ok: false, errors };
}

/** The error message for a policy key, or null when the key is valid. */
function checkKey(key: string): string | null {
  const { maxStringLength, maxPathDepth } = FILTER_POLICY_LIMITS;
  if (key.length > maxStringLength)
    return `Keys are at most ${maxStringLength} characters; this one has ${key.length}.`;
  if (STRING_FIELDS.has(key)) return null;
  if (key === 'data') return 'data itself cannot be matched; name a field inside it, e.g. data.orderId.';
  if (!key.startsWith('data.')) {
    const suggestion = SEGMENT.test(key) ? ` To filter on the event's data, use "data.${key}".` : '';
    return `Unknown key "${key}": keys are type, severity, source or data.<path> (e.g. data.order.total).${suggestion}`;
  }
  const segments = key.slice(5).split('.');
  if (segments.length > maxPathDepth) {
    return `A data path is at most ${maxPathDepth} levels deep; ${key} has ${segments.length}.`;
  }
  // Event data can never hold these keys (docs/design.md#api-conventions), so a path through one never matches.
  const refused = segments.find((s) => FORBIDDEN_JSON_KEYS.has(s));
  if (refused) return `"${refused}" is not allowed in a data path: event data never holds such a key.`;
  const bad = segments.findIndex((s) => !SEGMENT.test(s));
  if (bad !== -1) {
    const what = segments[bad] === '' ? 'is empty' : `is "${segments[bad]}"`;
    return `A data path is dot-separated names made of letters, digits, _ and -; part ${bad + 1} of ${key} ${what}.`;
  }
  return null;
}

/** Validates one condition; records errors under `path` and returns a clean copy when it is valid. */
function checkCondition(raw: unknown, key: string, path: string, errors: PolicyError[]): Condition | undefined {
  const fail = (message: string): undefined => {
    errors.push({ path, message });
    return undefined;
  };
  // type, severity and source are always strings: a condition that can only match other types would silently
  // never match, which is exactly the kind of quiet drop this service promises not to have.
  const stringField = STRING_FIELDS.has(key);
  const neverMatches = (what: string) => fail(`${key} is always a string, so ${what} can never match it.`);

  if (raw === null) {
    return fail('null is not a supported condition; to match a key that is absent use {"exists": false}.');
  }
  switch (typeof raw) {
    case 'string': {
      const tooLong = checkString(raw, 'A string condition');
      if (tooLong) return fail(tooLong);
      if (key === 'severity' && !SEVERITIES.has(raw)) {
        return fail(
          `severity is one of info, warning or critical (lower case), so ${JSON.stringify(raw)} can never match.`,
        );
      }
      return raw;
    }
    case 'number':
      if (!Number.isFinite(raw)) return fail('A number condition must be a finite number.');
      return stringField ? neverMatches(`the number ${raw}`) : raw;
    case 'boolean':
      return stringField ? neverMatches(`the boolean ${raw}`) : raw;
    case 'object':
      break;
    default:
      return fail(`A condition is a string, number, boolean or an object with one of ${OPERATORS}.`);
  }
  if (Array.isArray(raw)) {
    return fail("A condition cannot be an array; list the alternatives directly in the key's array of conditions.");
  }
  const ops = Object.keys(raw);
  if (ops.length !== 1) {
    return fail(`A condition object has exactly one operator (${OPERATORS}); this one has ${ops.length}.`);
  }
  const op = ops[0]!;
  const operand = (raw as Record<string, unknown>)[op];
  switch (op) {
    case 'prefix':
    case 'suffix': {
      const problem = checkAffix(operand, op);
      return problem ? fail(problem) : op === 'prefix' ? { prefix: operand as string } : { suffix: operand as string };
    }
    case 'exists':
      if (typeof operand !== 'boolean') return fail('exists takes true or false, e.g. {"exists": true}.');
      return { exists: operand };
    case 'numeric': {
      if (stringField) return neverMatches('a numeric condition');
      const checked = checkNumeric(operand);
      return typeof checked === 'string' ? fail(checked) : { numeric: checked };
    }
    case 'anything-but': {
      const checked = checkAnythingBut(operand);
      return checked.ok ? { 'anything-but': checked.value } : fail(checked.message);
    }
    default:
      if (UNSUPPORTED_SNS_OPERATORS.has(op)) {
        return fail(`The SNS operator "${op}" is not supported here; use ${OPERATORS}.`);
      }
      return fail(`Unknown operator "${op}"; a condition object uses one of ${OPERATORS}.`);
  }
}

function checkString(s: string, what: string): string | null {
  const max = FILTER_POLICY_LIMITS.maxStringLength;
  return s.length > max ? `${what} is at most ${max} characters; this one has ${s.length}.` : null;
}

function checkAffix(operand: unknown, op: 'prefix' | 'suffix'): string | null {
  if (typeof operand !== 'string')
    return `${op} takes a string, e.g. {"${op}": "${op === 'prefix' ? 'eu-' : '.pdf'}"}.`;
  if (operand === '') return `An empty ${op} would match every string; use {"exists": true} instead.`;
  return checkString(operand, `A ${op}`);
}

function checkNumeric(operand: unknown): [NumericOp, number] | [NumericOp, number, NumericOp, number] | string {
  const shape = 'numeric takes [op, n] or a range [">" or ">=", low, "<" or "<=", high], e.g. [">=", 100].';
  if (!Array.isArray(operand) || (operand.length !== 2 && operand.length !== 4)) return shape;
  for (let i = 0; i < operand.length; i += 2) {
    const op: unknown = operand[i];
    const n: unknown = operand[i + 1];
    if (typeof op !== 'string' || !NUMERIC_OPS.has(op)) {
      return `${JSON.stringify(op)} is not a numeric operator; use =, <, <=, > or >=.`;
    }
    if (typeof n !== 'number' || !Number.isFinite(n)) {
      const shown = typeof n === 'number' ? n : JSON.stringify(n);
      return `numeric compares with numbers; ${shown} after "${op}" is not one.`;
    }
  }
  if (operand.length === 2) return [operand[0] as NumericOp, operand[1] as number];
  const [lowOp, low, highOp, high] = operand as [NumericOp, number, NumericOp, number];
  if ((lowOp !== '>' && lowOp !== '>=') || (highOp !== '<' && highOp !== '<=')) {
    return `A numeric range is [">" or ">=", low, "<" or "<=", high]; got ${JSON.stringify(operand)}.`;
  }
  if (!(low < high)) return `A numeric range needs its lower bound below its upper bound; got ${low} and ${high}.`;
  return [lowOp, low, highOp, high];
}

function checkAnythingBut(operand: unknown): { ok: true; value: AnythingBut } | { ok: false; message: string } {
  const shape =
    'anything-but takes a string, a number, a non-empty array of strings and numbers, ' +
    'or {"prefix": …} / {"suffix": …}.';
  const scalar = (v: unknown): string | null => {
    if (typeof v === 'string') return checkString(v, 'An anything-but value');
    if (typeof v === 'number') return Number.isFinite(v) ? null : shape;
    return shape;
  };
  if (typeof operand === 'string' || typeof operand === 'number') {
    const problem = scalar(operand);
    return problem ? { ok: false, message: problem } : { ok: true, value: operand };
  }
  if (Array.isArray(operand)) {
    const max = FILTER_POLICY_LIMITS.maxConditionsPerKey;
    if (operand.length === 0) return { ok: false, message: shape };
    if (operand.length > max) {
      return { ok: false, message: `anything-but lists at most ${max} values; this one has ${operand.length}.` };
    }
    for (const v of operand) {
      const problem = scalar(v);
      if (problem) return { ok: false, message: problem };
    }
    return { ok: true, value: operand.slice() as Array<string | number> };
  }
  if (isPlainObject(operand)) {
    const ops = Object.keys(operand);
    const op = ops[0];
    if (ops.length === 1 && (op === 'prefix' || op === 'suffix')) {
      const problem = checkAffix(operand[op], op);
      if (problem) return { ok: false, message: `In anything-but: ${problem}` };
      const s = operand[op] as string;
      return { ok: true, value: op === 'prefix' ? { prefix: s } : { suffix: s } };
    }
  }
  return { ok: false, message: shape };
}

function isScalar(v: unknown): v is string | number | boolean {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/**
 * The number of combinations SNS counts: the product of the lengths of the condition arrays (a key without a list
 * counts 0). The one count behind the limit of {@link validateFilterPolicy} and the SNS FilterPolicy translation.
 */
export function combinationCount(policy: Readonly<Record<string, readonly unknown[] | undefined>>): number {
  let n = 1;
  for (const key in policy) n *= policy[key]?.length ?? 0;
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation (hot path: no regexes, no JSON, no per-call compilation)
// ---------------------------------------------------------------------------------------------------------------

/** Evaluates; on no-match says which key failed and why (for the `evaluate` dry run and diagnosis). */
export type Verdict = { match: true } | { match: false; key: string; reason: string };

const MATCH: Verdict = Object.freeze({ match: true });

/**
 * Evaluates a policy against an event; a null/undefined policy matches everything. On no-match, `key` is the first
 * failing key (in the policy's key order) and `reason` says what the event held there.
 */
export function evaluateFilterPolicy(policy: FilterPolicy | null | undefined, event: FilterableEvent): Verdict {
  if (policy == null) return MATCH;
  for (const key in policy) {
    const conditions = policy[key];
    const value = resolve(event, key);
    if (!Array.isArray(conditions) || !anyConditionHolds(conditions, value)) {
      return { match: false, key, reason: explain(key, value, conditions) };
    }
  }
  return MATCH;
}

/** The event's value at a policy key; `undefined` means missing (JSON never holds undefined, so nothing is lost). */
function resolve(event: FilterableEvent, key: string): unknown {
  switch (key) {
    case 'type':
      return event.type;
    case 'severity':
      return event.severity;
    case 'source':
      // The column is null when the publisher named no source: that is absence, not a value.
      return event.source ?? undefined;
  }
  if (!key.startsWith('data.')) return undefined;
  // Walk the dot path with indexOf rather than split(): no array per call.
  let current: unknown = event.data;
  let start = 5;
  for (;;) {
    const dot = key.indexOf('.', start);
    const segment = dot === -1 ? key.slice(start) : key.slice(start, dot);
    current = Array.isArray(current) ? collect(current, segment) : field(current, segment);
    if (current === undefined || dot === -1) return current;
    start = dot + 1;
  }
}

function field(container: unknown, name: string): unknown {
  if (container === null || typeof container !== 'object') return undefined;
  // Own properties only: `data.constructor` must not reach Object.prototype.
  return Object.hasOwn(container, name) ? (container as Record<string, unknown>)[name] : undefined;
}

/**
 * `name` from every object in a (possibly nested) array; undefined when no element has it. Iterative: data is
 * untrusted.
 */
function collect(array: unknown[], name: string): unknown[] | undefined {
  const out: unknown[] = [];
  const stack: unknown[] = [array];
  while (stack.length > 0) {
    const item = stack.pop();
    if (Array.isArray(item)) {
      for (let i = item.length - 1; i >= 0; i--) stack.push(item[i]);
    } else {
      const v = field(item, name);
      if (v !== undefined) out.push(v);
    }
  }
  return out.length > 0 ? out : undefined;
}

function anyConditionHolds(conditions: readonly Condition[], value: unknown): boolean {
  for (const c of conditions) if (conditionHolds(c, value)) return true;
  return false;
}

/**
 * Whether one condition holds for the event's value at its key (`undefined` = missing): the evaluator's answer for
 * a single condition, which the SNS FilterPolicy translation asks too.
 */
export function conditionHolds(c: Condition, value: unknown): boolean {
  // Presence is about the key, not its elements: an empty array is present.
  if (typeof c === 'object' && c !== null && 'exists' in c) return c.exists === (value !== undefined);
  return value !== undefined && holdsForAny(c, value);
}

/** SNS semantics: an array value matches if any element (at any nesting) does. */
function holdsForAny(c: Condition, value: unknown): boolean {
  if (!Array.isArray(value)) return holds(c, value);
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (Array.isArray(item)) {
      for (let i = item.length - 1; i >= 0; i--) stack.push(item[i]);
    } else if (holds(c, item)) {
      return true;
    }
  }
  return false;
}

/** One condition against one present, non-array value. */
function holds(c: Condition, v: unknown): boolean {
  switch (typeof c) {
    case 'string':
    case 'boolean':
      return v === c;
    case 'number':
      // === compares numerically: 1 and 1.0 are the same JSON number.
      return typeof v === 'number' && v === c;
  }
  if (c === null || typeof c !== 'object') return false;
  if ('prefix' in c) return typeof v === 'string' && typeof c.prefix === 'string' && v.startsWith(c.prefix);
  if ('suffix' in c) return typeof v === 'string' && typeof c.suffix === 'string' && v.endsWith(c.suffix);
  if ('numeric' in c) return typeof v === 'number' && numericHolds(c.numeric, v);
  if ('anything-but' in c) return !excluded(c['anything-but'], v);
  return false;
}

function numericHolds(spec: readonly unknown[], v: number): boolean {
  if (!Array.isArray(spec)) return false;
  if (!compare(spec[0], spec[1], v)) return false;
  return spec.length < 4 || compare(spec[2], spec[3], v);
}

function compare(op: unknown, n: unknown, v: number): boolean {
  if (typeof n !== 'number') return false;
  switch (op) {
    case '=':
      return v === n;
    case '<':
      return v < n;
    case '<=':
      return v <= n;
    case '>':
      return v > n;
    case '>=':
      return v >= n;
    default:
      return false;
  }
}

/** Whether `anything-but` excludes v (so the condition fails for it). */
function excluded(operand: AnythingBut, v: unknown): boolean {
  if (Array.isArray(operand)) return operand.includes(v as string | number);
  if (typeof operand === 'object' && operand !== null) {
    if (typeof v !== 'string') return false;
    if ('prefix' in operand) return v.startsWith(operand.prefix);
    if ('suffix' in operand) return v.endsWith(operand.suffix);
    return false;
  }
  return v === operand;
}

// Reasons are built only on a no-match, so JSON is fine here.
const MAX_RENDERED = 200;

function explain(key: string, value: unknown, conditions: unknown): string {
  if (!Array.isArray(conditions)) return `${key} has no valid list of conditions`;
  if (value === undefined) return `${key} is missing`;
  const wanted = render(conditions);
  return Array.isArray(value)
    ? `${key} is ${render(value)}, and no element satisfies any of ${wanted}`
    : `${key} is ${render(value)}, which satisfies none of ${wanted}`;
}

function render(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > MAX_RENDERED ? `${s.slice(0, MAX_RENDERED)}…` : s;
}

// ---------------------------------------------------------------------------------------------------------------
// Event types
// ---------------------------------------------------------------------------------------------------------------

/**
 * Subscription eventTypes: null/undefined/empty = all; entries are exact types or `prefix.*` (e.g. `order.*` matches
 * `order.paid` and `order.refund.partial` but not `orders.x` nor `order`); `*` matches all.
 */
export function matchesEventTypes(eventTypes: readonly string[] | null | undefined, type: string): boolean {
  if (eventTypes == null || eventTypes.length === 0) return true;
  for (const pattern of eventTypes) {
    if (pattern === '*' || pattern === type) return true;
    if (pattern.endsWith('.*')) {
      // Keep the dot: `order.*` must not match `orders.x`, and must not match `order` itself.
      const prefix = pattern.slice(0, -1);
      if (type.length > prefix.length && type.startsWith(prefix)) return true;
    }
  }
  return false;
}

const EVENT_TYPE_PATTERN = /^[a-z0-9_]+(?:\.[a-z0-9_]+)*(?:\.\*)?$/;

/** Validates an eventTypes entry's syntax: `*`, or lower-case dotted segments [a-z0-9_]+ optionally ending in `.*`. */
export function isValidEventTypePattern(p: string): boolean {
  return p === '*' || (p.length <= FILTER_POLICY_LIMITS.maxStringLength && EVENT_TYPE_PATTERN.test(p));
}
