/**
 * A handle's notification settings (channels, owner fallback, event filter; saved with If-Match) and the dry run
 * (`…/notification-settings/evaluate`): who would receive an event, with the saved settings or the ones in the form.
 * Also the handle's retention and its latest archives ({@link Retention}; all of them on the Archives page).
 */
import { Hono } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../env.ts';
import type {
  ArchiveList,
  Evaluation,
  EvaluationBody,
  EventType,
  Notification,
  NotificationList,
  NotificationSummary,
  SampleEventBody,
  Settings,
  SettingsBody,
} from '../answers.ts';
import type { ApiFetch, Problem } from '../api.ts';
import { type Form, idemHeaders, jsonField } from '../forms.ts';
import { type C, eventTypes, type HandleContext, handlePage, render, renderProblem } from '../handler.tsx';
import { Badge, DataTable, handleBase, json, Notice, PostForm, ProblemBox, Time, TypeOptions } from '../layout.tsx';
import { Retention } from './archives.tsx';
import { SettingsWarning } from './warnings.tsx';

/** The settings form as typed, shown again after a refusal or an evaluation of unsaved settings. */
interface SettingsForm {
  channels: { webhook: { enabled: boolean }; email: { enabled: boolean } };
  ownerFallback: string;
  eventFilter: string;
}

/** The evaluation fields of the form as typed. */
interface EvalForm {
  source?: string | undefined;
  eventType?: string | undefined;
  notificationId?: string | undefined;
  event?: string | undefined;
}

/** `/dashboard/h/:handle/settings`: the page, and its post (save, or evaluate with the saved or the typed settings). */
export function settingsRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'settings', 'Notification settings');

  r.get(
    '/h/:handle/settings',
    page(async (c, h) => {
      return settingsPage(c, h, { saved: c.req.query('ok') === 'saved' });
    }),
  );

  r.post(
    '/h/:handle/settings',
    page(async (c, h) => {
      const action = h.form.action ?? 'save';
      const built = settingsBody(c, h.form);
      const evalForm: EvalForm = {
        source: h.form.source,
        eventType: h.form.eventType,
        notificationId: h.form.notificationId,
        event: h.form.event,
      };
      if (action === 'save') {
        if ('problem' in built)
          return settingsPage(c, h, {
            problem: built.problem,
            problemContext: 'Not saved',
            form: built.display,
            evalForm,
            status: 400,
          });
        const res = await h.api.call<Settings>('PUT', `/v2/handles/${h.handle}/notification-settings`, {
          body: built.body,
          headers: { ...idemHeaders(h.form), ...(h.form.etag ? { 'if-match': h.form.etag } : {}) },
        });
        if (!res.ok)
          return settingsPage(c, h, {
            problem: res.problem,
            problemContext: 'Not saved',
            form: built.display,
            evalForm,
            status: res.status,
          });
        return c.redirect(`${handleBase(h.handle)}/settings?ok=saved`, 303);
      }
      // Evaluate: a dry run of the saved settings, or of the ones in the form (not saved).
      const useForm = action === 'evaluate-form';
      const notEvaluated = (problem: Problem, status: number) =>
        settingsPage(c, h, { problem, problemContext: 'Not evaluated', form: built.display, evalForm, status });
      if (useForm && 'problem' in built) return notEvaluated(built.problem, 400);
      const body: EvaluationBody = {};
      if (useForm && 'body' in built) body.settings = built.body;
      if (h.form.source === 'custom') {
        const ev = jsonField(c, h.form, 'event', 'body.event');
        if ('problem' in ev) return notEvaluated(ev.problem, 400);
        body.event = ev.value ?? {};
      } else if (h.form.source === 'recent' && h.form.notificationId) {
        const n = await h.api.call<Notification>(
          'GET',
          `/v2/handles/${h.handle}/notifications/${encodeURIComponent(h.form.notificationId)}`,
        );
        if (!n.ok) return notEvaluated(n.problem, n.status);
        const event: SampleEventBody = {
          type: n.data.type,
          severity: n.data.severity,
          source: String(n.data.source).slice(0, 100),
          data: n.data.data,
        };
        body.event = event;
      } else {
        body.eventType = h.form.eventType || 'order.created';
      }
      const res = await h.api.call<Evaluation>('POST', `/v2/handles/${h.handle}/notification-settings/evaluate`, {
        body,
      });
      if (!res.ok) return notEvaluated(res.problem, res.status);
      return settingsPage(c, h, { evaluation: res.data, evalForm, form: useForm ? built.display : undefined });
    }),
  );

  return r;
}

