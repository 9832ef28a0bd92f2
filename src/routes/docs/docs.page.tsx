/**
 * Renders the OpenAPI document as one HTML page: operations grouped by tag, their parameters, request and response
 * schemas, and the problem types (anchors `#problem-<type>` are what problem `type` URIs point at). Everything from
 * the document is escaped by JSX.
 */
import { HtmlDocument } from '../../http/html.tsx';
import { PROBLEM_TYPES } from '../../lib/problem.ts';

type Json = Record<string, unknown>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

// A constant of ours, so it goes in as is (style content is raw text in HTML: escaping would change it).
export const DOCS_CSS = `
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:0 auto;padding:1rem;color:#1a1a1a;background:#fff}
code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f4f4f4;padding:.5rem;overflow:auto}
.op{border-top:1px solid #ddd;padding:.5rem 0}.m{display:inline-block;min-width:4.5em;font-weight:700}
.m-get{color:#0b5}.m-post{color:#05a}.m-put,.m-patch{color:#a50}.m-delete{color:#b00}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .4rem;text-align:left}
caption{text-align:left;font-weight:600}
nav a{margin-right:1rem}
`;

/** A value of the document as text (absent: nothing). */
const text = (v: unknown) => (v === undefined || v === null ? '' : String(v));

/** A schema: a link to the named schema below, or the inline schema as JSON. */
function Schema(props: { schema: unknown }) {
  if (!props.schema) return null;
  const ref = (props.schema as Json).$ref;
  if (typeof ref === 'string') {
    const name = ref.split('/').pop()!;
    return (
      <a href={`#schema-${name}`}>
        <code>{name}</code>
      </a>
    );
  }
  return <pre>{JSON.stringify(props.schema, null, 2)}</pre>;
}

/** Text with its line breaks kept. */
function Lines(props: { text: string }) {
  return <>{props.text.split('\n').map((line, i) => (i ? [<br />, line] : line))}</>;
}
/**
 * What a webhook endpoint receives (the document's `webhooks`, one per catalog type), with how to verify it; the
 * whole guide is docs/receiving-webhooks.md.
 */
function ReceivingWebhooks(props: { webhooks: Record<string, Json> }) {
  return (
    <>
      <h2 id="receiving-webhooks">Receiving webhooks</h2>
      <p>
        Every delivery is a <code>POST</code> with <code>content-type: application/json</code> and the{' '}
        <a href="https://www.standardwebhooks.com">Standard Webhooks</a> headers <code>webhook-id</code> (the delivery
        id, the same on every retry: de-duplicate on it), <code>webhook-timestamp</code> and{' '}
        <code>webhook-signature</code>. Verify the raw body with a Standard Webhooks library (
        <code>standardwebhooks</code> for JavaScript, Python and Ruby, the Go and PHP libraries of the same project) and
        the <code>whsec_</code> secret; refuse timestamps more than 5 minutes off. Answer 2xx within 15 s and work
        afterwards; failures are retried for about 27.6 h (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); answer{' '}
        <code>410</code> to unsubscribe. The full guide, with a receiver you can run, is{' '}
        <code>docs/receiving-webhooks.md</code> in the service's repository.
      </p>
      <table>
        <caption>Event types and their bodies</caption>
        <tr>
          <th>type</th>
          <th>body</th>
          <th>meaning</th>
        </tr>
        {Object.entries(props.webhooks).map(([type, item]) => {
          const op = (item.post as Json | undefined) ?? {};
          const content = ((op.requestBody as Json | undefined)?.content as Json | undefined)?.['application/json'];
          return (
            <tr id={`webhook-${type.replace(/[^a-z0-9]+/gi, '-')}`}>
              <td>
                <code>{type}</code>
              </td>
              <td>
                <Schema schema={(content as Json | undefined)?.schema} />
              </td>
              <td>{text(op.summary)}</td>
            </tr>
          );
        })}
      </table>
    </>
  );
}

