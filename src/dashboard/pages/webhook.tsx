/**
 * One webhook: its settings and health, the actions on it (test with diagnosis, enable/disable, rotate the secret,
 * delete, edit), and its delivery log with the recovery of dead and skipped deliveries.
 */
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import { defaultTestEventType } from '../../lib/event-catalog.ts';
import type {
  Delivery,
  DeliveryList,
  EventType,
  RecoverResult,
  RotatedWebhook,
  Webhook,
  WebhookDeliveryStats,
  WebhookTestResult,
} from '../answers.ts';
import type { ApiFetch, Problem } from '../api.ts';
import { ErrorClassChart, LatencyChart, OutcomeChart } from '../charts.tsx';
import { type Form, fromLocalInput, idemHeaders, pathId, toLocalInput } from '../forms.ts';
import {
  type C,
  eventTypes,
  type HandleContext,
  handlePage,
  redirectWith,
  render,
  renderProblem,
} from '../handler.tsx';
import {
  Badge,
  Copyable,
  DataTable,
  handleBase,
  KV,
  LiveRegion,
  Notice,
  openMark,
  PostForm,
  ProblemBox,
  Time,
  TypeOptions,
  typeList,
} from '../layout.tsx';
import { RetryButton } from './delivery-retry.tsx';
import { AttemptRows, TestResult } from './webhook-diagnosis.tsx';
import { WebhookFields, webhookBody } from './webhook-form.tsx';