/** The settings form as the API's PUT body, or a problem; `display` keeps what the user typed for re-display. */
function settingsBody(
  c: C,
  form: Form,
): { body: SettingsBody; display: SettingsForm } | { problem: Problem; display: SettingsForm } {
  const display: SettingsForm = {
    channels: { webhook: { enabled: form.webhook === 'true' }, email: { enabled: form.email === 'true' } },
    ownerFallback: form.ownerFallback ?? 'critical',
    eventFilter: form.eventFilter ?? '',
  };
  const filter = jsonField(c, form, 'eventFilter', 'body.eventFilter');
  if ('problem' in filter) return { problem: filter.problem, display };
  return {
    body: { channels: display.channels, ownerFallback: display.ownerFallback, eventFilter: filter.value },
    display,
  };
}

/** The settings page (also what its post answers with, but for a successful save). */
async function settingsPage(
  c: C,
  h: HandleContext,
  extra: {
    problem?: Problem;
    problemContext?: string;
    saved?: boolean;
    evaluation?: Evaluation;
    evalForm?: EvalForm;
    form?: SettingsForm | undefined;
    status?: number;
  } = {},
) {
  const [settings, types, recent, archives] = await Promise.all([
    h.api.call<Settings>('GET', `/v2/handles/${h.handle}/notification-settings`),
    eventTypes(h.api),
    h.api.call<NotificationList>('GET', `/v2/handles/${h.handle}/notifications`, { query: { limit: 20 } }),
    h.api.call<ArchiveList>('GET', `/v2/handles/${h.handle}/archives`, { query: { limit: 20 } }),
  ]);
  if (!settings.ok) return renderProblem(c, h.frame, settings.problem, true);
  return render(
    c,
    h.frame,
    <>
      <SettingsPage
        handle={h.handle}
        settings={settings.data}
        etag={settings.headers.get('etag') ?? ''}
        types={types}
        recent={recent.ok ? recent.data.data : []}
        csrf={h.session.csrf}
        idem={h.idem}
        problem={extra.problem ?? null}
        problemContext={extra.problemContext}
        saved={extra.saved}
        evaluation={extra.evaluation ?? null}
        evalForm={extra.evalForm}
        form={extra.form}
      />
      <Retention
        handle={h.handle}
        days={h.access.retentionDays}
        archives={archives.ok ? archives.data : null}
        more={archives.ok && archives.data.nextCursor ? `${handleBase(h.handle)}/archives` : null}
      />
    </>,
    extra.status ?? 200,
  );
}

