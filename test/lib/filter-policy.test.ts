/**
 * The one filter-policy evaluator (docs/design.md#events-settings-and-matching): table tests per condition kind,
 * validation errors per limit and shape, and fast-check properties (AND/OR laws, totality, verdict blame) with a
 * fixed seed so failures reproduce.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Condition,
  combinationCount,
  evaluateFilterPolicy,
  type FilterableEvent,
  type FilterPolicy,
  isValidEventTypePattern,
  matchesEventTypes,
  validateFilterPolicy,
} from '../../src/lib/filter-policy.ts';

const PROPERTY = { seed: 42, numRuns: 200 } as const;

function event(
  data: Record<string, unknown> = {},
  fields: Partial<Omit<FilterableEvent, 'data'>> = {},
): FilterableEvent {
  return { type: 'order.paid', severity: 'info', source: 'orders', data, ...fields };
}

/** Validates first, so every table policy is also a policy the API would have accepted. */
function valid(input: unknown): FilterPolicy {
  const r = validateFilterPolicy(input);
  if (!r.ok) throw new Error(`policy rejected: ${JSON.stringify(r.errors)}`);
  return r.policy;
}

function matches(policy: unknown, ev: FilterableEvent): boolean {
  return evaluateFilterPolicy(valid(policy), ev).match;
}

describe('condition kinds', () => {
  // [name, conditions on data.v, value of data.v (undefined = absent), expected]
  const table: Array<[string, unknown[], unknown, boolean]> = [
    // exact strings: case-sensitive, type-strict
    ['string equal', ['eu'], 'eu', true],
    ['string differs', ['eu'], 'us', false],
    ['string is case-sensitive', ['eu'], 'EU', false],
    ['string never equals a number', ['1'], 1, false],
    // exact numbers: numeric comparison
    ['number equal', [1], 1, true],
    ['1 matches 1.0', [1], 1.0, true],
    ['number differs', [1], 2, false],
    ['number never equals a numeric string', [1], '1', false],
    ['decimal equal', [0.1], 0.1, true],
    // booleans
    ['true equals true', [true], true, true],
    ['true is not 1', [true], 1, false],
    ['false equals false', [false], false, true],
    ['false is not missing', [false], undefined, false],
    // prefix / suffix: strings only
    ['prefix matches', [{ prefix: 'eu-' }], 'eu-west-1', true],
    ['prefix equal to value', [{ prefix: 'eu-' }], 'eu-', true],
    ['prefix differs', [{ prefix: 'eu-' }], 'us-east-1', false],
    ['prefix ignores numbers', [{ prefix: '1' }], 12, false],
    ['suffix matches', [{ suffix: '.pdf' }], 'invoice.pdf', true],
    ['suffix differs', [{ suffix: '.pdf' }], 'invoice.png', false],
    ['suffix is case-sensitive', [{ suffix: '.pdf' }], 'INVOICE.PDF', false],
    // anything-but
    ['anything-but list: other value', [{ 'anything-but': ['red', 'blue'] }], 'green', true],
    ['anything-but list: listed value', [{ 'anything-but': ['red', 'blue'] }], 'blue', false],
    ['anything-but numbers: listed', [{ 'anything-but': [1, 2] }], 2.0, false],
    ['anything-but numbers: other', [{ 'anything-but': [1, 2] }], 3, true],
    ['anything-but number vs string', [{ 'anything-but': [1] }], '1', true],
    ['anything-but single string', [{ 'anything-but': 'red' }], 'red', false],
    ['anything-but single string: other', [{ 'anything-but': 'red' }], 'green', true],
    ['anything-but single number', [{ 'anything-but': 0 }], 0, false],
    ['anything-but prefix: excluded', [{ 'anything-but': { prefix: 'test-' } }], 'test-42', false],
    ['anything-but prefix: other', [{ 'anything-but': { prefix: 'test-' } }], 'prod-42', true],
    ['anything-but prefix: a number is not excluded', [{ 'anything-but': { prefix: '1' } }], 12, true],
    ['anything-but suffix: excluded', [{ 'anything-but': { suffix: '@example.com' } }], 'a@example.com', false],
    ['anything-but on a missing value', [{ 'anything-but': ['red'] }], undefined, false],
    ['anything-but on null (present)', [{ 'anything-but': ['red'] }], null, true],
    // exists
    ['exists true: present', [{ exists: true }], 'x', true],
    ['exists true: null counts as present', [{ exists: true }], null, true],
    ['exists true: empty array is present', [{ exists: true }], [], true],
    ['exists true: absent', [{ exists: true }], undefined, false],
    ['exists false: absent', [{ exists: false }], undefined, true],
    ['exists false: present', [{ exists: false }], 0, false],
    ['exists false: null is present', [{ exists: false }], null, false],
    // numeric
    ['numeric =', [{ numeric: ['=', 5] }], 5, true],
    ['numeric = differs', [{ numeric: ['=', 5] }], 5.0001, false],
    ['numeric >', [{ numeric: ['>', 100] }], 100.5, true],
    ['numeric > at bound', [{ numeric: ['>', 100] }], 100, false],
    ['numeric >=', [{ numeric: ['>=', 100] }], 100, true],
    ['numeric <', [{ numeric: ['<', 0] }], -1, true],
    ['numeric < at bound', [{ numeric: ['<', 0] }], 0, false],
    ['numeric <=', [{ numeric: ['<=', 0] }], 0, true],
    ['numeric range inside', [{ numeric: ['>', 0, '<=', 150] }], 150, true],
    ['numeric range lower bound excluded', [{ numeric: ['>', 0, '<=', 150] }], 0, false],
    ['numeric range above', [{ numeric: ['>=', 0, '<', 150] }], 150, false],
    ['numeric ignores numeric strings', [{ numeric: ['>', 1] }], '5', false],
    ['numeric ignores booleans', [{ numeric: ['>', 0] }], true, false],
    ['numeric on missing', [{ numeric: ['<', 1] }], undefined, false],
    // OR within a key
    ['OR: second condition matches', ['us', { prefix: 'eu-' }], 'eu-west-1', true],
    ['OR: none matches', ['us', { prefix: 'eu-' }], 'ap-south-1', false],
    ['OR: exists false or a value, absent', [{ exists: false }, 'x'], undefined, true],
    // objects are only matched by exists and anything-but
    ['exact string vs object', ['x'], { a: 'x' }, false],
    ['exists vs object', [{ exists: true }], { a: 1 }, true],
  ];

  it.each(table)('%s', (_name, conditions, value, expected) => {
    const data = value === undefined ? {} : { v: value };
    expect(matches({ 'data.v': conditions }, event(data))).toBe(expected);
  });
});