/** An element id for a tag: ids cannot hold spaces, and a tag name such as `Email Subscriptions` does. */
const tagId = (tag: string) => `tag-${tag.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;

function Operation(props: { path: string; method: string; op: Json; shared: Record<string, Json> }) {
  const { path, method, op } = props;
  // A parameter shared by many operations is a `$ref` to `components.parameters` (the x-d1-bookmark header).
  const params = ((op.parameters as Json[] | undefined) ?? []).map((p) =>
    typeof p.$ref === 'string' ? (props.shared[p.$ref.split('/').pop()!] ?? p) : p,
  );
  const body = ((op.requestBody as Json | undefined)?.content as Json | undefined)?.['application/json'] as
    | Json
    | undefined;
  const responses = (op.responses as Record<string, Json>) ?? {};
  const samples = (op['x-codeSamples'] as Json[] | undefined) ?? [];
  return (
    <section class="op" id={`op-${method}-${path.replace(/[^a-z0-9]+/gi, '-')}`}>
      <h3>
        <span class={`m m-${method}`}>{method.toUpperCase()}</span> <code>{path}</code>
      </h3>
      <p>{text(op.summary)}</p>
      {op.description ? (
        <p class="desc">
          <Lines text={text(op.description)} />
        </p>
      ) : null}
      {params.length ? (
        <table>
          <caption>Parameters</caption>
          <tr>
            <th>name</th>
            <th>in</th>
            <th>required</th>
            <th>schema</th>
          </tr>
          {params.map((p) => (
            <tr>
              <td>
                <code>{text(p.name)}</code>
              </td>
              <td>{text(p.in)}</td>
              <td>{p.required ? 'yes' : 'no'}</td>
              <td>
                <code>{text(JSON.stringify(p.schema))}</code>
              </td>
            </tr>
          ))}
        </table>
      ) : null}
      {body ? (
        <>
          <h4>Request body</h4>
          <Schema schema={body.schema} />
        </>
      ) : null}
      {samples.map((sample) => (
        <>
          <h4>Example ({text(sample.label)})</h4>
          <pre class="sample">{text(sample.source)}</pre>
        </>
      ))}
      <h4>Responses</h4>
      <ul>
        {Object.entries(responses).map(([status, r]) => {
          const content = r.content as Record<string, Json> | undefined;
          const first = content ? Object.entries(content)[0] : undefined;
          return (
            <li>
              <strong>{status}</strong> {text(r.description)}
              {first ? (
                <>
                  {' — '}
                  <code>{first[0]}</code> <Schema schema={first[1].schema} />
                </>
              ) : null}
            </li>
          );
        })}
      </ul>
    </section>
  );
}

/** The whole reference page. */
export function renderDocsPage(doc: Json) {
  const info = (doc.info as Json) ?? {};
  const paths = (doc.paths as Record<string, Json>) ?? {};
  const byTag = new Map<string, { path: string; method: string; op: Json }[]>();
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const tag = ((op.tags as string[] | undefined) ?? ['Other'])[0]!;
      byTag.set(tag, [...(byTag.get(tag) ?? []), { path, method, op }]);
    }
  }
  const schemas = ((doc.components as Json | undefined)?.schemas as Record<string, unknown>) ?? {};
  const shared = ((doc.components as Json | undefined)?.parameters as Record<string, Json>) ?? {};
  return (
    <HtmlDocument>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{text(info.title)} — API reference</title>
        <style dangerouslySetInnerHTML={{ __html: DOCS_CSS }} />
      </head>
      <body>
        <h1>
          {text(info.title)} <small>{text(info.version)}</small>
        </h1>
        <p>{text(info.description)}</p>
        <p>
          Machine-readable: <a href="/v2/openapi.json">/v2/openapi.json</a> (OpenAPI 3.1). Authenticate with{' '}
          <code>{'Authorization: Bearer <JWT or personal access token>'}</code>.
        </p>
        <nav>
          {[...byTag.keys()].map((t) => (
            <a href={`#${tagId(t)}`}>{t}</a>
          ))}
          <a href="#receiving-webhooks">Receiving webhooks</a>
          <a href="#problems">Problem types</a>
          <a href="#schemas">Schemas</a>
        </nav>
        {[...byTag.entries()].map(([tag, ops]) => (
          <>
            <h2 id={tagId(tag)}>{tag}</h2>
            {ops.map((o) => (
              <Operation path={o.path} method={o.method} op={o.op} shared={shared} />
            ))}
          </>
        ))}
        <ReceivingWebhooks webhooks={(doc.webhooks as Record<string, Json> | undefined) ?? {}} />
        <h2 id="problems">Problem types</h2>
        <p>
          Errors are <code>application/problem+json</code> (RFC 9457) with <code>type</code>, <code>title</code>,{' '}
          <code>status</code>, <code>detail</code>, <code>instance</code> and <code>requestId</code>; validation errors
          add <code>errors[]</code> of <code>{'{path, message}'}</code>.
        </p>
        <dl>
          {Object.entries(PROBLEM_TYPES).map(([type, p]) => (
            <>
              <dt id={`problem-${type}`}>
                <code>{type}</code> — {p.status}
              </dt>
              <dd>{p.title}</dd>
            </>
          ))}
        </dl>
        <h2 id="schemas">Schemas</h2>
        {Object.entries(schemas).map(([name, s]) => (
          <>
            <h3 id={`schema-${name}`}>{name}</h3>
            <pre>{JSON.stringify(s, null, 2)}</pre>
          </>
        ))}
      </body>
    </HtmlDocument>
  );
}
