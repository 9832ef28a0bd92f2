/**
 * The page frame and the small pieces every dashboard page shares: navigation and handle switcher, the ids worth
 * copying (request id, deployment id, resource ids), problem boxes, status badges, the 24 h sparkline and the
 * "Report a problem" form. Server-rendered with hono/jsx; everything is escaped by JSX.
 */

import type { Child, FC, PropsWithChildren } from 'hono/jsx';
import { HtmlDocument } from '../http/html.tsx';
import type { EventType, MyHandle } from './answers.ts';
import type { Problem } from './api.ts';
import { TABS, type TabKey } from './nav.ts';

export interface CopyId {
  label: string;
  value: string;
}

export interface PageFrame {
  title: string;
  requestId: string;
  deploymentId: string;
  /** Signed in: the CSRF token for the forms on this page. */
  csrf?: string;
  handle?: string;
  handles?: MyHandle[];
  role?: string;
  tab?: TabKey;
  ids?: CopyId[];
  /** The path the report form says the problem happened on. */
  path?: string;
  /** A one-line outcome of the last action ("Webhook deleted."). */
  flash?: string | null;
}

let idSeq = 0;
/** An element id unique within the rendered page (copy buttons point at it). */
export const domId = (prefix: string) => `${prefix}-${(++idSeq).toString(36)}`;

/** A hidden CSRF field; every POST form carries one. */
export const Csrf: FC<{ token: string }> = ({ token }) => <input type="hidden" name="_csrf" value={token} />;

/** A value with a copy button. */
export const Copyable: FC<{ value: string; label?: string }> = ({ value, label }) => {
  const id = domId('copy');
  return (
    <span>
      <code id={id}>{value}</code>
      <button type="button" class="copy secondary" data-copy={id} aria-label={`Copy ${label ?? value}`}>
        Copy
      </button>
    </span>
  );
};

/** A POST form with its CSRF token and a fresh idempotency key (a double submit replays instead of repeating). */
export const PostForm: FC<
  PropsWithChildren<{ action: string; csrf: string; idem?: string; class?: string; confirm?: string; label?: string }>
> = (p) => (
  <form method="post" action={p.action} class={p.class ?? 'inline'} data-confirm={p.confirm} aria-label={p.label}>
    <Csrf token={p.csrf} />
    {p.idem ? <input type="hidden" name="_idem" value={p.idem} /> : null}
    {p.children}
  </form>
);

const TONE: Record<string, 'ok' | 'warn' | 'bad' | 'muted'> = {
  active: 'ok',
  succeeded: 'ok',
  delivered: 'ok',
  healthy: 'ok',
  set: 'ok',
  deliver: 'ok',
  matched: 'ok',
  pending: 'warn',
  queued: 'warn',
  retrying: 'warn',
  delivering: 'warn',
  pending_confirmation: 'warn',
  degraded: 'warn',
  partially_failed: 'warn',
  skip_disabled: 'warn',
  unset: 'bad',
  failed: 'bad',
  dead: 'bad',
  disabled: 'bad',
  critical: 'bad',
  suppressed: 'bad',
  stale: 'bad',
  undeliverable: 'bad',
  not_deliverable: 'bad',
};

/** A status word with a colour that is never the only signal (the word is always there). */
export const Badge: FC<{ status: string | null | undefined }> = ({ status }) => (
  <span class={`badge ${TONE[status ?? ''] ?? 'muted'}`}>{status ?? '—'}</span>
);

/** An API problem as the user meets it: title, detail, field errors and the request id to quote. */
export const ProblemBox: FC<{ problem: Problem; context?: string }> = ({ problem, context }) => (
  <div class="notice bad" role="alert">
    <strong>
      {context ? `${context}: ` : ''}
      {problem.title} ({problem.status})
    </strong>
    <p>{problem.detail}</p>
    {problem.errors?.length ? (
      <ul>
        {problem.errors.map((e) => (
          <li>
            <code>{e.path}</code>: {e.message}
          </li>
        ))}
      </ul>
    ) : null}
    {Array.isArray(problem.missingScopes) ? (
      <p>Missing scope: {(problem.missingScopes as string[]).join(', ')}</p>
    ) : null}
    {problem.requestId ? (
      <p class="ids">
        Request id <Copyable value={problem.requestId} label="request id" />
      </p>
    ) : null}
  </div>
);

export const Notice: FC<PropsWithChildren<{ tone?: 'ok' | 'warn' | 'bad' }>> = ({ tone, children }) => (
  <div class={`notice ${tone ?? ''}`} role={tone === 'bad' ? 'alert' : 'status'}>
    {children}
  </div>
);

/**
 * Hourly bars of the last 24 h: height = attempts, green part = succeeded. Inline SVG, described for screen readers.
 */