describe('arrays in the event data (SNS: any element)', () => {
  const table: Array<[string, unknown[], unknown, boolean]> = [
    ['exact: one element equals', ['soccer'], ['rugby', 'soccer'], true],
    ['exact: none equals', ['golf'], ['rugby', 'soccer'], false],
    ['numeric: one element in range', [{ numeric: ['>', 10] }], [1, 2, 30], true],
    ['numeric: none in range', [{ numeric: ['>', 10] }], [1, 2, 3], false],
    ['prefix on mixed array', [{ prefix: 'eu' }], [1, null, 'eu-west'], true],
    ['anything-but: one element not excluded', [{ 'anything-but': ['red'] }], ['red', 'blue'], true],
    ['anything-but: every element excluded', [{ 'anything-but': ['red'] }], ['red', 'red'], false],
    ['anything-but: empty array has no element', [{ 'anything-but': ['red'] }], [], false],
    ['exact: empty array has no element', ['red'], [], false],
    ['exists looks at presence, not elements', [{ exists: false }], [], false],
    ['nested arrays are searched', ['deep'], [['a', ['deep']]], true],
  ];
  it.each(table)('%s', (_name, conditions, value, expected) => {
    expect(matches({ 'data.v': conditions }, event({ v: value }))).toBe(expected);
  });

  it('a path through an array of objects collects the field from every element', () => {
    const data = { items: [{ sku: 'TSHIRT-RED-M', qty: 1 }, { sku: 'MUG-01', qty: 3 }, { note: 'no sku' }] };
    expect(matches({ 'data.items.sku': ['MUG-01'] }, event(data))).toBe(true);
    expect(matches({ 'data.items.sku': [{ prefix: 'TSHIRT-' }] }, event(data))).toBe(true);
    expect(matches({ 'data.items.qty': [{ numeric: ['>', 2] }] }, event(data))).toBe(true);
    expect(matches({ 'data.items.sku': ['CAP-9'] }, event(data))).toBe(false);
    expect(matches({ 'data.items.sku': [{ exists: true }] }, event(data))).toBe(true);
    expect(matches({ 'data.items.colour': [{ exists: false }] }, event(data))).toBe(true);
    expect(matches({ 'data.items.sku': [{ exists: true }] }, event({ items: [] }))).toBe(false);
  });

  it('survives deeply nested arrays without recursion', () => {
    let deep: unknown = 'bottom';
    for (let i = 0; i < 50_000; i++) deep = [deep];
    expect(matches({ 'data.v': ['bottom'] }, event({ v: deep }))).toBe(true);
    expect(matches({ 'data.v.x': [{ exists: true }] }, event({ v: deep }))).toBe(false);
  });
});

