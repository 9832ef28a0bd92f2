import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { call, callJson } from '../support/helpers.ts';

describe('OpenAPI document', () => {
  it('lists every route the app serves, and nothing else', async () => {
    const app = buildApp();
    const served = new Set(
      app.routes
        // The dashboard's HTML pages (src/dashboard) are not API operations.
        .filter((r) => r.method !== 'ALL' && !r.path.startsWith('/dashboard'))
        .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`),
    );
    const { body: doc } = await callJson('GET', '/v2/openapi.json');
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(item)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    expect([...served].sort()).toEqual([...documented].sort());
    expect(doc.openapi).toBe('3.1.0');
  });

  it('the docs page renders every operation and the problem types', async () => {
    const { body: doc } = await callJson('GET', '/v2/openapi.json');
    const res = await call('GET', '/docs');
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const html = await res.text();
    for (const path of Object.keys(doc.paths)) expect(html).toContain(path.replace(/&/g, '&amp;'));
    expect(html).toContain('id="problem-validation"');
    expect(html).not.toMatch(/<script[^>]+src=|https:\/\/(?:cdn|fonts)\./);
  });
});