/** `/dashboard/h/:handle/webhooks/:id` and its form posts. */
export function webhookRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'webhooks', 'Webhook');

  r.get(
    '/h/:handle/webhooks/:id',
    page(async (c, h) => {
      return webhookPage(c, h, pathId(c));
    }),
  );

  r.post(
    '/h/:handle/webhooks/:id',
    page(async (c, h) => {
      const id = pathId(c);
      const built = webhookBody(c, h.form, true);
      if ('problem' in built)
        return webhookPage(c, h, id, {
          problem: built.problem,
          problemContext: 'Not saved',
          form: h.form,
          status: 400,
        });
      const res = await h.api.call<Webhook>('PATCH', `/v2/handles/${h.handle}/webhooks/${id}`, {
        body: built.body,
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return webhookPage(c, h, id, {
          problem: res.problem,
          problemContext: 'Not saved',
          form: h.form,
          status: res.status,
        });
      return redirectWith(c, `${handleBase(h.handle)}/webhooks/${id}`, 'webhook_saved');
    }),
  );

  for (const [action, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    r.post(
      `/h/:handle/webhooks/:id/${action}`,
      page(async (c, h) => {
        const id = pathId(c);
        const res = await h.api.call<Webhook>('PATCH', `/v2/handles/${h.handle}/webhooks/${id}`, {
          body: { enabled },
          headers: idemHeaders(h.form),
        });
        if (!res.ok)
          return webhookPage(c, h, id, { problem: res.problem, problemContext: `Not ${action}d`, status: res.status });
        return redirectWith(c, `${handleBase(h.handle)}/webhooks/${id}`, `webhook_${action}d`);
      }),
    );
  }

  r.post(
    '/h/:handle/webhooks/:id/delete',
    page(async (c, h) => {
      const id = pathId(c);
      const res = await h.api.call('DELETE', `/v2/handles/${h.handle}/webhooks/${id}`, {
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return webhookPage(c, h, id, { problem: res.problem, problemContext: 'Not deleted', status: res.status });
      return redirectWith(c, `${handleBase(h.handle)}/webhooks`, 'webhook_deleted');
    }),
  );

  r.post(
    '/h/:handle/webhooks/:id/rotate',
    page(async (c, h) => {
      const id = pathId(c);
      const grace = Number.parseInt(h.form.graceHours ?? '', 10);
      const res = await h.api.call<RotatedWebhook>('POST', `/v2/handles/${h.handle}/webhooks/${id}/rotate-secret`, {
        body: Number.isFinite(grace) ? { graceHours: grace } : {},
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return webhookPage(c, h, id, {
          problem: res.problem,
          problemContext: 'Secret not rotated',
          status: res.status,
        });
      return webhookPage(c, h, id, { secret: res.data.secret, flash: 'Secret rotated.' });
    }),
  );

  r.post(
    '/h/:handle/webhooks/:id/test',
    page(async (c, h) => {
      const id = pathId(c);
      const eventType = (h.form.eventType ?? '').trim();
      const res = await h.api.call<WebhookTestResult>('POST', `/v2/handles/${h.handle}/webhooks/${id}/test`, {
        body: eventType ? { eventType } : {},
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return webhookPage(c, h, id, { problem: res.problem, problemContext: 'Test not sent', status: res.status });
      return webhookPage(c, h, id, { testResult: res.data });
    }),
  );

  r.post(
    '/h/:handle/webhooks/:id/recover',
    page(async (c, h) => {
      const id = pathId(c);
      const res = await h.api.call<RecoverResult>('POST', `/v2/handles/${h.handle}/webhooks/${id}/recover`, {
        body: { since: fromLocalInput(h.form.since) ?? '' },
        headers: idemHeaders(h.form),
      });
      if (!res.ok)
        return webhookPage(c, h, id, { problem: res.problem, problemContext: 'Nothing recovered', status: res.status });
      return webhookPage(c, h, id, { recoverResult: res.data });
    }),
  );

  return r;
}

/**
 * The webhook page (also what its actions answer with: a test's diagnosis, a rotated secret, a refusal with the form
 * as typed). `secret` is shown once, after a create or a rotation.
 */
export async function webhookPage(
  c: C,
  h: HandleContext,
  id: string,
  extra: {
    secret?: string;
    testResult?: WebhookTestResult;
    recoverResult?: RecoverResult;
    problem?: Problem;
    problemContext?: string;
    form?: Form;
    status?: number;
    flash?: string;
  } = {},
) {
  const [w, log, types, stats] = await Promise.all([
    h.api.call<Webhook>('GET', `/v2/handles/${h.handle}/webhooks/${id}`),
    h.api.call<DeliveryList>('GET', `/v2/handles/${h.handle}/webhooks/${id}/deliveries`, {
      query: { cursor: c.req.method === 'GET' ? c.req.query('cursor') : undefined, limit: 25 },
    }),
    eventTypes(h.api),
    h.api.call<WebhookDeliveryStats>('GET', `/v2/handles/${h.handle}/webhooks/${id}/delivery-stats`),
  ]);
  if (!w.ok) return renderProblem(c, h.frame, w.problem, true);
  h.frame.title = `Webhook ${w.data.url}`;
  // The live log refreshes from this page's GET (after a form post too: the page of the same log).
  const cursor = c.req.method === 'GET' ? c.req.query('cursor') : undefined;
  const liveSrc = `${handleBase(h.handle)}/webhooks/${id}${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`;
  h.frame.ids = [
    { label: 'Webhook id', value: id },
    ...(extra.testResult ? [{ label: 'Test delivery id', value: extra.testResult.deliveryId }] : []),
  ];
  if (extra.flash) h.frame.flash = extra.flash;
  const headersText = Object.entries(w.data.headers ?? {})
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');
  return render(
    c,
    h.frame,
    <WebhookPage
      handle={h.handle}
      webhook={w.data}
      deliveries={log.ok ? log.data.data : []}
      stats={stats.ok ? stats.data : null}
      nextCursor={log.ok ? log.data.nextCursor : null}
      types={types}
      csrf={h.session.csrf}
      idem={h.idem}
      secret={extra.secret ?? null}
      testResult={extra.testResult ?? null}
      recoverResult={extra.recoverResult ?? null}
      problem={extra.problem ?? (log.ok ? null : log.problem)}
      problemContext={extra.problemContext ?? (log.ok ? undefined : 'Delivery log')}
      form={extra.form}
      liveSrc={liveSrc}
      recoverSince={toLocalInput(new Date(Date.now() - 24 * 3600_000).toISOString())}
      headersOriginal={headersText}
    />,
    extra.status ?? 200,
  );
}

const WebhookPage: FC<{
  handle: string;
  webhook: Webhook;
  deliveries: Delivery[];
  stats: WebhookDeliveryStats | null;
  nextCursor: string | null;
  types: EventType[];
  csrf: string;
  idem: () => string;
  secret?: string | null;
  testResult?: WebhookTestResult | null;
  recoverResult?: RecoverResult | null;
  problem?: Problem | null;
  problemContext?: string;
  form?: Form | undefined;
  recoverSince: string;
  /** The GET URL the delivery log refreshes from while a delivery is open. */
  liveSrc: string;
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
          {p.recoverResult.redriven.length ? <div class="hint mono">{p.recoverResult.redriven.join(' ')}</div> : null}
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
          ['Event types', typeList(w.eventTypes)],
          ['Filter policy', w.filterPolicy ? <code>{JSON.stringify(w.filterPolicy)}</code> : 'none'],
          [
            'Retry policy',
            `${w.retryPolicy.name}: ${w.retryPolicy.delaysSeconds.join(' s, ')} s; ` +
              `${w.retryPolicy.maxAttempts} attempts`,
          ],
          ['Rate limit', w.rateLimit ? `${w.rateLimit} per second (the doctor shows when it is pacing)` : 'none'],
          [
            'Consecutive failures',
            `${w.health.consecutiveFailures}` +
              `${w.health.lastFailureClass ? ` (last: ${w.health.lastFailureClass})` : ''}`,
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
            <TypeOptions types={p.types} selected={defaultTestEventType(w.eventTypes)} />
          </select>
          <button type="submit">Send test</button>
        </PostForm>{' '}
        <a href="/docs#receiving-webhooks" id="receiving-guide">
          How to receive and verify these requests
        </a>{' '}
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
      {p.testResult ? <TestResult result={p.testResult} settingsHref={`${base}/settings`} /> : null}
      {p.stats ? <WebhookCharts stats={p.stats} /> : null}
      <h2 id="log">Delivery log</h2>
      <PostForm action={`${self}/recover`} csrf={p.csrf} idem={p.idem()} label="Recover dead deliveries">
        <label for="since">Recover dead and skipped deliveries since (UTC)</label>
        <input id="since" type="datetime-local" name="since" value={p.recoverSince} required step={1} />
        <button type="submit">Recover</button>
      </PostForm>
      <LiveRegion id="delivery-log" src={p.liveSrc}>
        <DataTable
          caption="Deliveries to this webhook, newest first"
          columns={['Delivery', 'Status', 'Attempts']}
          empty={p.deliveries.length === 0 && 'No deliveries yet.'}
        >
          {p.deliveries.map((d) => (
            <tr data-delivery={d.id} data-status={d.status} {...openMark(d.status)}>
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
                <Badge status={d.status} /> {d.lastErrorClass ?? ''}{' '}
                {d.lastHttpStatus ? `HTTP ${d.lastHttpStatus}` : ''}
                {d.statusReason ? <div class="hint">{d.statusReason}</div> : null}
                {d.nextAttemptAt ? (
                  <div class="hint">
                    next attempt <Time at={d.nextAttemptAt} />
                  </div>
                ) : null}
                <RetryButton
                  base={base}
                  deliveryId={d.id}
                  status={d.status}
                  back={self}
                  csrf={p.csrf}
                  idem={p.idem()}
                />
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
      </LiveRegion>
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

/** The webhook's charts: deliveries by outcome, attempt latency and error classes (docs/design.md#delivery-charts). */
const WebhookCharts: FC<{ stats: WebhookDeliveryStats }> = ({ stats }) => (
  <section aria-labelledby="activity-h">
    <h2 id="activity-h">Activity</h2>
    <div class="charts">
      <OutcomeChart title="Deliveries per hour, last 24 hours" buckets={stats.hourly} unit="hour" />
      <OutcomeChart title="Deliveries per day, last 7 days" buckets={stats.daily} unit="day" />
      <LatencyChart title="Attempt latency per hour, last 24 hours" buckets={stats.latencyHourly} unit="hour" />
      <LatencyChart title="Attempt latency per day, last 7 days" buckets={stats.latencyDaily} unit="day" />
      <ErrorClassChart title="Failed attempts by error class" classes={stats.errorClasses} />
    </div>
  </section>
);