describe('keys and missing values', () => {
  it('walks nested data paths', () => {
    const data = { order: { total: 2499, currency: 'INR', customer: { tier: 'gold' } } };
    expect(matches({ 'data.order.total': [{ numeric: ['>=', 1000] }] }, event(data))).toBe(true);
    expect(matches({ 'data.order.customer.tier': ['gold'] }, event(data))).toBe(true);
    expect(matches({ 'data.order.customer.tier': ['silver'] }, event(data))).toBe(false);
  });

  const missing: Array<[string, Record<string, unknown>]> = [
    ['absent top-level field', {}],
    ['absent nested field', { order: {} }],
    ['path through a string', { order: 'ord_1' }],
    ['path through null', { order: null }],
    ['path through a number', { order: 5 }],
  ];
  it.each(missing)('%s counts as missing', (_name, data) => {
    const key = 'data.order.total';
    for (const c of [
      'x',
      1,
      true,
      { prefix: 'x' },
      { suffix: 'x' },
      { numeric: ['>', 0] },
      { 'anything-but': ['x'] },
      { exists: true },
    ]) {
      expect(matches({ [key]: [c] }, event(data))).toBe(false);
    }
    expect(matches({ [key]: [{ exists: false }] }, event(data))).toBe(true);
    expect(evaluateFilterPolicy(valid({ [key]: ['x'] }), event(data))).toEqual({
      match: false,
      key,
      reason: 'data.order.total is missing',
    });
  });

  it('never reads inherited properties', () => {
    // Validation refuses data paths through __proto__/constructor/prototype (event data cannot hold such keys); the
    // evaluator still never reads inherited properties, e.g. for a policy stored before that rule.
    const raw = (policy: unknown, ev: FilterableEvent) => evaluateFilterPolicy(policy as FilterPolicy, ev).match;
    expect(raw({ 'data.constructor': [{ exists: true }] }, event({}))).toBe(false);
    expect(matches({ 'data.toString': [{ exists: false }] }, event({}))).toBe(true);
    expect(raw({ 'data.__proto__': [{ exists: true }] }, event({}))).toBe(false);
    expect(raw({ 'data.__proto__': ['x'] }, event(JSON.parse('{"__proto__": "x"}')))).toBe(true);
    for (const key of ['data.constructor', 'data.a.__proto__', 'data.prototype.x']) {
      const result = validateFilterPolicy({ [key]: [{ exists: true }] });
      expect(result.ok ? [] : result.errors.map((e) => e.path)).toEqual([key]);
    }
  });

  it('matches type, severity and source', () => {
    const ev = event({}, { type: 'payment.failed', severity: 'critical', source: 'payments' });
    expect(matches({ type: [{ prefix: 'payment.' }], severity: ['critical'], source: ['payments'] }, ev)).toBe(true);
    expect(matches({ type: [{ prefix: 'order.' }] }, ev)).toBe(false);
    expect(matches({ severity: [{ 'anything-but': ['info'] }] }, ev)).toBe(true);
    expect(matches({ severity: ['warning', 'critical'] }, ev)).toBe(true);
  });

  it('treats a null or absent source as missing', () => {
    expect(matches({ source: [{ exists: false }] }, event({}, { source: null }))).toBe(true);
    expect(matches({ source: [{ exists: false }] }, event({}, { source: undefined }))).toBe(true);
    expect(matches({ source: [{ 'anything-but': ['x'] }] }, event({}, { source: null }))).toBe(false);
    expect(matches({ source: [{ exists: true }] }, event({}, { source: 'orders' }))).toBe(true);
  });

  it('ANDs keys', () => {
    const policy = { severity: ['critical'], 'data.amount': [{ numeric: ['>', 100] }] };
    expect(matches(policy, event({ amount: 500 }, { severity: 'critical' }))).toBe(true);
    expect(matches(policy, event({ amount: 500 }, { severity: 'info' }))).toBe(false);
    expect(matches(policy, event({ amount: 5 }, { severity: 'critical' }))).toBe(false);
  });

  it('matches everything without a policy or with an empty one', () => {
    expect(evaluateFilterPolicy(null, event())).toEqual({ match: true });
    expect(evaluateFilterPolicy(undefined, event())).toEqual({ match: true });
    expect(evaluateFilterPolicy(valid({}), event())).toEqual({ match: true });
  });
});

