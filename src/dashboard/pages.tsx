/**
 * The dashboard's pages: pure renderers of what the API answered (the shapes of its OpenAPI schemas). No page decides
 * a rule; a page shows the API's data, its warnings and its problems, and offers the forms whose posts call the API.
 */
import type { FC } from 'hono/jsx';
import type { Problem } from './api.ts';
import {
  Badge,
  Copyable,
  Csrf,
  DataTable,
  handleBase,
  KV,
  Notice,
  PostForm,
  ProblemBox,
  Sparkline,
  Time,
} from './layout.tsx';

type Json = Record<string, any>;

/** An entry of `GET /v2/event-types`. */
export interface EventType {
  type: string;
  defaultSeverity: string;
  description?: string;
  system?: boolean;
}

const json = (v: unknown) => (v === null || v === undefined ? '' : JSON.stringify(v, null, 2));
const list = (v: string[] | null | undefined) => (v?.length ? v.join(', ') : 'every type');

/** An `<option>` list of event types (system types cannot be published but can be tested). */
const TypeOptions: FC<{ types: EventType[]; selected?: string; publishable?: boolean }> = ({
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

/** "Retry" for a dead or skipped delivery (nothing for any other status); comes back to `back` afterwards. */
const RetryButton: FC<{
  base: string;
  deliveryId: string;
  status: string;
  back: string;
  csrf: string;
  idem: string;
}> = (p) =>
  p.status === 'dead' || p.status === 'skipped' ? (
    <PostForm action={`${p.base}/deliveries/${p.deliveryId}/retry`} csrf={p.csrf} idem={p.idem}>
      <input type="hidden" name="back" value={p.back} />
      <button type="submit" class="secondary">
        Retry
      </button>
    </PostForm>
  ) : null;

// ───────────────────────────── sign-in and handles ─────────────────────────────

export const LoginPage: FC<{ csrf: string; problem?: Problem | null; message?: string | null; devHint: boolean }> = (
  p,
) => (
  <>
    <p>
      Sign in with a personal access token (<code>grt_…</code>) or a JWT. The dashboard uses it for every API call, with
      exactly its scopes and roles.
    </p>
    {p.message ? <Notice>{p.message}</Notice> : null}
    {p.problem ? <ProblemBox problem={p.problem} context="Sign-in refused" /> : null}
    <form method="post" action="/dashboard/login" class="stack" aria-label="Sign in">
      <input type="hidden" name="_csrf" value={p.csrf} />
      <div class="field">
        <label for="token">Token</label>
        <input id="token" name="token" type="password" autocomplete="off" required spellcheck={false} />
        <span class="hint">Kept only in an encrypted, HttpOnly session cookie for this dashboard (12 h at most).</span>
      </div>
      <div>
        <button type="submit">Sign in</button>
      </div>
    </form>
    {p.devHint ? (
      <p class="hint">
        Local development: <code>npm run dev</code> prints a demo PAT.
      </p>
    ) : null}
  </>
);

export const HandlesPage: FC<{ handles: { handle: string; displayName: string; role: string }[] }> = ({ handles }) =>
  handles.length ? (
    <ul>
      {handles.map((h) => (
        <li>
          <a href={handleBase(h.handle)}>{h.displayName}</a> <code>{h.handle}</code> — {h.role}
        </li>
      ))}
    </ul>
  ) : (
    <Notice tone="warn">
      This token has no handle. Ask the handle's owner to add you, or sign in with another token.
    </Notice>
  );

// ───────────────────────────── overview (delivery doctor) ─────────────────────────────

export const OverviewPage: FC<{
  handle: string;
  access: Json;
  health: Json | null;
  problem?: Problem | null;
  csrf: string;
  idem: () => string;
}> = (p) => {
  const base = handleBase(p.handle);
  const h = p.health;
  return (
    <>
      <section aria-labelledby="access-h">
        <h2 id="access-h">Your access</h2>
        <KV
          rows={[
            ['Handle', `${p.access.displayName} (${p.access.handle})`],
            ['Role', p.access.role],
            ['Token scopes', (p.access.scopes as string[]).join(' ')],
            ['Token restricted to this handle', p.access.tokenRestrictedToHandle ? 'yes' : 'no'],
          ]}
        />
      </section>
      {p.problem ? <ProblemBox problem={p.problem} context="Delivery doctor" /> : null}
      {h ? (
        <>
          <h2>
            Delivery doctor <Badge status={h.status} />
          </h2>
          <p class="hint">
            Generated <Time at={h.generatedAt} />. Everything that loses or delays events for this handle, each with
            what fixes it.
          </p>
          {(h.warnings as Json[]).map((w) => (
            <Notice tone="warn">
              <strong>{w.code}</strong>: {w.message}
            </Notice>
          ))}
          <div class="grid">
            <section class="panel" aria-labelledby="wh-h">
              <h3 id="wh-h">Webhooks</h3>
              <p>
                {h.webhooks.enabled} of {h.webhooks.total} enabled; {h.webhooks.failing.length} failing,{' '}
                {h.webhooks.disabled.length} disabled.
              </p>
              {(h.webhooks.failing as Json[]).map((w) => (
                <div class="notice warn">
                  <a href={`${base}/webhooks/${w.id}`}>{w.url}</a>: {w.consecutiveFailures} consecutive failures (
                  {w.lastFailureClass ?? 'unknown'}) since <Time at={w.failingSince} />.
                  {w.projectedAutoDisableAt ? (
                    <>
                      {' '}
                      Auto-disable projected at <Time at={w.projectedAutoDisableAt} />.
                    </>
                  ) : null}
                  <p>{w.action}</p>
                  <PostForm action={`${base}/webhooks/${w.id}/test`} csrf={p.csrf} idem={p.idem()}>
                    <button type="submit">Send test</button>
                  </PostForm>
                </div>
              ))}
              {(h.webhooks.disabled as Json[]).map((w) => (
                <div class="notice bad">
                  <a href={`${base}/webhooks/${w.id}`}>{w.url}</a> is disabled ({w.disabledReason ?? 'by a user'}) since{' '}
                  <Time at={w.disabledAt} />.<p>{w.action}</p>
                  <PostForm action={`${base}/webhooks/${w.id}/enable`} csrf={p.csrf} idem={p.idem()}>
                    <button type="submit">Enable</button>
                  </PostForm>
                </div>
              ))}
            </section>
            <section class="panel" aria-labelledby="dead-h">
              <h3 id="dead-h">Dead deliveries (24 h)</h3>
              <p>
                <strong>{h.deadDeliveries24h.count}</strong> dead
                {Object.keys(h.deadDeliveries24h.byErrorClass).length
                  ? ` — ${Object.entries(h.deadDeliveries24h.byErrorClass as Record<string, number>)
                      .map(([k, v]) => `${k}: ${v}`)
                      .join(', ')}`
                  : ''}
              </p>
              {h.deadDeliveries24h.action ? <p>{h.deadDeliveries24h.action}</p> : null}
              <ul>
                {(h.deadDeliveries24h.recent as Json[]).map((d) => (
                  <li>
                    <code>{d.deliveryId}</code> → {d.target} ({d.errorClass ?? '—'}) <Time at={d.at} />{' '}
                    {d.subscriptionId?.startsWith('whk_') ? (
                      <a href={`${base}/webhooks/${d.subscriptionId}`}>log</a>
                    ) : null}{' '}
                    <RetryButton
                      base={base}
                      deliveryId={d.deliveryId}
                      status="dead"
                      back={base}
                      csrf={p.csrf}
                      idem={p.idem()}
                    />
                  </li>
                ))}
              </ul>
            </section>
            <section class="panel" aria-labelledby="email-h">
              <h3 id="email-h">Email subscriptions</h3>
              <p>
                {h.emailSubscriptions.pendingConfirmation.length} pending, {h.emailSubscriptions.stale.length} stale,{' '}
                {h.emailSubscriptions.suppressed.length} suppressed.
              </p>
              {h.emailSubscriptions.action ? <p>{h.emailSubscriptions.action}</p> : null}
              <ul>
                {(h.emailSubscriptions.pendingConfirmation as Json[]).map((s) => (
                  <li>
                    {s.email} <Badge status="pending_confirmation" /> since <Time at={s.since} />{' '}
                    <PostForm action={`${base}/email/${s.id}/resend`} csrf={p.csrf} idem={p.idem()}>
                      <button type="submit" class="secondary">
                        Resend confirmation
                      </button>
                    </PostForm>
                  </li>
                ))}
                {[
                  ...(h.emailSubscriptions.stale as Json[]).map((s): Json => ({ ...s, st: 'stale' })),
                  ...(h.emailSubscriptions.suppressed as Json[]).map((s): Json => ({ ...s, st: 'suppressed' })),
                ].map((s) => (
                  <li>
                    {s.email} <Badge status={s.st} /> {s.reason ?? ''} <a href={`${base}/email`}>fix</a>
                  </li>
                ))}
              </ul>
            </section>
            <section class="panel" aria-labelledby="owner-h">
              <h3 id="owner-h">Owner default email</h3>
              <p>
                <Badge status={h.ownerDefaultEmail.state} /> {h.ownerDefaultEmail.email ?? 'not set'}
              </p>
              {h.ownerDefaultEmail.action ? (
                <p>
                  {h.ownerDefaultEmail.action} <a href={`${base}/email#owner-default`}>Set it</a>
                </p>
              ) : null}
            </section>
            <section class="panel" aria-labelledby="cov-h">
              <h3 id="cov-h">Critical coverage</h3>
              <p>
                <Badge status={h.criticalCoverage.covered ? 'covered' : 'undeliverable'} />{' '}
                {h.criticalCoverage.undeliverable24h} undeliverable critical event(s) in 24 h.
              </p>
              {h.criticalCoverage.action ? (
                <p>
                  {h.criticalCoverage.action} <a href={`${base}/settings`}>Settings</a>
                </p>
              ) : null}
              <DataTable caption="Recipients of each critical event type" columns={['Critical type', 'Recipients']}>
                {(h.criticalCoverage.types as Json[]).map((t) => (
                  <tr>
                    <td>
                      <code>{t.type}</code>
                    </td>
                    <td>{t.undeliverable ? <Badge status="undeliverable" /> : t.recipients}</td>
                  </tr>
                ))}
              </DataTable>
            </section>
          </div>
        </>
      ) : null}
    </>
  );
};

// ───────────────────────────── webhooks ─────────────────────────────

/** Fields shared by the create and edit forms; values from the webhook being edited (or the rejected submission). */
const WebhookFields: FC<{ w?: Json; prefix: string }> = ({ w, prefix }) => (
  <>
    <div class="field">
      <label for={`${prefix}-url`}>URL</label>
      <input id={`${prefix}-url`} name="url" type="url" required value={w?.url ?? ''} inputmode="url" />
    </div>
    <div class="field">
      <label for={`${prefix}-desc`}>Description</label>
      <input id={`${prefix}-desc`} name="description" type="text" value={w?.description ?? ''} maxlength={500} />
    </div>
    <div class="field">
      <label for={`${prefix}-types`}>
        Event types <span class="hint">comma-separated, e.g. order.*, payment.failed; empty = every type</span>
      </label>
      <input
        id={`${prefix}-types`}
        name="eventTypes"
        type="text"
        value={Array.isArray(w?.eventTypes) ? w.eventTypes.join(', ') : (w?.eventTypes ?? '')}
      />
    </div>
    <div class="field">
      <label for={`${prefix}-filter`}>
        Filter policy <span class="hint">JSON, SNS-style; empty = none</span>
      </label>
      <textarea id={`${prefix}-filter`} name="filterPolicy">
        {typeof w?.filterPolicy === 'string' ? w.filterPolicy : json(w?.filterPolicy)}
      </textarea>
    </div>
    <div class="field">
      <label for={`${prefix}-headers`}>
        Custom headers <span class="hint">one "Name: value" per line</span>
      </label>
      <textarea id={`${prefix}-headers`} name="headers">
        {typeof w?.headers === 'string'
          ? w.headers
          : Object.entries((w?.headers ?? {}) as Record<string, string>)
              .map(([k, v]) => `${k}: ${v}`)
              .join('\n')}
      </textarea>
    </div>
  </>
);

export interface WebhookRow {
  webhook: Json;
  buckets: { ok: number; failed: number }[];
}

export const WebhooksPage: FC<{
  handle: string;
  rows: WebhookRow[];
  nextCursor: string | null;
  csrf: string;
  idem: string;
  form?: Json;
  problem?: Problem | null;
}> = (p) => {
  const base = handleBase(p.handle);
  return (
    <>
      {p.problem ? <ProblemBox problem={p.problem} context="Not created" /> : null}
      <DataTable
        caption="Webhook endpoints"
        columns={['Endpoint', 'Status', 'Health', '24 h']}
        empty={p.rows.length === 0 && 'No webhooks yet.'}
      >
        {p.rows.map(({ webhook: w, buckets }) => (
          <tr>
            <td>
              <a href={`${base}/webhooks/${w.id}`}>{w.url}</a>
              {w.description ? <div class="hint">{w.description}</div> : null}
              <div class="hint mono">{w.id}</div>
            </td>
            <td>
              <Badge status={w.status} />
              {w.disabledReason ? <div class="hint">{w.disabledReason}</div> : null}
            </td>
            <td>
              {w.health.consecutiveFailures ? (
                <span>
                  <Badge status="failed" /> {w.health.consecutiveFailures} in a row ({w.health.lastFailureClass ?? '—'})
                </span>
              ) : (
                <Badge status={w.health.lastSuccessAt ? 'succeeded' : 'no deliveries'} />
              )}
            </td>
            <td>
              <Sparkline buckets={buckets} />
            </td>
          </tr>
        ))}
      </DataTable>
      {p.nextCursor ? <a href={`?cursor=${encodeURIComponent(p.nextCursor)}`}>Next page</a> : null}
      <h2 id="create">Add a webhook</h2>
      <PostForm action={`${base}/webhooks`} csrf={p.csrf} idem={p.idem} class="stack" label="Add a webhook">
        <WebhookFields w={p.form} prefix="new" />
        <div class="checks">
          <input
            id="new-enabled"
            type="checkbox"
            name="enabled"
            value="true"
            checked={p.form ? p.form.enabled === 'true' : true}
          />{' '}
          <label for="new-enabled">Enabled</label>
        </div>
        <div>
          <button type="submit">Create webhook</button>
        </div>
      </PostForm>
    </>
  );
};

const AttemptRows: FC<{ attempts: Json[] }> = ({ attempts }) => (
  <>
    {attempts.map((a) => (
      <li>
        #{a.attemptNumber} <Badge status={a.outcome} /> {a.errorClass ?? ''} HTTP {a.httpStatus ?? '—'} · {a.durationMs}{' '}
        ms · <Time at={a.at} />
        {a.errorMessage ? <div class="hint">{a.errorMessage}</div> : null}
        {a.responseSnippet ? (
          <details>
            <summary>Response</summary>
            <pre>{a.responseSnippet}</pre>
          </details>
        ) : null}
      </li>
    ))}
  </>
);

export const TestResult: FC<{ result: Json }> = ({ result }) => {
  const a = result.attempt;
  const d = result.diagnosis;
  return (
    <section class="panel" aria-labelledby="test-h" id="test-result">
      <h2 id="test-h">
        Test delivery <Badge status={a.outcome} />
      </h2>
      <KV
        rows={[
          ['Delivery id', <Copyable value={result.deliveryId} label="delivery id" />],
          ['Event type', d.test.eventType],
          [
            'Result',
            `${a.outcome}${a.errorClass ? ` (${a.errorClass})` : ''}, HTTP ${a.httpStatus ?? '—'}, ${a.durationMs} ms, ${a.requestBytes ?? '—'} bytes`,
          ],
          ['Error', a.errorMessage ?? '—'],
        ]}
      />
      {a.responseSnippet ? (
        <details>
          <summary>Response snippet</summary>
          <pre>{a.responseSnippet}</pre>
        </details>
      ) : null}
      <h3>Diagnosis</h3>
      <p id="diagnosis-summary">
        <strong>{d.summary}</strong>
      </p>
      <KV
        rows={[
          [
            'Subscription',
            `${d.subscription.status}${d.subscription.disabledReason ? ` (${d.subscription.disabledReason})` : ''}, ${d.subscription.consecutiveFailures} consecutive failures`,
          ],
          ['Projected auto-disable', <Time at={d.subscription.projectedAutoDisableAt} />],
          ['Secret in rotation', d.subscription.secretInRotation ? 'yes' : 'no'],
        ]}
      />
      {d.differences.length ? (
        <>
          <h3>What differs from production</h3>
          <ul class="findings">
            {(d.differences as Json[]).map((f) => (
              <li>
                <code>{f.code}</code>: {f.message}
              </li>
            ))}
          </ul>
        </>
      ) : null}
      {d.nextSteps.length ? (
        <>
          <h3>Next steps</h3>
          <ol>
            {(d.nextSteps as string[]).map((s) => (
              <li>{s}</li>
            ))}
          </ol>
        </>
      ) : null}
      {d.matching.recentEventTypes.length ? (
        <>
          <h3>Recent event types</h3>
          <ul>
            {(d.matching.recentEventTypes as Json[]).map((t) => (
              <li>
                <code>{t.type}</code> ×{t.count}:{' '}
                {t.wouldMatch ? 'would be delivered' : `not delivered (${t.reason ?? 'filtered'})`}
              </li>
            ))}
          </ul>
        </>
      ) : null}
      {d.productionFailures.length ? (
        <>
          <h3>Recent production failures</h3>
          <ul>
            {(d.productionFailures as Json[]).map((f) => (
              <li>
                <code>{f.deliveryId}</code> {f.type ?? ''} <Badge status={f.deliveryStatus} /> {f.errorClass ?? ''} HTTP{' '}
                {f.httpStatus ?? '—'} after {f.attempts} attempt(s) · <Time at={f.at} />
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </section>
  );
};

export const WebhookPage: FC<{
  handle: string;
  webhook: Json;
  deliveries: Json[];
  nextCursor: string | null;
  types: EventType[];
  csrf: string;
  idem: () => string;
  secret?: string | null;
  testResult?: Json | null;
  recoverResult?: Json | null;
  problem?: Problem | null;
  problemContext?: string;
  form?: Json;
  recoverSince: string;
  /** The headers as rendered (credential values masked): the edit only sends headers the user changed. */
  headersOriginal: string;
}> = (p) => {
  const base = handleBase(p.handle);
  const w = p.webhook;
  const self = `${base}/webhooks/${w.id}`;
  return (
    <>
      {p.secret ? (
        <Notice tone="warn">
          <strong>Signing secret — shown only now.</strong> Store it in your receiver to verify{' '}
          <code>webhook-signature</code>.
          <p>
            <span class="secret">
              <Copyable value={p.secret} label="signing secret" />
            </span>
          </p>
        </Notice>
      ) : null}
      {p.problem ? <ProblemBox problem={p.problem} context={p.problemContext} /> : null}
      {p.recoverResult ? (
        <Notice tone="ok">
          Queued again: {p.recoverResult.enqueued} deliver{p.recoverResult.enqueued === 1 ? 'y' : 'ies'}
          {p.recoverResult.more ? '; more remain — recover again' : ''}.
          {p.recoverResult.redriven.length ? (
            <div class="hint mono">{(p.recoverResult.redriven as string[]).join(' ')}</div>
          ) : null}
        </Notice>
      ) : null}
      <KV
        rows={[
          ['URL', <code>{w.url}</code>],
          [
            'Status',
            <>
              <Badge status={w.status} /> {w.disabledReason ?? ''}
            </>,
          ],
          ['Event types', list(w.eventTypes)],
          ['Filter policy', w.filterPolicy ? <code>{JSON.stringify(w.filterPolicy)}</code> : 'none'],
          [
            'Consecutive failures',
            `${w.health.consecutiveFailures}${w.health.lastFailureClass ? ` (last: ${w.health.lastFailureClass})` : ''}`,
          ],
          ['Failing since', <Time at={w.health.failingSince} />],
          ['Last success', <Time at={w.health.lastSuccessAt} />],
          [
            'Secret rotation',
            w.secretRotation ? (
              <>
                previous secret valid until <Time at={w.secretRotation.previousSecretExpiresAt} />
              </>
            ) : (
              'none'
            ),
          ],
        ]}
      />
      <div class="panel">
        <PostForm action={`${self}/test`} csrf={p.csrf} idem={p.idem()} label="Send a test">
          <label for="test-type">Send test</label>
          <select id="test-type" name="eventType">
            <TypeOptions types={p.types} selected="order.created" />
          </select>
          <button type="submit">Send test</button>
        </PostForm>{' '}
        {w.enabled ? (
          <PostForm action={`${self}/disable`} csrf={p.csrf} idem={p.idem()}>
            <button type="submit" class="secondary">
              Disable
            </button>
          </PostForm>
        ) : (
          <PostForm action={`${self}/enable`} csrf={p.csrf} idem={p.idem()}>
            <button type="submit">Enable</button>
          </PostForm>
        )}{' '}
        <PostForm
          action={`${self}/rotate`}
          csrf={p.csrf}
          idem={p.idem()}
          confirm="Rotate the signing secret?"
          label="Rotate secret"
        >
          <label for="grace">Old secret valid for (hours)</label>
          <input id="grace" type="text" inputmode="numeric" name="graceHours" value="24" size={4} />
          <button type="submit" class="secondary">
            Rotate secret
          </button>
        </PostForm>{' '}
        <PostForm
          action={`${self}/delete`}
          csrf={p.csrf}
          idem={p.idem()}
          confirm="Delete this webhook? Its pending deliveries are cancelled."
          label="Delete webhook"
        >
          <button type="submit" class="danger">
            Delete
          </button>
        </PostForm>
      </div>
      {p.testResult ? <TestResult result={p.testResult} /> : null}
      <h2 id="log">Delivery log</h2>
      <PostForm action={`${self}/recover`} csrf={p.csrf} idem={p.idem()} label="Recover dead deliveries">
        <label for="since">Recover dead and skipped deliveries since (UTC)</label>
        <input id="since" type="datetime-local" name="since" value={p.recoverSince} required step={1} />
        <button type="submit">Recover</button>
      </PostForm>
      <DataTable
        caption="Deliveries to this webhook, newest first"
        columns={['Delivery', 'Status', 'Attempts']}
        empty={p.deliveries.length === 0 && 'No deliveries yet.'}
      >
        {p.deliveries.map((d) => (
          <tr data-delivery={d.id} data-status={d.status}>
            <td>
              <code>{d.id}</code> <span class="hint">{d.kind}</span>
              {d.notificationId ? (
                <div>
                  <a href={`${base}/notifications/${d.notificationId}`}>{d.notificationId}</a>
                </div>
              ) : null}
              <div class="hint">
                <Time at={d.createdAt} />
              </div>
            </td>
            <td>
              <Badge status={d.status} /> {d.lastErrorClass ?? ''} {d.lastHttpStatus ? `HTTP ${d.lastHttpStatus}` : ''}
              {d.statusReason ? <div class="hint">{d.statusReason}</div> : null}
              {d.nextAttemptAt ? (
                <div class="hint">
                  next attempt <Time at={d.nextAttemptAt} />
                </div>
              ) : null}
              <RetryButton base={base} deliveryId={d.id} status={d.status} back={self} csrf={p.csrf} idem={p.idem()} />
            </td>
            <td>
              {d.attemptCount}
              <ul>
                <AttemptRows attempts={d.attempts} />
              </ul>
            </td>
          </tr>
        ))}
      </DataTable>
      {p.nextCursor ? <a href={`?cursor=${encodeURIComponent(p.nextCursor)}#log`}>Older deliveries</a> : null}
      <h2>Edit</h2>
      <PostForm action={self} csrf={p.csrf} idem={p.idem()} class="stack" label="Edit webhook">
        <input type="hidden" name="headersOriginal" value={p.headersOriginal} />
        <WebhookFields w={p.form ?? w} prefix="edit" />
        <div>
          <button type="submit">Save changes</button>
        </div>
      </PostForm>
    </>
  );
};

// ───────────────────────────── email ─────────────────────────────

export const EmailTestResult: FC<{ result: Json }> = ({ result }) => {
  const d = result.diagnosis;
  return (
    <section class="panel" id="test-result" aria-labelledby="etest-h">
      <h2 id="etest-h">
        Email test <Badge status={d.test.outcome} />
      </h2>
      <p id="diagnosis-summary">
        <strong>{d.summary}</strong>
      </p>
      <KV
        rows={[
          [
            'Delivery id',
            result.deliveryId ? <Copyable value={result.deliveryId} label="delivery id" /> : '— (not sent)',
          ],
          ['Address', `${d.subscription.email} (${d.subscription.kind})`],
          [
            'Status',
            <>
              <Badge status={d.subscription.status} /> {d.subscription.statusReason ?? ''}
            </>,
          ],
          ['Provider', d.subscription.provider],
          [
            'Test',
            `${d.test.outcome}${d.test.errorClass ? ` (${d.test.errorClass})` : ''}${d.test.detail ? `: ${d.test.detail}` : ''}`,
          ],
          [
            'Provider check',
            d.providerCheck
              ? `${d.providerCheck.provider} ${d.providerCheck.reference}: ${d.providerCheck.state}`
              : '—',
          ],
        ]}
      />
      {d.nextSteps.length ? (
        <ol>
          {(d.nextSteps as string[]).map((s) => (
            <li>{s}</li>
          ))}
        </ol>
      ) : null}
    </section>
  );
};

export const EmailPage: FC<{
  handle: string;
  subs: Json[];
  nextCursor: string | null;
  csrf: string;
  idem: () => string;
  problem?: Problem | null;
  problemContext?: string;
  testResult?: Json | null;
  form?: Json;
  devMailbox: boolean;
}> = (p) => {
  const base = handleBase(p.handle);
  const owner = p.subs.find((s) => s.id === 'owner-default');
  return (
    <>
      {owner && owner.status === 'unset' ? (
        <Notice tone="bad">
          <strong>No owner default email.</strong>{' '}
          {owner.statusReason ?? 'Critical events have no guaranteed recipient.'}{' '}
          <a href="#owner-default">Set one below</a>.
        </Notice>
      ) : null}
      {p.problem ? <ProblemBox problem={p.problem} context={p.problemContext} /> : null}
      {p.testResult ? <EmailTestResult result={p.testResult} /> : null}
      <DataTable
        caption="Email subscriptions, owner default first"
        columns={['Address', 'Status', 'Receives', 'Actions']}
      >
        {p.subs.map((s) => (
          <tr data-subscription={s.id} data-status={s.status}>
            <td>
              {s.email ?? <em>not set</em>}
              <div class="hint">{s.kind === 'owner_default' ? 'owner default' : <code>{s.id}</code>}</div>
            </td>
            <td>
              <Badge status={s.status} />
              {s.statusReason ? <div class="hint">{s.statusReason}</div> : null}
              {s.confirmedAt ? (
                <div class="hint">
                  confirmed <Time at={s.confirmedAt} />
                </div>
              ) : null}
            </td>
            <td>
              {s.kind === 'owner_default' ? 'per the owner fallback (settings)' : list(s.eventTypes)}
              {s.filterPolicy ? <div class="hint mono">{JSON.stringify(s.filterPolicy)}</div> : null}
            </td>
            <td>
              {s.status !== 'unset' ? (
                <PostForm action={`${base}/email/${s.id}/test`} csrf={p.csrf} idem={p.idem()}>
                  <button type="submit" class="secondary">
                    Send test
                  </button>
                </PostForm>
              ) : null}{' '}
              {s.status === 'pending_confirmation' ? (
                <PostForm action={`${base}/email/${s.id}/resend`} csrf={p.csrf} idem={p.idem()}>
                  <button type="submit" class="secondary">
                    Resend confirmation
                  </button>
                </PostForm>
              ) : null}{' '}
              {s.kind === 'standard' ? (
                <PostForm
                  action={`${base}/email/${s.id}/delete`}
                  csrf={p.csrf}
                  idem={p.idem()}
                  confirm={`Delete the subscription of ${s.email}?`}
                >
                  <button type="submit" class="danger">
                    Delete
                  </button>
                </PostForm>
              ) : null}
            </td>
          </tr>
        ))}
      </DataTable>
      {p.nextCursor ? <a href={`?cursor=${encodeURIComponent(p.nextCursor)}`}>Next page</a> : null}
      {p.devMailbox ? (
        <p class="hint">
          Development: mails land in the <a href="/dev/mailbox">local mailbox</a> (confirmation links are clickable
          there).
        </p>
      ) : null}
      <h2 id="add">Subscribe an address</h2>
      <PostForm action={`${base}/email`} csrf={p.csrf} idem={p.idem()} class="stack" label="Subscribe an address">
        <div class="field">
          <label for="sub-email">Email</label>
          <input id="sub-email" name="email" type="email" required value={p.form?.email ?? ''} autocomplete="email" />
          <span class="hint">
            The address gets a confirmation link first (double opt-in) and nothing else until it confirms.
          </span>
        </div>
        <div class="field">
          <label for="sub-types">
            Event types <span class="hint">comma-separated; empty = every type</span>
          </label>
          <input id="sub-types" name="eventTypes" type="text" value={p.form?.eventTypes ?? ''} />
        </div>
        <div class="field">
          <label for="sub-filter">
            Filter policy <span class="hint">JSON; empty = none</span>
          </label>
          <textarea id="sub-filter" name="filterPolicy">
            {p.form?.filterPolicy ?? ''}
          </textarea>
        </div>
        <div>
          <button type="submit">Subscribe</button>
        </div>
      </PostForm>
      <h2 id="owner-default">Owner default email</h2>
      <p>
        Receives every critical event whatever the filters (unless the owner fallback is “none”). Only the owner may
        change it.
      </p>
      <PostForm
        action={`${base}/email/owner-default`}
        csrf={p.csrf}
        idem={p.idem()}
        class="stack"
        label="Set or unset the owner default email"
      >
        <div class="field">
          <label for="owner-email">Owner default email</label>
          <input id="owner-email" name="email" type="email" value={owner?.email ?? ''} autocomplete="email" />
        </div>
        <div>
          <button type="submit" name="action" value="set">
            Save
          </button>{' '}
          <button type="submit" name="action" value="unset" class="danger">
            Unset
          </button>
        </div>
      </PostForm>
    </>
  );
};

// ───────────────────────────── settings ─────────────────────────────

export const SettingsPage: FC<{
  handle: string;
  settings: Json;
  etag: string;
  types: EventType[];
  recent: Json[];
  csrf: string;
  idem: () => string;
  problem?: Problem | null;
  problemContext?: string;
  saved?: boolean;
  evaluation?: Json | null;
  evalForm?: Json;
  form?: Json;
}> = (p) => {
  const base = handleBase(p.handle);
  const s = p.form ?? p.settings;
  const ev = p.evalForm ?? {};
  return (
    <>
      {p.problem ? <ProblemBox problem={p.problem} context={p.problemContext} /> : null}
      {p.saved ? <Notice tone="ok">Settings saved (version {p.settings.version}).</Notice> : null}
      {(p.settings.warnings as Json[]).map((w) => (
        <Notice tone="warn">
          <strong>{w.code}</strong>: {w.message}
        </Notice>
      ))}
      <PostForm action={`${base}/settings`} csrf={p.csrf} idem={p.idem()} class="stack" label="Notification settings">
        <input type="hidden" name="etag" value={p.etag} />
        <fieldset class="checks">
          <legend>Channels</legend>
          <div>
            <input id="ch-webhook" type="checkbox" name="webhook" value="true" checked={s.channels.webhook.enabled} />{' '}
            <label for="ch-webhook">Webhooks</label>
          </div>
          <div>
            <input id="ch-email" type="checkbox" name="email" value="true" checked={s.channels.email.enabled} />{' '}
            <label for="ch-email">Email</label>
          </div>
        </fieldset>
        <div class="field">
          <label for="fallback">Owner fallback</label>
          <select id="fallback" name="ownerFallback">
            {[
              ['critical', 'critical events (default)'],
              ['all', 'all events'],
              ['none', 'none'],
            ].map(([v, l]) => (
              <option value={v} selected={s.ownerFallback === v}>
                {l}
              </option>
            ))}
          </select>
          <span class="hint">What the owner default email receives.</span>
        </div>
        <div class="field">
          <label for="event-filter">
            Event filter{' '}
            <span class="hint">JSON filter policy applied to every recipient; empty lets everything through</span>
          </label>
          <textarea id="event-filter" name="eventFilter">
            {typeof s.eventFilter === 'string' ? s.eventFilter : json(s.eventFilter)}
          </textarea>
        </div>
        <div>
          <button type="submit" name="action" value="save">
            Save settings
          </button>{' '}
          <span class="hint">
            Version {p.settings.version}, updated <Time at={p.settings.updatedAt} />
          </span>
        </div>
        <h2 id="evaluate">Dry run: who would receive an event?</h2>
        <fieldset>
          <legend>Event to evaluate</legend>
          <div class="field">
            <label for="ev-source">Use</label>
            <select id="ev-source" name="source">
              <option value="sample" selected={(ev.source ?? 'sample') === 'sample'}>
                the catalog sample of a type
              </option>
              <option value="recent" selected={ev.source === 'recent'}>
                a recent notification
              </option>
              <option value="custom" selected={ev.source === 'custom'}>
                this custom event (JSON)
              </option>
            </select>
          </div>
          <div class="field">
            <label for="ev-type">Sample type</label>
            <select id="ev-type" name="eventType">
              <TypeOptions types={p.types} selected={ev.eventType ?? 'order.created'} />
            </select>
          </div>
          <div class="field">
            <label for="ev-recent">Recent notification</label>
            <select id="ev-recent" name="notificationId">
              {p.recent.length === 0 ? <option value="">(none yet)</option> : null}
              {p.recent.map((n) => (
                <option value={n.id} selected={ev.notificationId === n.id}>
                  {`${n.type} · ${n.severity} · ${n.createdAt} · ${n.id}`}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="ev-custom">Custom event</label>
            <textarea id="ev-custom" name="event">
              {ev.event ?? '{\n  "type": "order.created",\n  "data": {}\n}'}
            </textarea>
          </div>
        </fieldset>
        <div>
          <button type="submit" name="action" value="evaluate-saved">
            Evaluate with the saved settings
          </button>{' '}
          <button type="submit" name="action" value="evaluate-form" class="secondary">
            Evaluate with the settings above (unsaved)
          </button>
        </div>
      </PostForm>
      {p.evaluation ? <Evaluation result={p.evaluation} /> : null}
    </>
  );
};

const Evaluation: FC<{ result: Json }> = ({ result }) => (
  <section class="panel" id="evaluation" aria-labelledby="eval-h">
    <h3 id="eval-h">
      Verdicts for <code>{result.event.type}</code> ({result.event.severity}) — {result.settingsSource} settings
    </h3>
    {result.undeliverable ? (
      <Notice tone="bad">A critical event no recipient would receive (undeliverable).</Notice>
    ) : null}
    <DataTable
      caption="Each recipient's verdict"
      columns={['Recipient', 'Verdict', 'Rule', 'Why']}
      empty={result.recipients.length === 0 && 'No recipients.'}
    >
      {(result.recipients as Json[]).map((r) => (
        <tr>
          <td>
            {r.target}
            <div class="hint">
              {r.recipientType} · <code>{r.subscriptionId}</code>
            </div>
          </td>
          <td>
            <Badge status={r.outcome} />
          </td>
          <td>
            <code>{r.rule}</code>
          </td>
          <td>{r.detail}</td>
        </tr>
      ))}
    </DataTable>
    <details>
      <summary>Event evaluated</summary>
      <pre>{json(result.event)}</pre>
    </details>
  </section>
);

// ───────────────────────────── notifications ─────────────────────────────

const STATUSES = ['delivering', 'delivered', 'partially_failed', 'failed', 'no_recipients', 'undeliverable'];

export const FeedPage: FC<{
  handle: string;
  items: Json[];
  nextCursor: string | null;
  filters: Record<string, string>;
  types: EventType[];
  csrf: string;
  idem: string;
  problem?: Problem | null;
  problemContext?: string;
}> = (p) => {
  const base = handleBase(p.handle);
  const f = p.filters;
  const next = new URLSearchParams({ ...f, cursor: p.nextCursor ?? '' });
  return (
    <>
      {p.problem ? <ProblemBox problem={p.problem} context={p.problemContext} /> : null}
      <form method="get" action={`${base}/notifications`} class="inline" aria-label="Filter notifications">
        <label for="f-status">Status</label>
        <select id="f-status" name="status">
          <option value="">any</option>
          {STATUSES.map((s) => (
            <option value={s} selected={f.status === s}>
              {s}
            </option>
          ))}
        </select>
        <label for="f-type">Type</label>
        <input id="f-type" name="type" type="text" value={f.type ?? ''} size={16} />
        <label for="f-sev">Severity</label>
        <select id="f-sev" name="severity">
          <option value="">any</option>
          {['info', 'warning', 'critical'].map((s) => (
            <option value={s} selected={f.severity === s}>
              {s}
            </option>
          ))}
        </select>
        <label for="f-since">Since (UTC)</label>
        <input id="f-since" name="since" type="datetime-local" value={f.since ?? ''} step={1} />
        <label for="f-until">Until (UTC)</label>
        <input id="f-until" name="until" type="datetime-local" value={f.until ?? ''} step={1} />
        <button type="submit">Filter</button> <a href={`${base}/notifications`}>Clear</a>
      </form>
      <DataTable
        caption="Notifications, newest first"
        columns={['Notification', 'Status', 'Recipients']}
        empty={p.items.length === 0 && 'No notifications match.'}
      >
        {p.items.map((n) => (
          <tr data-notification={n.id} data-status={n.status}>
            <td>
              <a href={`${base}/notifications/${n.id}`}>{n.type}</a> <Badge status={n.severity} />
              <div class="hint mono">{n.id}</div>
              <div class="hint">
                <Time at={n.createdAt} />
              </div>
            </td>
            <td>
              <Badge status={n.status} />
              <div class="hint">
                {n.deliveryCounts.succeeded} ok · {n.deliveryCounts.open} open · {n.deliveryCounts.dead} dead
              </div>
            </td>
            <td>
              <ul>
                {(n.deliveries as Json[]).map((d) => (
                  <li>
                    <Badge status={d.status} /> {d.target}{' '}
                    <span class="hint">
                      ({d.recipientType}, {d.attempts} attempt(s){d.lastErrorClass ? `, ${d.lastErrorClass}` : ''})
                    </span>
                  </li>
                ))}
                {n.recipientCount > n.deliveries.length ? (
                  <li class="hint">… {n.recipientCount - n.deliveries.length} more</li>
                ) : null}
              </ul>
            </td>
          </tr>
        ))}
      </DataTable>
      {p.nextCursor ? <a href={`${base}/notifications?${next.toString()}`}>Older notifications</a> : null}
      <h2 id="publish">Publish a test event</h2>
      <p class="hint">
        A real event through the production path (needs the events:publish scope): it appears above and is delivered to
        every matching recipient.
      </p>
      <PostForm action={`${base}/events`} csrf={p.csrf} idem={p.idem} class="stack" label="Publish an event">
        <div class="field">
          <label for="pub-type">Event type</label>
          <select id="pub-type" name="type">
            <TypeOptions types={p.types} selected="order.created" publishable />
          </select>
        </div>
        <div class="field">
          <label for="pub-data">
            Data <span class="hint">JSON object; empty = the catalog sample</span>
          </label>
          <textarea id="pub-data" name="data"></textarea>
        </div>
        <div>
          <button type="submit">Publish</button>
        </div>
      </PostForm>
    </>
  );
};

export const NotificationPage: FC<{
  handle: string;
  n: Json;
  csrf: string;
  idem: () => string;
  problem?: Problem | null;
  flash?: string | null;
}> = (p) => {
  const base = handleBase(p.handle);
  const n = p.n;
  return (
    <>
      {p.problem ? <ProblemBox problem={p.problem} context="Retry" /> : null}
      <KV
        rows={[
          ['Id', <Copyable value={n.id} label="notification id" />],
          ['Type', <code>{n.type}</code>],
          ['Severity', <Badge status={n.severity} />],
          ['Status', <Badge status={n.status} />],
          ['Source', n.source],
          ['Source event id', n.sourceEventId ?? '—'],
          ['Occurred', <Time at={n.occurredAt} />],
          ['Accepted', <Time at={n.createdAt} />],
          ['Updated', <Time at={n.updatedAt} />],
          [
            'Recipients',
            `${n.recipientCount} (${n.deliveryCounts.succeeded} succeeded, ${n.deliveryCounts.open} open, ${n.deliveryCounts.dead} dead)`,
          ],
        ]}
      />
      <h2>Deliveries</h2>
      <DataTable caption="One delivery per recipient" columns={['Recipient', 'Status', 'Attempts']}>
        {(n.deliveries as Json[]).map((d) => (
          <tr data-delivery={d.deliveryId} data-status={d.status}>
            <td>
              {d.subscriptionId?.startsWith('whk_') ? (
                <a href={`${base}/webhooks/${d.subscriptionId}`}>{d.target}</a>
              ) : (
                d.target
              )}
              <div class="hint">
                {d.channel} · {d.recipientType} · <code>{d.deliveryId}</code>
              </div>
            </td>
            <td>
              <Badge status={d.status} /> {d.lastErrorClass ?? ''} {d.lastHttpStatus ? `HTTP ${d.lastHttpStatus}` : ''}
              {d.statusReason ? <div class="hint">{d.statusReason}</div> : null}
              <RetryButton
                base={base}
                deliveryId={d.deliveryId}
                status={d.status}
                back={`${base}/notifications/${n.id}`}
                csrf={p.csrf}
                idem={p.idem()}
              />
            </td>
            <td>
              {d.attempts}{' '}
              <span class="hint">
                updated <Time at={d.updatedAt} />
              </span>
            </td>
          </tr>
        ))}
      </DataTable>
      <h2>Data</h2>
      <pre>{json(n.data)}</pre>
    </>
  );
};

export const ReportResult: FC<{ result: Json | null; problem: Problem | null }> = ({ result, problem }) =>
  result ? (
    <Notice tone="ok">
      <p>Support has your report. Quote the report id when you follow up.</p>
      <KV
        rows={[
          ['Report id', <Copyable value={result.reportId} label="report id" />],
          ['Request id', <Copyable value={result.requestId} label="request id" />],
          ['Handle', result.handle ?? '—'],
        ]}
      />
    </Notice>
  ) : problem ? (
    <ProblemBox problem={problem} context="Report not filed" />
  ) : null;

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

export { Csrf };
