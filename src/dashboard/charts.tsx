/**
 * The dashboard's charts (docs/design.md#delivery-charts): inline SVG drawn on the server from the API's series, no
 * chart library and no script (the Content-Security-Policy allows none: colours are classes of the stylesheet, never a
 * `style` attribute). Each chart is an image with a one-line summary for screen readers and its numbers in a table
 * behind a "Numbers" disclosure. Axis times are UTC on the server; the dashboard's script rewrites them to the
 * browser's time zone (`data-at`).
 */
import type { FC } from 'hono/jsx';
import type { ErrorClassCount, LatencyBucket, OutcomeBucket } from './answers.ts';
import { DataTable, domId, Time } from './layout.tsx';

/** The outcomes, bottom of the stack first, with the class that colours them. */
const OUTCOMES = [
  { key: 'succeeded', label: 'succeeded' },
  { key: 'retrying', label: 'retrying' },
  { key: 'dead', label: 'dead' },
  { key: 'skipped', label: 'skipped' },
] as const;

const W = 640;
const H = 180;
const PAD_L = 44;
const PAD_B = 22;
const PAD_T = 8;
const PLOT_W = W - PAD_L - 8;
const PLOT_H = H - PAD_B - PAD_T;

/** A round upper bound for the y axis (2, 4 or 10 × 10ⁿ, at least 2), so that its half is a whole number too. */
export function niceMax(n: number): number {
  if (n <= 2) return 2;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [2, 4, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

type Unit = 'hour' | 'day';

/** An x-axis label: the bucket's start in UTC, rewritten to local time by the script. */
const AxisTime: FC<{ at: string; unit: Unit; x: number }> = ({ at, unit, x }) => (
  <text x={x} y={H - 6} class="axis" text-anchor="middle" data-at={at} data-fmt={unit}>
    {unit === 'hour' ? `${at.slice(11, 16)}` : at.slice(5, 10)}
  </text>
);

/** Gridlines and labels of the y axis at 0, half and max. */
const YAxis: FC<{ max: number; suffix?: string }> = ({ max, suffix }) => (
  <>
    {[0, 0.5, 1].map((f) => {
      const y = PAD_T + PLOT_H - f * PLOT_H;
      return (
        <>
          <line x1={PAD_L} x2={W - 8} y1={y} y2={y} class="grid" />
          <text x={PAD_L - 4} y={y + 4} class="axis" text-anchor="end">
            {`${Math.round(max * f)}${suffix ?? ''}`}
          </text>
        </>
      );
    })}
  </>
);

const Legend: FC<{ items: { cls: string; label: string }[] }> = ({ items }) => (
  <ul class="legend" aria-hidden="true">
    {items.map((i) => (
      <li>
        <span class={`key ${i.cls}`}></span>
        {i.label}
      </li>
    ))}
  </ul>
);

/** Which x labels to draw so they never collide: every 6th hour, every day. */
const labelled = (unit: Unit, i: number, n: number) => (unit === 'day' ? true : i % 6 === 0 || i === n - 1);

/** Deliveries per bucket stacked by outcome. */
export const OutcomeChart: FC<{ title: string; buckets: OutcomeBucket[]; unit: Unit }> = ({ title, buckets, unit }) => {
  const id = domId('chart');
  const totals = OUTCOMES.map((o) => buckets.reduce((n, b) => n + b[o.key], 0));
  const max = niceMax(Math.max(0, ...buckets.map((b) => b.succeeded + b.retrying + b.dead + b.skipped)));
  const slot = PLOT_W / buckets.length;
  const bar = Math.max(2, slot * 0.7);
  const summary = `${title}: ${OUTCOMES.map((o, i) => `${totals[i]} ${o.label}`).join(', ')}.`;
  return (
    <figure class="chart" aria-labelledby={`${id}-t`} data-abs="">
      <figcaption id={`${id}-t`}>{title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={summary} class="chart" data-chart="outcomes">
        <title>{summary}</title>
        <YAxis max={max} />
        {buckets.map((b, i) => {
          let y = PAD_T + PLOT_H;
          const x = PAD_L + i * slot + (slot - bar) / 2;
          return (
            <g>
              {OUTCOMES.map((o) => {
                const h = (b[o.key] / max) * PLOT_H;
                if (h <= 0) return null;
                y -= h;
                return <rect x={x} y={y} width={bar} height={h} class={`o-${o.key}`} />;
              })}
              {labelled(unit, i, buckets.length) ? <AxisTime at={b.start} unit={unit} x={x + bar / 2} /> : null}
            </g>
          );
        })}
      </svg>
      <Legend items={OUTCOMES.map((o, i) => ({ cls: `o-${o.key}`, label: `${o.label} (${totals[i]})` }))} />
      <details>
        <summary>Numbers</summary>
        <DataTable caption={title} columns={[unit === 'hour' ? 'Hour from' : 'Day', ...OUTCOMES.map((o) => o.label)]}>
          {buckets.map((b) => (
            <tr>
              <td>
                <Time at={b.start} />
              </td>
              {OUTCOMES.map((o) => (
                <td>{b[o.key]}</td>
              ))}
            </tr>
          ))}
        </DataTable>
      </details>
    </figure>
  );
};

/** Attempt duration p50 and p95 per bucket, as two lines with a dot per bucket that had attempts. */
export const LatencyChart: FC<{ title: string; buckets: LatencyBucket[]; unit: Unit }> = ({ title, buckets, unit }) => {
  const id = domId('chart');
  const max = niceMax(Math.max(0, ...buckets.map((b) => b.p95Ms ?? 0)));
  const slot = PLOT_W / buckets.length;
  const x = (i: number) => PAD_L + i * slot + slot / 2;
  const y = (ms: number) => PAD_T + PLOT_H - (ms / max) * PLOT_H;
  const points = (k: 'p50Ms' | 'p95Ms') =>
    buckets.flatMap((b, i) => (b[k] === null ? [] : [`${x(i).toFixed(1)},${y(b[k]).toFixed(1)}`])).join(' ');
  const attempts = buckets.reduce((n, b) => n + b.attempts, 0);
  const worst = Math.max(0, ...buckets.map((b) => b.p95Ms ?? 0));
  const summary = attempts
    ? `${title}: ${attempts} attempts; the highest ${unit === 'hour' ? 'hourly' : 'daily'} p95 is ${worst} ms.`
    : `${title}: no attempts.`;
  return (
    <figure class="chart" aria-labelledby={`${id}-t`} data-abs="">
      <figcaption id={`${id}-t`}>{title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={summary} class="chart" data-chart="latency">
        <title>{summary}</title>
        <YAxis max={max} suffix=" ms" />
        <polyline points={points('p95Ms')} class="l-p95" fill="none" />
        <polyline points={points('p50Ms')} class="l-p50" fill="none" />
        {buckets.map((b, i) => (
          <g>
            {b.p95Ms !== null ? <circle cx={x(i)} cy={y(b.p95Ms)} r="3" class="l-p95" /> : null}
            {b.p50Ms !== null ? <circle cx={x(i)} cy={y(b.p50Ms)} r="3" class="l-p50" /> : null}
            {labelled(unit, i, buckets.length) ? <AxisTime at={b.start} unit={unit} x={x(i)} /> : null}
          </g>
        ))}
      </svg>
      <Legend
        items={[
          { cls: 'l-p50', label: 'p50 (median)' },
          { cls: 'l-p95', label: 'p95' },
        ]}
      />
      <details>
        <summary>Numbers</summary>
        <DataTable caption={title} columns={[unit === 'hour' ? 'Hour from' : 'Day', 'Attempts', 'p50 ms', 'p95 ms']}>
          {buckets.map((b) => (
            <tr>
              <td>
                <Time at={b.start} />
              </td>
              <td>{b.attempts}</td>
              <td>{b.p50Ms ?? '—'}</td>
              <td>{b.p95Ms ?? '—'}</td>
            </tr>
          ))}
        </DataTable>
      </details>
    </figure>
  );
};

/** Failed attempts by error class: a horizontal bar per class for 7 days, with its last 24 h inside. */
export const ErrorClassChart: FC<{ title: string; classes: ErrorClassCount[] }> = ({ title, classes }) => {
  const id = domId('chart');
  const max = niceMax(Math.max(0, ...classes.map((c) => c.last7d)));
  const row = 26;
  const h = Math.max(1, classes.length) * row + 8;
  const left = 150;
  const width = W - left - 60;
  const summary = classes.length
    ? `${title}: ${classes.map((c) => `${c.errorClass} ${c.last7d} (${c.last24h} in 24 h)`).join(', ')}.`
    : `${title}: none.`;
  return (
    <figure class="chart" aria-labelledby={`${id}-t`} data-abs="">
      <figcaption id={`${id}-t`}>{title}</figcaption>
      {classes.length ? (
        <svg viewBox={`0 0 ${W} ${h}`} role="img" aria-label={summary} class="chart" data-chart="errors">
          <title>{summary}</title>
          {classes.map((c, i) => (
            <g>
              <text x={left - 6} y={i * row + 18} class="axis" text-anchor="end">
                {c.errorClass}
              </text>
              <rect x={left} y={i * row + 4} width={(c.last7d / max) * width} height={18} class="e-7d" />
              <rect x={left} y={i * row + 8} width={(c.last24h / max) * width} height={10} class="e-24h" />
              <text x={left + (c.last7d / max) * width + 4} y={i * row + 18} class="axis">
                {`${c.last7d}`}
              </text>
            </g>
          ))}
        </svg>
      ) : (
        <p class="hint">No failed attempts in the last 7 days.</p>
      )}
      {classes.length ? (
        <>
          <Legend
            items={[
              { cls: 'e-7d', label: 'last 7 days' },
              { cls: 'e-24h', label: 'last 24 h' },
            ]}
          />
          <details>
            <summary>Numbers</summary>
            <DataTable caption={title} columns={['Error class', 'Last 24 h', 'Last 7 days']}>
              {classes.map((c) => (
                <tr>
                  <td>
                    <code>{c.errorClass}</code>
                  </td>
                  <td>{c.last24h}</td>
                  <td>{c.last7d}</td>
                </tr>
              ))}
            </DataTable>
          </details>
        </>
      ) : null}
    </figure>
  );
};