describe('verdicts', () => {
  it('names the failing key, the value and the conditions', () => {
    const policy = valid({ severity: ['info'], 'data.amount': [{ numeric: ['>', 100] }] });
    expect(evaluateFilterPolicy(policy, event({ amount: 12 }))).toEqual({
      match: false,
      key: 'data.amount',
      reason: 'data.amount is 12, which satisfies none of [{"numeric":[">",100]}]',
    });
  });

  it('says when a key is missing', () => {
    expect(evaluateFilterPolicy(valid({ 'data.region': ['eu'] }), event({}))).toEqual({
      match: false,
      key: 'data.region',
      reason: 'data.region is missing',
    });
  });

  it('says that no element matched for arrays', () => {
    const v = evaluateFilterPolicy(valid({ 'data.tags': ['vip'] }), event({ tags: ['new', 'gift'] }));
    expect(v).toEqual({
      match: false,
      key: 'data.tags',
      reason: 'data.tags is ["new","gift"], and no element satisfies any of ["vip"]',
    });
  });

  it('blames the first failing key in policy order', () => {
    const policy = valid({ type: ['order.paid'], severity: ['critical'], source: ['x'] });
    const v = evaluateFilterPolicy(policy, event());
    expect(v.match).toBe(false);
    if (!v.match) {
      expect(v.key).toBe('severity');
      expect(v.reason).toBe('severity is "info", which satisfies none of ["critical"]');
    }
  });

  it('truncates huge values in the reason', () => {
    const v = evaluateFilterPolicy(valid({ 'data.blob': ['x'] }), event({ blob: 'y'.repeat(10_000) }));
    expect(v.match).toBe(false);
    if (!v.match) expect(v.reason.length).toBeLessThan(400);
  });
});

