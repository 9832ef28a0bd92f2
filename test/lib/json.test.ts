/** The JSON bound and refused keys (docs/design.md#api-conventions) and header value rules, as pure functions. */
import { describe, expect, it } from 'vitest';
import { headerValueProblem, shownHeaderValue } from '../../src/lib/http-fields.ts';
import {
  clampJsonDepth,
  ELIDED_JSON,
  FORBIDDEN_JSON_KEYS,
  findJsonHazard,
  fromJsonColumn,
  jsonPathText,
  MAX_JSON_DEPTH,
} from '../../src/lib/json.ts';

/** `levels` nested objects `{"a": {"a": … 1}}` as text. */
const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

describe('findJsonHazard', () => {
  it('allows exactly MAX_JSON_DEPTH levels and names the first container beyond them', () => {
    expect(findJsonHazard(JSON.parse(nested(MAX_JSON_DEPTH)))).toBeNull();
    const hazard = findJsonHazard(JSON.parse(nested(MAX_JSON_DEPTH + 1)));
    expect(hazard).toEqual({ kind: 'too_deep', path: Array(MAX_JSON_DEPTH).fill('a') });
    // 100,000 levels: no recursion, no stack overflow.
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(findJsonHazard(deep)?.kind).toBe('too_deep');
  });

  it('finds __proto__, constructor and prototype as own keys at any depth, in document order', () => {
    for (const key of FORBIDDEN_JSON_KEYS) {
      expect(findJsonHazard(JSON.parse(`{"x":[1,{"ok":{"${key}":1}}]}`))).toEqual({
        kind: 'forbidden_key',
        path: ['x', '1', 'ok', key],
        key,
      });
    }
    expect(findJsonHazard(JSON.parse('{"a":{"constructor":1},"b":{"__proto__":2}}'))?.path).toEqual([
      'a',
      'constructor',
    ]);
    expect(findJsonHazard({ toString: 'x', proto: 1, _prototype: 2 })).toBeNull();
  });

  it('cuts long path segments when shown', () => {
    expect(jsonPathText('body', ['k'.repeat(100), '0'])).toBe(`body.${'k'.repeat(64)}….0`);
  });
});

describe('clampJsonDepth and fromJsonColumn', () => {
  it('returns the same value when within the bound, and elides what lies deeper otherwise', () => {
    const ok = JSON.parse(nested(MAX_JSON_DEPTH));
    expect(clampJsonDepth(ok)).toBe(ok);
    const clamped = clampJsonDepth(JSON.parse(`{"keep":1,"deep":${nested(1000)}}`)) as Record<string, unknown>;
    expect(clamped.keep).toBe(1);
    expect(findJsonHazard(clamped)).toBeNull();
    expect(JSON.stringify(clamped)).toContain(ELIDED_JSON);
    const column = fromJsonColumn<Record<string, unknown>>(`{"__proto__":{"x":${nested(200)}}}`)!;
    expect(Object.keys(column)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(column)).toBe(Object.prototype);
  });
});

describe('header values', () => {
  it('allows visible ASCII, space and tab; names the first other character', () => {
    expect(headerValueProblem('Bearer abc-123 ~!"(x)\t')).toBeNull();
    expect(headerValueProblem('café')).toMatch(/U\+00E9 at character 4/);
    expect(headerValueProblem('a\u0001')).toMatch(/U\+0001/);
    expect(headerValueProblem('x🚀')).toMatch(/U\+1F680 at character 2/);
  });

  it('shows values only to writers, and a suffix only of a long credential', () => {
    expect(shownHeaderValue('X-Tenant', 'acme', false)).toBe('••••');
    expect(shownHeaderValue('X-Tenant', 'acme', true)).toBe('acme');
    expect(shownHeaderValue('Authorization', 'Bearer abcdefg', true)).toBe('••••');
    expect(shownHeaderValue('Authorization', 'abcdefghij', true)).toBe('••••');
    expect(shownHeaderValue('X-Api-Key', '0123456789abcdef', true)).toBe('••••cdef');
    expect(shownHeaderValue('Authorization', 'Bearer 0123456789abcdef', true)).toBe('••••cdef');
  });
});
