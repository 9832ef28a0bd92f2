/**
 * Support for test/app/fuzz.test.ts: a small JSON Schema → fast-check generator for the subset of JSON Schema the
 * served OpenAPI document uses, and the mutations that turn a valid body into an invalid one.
 */
import fc from 'fast-check';

type Json = Record<string, any>;

/** Per-property generators of known-good values (by property name), mixed with the schema-driven ones. */
export type Hints = Record<string, fc.Arbitrary<unknown>>;

const ODD_STRINGS = [
  '\ud800', // lone high surrogate
  'a\udfffb', // lone low surrogate
  '\u202egnp.exe', // RTL override
  'nul\u0000byte',
  '\ufeffbom',
  '👩‍👩‍👧‍👦🏳️‍🌈',
  'e\u0301\u0301\u0301',
  '\r\nX-Injected: 1',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  '../../etc/passwd',
  '%00',
  '',
  ' ',
];

export const oddString = fc.oneof(
  fc.constantFrom(...ODD_STRINGS),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
);

function resolve(schema: Json, doc: Json): Json {
  let s = schema;
  for (let i = 0; s?.$ref && i < 10; i++) {
    const name = String(s.$ref).replace('#/components/schemas/', '');
    const { $ref: _r, ...rest } = s;
    s = { ...doc.components.schemas[name], ...rest };
  }
  if (s?.allOf) {
    const { allOf, ...rest } = s;
    let merged: Json = {};
    for (const part of allOf as Json[]) merged = { ...merged, ...resolve(part, doc) };
    s = { ...merged, ...rest };
  }
  return s;
}

/** Schema-driven arbitrary of (mostly) valid values; strings with patterns are only "sometimes valid". */
export function arbFromSchema(
  schema: Json | undefined,
  doc: Json,
  hints: Hints = {},
  depth = 0,
  name?: string,
): fc.Arbitrary<unknown> {
  if (!schema || Object.keys(schema).length === 0 || (Object.keys(schema).length === 1 && 'description' in schema)) {
    return fc.jsonValue({ maxDepth: 2 });
  }
  const s = resolve(schema, doc);
  const generic = genericArb(s, doc, hints, depth);
  const hint = name !== undefined ? hints[name] : undefined;
  return hint ? fc.oneof({ arbitrary: hint, weight: 3 }, { arbitrary: generic, weight: 1 }) : generic;
}

function genericArb(s: Json, doc: Json, hints: Hints, depth: number): fc.Arbitrary<unknown> {
  if (s.anyOf || s.oneOf)
    return fc.oneof(...(s.anyOf ?? s.oneOf).map((x: Json) => arbFromSchema(x, doc, hints, depth + 1)));
  if (s.enum) return fc.constantFrom(...s.enum);
  if (s.const !== undefined) return fc.constant(s.const);
  const examples: unknown[] = [...(s.examples ?? []), ...(s.example !== undefined ? [s.example] : [])];
  if (Array.isArray(s.type)) {
    return fc.oneof(...s.type.map((t: string) => genericArb({ ...s, type: t }, doc, hints, depth)));
  }
  let base: fc.Arbitrary<unknown>;
  switch (s.type) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer':
      base = fc.integer({ min: s.minimum ?? -1000, max: s.maximum ?? 1_000_000 });
      break;
    case 'number':
      base = fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true, noDefaultInfinity: true });
      break;
    case 'string': {
      const min = s.minLength ?? 0;
      const max = Math.max(min, Math.min(s.maxLength ?? 40, 40));
      if (s.format === 'date-time') {
        base = fc.oneof(
          fc
            .date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true })
            .map((d) => d.toISOString()),
          fc.string({ maxLength: 30 }),
        );
      } else if (s.pattern) {
        base = fc.oneof(
          fc
            .stringMatching(new RegExp(s.pattern))
            .filter((x) => x.length >= min && x.length <= (s.maxLength ?? Infinity)),
          fc.string({ minLength: min, maxLength: max }),
        );
      } else {
        base = fc.string({ minLength: min, maxLength: max });
      }
      break;
    }
    case 'array': {
      const items = arbFromSchema(s.items, doc, hints, depth + 1);
      const minLength = s.minItems ?? 0;
      base = fc.array(items, { minLength, maxLength: Math.max(minLength, Math.min(s.maxItems ?? 4, 4)) });
      break;
    }
    case 'object':
    case undefined: {
      const props = (s.properties ?? {}) as Record<string, Json>;
      const required = new Set<string>(s.required ?? []);
      if (depth > 4) return fc.constant({});
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries(props)) model[k] = arbFromSchema(v, doc, hints, depth + 1, k);
      let obj: fc.Arbitrary<Record<string, unknown>> = fc.record(model, {
        requiredKeys: [...required].filter((k) => k in props),
      });
      if (s.additionalProperties && s.additionalProperties !== false && Object.keys(props).length === 0) {
        const valueArb = arbFromSchema(s.additionalProperties, doc, hints, depth + 1);
        obj = fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), valueArb, { maxKeys: 3 });
      }
      base = obj;
      break;
    }
    default:
      base = fc.jsonValue({ maxDepth: 2 });
  }
  return examples.length
    ? fc.oneof({ arbitrary: fc.constantFrom(...examples), weight: 1 }, { arbitrary: base, weight: 2 })
    : base;
}

