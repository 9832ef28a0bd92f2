/**
 * "Report a problem" (the form in every signed-in page's footer): files `POST /v2/support/report` with the page's
 * path, request id and the ids shown for support, and answers with the report id to quote.
 */
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import { HANDLE_PATTERN } from '../../lib/handles.ts';
import type { MyHandleList, SupportReport } from '../answers.ts';
import { type ApiFetch, apiFor, type Problem } from '../api.ts';
import { baseFrame, postGuard, render } from '../handler.tsx';
import { Copyable, KV, Notice, ProblemBox } from '../layout.tsx';

/** `POST /dashboard/report`. */
export function reportRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();

  r.post('/report', async (c) => {
    const g = await postGuard(c);
    if (g instanceof Response) return g;
    const { session, form } = g;
    const api = apiFor(c, fetchApp, session.token);
    const handle = HANDLE_PATTERN.test(form.handle ?? '') ? form.handle : undefined;
    const page = (form.page ?? '').slice(0, 500);
    const res = await api.call<SupportReport>('POST', '/v2/support/report', {
      body: {
        summary: (form.summary ?? '').slice(0, 200),
        details: `${form.details ?? ''}\n\n— Filed from the dashboard page ${page}\n${(form.ids ?? '').slice(0, 2000)}`,
        ...(handle ? { handle } : {}),
        ...(form.requestId && /^[A-Za-z0-9._:-]{8,128}$/.test(form.requestId) ? { requestId: form.requestId } : {}),
        reproArtifact: { page, ids: (form.ids ?? '').slice(0, 2000) },
      },
    });
    const mine = await api.call<MyHandleList>('GET', '/v2/handles');
    const frame = baseFrame(c, 'Report a problem', {
      csrf: session.csrf,
      handles: mine.ok ? mine.data.data : [],
      ...(res.ok ? { ids: [{ label: 'Report id', value: res.data.reportId }] } : {}),
    });
    return render(
      c,
      frame,
      <>
        <ReportResult result={res.ok ? res.data : null} problem={res.ok ? null : res.problem} />
        <p>
          <a href={page.startsWith('/dashboard') ? page : '/dashboard'}>Back</a>
        </p>
      </>,
      res.ok ? 201 : res.status,
    );
  });

  return r;
}

const ReportResult: FC<{ result: SupportReport | null; problem: Problem | null }> = ({ result, problem }) =>
  result ? (
    <Notice tone="ok">
      <p>Support has your report. Quote the report id when you follow up.</p>
      <KV
        rows={[
          ['Report id', <Copyable value={result.reportId} label="report id" />],
          ['Request id', <Copyable value={result.requestId} label="request id" />],
          ['Handle', result.handle ?? '—'],
        ]}
      />
    </Notice>
  ) : problem ? (
    <ProblemBox problem={problem} context="Report not filed" />
  ) : null;
