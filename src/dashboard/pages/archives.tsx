/**
 * A handle's archives (docs/design.md#retention-and-archives): its retention, every archive of notifications past it
 * (keyset pages, newest first, `GET …/archives`), and each archive's download, passed through from the API
 * (`GET …/archives/{id}`: the gzip NDJSON object, or its problem as a page).
 */
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import { foreignProblemBody } from '../../lib/problem.ts';
import type { ArchiveList } from '../answers.ts';
import type { ApiFetch, Problem } from '../api.ts';
import { handlePage, render, renderProblem } from '../handler.tsx';
import { Badge, DataTable, handleBase, Notice, Time } from '../layout.tsx';

/** `GET /dashboard/h/:handle/archives` and `…/archives/:id` (the download). */
export function archivesRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'archives', 'Archives');

  r.get(
    '/h/:handle/archives',
    page(async (c, h) => {
      const list = await h.api.call<ArchiveList>('GET', `/v2/handles/${h.handle}/archives`, {
        query: { limit: 50, cursor: c.req.query('cursor') },
      });
      if (!list.ok && list.status !== 403) return renderProblem(c, h.frame, list.problem, true);
      const next = list.ok && list.data.nextCursor;
      return render(
        c,
        h.frame,
        <Retention
          handle={h.handle}
          days={h.access.retentionDays}
          archives={list.ok ? list.data : null}
          more={next ? `${handleBase(h.handle)}/archives?cursor=${encodeURIComponent(next)}` : null}
        />,
      );
    }),
  );

  // An archive, passed through from the API as it answers (the gzip object, or its problem as a page).
  r.get(
    '/h/:handle/archives/:id',
    page(async (c, h) => {
      const id = c.req.param('id') ?? '';
      const res = await h.api.raw('GET', `/v2/handles/${h.handle}/archives/${encodeURIComponent(id)}`);
      if (!res.ok) {
        const text = await res.text();
        let problem: Problem;
        try {
          problem = JSON.parse(text) as Problem;
        } catch {
          problem = foreignProblemBody(res.status, res.statusText, text);
        }
        return renderProblem(c, h.frame, problem, true);
      }
      const headers = new Headers();
      for (const k of ['content-type', 'content-length', 'content-disposition', 'repr-digest']) {
        const v = res.headers.get(k);
        if (v) headers.set(k, v);
      }
      return new Response(res.body, { status: 200, headers });
    }),
  );

  return r;
}

/**
 * The handle's retention and its archives, newest first, each with a download link; `more` links the next page (the
 * settings page shows the first page and links the Archives page instead).
 */
export const Retention: FC<{ handle: string; days: number; archives: ArchiveList | null; more?: string | null }> = (
  p,
) => (
  <section class="panel" id="retention" aria-labelledby="retention-h">
    <h2 id="retention-h">Retention and archives</h2>
    <p>
      Notifications stay <strong>{p.days} days</strong>, then they are archived to R2 (gzip NDJSON: one notification
      with its deliveries and attempts per line) and removed from the database. The retention is set by the Gharart
      control plane.
    </p>
    {p.archives ? (
      <DataTable
        caption="Archives"
        columns={['Day', 'Notifications', 'Size', 'Status', 'Archived', 'Download']}
        empty={p.archives.data.length === 0 && 'No archive yet: nothing has passed the retention.'}
      >
        {p.archives.data.map((a) => (
          <tr>
            <td>{a.period}</td>
            <td>{a.notifications}</td>
            <td>{a.bytes === null ? '—' : `${a.bytes.toLocaleString('en')} bytes`}</td>
            <td>
              <Badge status={a.status} />
            </td>
            <td>
              <Time at={a.purgedAt ?? a.verifiedAt ?? a.createdAt} />
            </td>
            <td>
              {a.status === 'pending' ? (
                '—'
              ) : (
                <a href={`${handleBase(p.handle)}/archives/${a.id}`} download>
                  {a.id}.ndjson.gz
                </a>
              )}
            </td>
          </tr>
        ))}
      </DataTable>
    ) : null}
    {p.archives && p.more ? <a href={p.more}>More archives</a> : null}
    {p.archives ? null : (
      <Notice tone="warn">The archives could not be listed (your token needs notifications:read).</Notice>
    )}
  </section>
);
