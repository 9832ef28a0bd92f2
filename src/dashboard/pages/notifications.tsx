/**
 * A handle's notification feed, newest first, filtered by status, type, severity and time (UTC), each with its
 * deliveries; and "Publish a test event", a real event through the production path.
 */
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import { SEVERITIES } from '../../http/schemas.ts';
import { NOTIFICATION_STATUSES } from '../../routes/notifications/notifications.schemas.ts';
import type { EventType, NotificationList, NotificationSummary, Published } from '../answers.ts';
import type { ApiFetch, Problem } from '../api.ts';
import { fromLocalInput, idemHeaders, jsonField } from '../forms.ts';
import { type C, eventTypes, type HandleContext, handlePage, render } from '../handler.tsx';
import {
  Badge,
  DataTable,
  handleBase,
  LiveRegion,
  openMark,
  PostForm,
  ProblemBox,
  Time,
  TypeOptions,
} from '../layout.tsx';

/** `GET /dashboard/h/:handle/notifications` and `POST /dashboard/h/:handle/events`. */
export function notificationsRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'notifications', 'Notifications');

  r.get(
    '/h/:handle/notifications',
    page(async (c, h) => {
      return feedPage(c, h);
    }),
  );

  r.post(
    '/h/:handle/events',
    page(async (c, h) => {
      const data = jsonField(c, h.form, 'data', 'body.data');
      if ('problem' in data)
        return feedPage(c, h, { problem: data.problem, problemContext: 'Not published', status: 400 });
      let payload = data.value;
      if (payload === null) {
        // No data typed: the catalog's sample of the type.
        const types = await eventTypes(h.api);
        payload = types.find((t) => t.type === h.form.type)?.sample ?? {};
      }
      const res = await h.api.call<Published>('POST', `/v2/handles/${h.handle}/events`, {
        body: { type: h.form.type ?? '', data: payload },
        headers: idemHeaders(h.form),
      });
      if (!res.ok) return feedPage(c, h, { problem: res.problem, problemContext: 'Not published', status: res.status });
      return c.redirect(`${handleBase(h.handle)}/notifications/${res.data.notificationId}`, 303);
    }),
  );

  return r;
}

/** The feed page; the filters come from the query of a GET (a refused publish shows the unfiltered feed). */
async function feedPage(
  c: C,
  h: HandleContext,
  extra: { problem?: Problem; problemContext?: string; status?: number } = {},
) {
  const q = c.req.method === 'GET' ? c.req.query() : {};
  const filters: Record<string, string> = {};
  for (const k of ['status', 'type', 'severity', 'since', 'until']) if (q[k]) filters[k] = q[k]!;
  const [list, types] = await Promise.all([
    h.api.call<NotificationList>('GET', `/v2/handles/${h.handle}/notifications`, {
      query: {
        ...filters,
        since: fromLocalInput(filters.since),
        until: fromLocalInput(filters.until),
        cursor: q.cursor,
        limit: 25,
      },
    }),
    eventTypes(h.api),
  ]);
  const problem = extra.problem ?? (list.ok ? null : list.problem);
  return render(
    c,
    h.frame,
    <FeedPage
      handle={h.handle}
      items={list.ok ? list.data.data : []}
      nextCursor={list.ok ? list.data.nextCursor : null}
      filters={filters}
      liveSrc={
        c.req.method === 'GET' ? `${c.req.path}${new URL(c.req.url).search}` : `${handleBase(h.handle)}/notifications`
      }
      types={types}
      csrf={h.session.csrf}
      idem={h.idem()}
      problem={problem}
      problemContext={extra.problemContext ?? (list.ok ? undefined : 'Filter refused')}
    />,
    extra.status ?? (list.ok ? 200 : list.status),
  );
}

const FeedPage: FC<{
  handle: string;
  items: NotificationSummary[];
  nextCursor: string | null;
  filters: Record<string, string>;
  /** The GET URL the feed refreshes from while a notification is still delivering. */
  liveSrc: string;
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
          {NOTIFICATION_STATUSES.map((s) => (
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
          {SEVERITIES.map((s) => (
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
      <LiveRegion id="feed" src={p.liveSrc}>
        <DataTable
          caption="Notifications, newest first"
          columns={['Notification', 'Status', 'Recipients']}
          empty={p.items.length === 0 && 'No notifications match.'}
        >
          {p.items.map((n) => (
            <tr data-notification={n.id} data-status={n.status} {...openMark(n.status)}>
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
                  {n.deliveries.map((d) => (
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
      </LiveRegion>
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
