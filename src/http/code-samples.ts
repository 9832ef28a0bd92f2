/**
 * A curl example for every operation of the OpenAPI document, as `x-codeSamples` (the vendor extension Redoc and
 * others render); `/docs` shows it under each operation (docs/design.md#routes). Built from the document itself: the
 * path with example parameters, the bearer token when the operation needs one, and a JSON body made of the request
 * schema's required fields (an event's `data` is its catalog example, so the example is accepted as it stands).
 */
import { eventTypeInfo } from '../lib/event-catalog.ts';

type Json = Record<string, unknown>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
/** The event type an example publishes. */
const EXAMPLE_EVENT_TYPE = 'order.paid';

const PARAM_EXAMPLES: Record<string, string> = { handle: 'demo-store' };

/** The document's schemas a `$ref` names (`#/components/schemas/…`). */
type Components = Record<string, Json>;

function resolve(schema: Json | undefined, components: Components): Json | undefined {
  const ref = schema?.$ref;
  if (typeof ref !== 'string') return schema;
  return components[ref.replace('#/components/schemas/', '')];
}

/** An example value for a JSON Schema: its own example, default or first enum value, else one of its type. */
function exampleOf(input: Json | undefined, name: string, components: Components, depth = 0): unknown {
  const schema = resolve(input, components);
  if (!schema || depth > 6) return null;
  if (schema.example !== undefined) return schema.example;
  if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
  if (schema.default !== undefined) return schema.default;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  if (schema.const !== undefined) return schema.const;
  const variants = (schema.anyOf ?? schema.oneOf) as Json[] | undefined;
  if (variants?.length)
    return exampleOf(variants.find((v) => v.type !== 'null') ?? variants[0], name, components, depth + 1);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      const props = (schema.properties as Record<string, Json> | undefined) ?? {};
      const required = (schema.required as string[] | undefined) ?? [];
      const out: Json = {};
      for (const key of required) out[key] = exampleOf(props[key], key, components, depth + 1);
      return out;
    }
    case 'array':
      return [exampleOf(schema.items as Json | undefined, name, components, depth + 1)];
    case 'integer':
    case 'number':
      return typeof schema.minimum === 'number' ? schema.minimum : 1;
    case 'boolean':
      return true;
    case 'string':
      if (schema.format === 'uri' || /url$/i.test(name)) return 'https://crm.example.com/hooks/gharart';
      if (schema.format === 'email' || /email$/i.test(name)) return 'ops@example.com';
      if (schema.format === 'date-time' || /At$/.test(name)) return '2026-01-31T12:00:00Z';
      return name;
    default:
      return null;
  }
}

/** The example body of an operation's JSON request, or undefined when it takes none. */
function bodyExample(op: Json, components: Components): Json | undefined {
  const content = (op.requestBody as Json | undefined)?.content as Record<string, Json> | undefined;
  const schema = resolve(content?.['application/json']?.schema as Json | undefined, components);
  if (!schema) return undefined;
  const body = (exampleOf(schema, 'body', components) ?? {}) as Json;
  const props = (schema.properties as Json | undefined) ?? {};
  // Publishing: a catalog type with its example data, which its schema accepts.
  if ('type' in props && 'data' in props) {
    body.type = EXAMPLE_EVENT_TYPE;
    body.data = eventTypeInfo(EXAMPLE_EVENT_TYPE)?.sample ?? {};
  }
  return body;
}

/** The curl command of one operation. */
export function curlExample(path: string, method: string, op: Json, components: Components = {}): string {
  const params = (op.parameters as Json[] | undefined) ?? [];
  const url = path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const p = params.find((x) => x.name === name && x.in === 'path');
    return PARAM_EXAMPLES[name] ?? String(exampleOf(p?.schema as Json | undefined, name, components) ?? name);
  });
  const lines = [`curl -X ${method.toUpperCase()} "$BASE_URL${url}"`];
  const secured = Array.isArray(op.security) ? op.security.length > 0 : false;
  if (secured) lines.push(`-H "Authorization: Bearer $TOKEN"`);
  const body = bodyExample(op, components);
  if (body) {
    lines.push(`-H 'Content-Type: application/json'`);
    lines.push(`-d '${JSON.stringify(body).replaceAll("'", "'\\''")}'`);
  }
  return lines.join(' \\\n  ');
}

/** Adds `x-codeSamples` (one curl example) to every operation of `doc`; answers `doc`. */
export function withCodeSamples(doc: Json): Json {
  const components = ((doc.components as Json | undefined)?.schemas as Components | undefined) ?? {};
  for (const [path, item] of Object.entries((doc.paths as Record<string, Json> | undefined) ?? {})) {
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (op)
        op['x-codeSamples'] = [{ lang: 'Shell', label: 'curl', source: curlExample(path, method, op, components) }];
    }
  }
  return doc;
}
