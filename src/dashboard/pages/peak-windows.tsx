/**
 * `/dashboard/h/{handle}/peak-windows` (docs/design.md#peak-campaign-windows): the handle's peak campaign windows as
 * its settings hold them, the campaign window open now, and the deferred deliveries waiting with when the next goes
 * (the doctor's `deferredDeliveries`). Read-only: the windows are set with `PUT …/notification-settings`.
 */
import type { z } from '@hono/zod-openapi';
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import type { SettingsSchema } from '../../routes/settings/settings.schemas.ts';
import type { HealthReport } from '../answers.ts';
import type { ApiFetch } from '../api.ts';
import { handlePage, render } from '../handler.tsx';
import { KV, Notice, ProblemBox, Time } from '../layout.tsx';

type Settings = z.infer<typeof SettingsSchema>;

/** `GET /dashboard/h/{handle}/peak-windows`. */
export function peakWindowsRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'usage', 'Peak windows');
  r.get(
    '/h/:handle/peak-windows',
    page(async (c, h) => {
      const [settings, health] = await Promise.all([
        h.api.call<Settings>('GET', `/v2/handles/${h.handle}/notification-settings`),
        h.api.call<HealthReport>('GET', `/v2/handles/${h.handle}/health`),
      ]);
      h.frame.title = `${h.access.displayName}: peak windows`;
      if (!settings.ok) return render(c, h.frame, <ProblemBox problem={settings.problem} />, settings.status);
      return render(
        c,
        h.frame,
        <PeakPage settings={settings.data} deferred={health.ok ? health.data.deferredDeliveries : null} />,
      );
    }),
  );
  return r;
}

const PeakPage: FC<{ settings: Settings; deferred: HealthReport['deferredDeliveries'] | null }> = ({
  settings,
  deferred,
}) => {
  const w = settings.peakWindows;
  return (
    <>
      <section aria-labelledby="peak-deferred">
        <h2 id="peak-deferred">Deferred deliveries</h2>
        {deferred ? (
          <KV
            rows={[
              ['Waiting', String(deferred.count)],
              ['Next goes', <Time at={deferred.nextReleaseAt} />],
              ['Campaign window open until', <Time at={settings.campaignWindowUntil} />],
            ]}
          />
        ) : (
          <Notice tone="warn">The doctor did not answer; the count of deferred deliveries is not known.</Notice>
        )}
        {deferred?.next ? <p>{deferred.next}</p> : null}
      </section>
      <section aria-labelledby="peak-windows">
        <h2 id="peak-windows">Windows</h2>
        {w ? (
          <>
            <KV
              rows={[
                ['Time zone', w.timeZone],
                ['campaign.started opens a window', w.campaignEvents ? 'yes' : 'no'],
              ]}
            />
            <ul>
              {w.weekly.map((x) => (
                <li>{`Every ${x.days.join(', ')} ${x.start}–${x.end} (${w.timeZone})`}</li>
              ))}
              {w.oneOff.map((x) => (
                <li>
                  {x.label ? `${x.label}: ` : ''}
                  <Time at={x.start} /> – <Time at={x.end} />
                </li>
              ))}
            </ul>
          </>
        ) : (
          <p>No peak windows: events published off_peak are delivered at once.</p>
        )}
        <p>
          Events published with <code>delivery: "off_peak"</code> wait while a window is open, at most 24 h, then go out
          spread over the release spread (<code>RELEASE_SPREAD_SECONDS</code>, 10 minutes by default); critical events
          never wait. Set the windows with <code>PUT /v2/handles/{'{handle}'}/notification-settings</code> (
          <code>peakWindows</code>).
        </p>
      </section>
    </>
  );
};