export const Sparkline: FC<{ buckets: { ok: number; failed: number }[] }> = ({ buckets }) => {
  const max = Math.max(1, ...buckets.map((b) => b.ok + b.failed));
  const ok = buckets.reduce((n, b) => n + b.ok, 0);
  const failed = buckets.reduce((n, b) => n + b.failed, 0);
  const w = 4;
  const h = 24;
  return (
    <svg
      class="spark"
      width={buckets.length * (w + 1)}
      height={h}
      viewBox={`0 0 ${buckets.length * (w + 1)} ${h}`}
      role="img"
      aria-label={`Last 24 hours: ${ok} attempts succeeded, ${failed} failed`}
    >
      <title>{`Last 24 h: ${ok} succeeded, ${failed} failed`}</title>
      <rect x="0" y={h - 1} width={buckets.length * (w + 1)} height="1" fill="#c9ccd1" />
      {buckets.map((b, i) => {
        const total = b.ok + b.failed;
        const th = Math.round((total / max) * (h - 2));
        const oh = total ? Math.round((b.ok / total) * th) : 0;
        return (
          <g>
            {th > oh ? <rect x={i * (w + 1)} y={h - 1 - th} width={w} height={th - oh} fill="#b3261e" /> : null}
            {oh > 0 ? <rect x={i * (w + 1)} y={h - 1 - oh} width={w} height={oh} fill="#0a6b2d" /> : null}
          </g>
        );
      })}
    </svg>
  );
};

/** A page for a problem that leaves nothing else to show (404, 403, 429…), with the API's words and request id. */
export const ErrorPage: FC<{ problem: Problem; signedIn: boolean }> = ({ problem, signedIn }) => (
  <>
    <ProblemBox problem={problem} />
    <p>
      <a href="/dashboard">Back to the dashboard</a>
      {signedIn ? null : (
        <>
          {' '}
          · <a href="/dashboard/login">Sign in</a>
        </>
      )}
    </p>
  </>
);

/** A JSON value as an indented text (nothing for null). */
export const json = (v: unknown) => (v === null || v === undefined ? '' : JSON.stringify(v, null, 2));

/** A subscription's event types as words. */
export const typeList = (v: string[] | null | undefined) => (v?.length ? v.join(', ') : 'every type');

/** An `<option>` list of event types (system types cannot be published but can be tested). */
export const TypeOptions: FC<{ types: EventType[]; selected?: string; publishable?: boolean }> = ({
  types,
  selected,
  publishable,
}) => (
  <>
    {types
      .filter((t) => !publishable || !t.system)
      .map((t) => (
        <option value={t.type} selected={t.type === selected}>
          {`${t.type} (${t.defaultSeverity})`}
        </option>
      ))}
  </>
);

