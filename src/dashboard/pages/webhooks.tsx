/**
 * A handle's webhooks: each endpoint with its status, health and last 24 h (`GET …/webhooks?include=activity`), and
 * the form that adds one (`POST …/webhooks`), after which the new webhook's page shows its secret once.
 */
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import type { CreatedWebhook, WebhookList, WebhookListItem } from '../answers.ts';
import type { ApiFetch, Problem } from '../api.ts';
import { type Form, idemHeaders } from '../forms.ts';
import { type C, type HandleContext, handlePage, render, renderProblem } from '../handler.tsx';
import { Badge, DataTable, handleBase, PostForm, ProblemBox, Sparkline } from '../layout.tsx';
import { webhookPage } from './webhook.tsx';
import { WebhookFields, webhookBody } from './webhook-form.tsx';

/** `GET` and `POST /dashboard/h/:handle/webhooks`. */
export function webhooksRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'webhooks', 'Webhooks');

  r.get(
    '/h/:handle/webhooks',
    page(async (c, h) => {
      return webhooksList(c, h);
    }),
  );

  r.post(
    '/h/:handle/webhooks',
    page(async (c, h) => {
      const built = webhookBody(c, h.form, false);
      if ('problem' in built) return webhooksList(c, h, { form: h.form, problem: built.problem, status: 400 });
      const res = await h.api.call<CreatedWebhook>('POST', `/v2/handles/${h.handle}/webhooks`, {
        body: built.body,
        headers: idemHeaders(h.form),
      });
      if (!res.ok) return webhooksList(c, h, { form: h.form, problem: res.problem, status: res.status });
      return webhookPage(c, h, res.data.id, { secret: res.data.secret, status: 201, flash: 'Webhook created.' });
    }),
  );

  return r;
}

/** The list page; `extra` re-shows a rejected create form with the reason. */
async function webhooksList(
  c: C,
  h: HandleContext,
  extra: { form?: Form; problem?: Problem | null; status?: number } = {},
) {
  const list = await h.api.call<WebhookList>('GET', `/v2/handles/${h.handle}/webhooks`, {
    query: { cursor: c.req.method === 'GET' ? c.req.query('cursor') : undefined, limit: 50, include: 'activity' },
  });
  if (!list.ok) return renderProblem(c, h.frame, list.problem, true);
  // The 24 h sparkline: the API's hourly attempt counts, oldest hour first.
  const rows: WebhookRow[] = list.data.data.map((webhook) => ({
    webhook,
    buckets: (webhook.activity24h?.succeeded ?? []).map((ok, i) => ({
      ok,
      failed: webhook.activity24h!.failed[i]!,
    })),
  }));
  return render(
    c,
    h.frame,
    <WebhooksPage
      handle={h.handle}
      rows={rows}
      nextCursor={list.data.nextCursor}
      csrf={h.session.csrf}
      idem={h.idem()}
      form={extra.form}
      problem={extra.problem}
    />,
    extra.status ?? 200,
  );
}

/** A row of the list: the webhook and its last 24 h, hour by hour. */
interface WebhookRow {
  webhook: WebhookListItem;
  buckets: { ok: number; failed: number }[];
}

const WebhooksPage: FC<{
  handle: string;
  rows: WebhookRow[];
  nextCursor: string | null;
  csrf: string;
  idem: string;
  form?: Form | undefined;
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