describe('validateFilterPolicy', () => {
  it('accepts every condition kind and returns the policy unchanged', () => {
    const input = {
      type: ['order.paid', { prefix: 'payment.' }],
      severity: [{ 'anything-but': ['info'] }],
      source: [{ exists: true }],
      'data.order.total': [{ numeric: ['>=', 100, '<', 5000] }, { numeric: ['=', 0] }, 7, true],
      'data.region': [
        'eu',
        { suffix: '-1' },
        { 'anything-but': { prefix: 'test-' } },
        { 'anything-but': 'x' },
        { exists: false },
      ],
    };
    const r = validateFilterPolicy(JSON.parse(JSON.stringify(input)));
    expect(r).toEqual({ ok: true, policy: input });
    if (r.ok) expect(combinationCount(r.policy)).toBe(2 * 1 * 1 * 4 * 5);
  });

  it('accepts the limits exactly', () => {
    const fiveKeys = { type: ['a'], source: ['b'], 'data.a': [1], 'data.b': [2], 'data.c': [3, 4, 5] };
    expect(validateFilterPolicy(fiveKeys).ok).toBe(true);
    const combos150 = {
      'data.a': Array.from({ length: 10 }, (_, i) => i),
      'data.b': Array.from({ length: 15 }, (_, i) => i),
    };
    expect(validateFilterPolicy(combos150).ok).toBe(true);
    expect(validateFilterPolicy({ 'data.a': Array.from({ length: 150 }, (_, i) => i) }).ok).toBe(true);
    expect(validateFilterPolicy({ 'data.a': ['s'.repeat(256)] }).ok).toBe(true);
    expect(validateFilterPolicy({ [`data.${Array(10).fill('x').join('.')}`]: [1] }).ok).toBe(true);
  });

  // [name, input, expected error path, message pattern]
  const invalid: Array<[string, unknown, string, RegExp]> = [
    ['null', null, '', /must be a JSON object.*got null/],
    ['an array', [{ type: ['x'] }], '', /must be a JSON object.*got an array/],
    ['a string', '{"type":["x"]}', '', /must be a JSON object.*got a string/],
    [
      'six keys',
      { type: ['a'], source: ['b'], 'data.a': [1], 'data.b': [2], 'data.c': [3], 'data.d': [4] },
      '',
      /^A filter policy has at most 5 keys; this one has 6\.$/,
    ],
    [
      '160 combinations',
      { 'data.a': Array.from({ length: 10 }, (_, i) => i), 'data.b': Array.from({ length: 16 }, (_, i) => i) },
      '',
      /at most 150 combinations.*this one has 160/,
    ],
    [
      '151 conditions on a key',
      { 'data.a': Array.from({ length: 151 }, (_, i) => i) },
      'data.a',
      /at most 150 conditions; data\.a has 151/,
    ],
    ['empty conditions', { 'data.a': [] }, 'data.a', /needs at least one condition/],
    ['a bare value', { 'data.a': 'eu' }, 'data.a', /must be a non-empty array.*Wrap it in an array: \["eu"\]/],
    ['an object value', { 'data.a': { prefix: 'x' } }, 'data.a', /must be a non-empty array/],
    ['unknown key', { amount: [1] }, 'amount', /Unknown key "amount".*use "data\.amount"/],
    ['bare data', { data: [{ exists: true }] }, 'data', /name a field inside it/],
    ['empty path segment', { 'data..x': [1] }, 'data..x', /part 1 of data\.\.x is empty/],
    ['trailing dot', { 'data.x.': [1] }, 'data.x.', /part 2 of data\.x\. is empty/],
    ['bad characters', { 'data.a b': [1] }, 'data.a b', /letters, digits, _ and -.*"a b"/],
    [
      'too deep',
      { [`data.${Array(11).fill('x').join('.')}`]: [1] },
      `data.${Array(11).fill('x').join('.')}`,
      /at most 10 levels deep.*has 11/,
    ],
    [
      'key too long',
      { [`data.${'k'.repeat(300)}`]: [1] },
      `data.${'k'.repeat(300)}`,
      /Keys are at most 256 characters/,
    ],
    ['string too long', { 'data.a': ['ok', 's'.repeat(257)] }, 'data.a.1', /at most 256 characters; this one has 257/],
    ['null condition', { 'data.a': [null] }, 'data.a.0', /null is not a supported condition.*exists/],
    ['array condition', { 'data.a': [['x']] }, 'data.a.0', /cannot be an array/],
    ['empty object condition', { 'data.a': [{}] }, 'data.a.0', /exactly one operator.*this one has 0/],
    ['two operators', { 'data.a': [{ prefix: 'a', suffix: 'b' }] }, 'data.a.0', /exactly one operator.*this one has 2/],
    ['unknown operator', { 'data.a': [{ regex: '.*' }] }, 'data.a.0', /Unknown operator "regex"/],
    [
      'unsupported SNS operator',
      { 'data.a': [{ 'equals-ignore-case': 'x' }] },
      'data.a.0',
      /SNS operator "equals-ignore-case" is not supported/,
    ],
    ['prefix not a string', { 'data.a': [{ prefix: 1 }] }, 'data.a.0', /prefix takes a string/],
    ['empty prefix', { 'data.a': [{ prefix: '' }] }, 'data.a.0', /empty prefix would match every string/],
    ['prefix too long', { 'data.a': [{ prefix: 'p'.repeat(257) }] }, 'data.a.0', /at most 256 characters/],
    ['suffix not a string', { 'data.a': [{ suffix: null }] }, 'data.a.0', /suffix takes a string/],
    ['exists not a boolean', { 'data.a': [{ exists: 'true' }] }, 'data.a.0', /exists takes true or false/],
    ['numeric not an array', { 'data.a': [{ numeric: 5 }] }, 'data.a.0', /numeric takes \[op, n\]/],
    ['numeric of three', { 'data.a': [{ numeric: ['>', 1, '<'] }] }, 'data.a.0', /numeric takes \[op, n\]/],
    ['numeric bad operator', { 'data.a': [{ numeric: ['!=', 1] }] }, 'data.a.0', /"!=" is not a numeric operator/],
    [
      'numeric compares with a string',
      { 'data.a': [{ numeric: ['>', '10'] }] },
      'data.a.0',
      /"10" after ">" is not one/,
    ],
    [
      'numeric range in the wrong order',
      { 'data.a': [{ numeric: ['<', 10, '>', 1] }] },
      'data.a.0',
      /numeric range is \[">" or ">="/,
    ],
    ['numeric range two lower bounds', { 'data.a': [{ numeric: ['>', 1, '>=', 10] }] }, 'data.a.0', /numeric range is/],
    [
      'numeric empty range',
      { 'data.a': [{ numeric: ['>', 10, '<', 10] }] },
      'data.a.0',
      /lower bound below its upper bound; got 10 and 10/,
    ],
    ['numeric infinity', { 'data.a': [{ numeric: ['>', Infinity] }] }, 'data.a.0', /Infinity after ">" is not one/],
    ['NaN', { 'data.a': [Number.NaN] }, 'data.a.0', /finite number/],
    ['anything-but empty', { 'data.a': [{ 'anything-but': [] }] }, 'data.a.0', /anything-but takes/],
    ['anything-but booleans', { 'data.a': [{ 'anything-but': [true] }] }, 'data.a.0', /anything-but takes/],
    ['anything-but null', { 'data.a': [{ 'anything-but': null }] }, 'data.a.0', /anything-but takes/],
    ['anything-but exists', { 'data.a': [{ 'anything-but': { exists: true } }] }, 'data.a.0', /anything-but takes/],
    [
      'anything-but empty prefix',
      { 'data.a': [{ 'anything-but': { prefix: '' } }] },
      'data.a.0',
      /In anything-but: An empty prefix/,
    ],
    [
      'anything-but too many',
      { 'data.a': [{ 'anything-but': Array.from({ length: 151 }, (_, i) => i) }] },
      'data.a.0',
      /at most 150 values/,
    ],
    [
      'anything-but long string',
      { 'data.a': [{ 'anything-but': ['s'.repeat(257)] }] },
      'data.a.0',
      /at most 256 characters/,
    ],
    ['number on type', { type: [5] }, 'type.0', /type is always a string, so the number 5 can never match it/],
    ['boolean on source', { source: [true] }, 'source.0', /source is always a string/],
    [
      'numeric on severity',
      { severity: [{ numeric: ['>', 1] }] },
      'severity.0',
      /severity is always a string, so a numeric condition/,
    ],
    [
      'unknown severity',
      { severity: ['Critical'] },
      'severity.0',
      /info, warning or critical.*"Critical" can never match/,
    ],
  ];

  it.each(invalid)('rejects %s', (_name, input, path, message) => {
    const r = validateFilterPolicy(input);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const atPath = r.errors.filter((e) => e.path === path);
    expect(atPath.length, JSON.stringify(r.errors)).toBeGreaterThan(0);
    expect(atPath.map((e) => e.message).join(' | ')).toMatch(message);
    for (const e of r.errors) expect(e.message).toMatch(/[.!?]$/); // full sentences
  });

  it('reports every error, not just the first', () => {
    const r = validateFilterPolicy({
      amount: [1],
      'data.a': [{ prefix: 2 }, 'ok', { exists: 1 }],
      severity: ['urgent'],
    });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => e.path).sort()).toEqual(['amount', 'data.a.0', 'data.a.2', 'severity.0']);
  });

  it('caps a flood of errors with a summary', () => {
    const input = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`bad key ${i}`, [null]]));
    const r = validateFilterPolicy(input);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.length).toBe(51);
    expect(r.errors.at(-1)?.message).toMatch(/more errors/);
  });

  it('counts combinations as the product of condition counts', () => {
    expect(combinationCount({})).toBe(1);
    expect(combinationCount({ a: ['x'], b: ['x', 'y'], c: [1, 2, 3] })).toBe(6);
  });

  it('validation counts the keys whose conditions are an array, whether the key is valid or not', () => {
    const range = (n: number) => Array.from({ length: n }, (_, i) => i);
    const combinationErrors = (input: unknown) => {
      const r = validateFilterPolicy(input);
      return r.ok ? [] : r.errors.filter((e) => /combinations/.test(e.message)).map((e) => e.message);
    };
    // A value that is not an array is an error of its own, not a factor (a string's length is not a count).
    expect(combinationErrors({ 'data.a': 'x'.repeat(200), 'data.b': [1] })).toEqual([]);
    expect(combinationErrors({ 'data.a': { length: 200 }, 'data.b': range(150) })).toEqual([]);
    // An invalid key still counts, and so does an own __proto__ key of parsed JSON.
    expect(combinationErrors({ 'bad key': range(10), 'data.b': range(16) })).toEqual([
      expect.stringMatching(/this one has 160\./),
    ]);
    expect(
      combinationErrors(
        JSON.parse(`{"__proto__": ${JSON.stringify(range(16))}, "data.a": ${JSON.stringify(range(10))}}`),
      ),
    ).toEqual([expect.stringMatching(/this one has 160\./)]);
    // An empty list makes the product 0: that key's own error, no combinations error.
    expect(combinationErrors({ 'data.a': [], 'data.b': range(150), 'data.c': range(2) })).toEqual([]);
  });
});

