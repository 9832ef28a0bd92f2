/**
 * A handle's overview: your access (role and token scopes) and the delivery doctor (`GET …/health`): everything that
 * loses or delays this handle's events, each with what fixes it and, where one click fixes it, the button.
 */
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import type { DeliveryStats, HandleAccess, HealthReport } from '../answers.ts';
import type { ApiFetch, Problem } from '../api.ts';
import { OutcomeChart } from '../charts.tsx';
import { handlePage, render } from '../handler.tsx';
import { Badge, DataTable, handleBase, KV, NextSteps, PostForm, ProblemBox, Time } from '../layout.tsx';
import { RetryButton } from './delivery-retry.tsx';
import { SettingsWarning } from './warnings.tsx';

/** `GET /dashboard/h/:handle`. */
export function overviewRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'overview', 'Overview');

  r.get(
    '/h/:handle',
    page(async (c, h) => {
      const [health, stats] = await Promise.all([
        h.api.call<HealthReport>('GET', `/v2/handles/${h.handle}/health`),
        h.api.call<DeliveryStats>('GET', `/v2/handles/${h.handle}/delivery-stats`),
      ]);
      h.frame.title = `${h.access.displayName}: overview`;
      return render(
        c,
        h.frame,
        <OverviewPage
          handle={h.handle}
          access={h.access}
          health={health.ok ? health.data : null}
          stats={stats.ok ? stats.data : null}
          problem={health.ok ? null : health.problem}
          csrf={h.session.csrf}
          idem={h.idem}
        />,
      );
    }),
  );

  return r;
}

