/**
 * One notification: what was published, its status, and one delivery per recipient with its outcome (and "Retry" for
 * a dead or skipped one).
 */
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import type { Notification } from '../answers.ts';
import type { ApiFetch } from '../api.ts';
import { pathId } from '../forms.ts';
import { handlePage, render, renderProblem } from '../handler.tsx';
import {
  Badge,
  Copyable,
  type CopyId,
  DataTable,
  handleBase,
  json,
  KV,
  LiveRegion,
  openMark,
  Time,
} from '../layout.tsx';
import { RetryButton } from './delivery-retry.tsx';

/** `GET /dashboard/h/:handle/notifications/:id`. */
export function notificationRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'notifications', 'Notification');

  r.get(
    '/h/:handle/notifications/:id',
    page(async (c, h) => {
      const id = pathId(c);
      const n = await h.api.call<Notification>('GET', `/v2/handles/${h.handle}/notifications/${id}`);
      if (!n.ok) return renderProblem(c, h.frame, n.problem, true);
      h.frame.title = `Notification ${n.data.type}`;
      h.frame.ids = [
        { label: 'Notification id', value: n.data.id },
        ...n.data.deliveries.map((d): CopyId => ({ label: `Delivery (${d.target})`, value: d.deliveryId })),
      ];
      return render(c, h.frame, <NotificationPage handle={h.handle} n={n.data} csrf={h.session.csrf} idem={h.idem} />);
    }),
  );

  return r;
}

const NotificationPage: FC<{
  handle: string;
  n: Notification;
  csrf: string;
  idem: () => string;
}> = (p) => {
  const base = handleBase(p.handle);
  const n = p.n;
  const self = `${base}/notifications/${n.id}`;
  return (
    <>
      <LiveRegion id="notification-status" src={self}>
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
              `${n.recipientCount} (${n.deliveryCounts.succeeded} succeeded, ${n.deliveryCounts.open} open, ` +
                `${n.deliveryCounts.dead} dead)`,
            ],
          ]}
        />
      </LiveRegion>
      <h2>Deliveries</h2>
      <LiveRegion id="deliveries" src={self}>
        <DataTable caption="One delivery per recipient" columns={['Recipient', 'Status', 'Attempts']}>
          {n.deliveries.map((d) => (
            <tr data-delivery={d.deliveryId} data-status={d.status} {...openMark(d.status)}>
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
                <Badge status={d.status} /> {d.lastErrorClass ?? ''}{' '}
                {d.lastHttpStatus ? `HTTP ${d.lastHttpStatus}` : ''}
                {d.statusReason ? <div class="hint">{d.statusReason}</div> : null}
                <RetryButton
                  base={base}
                  deliveryId={d.deliveryId}
                  status={d.status}
                  back={self}
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
      </LiveRegion>
      <h2>Data</h2>
      <pre>{json(n.data)}</pre>
    </>
  );
};