describe('eventTypes', () => {
  const table: Array<[readonly string[] | null | undefined, string, boolean]> = [
    [null, 'order.paid', true],
    [undefined, 'order.paid', true],
    [[], 'order.paid', true],
    [['*'], 'campaign.failed', true],
    [['order.paid'], 'order.paid', true],
    [['order.paid'], 'order.paid.x', false],
    [['order.paid'], 'order.created', false],
    [['order.*'], 'order.paid', true],
    [['order.*'], 'order.refund.partial', true],
    [['order.*'], 'orders.x', false],
    [['order.*'], 'order', false],
    [['order.*'], 'order.', false],
    [['order.refund.*'], 'order.refund.partial', true],
    [['order.refund.*'], 'order.refunded', false],
    [['payment.failed', 'order.*'], 'order.paid', true],
    [['payment.failed', 'order.*'], 'campaign.started', false],
    [['Order.paid'], 'order.paid', false],
  ];
  it.each(table)('%j matches %s → %s', (patterns, type, expected) => {
    expect(matchesEventTypes(patterns, type)).toBe(expected);
  });

  const patterns: Array<[string, boolean]> = [
    ['*', true],
    ['order.paid', true],
    ['order.*', true],
    ['webhook.endpoint_disabled', true],
    ['a1.b_2.c3', true],
    ['order', true],
    ['', false],
    ['Order.paid', false],
    ['order.', false],
    ['.order', false],
    ['order..paid', false],
    ['order.*.paid', false],
    ['order*', false],
    ['*.paid', false],
    ['order.**', false],
    ['order-paid', false],
    ['order.paid ', false],
    [`a.${'b'.repeat(300)}`, false],
  ];
  it.each(patterns)('isValidEventTypePattern(%j) → %s', (p, expected) => {
    expect(isValidEventTypePattern(p)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------------------------

const DATA_KEYS = ['data.a', 'data.b', 'data.c.d', 'data.items.sku'] as const;
const STRING_KEYS = ['type', 'severity', 'source'] as const;
const ALL_KEYS = [...STRING_KEYS, ...DATA_KEYS];

// Small domains, so that random conditions and random events actually meet.
const str = fc.constantFrom('a', 'ab', 'b', 'eu-west', 'eu', 'order.paid', 'info', 'critical');
const num = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(0.5, 1.0, 2.5, -0.5));
const op = fc.constantFrom('=', '<', '<=', '>', '>=');
const affix = fc.constantFrom('a', 'e', 'eu', 'b', 'order.', '.paid', '-west');

const stringCondition: fc.Arbitrary<Condition> = fc.oneof(
  str,
  affix.map((prefix) => ({ prefix })),
  affix.map((suffix) => ({ suffix })),
  fc.array(fc.oneof(str, num), { minLength: 1, maxLength: 3 }).map((v) => ({ 'anything-but': v })),
  str.map((v) => ({ 'anything-but': v })),
  affix.map((prefix) => ({ 'anything-but': { prefix } })),
  fc.boolean().map((exists) => ({ exists })),
);
const severityCondition: fc.Arbitrary<Condition> = fc.oneof(
  fc.constantFrom('info', 'warning', 'critical'),
  stringCondition.filter((c) => typeof c !== 'string'),
);
const anyCondition: fc.Arbitrary<Condition> = fc.oneof(
  stringCondition,
  num,
  fc.boolean(),
  fc.tuple(op, num).map(([o, n]) => ({ numeric: [o, n] }) as Condition),
  fc
    .tuple(fc.constantFrom('>', '>='), num, fc.constantFrom('<', '<='), fc.integer({ min: 1, max: 4 }))
    .map(([o1, n1, o2, width]) => ({ numeric: [o1, n1, o2, n1 + width] }) as Condition),
  fc.oneof(num, fc.array(num, { minLength: 1, maxLength: 3 })).map((v) => ({ 'anything-but': v })),
);

function conditionFor(key: string): fc.Arbitrary<Condition> {
  if (key === 'severity') return severityCondition;
  return (STRING_KEYS as readonly string[]).includes(key) ? stringCondition : anyCondition;
}

/** Valid policies: at most 5 keys of up to 2 conditions each (≤ 32 combinations). */
const policyArb: fc.Arbitrary<FilterPolicy> = fc
  .subarray(ALL_KEYS, { minLength: 0, maxLength: 5 })
  .chain((keys) =>
    fc
      .tuple(...keys.map((k) => fc.array(conditionFor(k), { minLength: 1, maxLength: 2 })))
      .map((lists) => Object.fromEntries(keys.map((k, i) => [k, lists[i]!]))),
  );

const leaf = fc.oneof(str, num, fc.boolean(), fc.constant(null));
const slot = fc.option(fc.oneof(leaf, fc.array(leaf, { maxLength: 3 })), { nil: undefined });
const eventArb: fc.Arbitrary<FilterableEvent> = fc
  .record({
    type: fc.constantFrom('order.paid', 'order.created', 'payment.failed'),
    severity: fc.constantFrom('info', 'warning', 'critical'),
    source: fc.constantFrom('a', 'eu-west', 'orders', null, undefined),
    a: slot,
    b: slot,
    c: fc.option(fc.oneof(fc.record({ d: slot }), leaf), { nil: undefined }),
    items: fc.option(fc.array(fc.record({ sku: slot }, { requiredKeys: [] }), { maxLength: 3 }), { nil: undefined }),
  })
  .map(({ type, severity, source, ...rest }) => ({
    type,
    severity,
    source,
    data: Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
  }));

function pick(policy: FilterPolicy, keys: readonly string[]): FilterPolicy {
  return Object.fromEntries(keys.map((k) => [k, policy[k]!]));
}

describe('properties', () => {
  it('the generated policies are ones validateFilterPolicy accepts, unchanged', () => {
    fc.assert(
      fc.property(policyArb, (policy) => {
        expect(validateFilterPolicy(policy)).toEqual({ ok: true, policy });
      }),
      PROPERTY,
    );
  });

  it('(a) AND: a policy with keys A∪B matches iff the A part and the B part both match', () => {
    fc.assert(
      fc.property(policyArb, fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }), eventArb, (policy, side, ev) => {
        const keys = Object.keys(policy);
        const a = pick(
          policy,
          keys.filter((_, i) => side[i]),
        );
        const b = pick(
          policy,
          keys.filter((_, i) => !side[i]),
        );
        const whole = evaluateFilterPolicy(policy, ev).match;
        expect(whole).toBe(evaluateFilterPolicy(a, ev).match && evaluateFilterPolicy(b, ev).match);
      }),
      PROPERTY,
    );
  });

  it('(b) OR: [c1, c2] on a key matches iff [c1] or [c2] does', () => {
    const keyed = fc
      .constantFrom(...ALL_KEYS)
      .chain((key) => fc.tuple(fc.constant(key), conditionFor(key), conditionFor(key)));
    fc.assert(
      fc.property(keyed, eventArb, ([key, c1, c2], ev) => {
        const both = evaluateFilterPolicy({ [key]: [c1, c2] }, ev).match;
        const either =
          evaluateFilterPolicy({ [key]: [c1] }, ev).match || evaluateFilterPolicy({ [key]: [c2] }, ev).match;
        expect(both).toBe(either);
      }),
      PROPERTY,
    );
  });

  it('(c) evaluation is deterministic and total over arbitrary JSON data', () => {
    const data = fc.oneof(
      fc.dictionary(fc.constantFrom('a', 'b', 'c', 'items', 'z'), fc.jsonValue()),
      fc.dictionary(fc.string(), fc.jsonValue()),
    );
    fc.assert(
      fc.property(policyArb, eventArb, data, (policy, ev, d) => {
        const e = { ...ev, data: d as Record<string, unknown> };
        const first = evaluateFilterPolicy(policy, e);
        const second = evaluateFilterPolicy(policy, structuredClone(e));
        expect(second).toEqual(first);
      }),
      PROPERTY,
    );
  });

  it('(d) validateFilterPolicy never throws on arbitrary JSON, and what it accepts evaluates', () => {
    // Plain jsonValue rarely looks like a policy, so mix in policy-shaped junk.
    const policyish = fc.dictionary(
      fc.oneof(fc.constantFrom(...ALL_KEYS, 'data', 'data.', 'x'), fc.string()),
      fc.oneof(
        fc.array(fc.oneof(fc.jsonValue(), anyCondition as fc.Arbitrary<unknown>), { maxLength: 4 }),
        fc.jsonValue(),
      ),
      { maxKeys: 6 },
    );
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), policyish), eventArb, (input, ev) => {
        const r = validateFilterPolicy(input);
        if (r.ok) {
          const v = evaluateFilterPolicy(r.policy, ev);
          expect(typeof v.match).toBe('boolean');
          if (!v.match) expect(Object.keys(r.policy)).toContain(v.key);
        } else {
          expect(r.errors.length).toBeGreaterThan(0);
          for (const e of r.errors) {
            expect(typeof e.path).toBe('string');
            expect(e.message.length).toBeGreaterThan(10);
          }
        }
      }),
      PROPERTY,
    );
  });

  it('(e) on a no-match the blamed key is a policy key that fails on its own, and every key before it passes', () => {
    fc.assert(
      fc.property(policyArb, eventArb, (policy, ev) => {
        const v = evaluateFilterPolicy(policy, ev);
        if (v.match) {
          for (const k of Object.keys(policy)) expect(evaluateFilterPolicy(pick(policy, [k]), ev).match).toBe(true);
          return;
        }
        const keys = Object.keys(policy);
        expect(keys).toContain(v.key);
        expect(evaluateFilterPolicy(pick(policy, [v.key]), ev)).toEqual(v);
        for (const k of keys.slice(0, keys.indexOf(v.key))) {
          expect(evaluateFilterPolicy(pick(policy, [k]), ev).match).toBe(true);
        }
      }),
      PROPERTY,
    );
  });
});