const OverviewPage: FC<{
  handle: string;
  access: HandleAccess;
  health: HealthReport | null;
  stats: DeliveryStats | null;
  problem?: Problem | null;
  csrf: string;
  idem: () => string;
}> = (p) => {
  const base = handleBase(p.handle);
  const h = p.health;
  return (
    <>
      {p.stats ? (
        <section aria-labelledby="deliveries-h">
          <h2 id="deliveries-h">Deliveries</h2>
          <div class="charts">
            <OutcomeChart title="Deliveries per hour, last 24 hours" buckets={p.stats.hourly} unit="hour" />
            <OutcomeChart title="Deliveries per day, last 7 days" buckets={p.stats.daily} unit="day" />
          </div>
        </section>
      ) : null}
      <section aria-labelledby="access-h">
        <h2 id="access-h">Your access</h2>
        <KV
          rows={[
            ['Handle', `${p.access.displayName} (${p.access.handle})`],
            ['Role', p.access.role],
            ['Token scopes', p.access.scopes.join(' ')],
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
          {h.warnings.map((w) => (
            <SettingsWarning warning={w} handle={p.handle} />
          ))}
          <div class="grid">
            <section class="panel" aria-labelledby="wh-h">
              <h3 id="wh-h">Webhooks</h3>
              <p>
                {h.webhooks.enabled} of {h.webhooks.total} enabled; {h.webhooks.failing.length} failing,{' '}
                {h.webhooks.disabled.length} disabled.
              </p>
              {h.webhooks.failing.map((w) => (
                <div class="notice warn">
                  <a href={`${base}/webhooks/${w.id}`}>{w.url}</a>: {w.consecutiveFailures} consecutive failures (
                  {w.lastFailureClass ?? 'unknown'}) since <Time at={w.failingSince} />.
                  {w.projectedAutoDisableAt ? (
                    <>
                      {' '}
                      Auto-disable projected at <Time at={w.projectedAutoDisableAt} />.
                    </>
                  ) : null}
                  <p>Retry policy: {w.retryPolicy}.</p>
                  <NextSteps
                    steps={[
                      <>
                        Press <strong>Send test</strong> and read the diagnosis; fix the endpoint before it is disabled.
                      </>,
                    ]}
                    api={[w.action]}
                  />
                  <PostForm action={`${base}/webhooks/${w.id}/test`} csrf={p.csrf} idem={p.idem()}>
                    <button type="submit">Send test</button>
                  </PostForm>
                </div>
              ))}
              {h.webhooks.disabled.map((w) => (
                // biome-ignore format: its JSX fill would end this line with {' '} past 120 columns
                <div class="notice bad">
                  <a href={`${base}/webhooks/${w.id}`}>{w.url}</a> is disabled ({w.disabledReason ?? 'by a user'})
                  since{' '}
                  <Time at={w.disabledAt} />.
                  <NextSteps
                    steps={[
                      <>
                        Fix the endpoint, press <strong>Enable</strong>, then <strong>Recover</strong> on{' '}
                        <a href={`${base}/webhooks/${w.id}#log`}>its page</a> to redeliver what was skipped.
                      </>,
                    ]}
                    api={[w.action]}
                  />
                  <PostForm action={`${base}/webhooks/${w.id}/enable`} csrf={p.csrf} idem={p.idem()}>
                    <button type="submit">Enable</button>
                  </PostForm>
                </div>
              ))}
              {h.webhooks.paced.map((w) => (
                <div class={`notice${w.beingPaced ? ' warn' : ''}`} data-paced={w.beingPaced ? 'yes' : 'no'}>
                  <a href={`${base}/webhooks/${w.id}`}>{w.url}</a>: {w.note}
                </div>
              ))}
            </section>
            <section class="panel" aria-labelledby="dead-h">
              <h3 id="dead-h">Dead deliveries (24 h)</h3>
              <p>
                <strong>{h.deadDeliveries24h.count}</strong> dead
                {Object.keys(h.deadDeliveries24h.byErrorClass).length
                  ? ` — ${Object.entries(h.deadDeliveries24h.byErrorClass)
                      .map(([k, v]) => `${k}: ${v}`)
                      .join(', ')}`
                  : ''}
              </p>
              {h.deadDeliveries24h.action ? (
                <NextSteps
                  steps={[
                    <>
                      Open a delivery's <strong>log</strong> to read its attempts; press <strong>Retry</strong> next to
                      it, or <strong>Recover</strong> on its webhook's page for all of them.
                    </>,
                  ]}
                  api={[h.deadDeliveries24h.action]}
                />
              ) : null}
              <ul>
                {h.deadDeliveries24h.recent.map((d) => (
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
            {h.overdueDeliveries.count ? (
              <section class="panel" aria-labelledby="overdue-h">
                <h3 id="overdue-h">Overdue deliveries</h3>
                <p>
                  <strong>{h.overdueDeliveries.count}</strong> queued or retrying past their due time
                  {h.overdueDeliveries.oldest ? (
                    <>
                      ; the oldest, <code>{h.overdueDeliveries.oldest.deliveryId}</code> →{' '}
                      {h.overdueDeliveries.oldest.target}, was due <Time at={h.overdueDeliveries.oldest.dueAt} />
                    </>
                  ) : null}
                  .
                </p>
                <p>{h.overdueDeliveries.next}</p>
              </section>
            ) : null}
            <section class="panel" aria-labelledby="email-h">
              <h3 id="email-h">Email subscriptions</h3>
              {/* biome-ignore format: its JSX fill would end this line with {' '} past 120 columns */}
              <p>
                {h.emailSubscriptions.pendingConfirmation.length} pending,{' '}
                {h.emailSubscriptions.stale.length} stale, {h.emailSubscriptions.suppressed.length} suppressed.
              </p>
              {h.emailSubscriptions.action ? (
                <NextSteps
                  steps={[
                    <>
                      A pending address must click its link: press <strong>Resend confirmation</strong> below if it was
                      lost. Delete a stale or suppressed one on the <a href={`${base}/email`}>Email</a> page and
                      subscribe it again.
                    </>,
                  ]}
                  api={[h.emailSubscriptions.action]}
                />
              ) : null}
              <ul>
                {h.emailSubscriptions.pendingConfirmation.map((s) => (
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
                  ...h.emailSubscriptions.stale.map((s) => ({ ...s, st: 'stale' })),
                  ...h.emailSubscriptions.suppressed.map((s) => ({ ...s, st: 'suppressed' })),
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
                <NextSteps
                  steps={[
                    <>
                      Without it, critical events have no guaranteed recipient:{' '}
                      <a href={`${base}/email#owner-default`}>Set it</a> on the Email page and press{' '}
                      <strong>Save</strong>.
                    </>,
                  ]}
                  api={[h.ownerDefaultEmail.action]}
                />
              ) : null}
            </section>
            <section class="panel" aria-labelledby="cov-h">
              <h3 id="cov-h">Critical coverage</h3>
              <p>
                <Badge status={h.criticalCoverage.covered ? 'covered' : 'undeliverable'} />{' '}
                {h.criticalCoverage.undeliverable24h} undeliverable critical event(s) in 24 h.
              </p>
              {h.criticalCoverage.action ? (
                <NextSteps
                  steps={[
                    <>
                      <a href={`${base}/email#owner-default`}>Set an owner default email</a>, or add a subscription that
                      matches every critical event type on the <a href={`${base}/webhooks`}>Webhooks</a> or{' '}
                      <a href={`${base}/email`}>Email</a> page; check it with <strong>Evaluate</strong> on the{' '}
                      <a href={`${base}/settings`}>Settings</a> page.
                    </>,
                  ]}
                  api={[h.criticalCoverage.action]}
                />
              ) : null}
              <DataTable caption="Recipients of each critical event type" columns={['Critical type', 'Recipients']}>
                {h.criticalCoverage.types.map((t) => (
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
