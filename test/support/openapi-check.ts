/**
 * Validates responses against the served OpenAPI document (not against our zod schemas), with an independent JSON
 * Schema validator that runs inside workerd (@cfworker/json-schema, no eval). `callJson` runs every 2xx JSON response
 * through it, so every route test also checks that the document tells the truth.
 */

import { exports } from 'cloudflare:workers';
import { Validator } from '@cfworker/json-schema';

type Json = Record<string, any>;
let docPromise: Promise<Json> | undefined;

function loadDoc(): Promise<Json> {
  docPromise ??= exports.default
    .fetch(new Request('https://notify.test/v2/openapi.json'))
    .then((r) => r.json() as Promise<Json>);
  return docPromise;
}

const matchers = new Map<string, RegExp>();
function templateRegex(template: string): RegExp {
  let re = matchers.get(template);
  if (!re) {
    re = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`);
    matchers.set(template, re);
  }
  return re;
}

/** The documented operation for a concrete method and path (templates with fewer parameters win, as routers do). */
export async function findOperation(method: string, path: string): Promise<{ template: string; op: Json } | undefined> {
  const doc = await loadDoc();
  const pathname = new URL(path, 'https://notify.test').pathname;
  const candidates = Object.keys(doc.paths)
    .filter((t) => templateRegex(t).test(pathname) && doc.paths[t][method.toLowerCase()])
    .sort((a, b) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0));
  const template = candidates[0];
  return template ? { template, op: doc.paths[template][method.toLowerCase()] } : undefined;
}

/** Throws unless `body` is valid for the documented response of this operation and status. */
export async function assertMatchesDocument(
  method: string,
  path: string,
  status: number,
  body: unknown,
): Promise<void> {
  const doc = await loadDoc();
  const found = await findOperation(method, path);
  if (!found) throw new Error(`${method} ${path} is not in /v2/openapi.json`);
  const response = found.op.responses[String(status)] ?? found.op.responses.default;
  if (!response) throw new Error(`${method} ${found.template} does not document status ${status}`);
  const content = response.content as Record<string, { schema: Json }> | undefined;
  if (!content) {
    if (body !== null && body !== '') throw new Error(`${method} ${found.template} ${status} documents no body`);
    return;
  }
  const schema = (content['application/json'] ?? content['application/problem+json'])?.schema;
  if (!schema) return;
  const result = new Validator({ ...schema, components: doc.components }, '2020-12', false).validate(body);
  if (!result.valid) {
    const errors = result.errors.map((e) => `${e.instanceLocation}: ${e.error}`).join('\n');
    throw new Error(`${method} ${found.template} ${status}: the body does not match the documented schema\n${errors}`);
  }
}