const SettingsPage: FC<{
  handle: string;
  settings: Settings;
  etag: string;
  types: EventType[];
  recent: NotificationSummary[];
  csrf: string;
  idem: () => string;
  problem?: Problem | null;
  problemContext?: string;
  saved?: boolean;
  evaluation?: Evaluation | null;
  evalForm?: EvalForm | undefined;
  form?: SettingsForm | undefined;
}> = (p) => {
  const base = handleBase(p.handle);
  const s = p.form ?? p.settings;
  const ev: EvalForm = p.evalForm ?? {};
  return (
    <>
      {p.problem ? <ProblemBox problem={p.problem} context={p.problemContext} /> : null}
      {p.saved ? <Notice tone="ok">Settings saved (version {p.settings.version}).</Notice> : null}
      {p.settings.warnings.map((w) => (
        <SettingsWarning warning={w} handle={p.handle} />
      ))}
      <PostForm action={`${base}/settings`} csrf={p.csrf} idem={p.idem()} class="stack" label="Notification settings">
        <input type="hidden" name="etag" value={p.etag} />
        <fieldset class="checks">
          <legend>Channels</legend>
          {/* biome-ignore format: its JSX fill would end this line with {' '} past 120 columns */}
          <div>
            <input id="ch-webhook" type="checkbox" name="webhook" value="true" checked={s.channels.webhook.enabled} />
            {' '}
            <label for="ch-webhook">Webhooks</label>
          </div>
          <div>
            <input id="ch-email" type="checkbox" name="email" value="true" checked={s.channels.email.enabled} />{' '}
            <label for="ch-email">Email</label>
          </div>
        </fieldset>
        <div class="field">
          <label for="fallback">Owner fallback</label>
          <select id="fallback" name="ownerFallback">
            {[
              ['critical', 'critical events (default)'],
              ['all', 'all events'],
              ['none', 'none'],
            ].map(([v, l]) => (
              <option value={v} selected={s.ownerFallback === v}>
                {l}
              </option>
            ))}
          </select>
          <span class="hint">What the owner default email receives.</span>
        </div>
        <div class="field">
          <label for="event-filter">
            Event filter{' '}
            <span class="hint">JSON filter policy applied to every recipient; empty lets everything through</span>
          </label>
          <textarea id="event-filter" name="eventFilter">
            {typeof s.eventFilter === 'string' ? s.eventFilter : json(s.eventFilter)}
          </textarea>
        </div>
        <div>
          <button type="submit" name="action" value="save">
            Save settings
          </button>{' '}
          <span class="hint">
            Version {p.settings.version}, updated <Time at={p.settings.updatedAt} />
          </span>
        </div>
        <h2 id="evaluate">Dry run: who would receive an event?</h2>
        <fieldset>
          <legend>Event to evaluate</legend>
          <div class="field">
            <label for="ev-source">Use</label>
            <select id="ev-source" name="source">
              <option value="sample" selected={(ev.source ?? 'sample') === 'sample'}>
                the catalog sample of a type
              </option>
              <option value="recent" selected={ev.source === 'recent'}>
                a recent notification
              </option>
              <option value="custom" selected={ev.source === 'custom'}>
                this custom event (JSON)
              </option>
            </select>
          </div>
          <div class="field">
            <label for="ev-type">Sample type</label>
            <select id="ev-type" name="eventType">
              <TypeOptions types={p.types} selected={ev.eventType ?? 'order.created'} />
            </select>
          </div>
          <div class="field">
            <label for="ev-recent">Recent notification</label>
            <select id="ev-recent" name="notificationId">
              {p.recent.length === 0 ? <option value="">(none yet)</option> : null}
              {p.recent.map((n) => (
                <option value={n.id} selected={ev.notificationId === n.id}>
                  {`${n.type} · ${n.severity} · ${n.createdAt} · ${n.id}`}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="ev-custom">Custom event</label>
            <textarea id="ev-custom" name="event">
              {ev.event ?? '{\n  "type": "order.created",\n  "data": { "orderId": "ord_10482" }\n}'}
            </textarea>
          </div>
        </fieldset>
        <div>
          <button type="submit" name="action" value="evaluate-saved">
            Evaluate with the saved settings
          </button>{' '}
          <button type="submit" name="action" value="evaluate-form" class="secondary">
            Evaluate with the settings above (unsaved)
          </button>
        </div>
      </PostForm>
      {p.evaluation ? <Verdicts result={p.evaluation} /> : null}
    </>
  );
};

/** Each recipient's verdict for the evaluated event. */
const Verdicts: FC<{ result: Evaluation }> = ({ result }) => (
  <section class="panel" id="evaluation" aria-labelledby="eval-h">
    <h3 id="eval-h">
      Verdicts for <code>{result.event.type}</code> ({result.event.severity}) — {result.settingsSource} settings
    </h3>
    {result.undeliverable ? (
      <Notice tone="bad">A critical event no recipient would receive (undeliverable).</Notice>
    ) : null}
    <DataTable
      caption="Each recipient's verdict"
      columns={['Recipient', 'Verdict', 'Rule', 'Why']}
      empty={result.recipients.length === 0 && 'No recipients.'}
    >
      {result.recipients.map((r) => (
        <tr>
          <td>
            {r.target}
            <div class="hint">
              {r.recipientType} · <code>{r.subscriptionId}</code>
            </div>
          </td>
          <td>
            <Badge status={r.outcome} />
          </td>
          <td>
            <code>{r.rule}</code>
          </td>
          <td>{r.detail}</td>
        </tr>
      ))}
    </DataTable>
    <details>
      <summary>Event evaluated</summary>
      <pre>{json(result.event)}</pre>
    </details>
  </section>
);
