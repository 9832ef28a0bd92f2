import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { call, callJson } from '../support/helpers.ts';
import { setupHandle } from '../support/pipeline-helpers.ts';

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

  it('every operation has a unique operationId and exactly one tag, and every tag is declared once', async () => {
    const { body: doc } = await callJson('GET', '/v2/openapi.json');
    const declared = (doc.tags as Array<{ name: string; description?: string }> | undefined) ?? [];
    const declaredNames = declared.map((t) => t.name);
    expect(new Set(declaredNames).size, 'a tag declared twice').toBe(declaredNames.length);
    for (const t of declared) expect(t.description, `tag ${t.name} has a description`).toEqual(expect.any(String));

    const operationIds: string[] = [];
    const usedTags = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Record<string, unknown>>>)) {
      for (const [method, op] of Object.entries(item)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(op.operationId, `${where} has an operationId`).toMatch(/^[a-z][A-Za-z0-9]+$/);
        operationIds.push(op.operationId as string);
        expect(op.tags, `${where} has exactly one tag`).toHaveLength(1);
        const [tag] = op.tags as string[];
        expect(declaredNames, `${where}: its tag ${tag} is declared in the top-level tags`).toContain(tag);
        usedTags.add(tag!);
      }
    }
    const repeated = operationIds.filter((id, i) => operationIds.indexOf(id) !== i);
    expect(repeated, 'operationIds used twice').toEqual([]);
    expect(
      declaredNames.filter((t) => !usedTags.has(t)),
      'declared tags no operation uses',
    ).toEqual([]);
  });

  it('every /v2/ operation declares the x-d1-bookmark request and response header, each one component', async () => {
    const { body: doc } = await callJson('GET', '/v2/openapi.json');
    const parameter = doc.components?.parameters?.D1Bookmark;
    const header = doc.components?.headers?.D1Bookmark;
    expect(parameter).toMatchObject({ name: 'x-d1-bookmark', in: 'header', required: false });
    expect(parameter.description).toMatch(/read-replicas-and-bookmarks/);
    expect(header.description).toMatch(/SHARD_/);
    let v2 = 0;
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Record<string, any>>>)) {
      for (const [method, op] of Object.entries(item)) {
        const where = `${method.toUpperCase()} ${path}`;
        const declared = (op.parameters ?? []).filter(
          (p: Record<string, unknown>) => p.$ref === '#/components/parameters/D1Bookmark' || p.name === 'x-d1-bookmark',
        );
        const answered = Object.entries(op.responses as Record<string, Record<string, any>>).filter(
          ([, r]) => r.headers?.['x-d1-bookmark'],
        );
        if (!path.startsWith('/v2/')) {
          expect([declared, answered], `${where} runs without D1 sessions`).toEqual([[], []]);
          continue;
        }
        v2++;
        expect(declared, `${where} declares the request header once, by reference`).toEqual([
          { $ref: '#/components/parameters/D1Bookmark' },
        ]);
        for (const [status, r] of Object.entries(op.responses as Record<string, Record<string, any>>))
          expect(r.headers?.['x-d1-bookmark'], `${where} ${status}`).toEqual({
            $ref: '#/components/headers/D1Bookmark',
          });
      }
    }
    expect(v2).toBeGreaterThan(50);
    // The docs page lists it among each such operation's parameters.
    const html = await (await call('GET', '/docs')).text();
    expect(html.split('<td><code>x-d1-bookmark</code></td><td>header</td>').length - 1).toBe(v2);

    // The declared form is the one a response carries and a request may send back.
    const h = await setupHandle();
    const res = await call('GET', `/v2/handles/${h.handle}/notification-settings`, { token: h.token });
    const sent = res.headers.get('x-d1-bookmark');
    expect(sent).toMatch(new RegExp(header.schema.pattern));
    expect(sent).toMatch(new RegExp(parameter.schema.pattern));
    expect('SHARD_0=not-a-bookmark').not.toMatch(new RegExp(parameter.schema.pattern));
  });

  it('the docs page renders every operation and the problem types', async () => {
    const { body: doc } = await callJson('GET', '/v2/openapi.json');
    const res = await call('GET', '/docs');
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const html = await res.text();
    expect(html.startsWith('<!doctype html><html lang="en">')).toBe(true);
    for (const path of Object.keys(doc.paths)) expect(html).toContain(path.replace(/&/g, '&amp;'));
    expect(html).toContain('id="problem-validation"');
    expect(html).not.toMatch(/<script[^>]+src=|https:\/\/(?:cdn|fonts)\./);
  });

  it('every operation has a curl example, rendered on /docs; the examples with a body are accepted as they stand', async () => {
    const { body: doc } = await callJson('GET', '/v2/openapi.json');
    const html = await (await call('GET', '/docs')).text();
    const fromHtml = (t: string) =>
      t
        .replace(/&quot;/g, '"')
        .replace(/&#39;/g, "'")
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&amp;/g, '&');
    const shown = [...html.matchAll(/<pre class="sample">([\s\S]*?)<\/pre>/g)].map((m) => fromHtml(m[1]!));
    const samples: Record<string, string> = {};
    for (const item of Object.values(doc.paths as Record<string, any>)) {
      for (const [method, op] of Object.entries(item as Record<string, any>)) {
        const [sample, ...more] = op['x-codeSamples'] ?? [];
        expect(more, op.operationId).toEqual([]);
        expect(sample, op.operationId).toMatchObject({ lang: 'Shell', label: 'curl' });
        const source = sample.source as string;
        expect(source.startsWith(`curl -X ${method.toUpperCase()} "$BASE_URL/`), op.operationId).toBe(true);
        expect(source.includes('{'), `${op.operationId}: ${source}`).toBe(source.includes(" -d '"));
        expect(source.includes('Authorization: Bearer $TOKEN'), op.operationId).toBe((op.security ?? []).length > 0);
        expect(shown, op.operationId).toContain(source);
        samples[op.operationId] = source;
      }
    }
    expect(shown).toHaveLength(Object.keys(samples).length);

    // The publish example, run against a real handle: accepted (its data is the catalog example of its type).
    const h = await setupHandle();
    const publish = samples.publishEvent!;
    const body = JSON.parse(/-d '(.*)'$/s.exec(publish)![1]!);
    expect(publish).toContain('"$BASE_URL/v2/handles/demo-store/events"');
    const res = await callJson('POST', `/v2/handles/${h.handle}/events`, { token: h.token, body });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    // So is the webhook one (a subscription to a URL).
    const hook = JSON.parse(/-d '(.*)'$/s.exec(samples.createWebhook!)![1]!);
    expect(hook.url).toMatch(/^https:\/\//);
  });

  it('every id on the docs page is a valid, unique id, and every in-page link reaches one', async () => {
    const html = await (await call('GET', '/docs')).text();
    const ids = [...html.matchAll(/\sid="([^"]*)"/g)].map((m) => m[1]!);
    expect(
      ids.filter((id) => id === '' || /\s/.test(id)),
      'ids with whitespace',
    ).toEqual([]);
    expect(ids.length).toBe(new Set(ids).size);
    const targets = [...html.matchAll(/href="#([^"]*)"/g)].map((m) => m[1]!);
    expect(targets.length).toBeGreaterThan(0);
    expect(targets.filter((t) => !ids.includes(t))).toEqual([]);
  });
});