/** Renders an ISO time in UTC, short, with the full value in the `datetime` attribute. */
export const Time: FC<{ at: string | null | undefined }> = ({ at }) =>
  at ? <time datetime={at}>{at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time> : <span>—</span>;

/** Where handle pages live. */
export const handleBase = (handle: string) => `/dashboard/h/${encodeURIComponent(handle)}`;

/** The page: header with handle switcher and sign-out, tabs, content, ids and the report form. */
export const Layout: FC<PropsWithChildren<{ frame: PageFrame }>> = ({ frame, children }) => {
  const { handle, handles, csrf } = frame;
  const ids: CopyId[] = [
    { label: 'Request id', value: frame.requestId },
    { label: 'Deployment id', value: frame.deploymentId },
    ...(frame.ids ?? []),
  ];
  if (handle) ids.splice(0, 0, { label: 'Handle', value: handle });
  return (
    <HtmlDocument>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${frame.title} · gharart-notify`}</title>
        <link rel="stylesheet" href="/dashboard/assets/app.css" />
        <script src="/dashboard/assets/app.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="top">
          <a class="brand" href="/dashboard">
            gharart-notify
          </a>
          {csrf && handles && handles.length > 0 ? (
            <form method="get" action="/dashboard/switch" aria-label="Switch handle">
              <label for="handle-switch">Handle</label>
              <select id="handle-switch" name="handle">
                {handles.map((h) => (
                  <option value={h.handle} selected={h.handle === handle}>
                    {`${h.handle} (${h.role})`}
                  </option>
                ))}
              </select>
              <button type="submit">Go</button>
            </form>
          ) : null}
          {handle && frame.role ? <span class="role">role: {frame.role}</span> : null}
          {csrf ? (
            <form method="post" action="/dashboard/logout">
              <Csrf token={csrf} />
              <button type="submit">Sign out</button>
            </form>
          ) : null}
        </header>
        {handle ? (
          <nav class="tabs" aria-label="Sections">
            {TABS.map((t) => (
              <a href={`${handleBase(handle)}${t.path}`} aria-current={frame.tab === t.key ? 'page' : undefined}>
                {t.label}
              </a>
            ))}
          </nav>
        ) : null}
        <main id="main">
          <h1>{frame.title}</h1>
          {frame.flash ? <Notice tone="ok">{frame.flash}</Notice> : null}
          {children}
        </main>
        <footer class="page">
          <h2>Ids for support</h2>
          <dl class="kv ids" id="support-ids">
            {ids.map((i) => (
              <>
                <dt>{i.label}</dt>
                <dd>
                  <Copyable value={i.value} label={i.label} />
                </dd>
              </>
            ))}
          </dl>
          {csrf ? (
            <ReportForm csrf={csrf} handle={handle} requestId={frame.requestId} path={frame.path} ids={ids} />
          ) : null}
        </footer>
      </body>
    </HtmlDocument>
  );
};

/** "Report a problem": files `POST /v2/support/report` with this page's ids. */
export const ReportForm: FC<{ csrf: string; handle?: string; requestId: string; path?: string; ids: CopyId[] }> = (
  p,
) => (
  <details>
    <summary>Report a problem</summary>
    <PostForm action="/dashboard/report" csrf={p.csrf} class="stack" label="Report a problem">
      <input type="hidden" name="handle" value={p.handle ?? ''} />
      <input type="hidden" name="requestId" value={p.requestId} />
      <input type="hidden" name="page" value={p.path ?? ''} />
      <input type="hidden" name="ids" value={p.ids.map((i) => `${i.label}: ${i.value}`).join('\n')} />
      <div class="field">
        <label for="report-summary">Summary</label>
        <input id="report-summary" type="text" name="summary" required maxlength={200} />
      </div>
      <div class="field">
        <label for="report-details">
          What happened <span class="hint">(the ids above are attached)</span>
        </label>
        <textarea id="report-details" name="details" required maxlength={10000}></textarea>
      </div>
      <div>
        <button type="submit">Send to support</button>
      </div>
    </PostForm>
  </details>
);

/**
 * A table that stacks into one card per row on narrow screens (with the script; without it, it scrolls sideways
 * inside its box instead of widening the page); the caption is for screen readers;
 * `empty`, when a string, is shown as the only row.
 */
export const DataTable: FC<PropsWithChildren<{ caption: string; columns: string[]; empty?: string | false }>> = ({
  caption,
  columns,
  empty,
  children,
}) => (
  // Focusable, so a keyboard user can scroll it when it is wider than the screen.
  // biome-ignore lint/a11y/useSemanticElements: a labelled scroll container (region), not a section of the document.
  <div class="scroll" tabindex={0} role="region" aria-label={caption}>
    {/* `stack`: the script labels each cell from its header, and a narrow screen shows each row as a card. */}
    <table class="stack">
      <caption class="sr-only">{caption}</caption>
      <thead>
        <tr>
          {columns.map((c) => (
            <th scope="col">{c}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {empty ? (
          <tr>
            <td colspan={columns.length}>{empty}</td>
          </tr>
        ) : null}
        {children}
      </tbody>
    </table>
  </div>
);

/** Statuses that change on their own (the pipeline is working on them); every other status is terminal. */
const OPEN_STATUSES = new Set(['pending', 'queued', 'retrying', 'delivering']);

/** `data-open` for an element showing a status that is not terminal yet (see {@link LiveRegion}). */
export const openMark = (status: string | null | undefined) =>
  status && OPEN_STATUSES.has(status) ? { 'data-open': '' } : {};

/**
 * A part of the page that refreshes itself (docs/design.md#dashboard): while anything inside it is marked
 * {@link openMark}, the script fetches `src` (this page's own GET URL) every few seconds while the tab is visible and
 * swaps in the element with the same `id`; it stops once everything is terminal. Any page adds it the same way.
 */
export const LiveRegion: FC<PropsWithChildren<{ id: string; src: string }>> = ({ id, src, children }) => (
  <div id={id} data-live={src}>
    {children}
  </div>
);

/**
 * Next steps as the page's own controls: each step names the button or link on this page that does it (`steps`),
 * and the API's words for the same steps stay behind a "Via the API" disclosure (`api`, omitted when empty).
 */
export const NextSteps: FC<{ steps: Child[]; api?: (string | null | undefined)[]; heading?: string }> = (p) => {
  const api = (p.api ?? []).filter((a): a is string => Boolean(a));
  return (
    <div class="next-steps">
      {p.heading ? <h3>{p.heading}</h3> : null}
      {p.steps.length === 0 ? null : p.steps.length === 1 ? (
        <p>{p.steps[0]}</p>
      ) : (
        <ol>
          {p.steps.map((s) => (
            <li>{s}</li>
          ))}
        </ol>
      )}
      {api.length ? (
        <details class="via-api">
          <summary>Via the API</summary>
          {api.length === 1 ? (
            <p>{api[0]}</p>
          ) : (
            <ol>
              {api.map((a) => (
                <li>{a}</li>
              ))}
            </ol>
          )}
        </details>
      ) : null}
    </div>
  );
};

/** A definition list of label → value. */
export const KV: FC<{ rows: [string, Child][] }> = ({ rows }) => (
  <dl class="kv">
    {rows.map(([k, v]) => (
      <>
        <dt>{k}</dt>
        <dd>{v}</dd>
      </>
    ))}
  </dl>
);
