/**
 * Renders the OpenAPI document as one HTML page: operations grouped by tag, their parameters, request and response
 * schemas, and the problem types (anchors `#problem-<type>` are what problem `type` URIs point at).
 */
import { PROBLEM_TYPES } from '../../lib/problem.ts';

type Json = Record<string, unknown>;

const esc = (s: unknown) =>
  String(s ?? '').replace(
    /[&<>"']/g,
    (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!,
  );

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

function schemaBlock(schema: unknown): string {
  if (!schema) return '';
  const ref = (schema as Json).$ref;
  if (typeof ref === 'string') {
    const name = ref.split('/').pop()!;
    return `<a href="#schema-${esc(name)}"><code>${esc(name)}</code></a>`;
  }
  return `<pre>${esc(JSON.stringify(schema, null, 2))}</pre>`;
}

function operationHtml(path: string, method: string, op: Json): string {
  const params = (op.parameters as Json[] | undefined) ?? [];
  const body = ((op.requestBody as Json | undefined)?.content as Json | undefined)?.['application/json'] as
    | Json
    | undefined;
  const responses = (op.responses as Record<string, Json>) ?? {};
  const id = `op-${method}-${path.replace(/[^a-z0-9]+/gi, '-')}`;
  return `<section class="op" id="${esc(id)}">
  <h3><span class="m m-${method}">${method.toUpperCase()}</span> <code>${esc(path)}</code></h3>
  <p>${esc(op.summary)}</p>
  ${op.description ? `<p class="desc">${esc(op.description).replace(/\n/g, '<br>')}</p>` : ''}
  ${
    params.length
      ? `<table><caption>Parameters</caption><tr><th>name</th><th>in</th><th>required</th><th>schema</th></tr>${params
          .map(
            (p) =>
              `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${p.required ? 'yes' : 'no'}</td><td><code>${esc(JSON.stringify(p.schema))}</code></td></tr>`,
          )
          .join('')}</table>`
      : ''
  }
  ${body ? `<h4>Request body</h4>${schemaBlock(body.schema)}` : ''}
  <h4>Responses</h4><ul>${Object.entries(responses)
    .map(([status, r]) => {
      const content = r.content as Record<string, Json> | undefined;
      const first = content ? Object.entries(content)[0] : undefined;
      return `<li><strong>${esc(status)}</strong> ${esc(r.description)}${
        first ? ` — <code>${esc(first[0])}</code> ${schemaBlock(first[1].schema)}` : ''
      }</li>`;
    })
    .join('')}</ul>
</section>`;
}

/** The whole reference page. */
export function renderDocsPage(doc: Json): string {
  const info = (doc.info as Json) ?? {};
  const paths = (doc.paths as Record<string, Json>) ?? {};
  const byTag = new Map<string, string[]>();
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const tag = ((op.tags as string[] | undefined) ?? ['Other'])[0]!;
      byTag.set(tag, [...(byTag.get(tag) ?? []), operationHtml(path, method, op)]);
    }
  }
  const schemas = ((doc.components as Json | undefined)?.schemas as Record<string, unknown>) ?? {};
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(info.title)} — API reference</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:0 auto;padding:1rem;color:#1a1a1a;background:#fff}
code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f4f4f4;padding:.5rem;overflow:auto}
.op{border-top:1px solid #ddd;padding:.5rem 0}.m{display:inline-block;min-width:4.5em;font-weight:700}
.m-get{color:#0b5}.m-post{color:#05a}.m-put,.m-patch{color:#a50}.m-delete{color:#b00}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .4rem;text-align:left}caption{text-align:left;font-weight:600}
nav a{margin-right:1rem}
</style></head><body>
<h1>${esc(info.title)} <small>${esc(info.version)}</small></h1>
<p>${esc(info.description)}</p>
<p>Machine-readable: <a href="/v2/openapi.json">/v2/openapi.json</a> (OpenAPI 3.1). Authenticate with
<code>Authorization: Bearer &lt;JWT or personal access token&gt;</code>.</p>
<nav>${[...byTag.keys()].map((t) => `<a href="#tag-${esc(t)}">${esc(t)}</a>`).join('')}<a href="#problems">Problem types</a><a href="#schemas">Schemas</a></nav>
${[...byTag.entries()].map(([tag, ops]) => `<h2 id="tag-${esc(tag)}">${esc(tag)}</h2>${ops.join('\n')}`).join('\n')}
<h2 id="problems">Problem types</h2>
<p>Errors are <code>application/problem+json</code> (RFC 9457) with <code>type</code>, <code>title</code>, <code>status</code>,
<code>detail</code>, <code>instance</code> and <code>requestId</code>; validation errors add <code>errors[]</code> of <code>{path, message}</code>.</p>
<dl>${Object.entries(PROBLEM_TYPES)
    .map(
      ([type, p]) =>
        `<dt id="problem-${esc(type)}"><code>${esc(type)}</code> — ${p.status}</dt><dd>${esc(p.title)}</dd>`,
    )
    .join('')}</dl>
<h2 id="schemas">Schemas</h2>
${Object.entries(schemas)
  .map(([name, s]) => `<h3 id="schema-${esc(name)}">${esc(name)}</h3><pre>${esc(JSON.stringify(s, null, 2))}</pre>`)
  .join('\n')}
</body></html>`;
}
