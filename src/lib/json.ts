/**
 * JSON from outside and JSON columns (docs/design.md#api-conventions): the nesting bound and the refused keys that
 * every JSON body and queued event is checked against, and small documents stored as text, read whole.
 */

/**
 * How deep any JSON the service accepts may nest, counting the body itself as level 1: `{"data": {"a": [1]}}` is 3
 * levels. Readers recurse (JSON.stringify, the dashboard's pretty-printer), so unbounded depth is a stack overflow
 * waiting for its reader; 32 leaves event data 30 levels, far beyond any real payload.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * Keys refused anywhere in accepted JSON: `JSON.parse` keeps `__proto__` as an own key, but every object spread or
 * assignment downstream (zod among them) turns it into a prototype change or drops it, so what was checked would not
 * be what is stored. `constructor` and `prototype` are refused with it: they mean nothing in this API's documents.
 */
export const FORBIDDEN_JSON_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** What is wrong with a JSON value: where (`path`, segments from the root) and which rule it breaks. */
export type JsonHazard = { kind: 'too_deep'; path: string[] } | { kind: 'forbidden_key'; path: string[]; key: string };

/**
 * The first place where parsed JSON nests deeper than `maxDepth` or holds a {@link FORBIDDEN_JSON_KEYS} key, or null.
 * Iterative, so it never recurses however deep the value is; depth-first, so the first hazard in document order wins.
 * `depthOnly` looks for depth alone (reading data stored before the rules, whose keys are already in the database).
 */
export function findJsonHazard(
  value: unknown,
  maxDepth = MAX_JSON_DEPTH,
  { depthOnly = false }: { depthOnly?: boolean } = {},
): JsonHazard | null {
  // Each entry knows its parent, so a path is built only for the hazard found, not for every value walked.
  interface Entry {
    value: unknown;
    key: string;
    parent: Entry | null;
    depth: number;
  }
  const pathOf = (e: Entry | null): string[] => {
    const out: string[] = [];
    for (let at = e; at?.parent; at = at.parent) out.push(at.key);
    return out.reverse();
  };
  const stack: Entry[] = [{ value, key: '', parent: null, depth: 0 }];
  while (stack.length > 0) {
    const entry = stack.pop()!;
    const v = entry.value;
    if (v === null || typeof v !== 'object') continue;
    if (entry.depth >= maxDepth) return { kind: 'too_deep', path: pathOf(entry) };
    const depth = entry.depth + 1;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], key: String(i), parent: entry, depth });
      continue;
    }
    const keys = Object.keys(v);
    for (const key of depthOnly ? [] : keys) {
      if (FORBIDDEN_JSON_KEYS.has(key)) return { kind: 'forbidden_key', path: [...pathOf(entry), key], key };
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      stack.push({ value: (v as Record<string, unknown>)[keys[i]!], key: keys[i]!, parent: entry, depth });
    }
  }
  return null;
}

/** Long keys are cut in paths shown back to a client: a hostile key must not make the answer large. */
const MAX_SEGMENT = 64;

/** A hazard's path as dotted text under `root` (`body.data.items.0`), each segment cut to 64 characters. */
export function jsonPathText(root: string, path: readonly string[]): string {
  return [root, ...path.map((s) => (s.length > MAX_SEGMENT ? `${s.slice(0, MAX_SEGMENT)}…` : s))].join('.');
}

/** What a client is told about a hazard (the message of the 400, the reason of a rejected queue message). */
export function jsonHazardMessage(hazard: JsonHazard): string {
  return hazard.kind === 'too_deep'
    ? `JSON may nest at most ${MAX_JSON_DEPTH} levels; this value is nested deeper.`
    : `"${hazard.key}" is not allowed as a key (nor constructor, prototype or __proto__ anywhere in a document).`;
}

/** Stands in, on reading, for what a value stored before the depth bound held below it. */
export const ELIDED_JSON = `[nested deeper than ${MAX_JSON_DEPTH} levels: not shown]`;

/**
 * `value` with every container below `maxDepth` levels replaced by {@link ELIDED_JSON}, so a reader never recurses
 * deeper than the bound; the same object when nothing is that deep (the usual case: everything accepted since the
 * bound existed). Iterative.
 */
export function clampJsonDepth(value: unknown, maxDepth = MAX_JSON_DEPTH): unknown {
  if (!findJsonHazard(value, maxDepth, { depthOnly: true })) return value;
  const copy = (v: unknown): unknown => (Array.isArray(v) ? [] : v !== null && typeof v === 'object' ? {} : v);
  const root = copy(value);
  const stack: Array<{ from: unknown; to: unknown; depth: number }> = [{ from: value, to: root, depth: 1 }];
  while (stack.length > 0) {
    const { from, to, depth } = stack.pop()!;
    if (from === null || typeof from !== 'object') continue;
    for (const [key, child] of Object.entries(from)) {
      const deep = child !== null && typeof child === 'object' && depth >= maxDepth;
      const out = deep ? ELIDED_JSON : copy(child);
      // defineProperty: an own `__proto__` key of old data stays a plain key of the copy.
      Object.defineProperty(to, key, { value: out, enumerable: true, writable: true, configurable: true });
      if (!deep) stack.push({ from: child, to: out, depth: depth + 1 });
    }
  }
  return root;
}

/**
 * Parses a JSON column; null stays null. A corrupt value is a bug, so it throws rather than guessing. A value nested
 * deeper than {@link MAX_JSON_DEPTH} (only rows written before the bound) comes back with its deep parts elided.
 */
export function fromJsonColumn<T>(text: string | null | undefined): T | null {
  return text == null ? null : (clampJsonDepth(JSON.parse(text)) as T);
}

/** Serialises for a JSON column; null/undefined become SQL NULL. */
export function toJsonColumn(value: unknown): string | null {
  return value == null ? null : JSON.stringify(value);
}

/** A JSON object (not an array, not null, not a class instance): what `JSON.parse` gives for `{…}`. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
