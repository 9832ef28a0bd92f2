/**
 * `/dashboard/h/{handle}/usage` (docs/design.md#usage): what `GET /v2/handles/{handle}/usage` answers, before a bulk
 * run — the daily write limit and its reset, each throttle class, the caps, events today, deferred deliveries and
 * storage. A page of its own; it links to the peak windows page.
 */
import type { z } from '@hono/zod-openapi';
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import type { UsageReport } from '../../routes/usage/usage.routes.ts';
import type { ApiFetch } from '../api.ts';
import { handlePage, render } from '../handler.tsx';
import { handleBase, KV, ProblemBox, Time } from '../layout.tsx';

type Usage = z.infer<typeof UsageReport>;

/** `GET /dashboard/h/{handle}/usage`. */
export function usageRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'usage', 'Usage');
  r.get(
    '/h/:handle/usage',
    page(async (c, h) => {
      const res = await h.api.call<Usage>('GET', `/v2/handles/${h.handle}/usage`);
      h.frame.title = `${h.access.displayName}: usage`;
      return render(
        c,
        h.frame,
        res.ok ? <UsagePage handle={h.handle} usage={res.data} /> : <ProblemBox problem={res.problem} />,
      );
    }),
  );
  return r;
}

const left = (b: { used: number; limit: number; remaining: number }) =>
  `${b.used} of ${b.limit} used, ${b.remaining} left`;

const UsagePage: FC<{ handle: string; usage: Usage }> = ({ handle, usage }) => (
  <>
    <section aria-labelledby="usage-writes">
      <h2 id="usage-writes">Daily writes</h2>
      <KV
        rows={[
          ['Today (UTC)', `${usage.dailyWrites.day}: ${left(usage.dailyWrites)}`],
          ['Resets', <Time at={usage.dailyWrites.resetAt} />],
          ['Counts', usage.dailyWrites.counts],
        ]}
      />
    </section>
    <section aria-labelledby="usage-throttles">
      <h2 id="usage-throttles">Throttles (your token on this handle)</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Class</th>
            <th scope="col">Limit</th>
            <th scope="col">Left</th>
            <th scope="col">Resets in</th>
          </tr>
        </thead>
        <tbody>
          {usage.throttles.map((t) => (
            <tr>
              <td>{t.class}</td>
              <td>{`${t.limit} per ${t.windowSeconds} s`}</td>
              <td>{t.remaining}</td>
              <td>{`${t.resetSeconds} s`}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
    <section aria-labelledby="usage-caps">
      <h2 id="usage-caps">Subscriptions and events</h2>
      <KV
        rows={[
          ['Webhooks', left(usage.subscriptions.webhooks)],
          ['Email subscriptions', left(usage.subscriptions.emailSubscriptions)],
          ['Events stored today', String(usage.events.publishedToday)],
          [
            'Deferred deliveries',
            <>
              {`${usage.events.deferredAtLeast ? 'at least ' : ''}${usage.events.deferred}`}
              {usage.events.nextReleaseAt ? (
                <>
                  {' · next goes '}
                  <Time at={usage.events.nextReleaseAt} />
                </>
              ) : null}
              {' · '}
              <a href={`${handleBase(handle)}/peak-windows`}>Peak windows</a>
            </>,
          ],
        ]}
      />
    </section>
    <section aria-labelledby="usage-storage">
      <h2 id="usage-storage">Storage</h2>
      <KV
        rows={[
          ['Retention', `${usage.storage.retentionDays} days`],
          ['Oldest notification', <Time at={usage.storage.oldestNotificationAt} />],
          ['Passes its retention', <Time at={usage.storage.purgeDueAt} />],
          ['Database', `${usage.storage.database.usedPercent} % of ${usage.storage.database.limitBytes} bytes`],
          ['Archives', `${usage.storage.archives.count} (${usage.storage.archives.bytes} bytes)`],
        ]}
      />
    </section>
  </>
);