/** Replaces the value at a random path in `value` (objects and arrays) by `replace(old)`. */
function atRandomPath(value: unknown, pick: number, replace: (old: unknown) => unknown): unknown {
  const paths: Array<Array<string | number>> = [[]];
  const walk = (v: unknown, p: Array<string | number>) => {
    if (p.length > 4) return;
    const children: Array<[string | number, unknown]> = Array.isArray(v)
      ? v.map((x, i) => [i, x])
      : v && typeof v === 'object'
        ? Object.entries(v)
        : [];
    for (const [k, x] of children) {
      paths.push([...p, k]);
      walk(x, [...p, k]);
    }
  };
  walk(value, []);
  const path = paths[pick % paths.length]!;
  if (path.length === 0) return replace(value);
  const clone = structuredClone(value) as any;
  let cur = clone;
  for (const key of path.slice(0, -1)) cur = cur[key];
  const last = path[path.length - 1]!;
  cur[last] = replace(cur[last]);
  return clone;
}

const WRONG_TYPES: unknown[] = [
  12345,
  -1,
  1.5,
  true,
  false,
  null,
  'a string',
  [],
  {},
  [1, 'x'],
  { nested: { deep: true } },
  1e308,
];

export type Mutation =
  | { kind: 'valid' }
  | { kind: 'dropKey'; pick: number }
  | { kind: 'extraKey'; pick: number; key: string }
  | { kind: 'wrongType'; pick: number; to: unknown }
  | { kind: 'hugeString'; pick: number }
  | { kind: 'hugeArray'; pick: number }
  | { kind: 'oddUnicode'; pick: number; s: string }
  | { kind: 'replaceBody'; to: unknown };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'valid' as const }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('dropKey' as const), pick: fc.nat() }), weight: 2 },
  {
    arbitrary: fc.record({
      kind: fc.constant('extraKey' as const),
      pick: fc.nat(),
      key: fc.constantFrom('__proto__', 'constructor', 'unknownField', 'id', 'handle', 'secret', ''),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('wrongType' as const),
      pick: fc.nat(),
      to: fc.constantFrom(...WRONG_TYPES),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant('hugeString' as const), pick: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('hugeArray' as const), pick: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('oddUnicode' as const), pick: fc.nat(), s: oddString }), weight: 2 },
  {
    arbitrary: fc.record({
      kind: fc.constant('replaceBody' as const),
      to: fc.constantFrom<unknown>(null, [], [{}], 0, 'str', true, {}),
    }),
    weight: 1,
  },
);

export function applyMutation(body: unknown, m: Mutation): unknown {
  switch (m.kind) {
    case 'valid':
      return body;
    case 'replaceBody':
      return m.to;
    case 'dropKey':
      return atRandomPath(body, m.pick, (old) => {
        if (old && typeof old === 'object' && !Array.isArray(old)) {
          const keys = Object.keys(old);
          if (!keys.length) return old;
          const { [keys[m.pick % keys.length]!]: _gone, ...rest } = old as Record<string, unknown>;
          return rest;
        }
        return old;
      });
    case 'extraKey':
      return atRandomPath(body, m.pick, (old) =>
        old && typeof old === 'object' && !Array.isArray(old)
          ? JSON.parse(JSON.stringify({ ...old, [m.key || '']: 'x' }).replace('"":', `"${m.key}":`))
          : old,
      );
    case 'wrongType':
      return atRandomPath(body, m.pick, () => m.to);
    case 'hugeString':
      return atRandomPath(body, m.pick, () => 'x'.repeat(100 * 1024));
    case 'hugeArray':
      return atRandomPath(body, m.pick, () => Array.from({ length: 10_000 }, (_, i) => (i % 2 ? 'order.*' : i)));
    case 'oddUnicode':
      return atRandomPath(body, m.pick, () => m.s);
  }
}

/** Bodies that are not (valid) JSON at all, with the content type they are sent with. */
export const RAW_BODIES: Array<{ label: string; body: string | undefined; contentType: string | undefined }> = [
  { label: 'malformed JSON', body: '{"a":', contentType: 'application/json' },
  { label: 'trailing garbage', body: '{}}', contentType: 'application/json' },
  { label: 'single quotes', body: "{'a':1}", contentType: 'application/json' },
  { label: 'empty body', body: '', contentType: 'application/json' },
  { label: 'no body, JSON content type', body: undefined, contentType: 'application/json' },
  { label: 'literal null', body: 'null', contentType: 'application/json' },
  { label: 'BOM + JSON', body: '\ufeff{}', contentType: 'application/json' },
  { label: 'deep nesting', body: '['.repeat(5000) + ']'.repeat(5000), contentType: 'application/json' },
  { label: 'huge number', body: '{"x":1e99999}', contentType: 'application/json' },
  { label: 'text/plain', body: '{}', contentType: 'text/plain' },
  { label: 'form', body: 'a=1&b=2', contentType: 'application/x-www-form-urlencoded' },
  { label: 'multipart', body: '--x\r\n\r\n--x--', contentType: 'multipart/form-data; boundary=x' },
  { label: 'xml', body: '<a/>', contentType: 'application/xml' },
  { label: 'no content type', body: '{}', contentType: undefined },
  { label: 'garbage content type', body: '{}', contentType: ';;;/=' },
  { label: 'json charset latin1', body: '{}', contentType: 'application/json; charset=latin1' },
  { label: '+json suffix', body: '{}', contentType: 'application/merge-patch+json' },
  { label: '300 KB body', body: JSON.stringify({ pad: 'x'.repeat(300 * 1024) }), contentType: 'application/json' },
];
