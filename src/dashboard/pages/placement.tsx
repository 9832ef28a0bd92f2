/**
 * `/dashboard/h/{handle}/placement` (docs/design.md#shards): where the handle lives, as `GET …/placement` answers —
 * its shard, that database's size as D1 reports it (what new handles are placed by), the handle's own notifications,
 * deliveries and attempts there, its retention, and a move under way. Owners and admins only: the API answers anyone
 * else with its 403 (or the 404 of a handle they cannot see), shown as the page. Linked from the Usage page.
 */
import type { z } from '@hono/zod-openapi';
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import type { HandlePlacement } from '../../routes/placement/placement.routes.ts';
import type { ApiFetch } from '../api.ts';
import { handlePage, render, renderProblem } from '../handler.tsx';
import { handleBase, KV, NextSteps, Time } from '../layout.tsx';

type Placement = z.infer<typeof HandlePlacement>;

/** `GET /dashboard/h/{handle}/placement`. */
export function placementRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'usage', 'Shard and database');
  r.get(
    '/h/:handle/placement',
    page(async (c, h) => {
      const res = await h.api.call<Placement>('GET', `/v2/handles/${h.handle}/placement`);
      if (!res.ok) return renderProblem(c, h.frame, res.problem, true);
      h.frame.title = `${h.access.displayName}: shard and database`;
      return render(c, h.frame, <PlacementPage handle={h.handle} placement={res.data} />);
    }),
  );
  return r;
}

/** Bytes as a person reads them, with the exact count. */
const bytes = (n: number) => {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  const short = unit === 0 ? `${n} bytes` : `${value.toFixed(1)} ${units[unit]}`;
  return unit === 0 ? short : `${short} (${n.toLocaleString('en')} bytes)`;
};

const count = (c: { count: number; atLeast: boolean }) =>
  `${c.atLeast ? 'at least ' : ''}${c.count.toLocaleString('en')}`;

const PlacementPage: FC<{ handle: string; placement: Placement }> = ({ handle, placement: p }) => (
  <>
    <section aria-labelledby="placement-shard">
      <h2 id="placement-shard">Shard</h2>
      <KV
        rows={[
          [
            'Lives on',
            p.shard.binding === 'DB'
              ? 'DB (this deployment has no data shards)'
              : `${p.shard.binding}, one of ${p.shard.of} data shards`,
          ],
          [
            'Database size',
            `${bytes(p.database.sizeBytes)}, ${p.database.usedPercent} % of ${bytes(p.database.limitBytes)}`,
          ],
          [
            'Move',
            p.movingSince ? (
              <>
                moving since <Time at={p.movingSince} />: reads go on, writes wait until the move is done
              </>
            ) : (
              'not moving'
            ),
          ],
        ]}
      />
      <p>
        The size is the shard database's own, as D1 reports it, shared by every handle on the shard. A new handle goes
        to the shard that is smallest by this size.
      </p>
    </section>
    <section aria-labelledby="placement-rows">
      <h2 id="placement-rows">This handle's rows</h2>
      <KV
        rows={[
          ['Notifications', count(p.rows.notifications)],
          ['Deliveries', count(p.rows.deliveries)],
          ['Delivery attempts', count(p.rows.attempts)],
          ['Retention', `${p.retentionDays} days`],
        ]}
      />
      <NextSteps
        steps={[
          <>
            Rows older than the retention are archived and removed: see{' '}
            <a href={`${handleBase(handle)}/archives`}>Archives</a>; what counts against your limits is on{' '}
            <a href={`${handleBase(handle)}/usage`}>Usage</a>.
          </>,
        ]}
        api={[`GET /v2/handles/${handle}/placement`]}
      />
    </section>
  </>
);
