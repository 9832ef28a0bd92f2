/**
 * A handle's email subscriptions (owner default first): add an address (double opt-in), test one with a diagnosis,
 * resend a confirmation, delete one, and set or unset the owner default email.
 */
import { Hono } from 'hono';
import type { Child, FC } from 'hono/jsx';
import { type AppEnv, config } from '../../env.ts';
import { OWNER_DEFAULT_ID } from '../../routes/email-subscriptions/email-subscriptions.schemas.ts';
import type {
  EmailSubscription,
  EmailSubscriptionBody,
  EmailSubscriptionList,
  EmailTestResult,
  OwnerDefaultEmailBody,
} from '../answers.ts';
import type { ApiFetch, Problem } from '../api.ts';
import { type Form, idemHeaders, jsonField, pathId, typesField } from '../forms.ts';
import { type C, type HandleContext, handlePage, redirectWith, render, renderProblem } from '../handler.tsx';
import {
  Badge,
  Copyable,
  DataTable,
  handleBase,
  KV,
  NextSteps,
  Notice,
  PostForm,
  ProblemBox,
  Time,
  typeList,
} from '../layout.tsx';

/** `/dashboard/h/:handle/email` and its form posts. */
export function emailRoutes(fetchApp: ApiFetch): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  const page = handlePage(fetchApp, 'email', 'Email subscriptions');

  r.get(
    '/h/:handle/email',
    page(async (c, h) => {
      return emailPage(c, h);
    }),
  );

  r.post(
    '/h/:handle/email',
    page(async (c, h) => {
      const filter = jsonField(c, h.form, 'filterPolicy', 'body.filterPolicy');
      if ('problem' in filter)
        return emailPage(c, h, {
          problem: filter.problem,
          problemContext: 'Not subscribed',
          form: h.form,
          status: 400,
        });
      const body: EmailSubscriptionBody = {
        email: h.form.email ?? '',
        eventTypes: typesField(h.form.eventTypes),
        filterPolicy: filter.value,
      };
      const res = await h.api.call<EmailSubscription>(
        'POST',
        `/v2/handles/${h.handle}/notifications/email-subscriptions`,
        { body, headers: idemHeaders(h.form) },
      );
      if (!res.ok)
        return emailPage(c, h, {
          problem: res.problem,
          problemContext: 'Not subscribed',
          form: h.form,
          status: res.status,
        });
      return redirectWith(c, `${handleBase(h.handle)}/email`, 'email_added');
    }),
  );

  r.post(
    '/h/:handle/email/owner-default',
    page(async (c, h) => {
      const unset = h.form.action === 'unset';
      const body: OwnerDefaultEmailBody = { email: unset ? null : (h.form.email ?? '') };
      const res = await h.api.call<EmailSubscription>(
        'PUT',
        `/v2/handles/${h.handle}/notifications/owner-default-email`,
        { body, headers: idemHeaders(h.form) },
      );
      if (!res.ok)
        return emailPage(c, h, {
          problem: res.problem,
          problemContext: 'Owner default email not changed',
          status: res.status,
        });
      return redirectWith(c, `${handleBase(h.handle)}/email`, unset ? 'owner_email_unset' : 'owner_email_saved');
    }),
  );

  r.post(
    '/h/:handle/email/:id/delete',
    page(async (c, h) => {
      const res = await h.api.call('DELETE', `/v2/handles/${h.handle}/notifications/email-subscriptions/${pathId(c)}`, {
        headers: idemHeaders(h.form),
      });
      if (!res.ok) return emailPage(c, h, { problem: res.problem, problemContext: 'Not deleted', status: res.status });
      return redirectWith(c, `${handleBase(h.handle)}/email`, 'email_deleted');
    }),
  );

  r.post(
    '/h/:handle/email/:id/test',
    page(async (c, h) => {
      const res = await h.api.call<EmailTestResult>(
        'POST',
        `/v2/handles/${h.handle}/notifications/email-subscriptions/${pathId(c)}/test`,
        { body: {}, headers: idemHeaders(h.form) },
      );
      if (!res.ok)
        return emailPage(c, h, { problem: res.problem, problemContext: 'Test not sent', status: res.status });
      return emailPage(c, h, { testResult: res.data });
    }),
  );

  r.post(
    '/h/:handle/email/:id/resend',
    page(async (c, h) => {
      const res = await h.api.call<EmailSubscription>(
        'POST',
        `/v2/handles/${h.handle}/notifications/email-subscriptions/${pathId(c)}/resend-confirmation`,
        { headers: idemHeaders(h.form) },
      );
      if (!res.ok)
        return emailPage(c, h, { problem: res.problem, problemContext: 'Confirmation not sent', status: res.status });
      return emailPage(c, h, {
        flash:
          'Confirmation mail sent again to ' +
          `${res.data.email}.${res.data.statusReason ? ` ${res.data.statusReason}` : ''}`,
      });
    }),
  );

  return r;
}

/** The email page (also what its actions answer with: a test's diagnosis, a refusal with the form as typed). */
async function emailPage(
  c: C,
  h: HandleContext,
  extra: {
    problem?: Problem;
    problemContext?: string;
    testResult?: EmailTestResult;
    form?: Form;
    status?: number;
    flash?: string;
  } = {},
) {
  const list = await h.api.call<EmailSubscriptionList>(
    'GET',
    `/v2/handles/${h.handle}/notifications/email-subscriptions`,
    { query: { cursor: c.req.method === 'GET' ? c.req.query('cursor') : undefined } },
  );
  if (!list.ok) return renderProblem(c, h.frame, list.problem, true);
  if (extra.flash) h.frame.flash = extra.flash;
  if (extra.testResult?.deliveryId) h.frame.ids = [{ label: 'Test delivery id', value: extra.testResult.deliveryId }];
  return render(
    c,
    h.frame,
    <EmailPage
      handle={h.handle}
      subs={list.data.data}
      nextCursor={list.data.nextCursor}
      csrf={h.session.csrf}
      idem={h.idem}
      problem={extra.problem ?? null}
      problemContext={extra.problemContext}
      testResult={extra.testResult ?? null}
      form={extra.form}
      devMailbox={config(c.env).isDevelopment}
    />,
    extra.status ?? 200,
  );
}

/** What the diagnosis asks for, named by the controls of this page (the API's words stay in "Via the API"). */
function emailPageSteps(result: EmailTestResult): Child[] {
  const d = result.diagnosis;
  const steps: Child[] = [];
  const status = d.subscription.status;
  if (status === 'pending_confirmation') {
    steps.push(
      <>
        Ask the recipient to click the link in the confirmation mail, or press <strong>Resend confirmation</strong> in
        its row below.
      </>,
    );
  } else if (status !== 'active') {
    steps.push(
      <>
        Press <strong>Delete</strong> in its row below, then add the address again with <strong>Subscribe</strong>: it
        gets a new confirmation link.
      </>,
    );
  } else if (d.test.outcome !== 'succeeded') {
    steps.push(
      d.test.errorClass === 'provider_permanent' ? (
        <>
          The provider refuses this address or sender: check the address and the sending domain, then press{' '}
          <strong>Send test</strong> again.
        </>
      ) : (
        <>
          A transient provider failure: press <strong>Send test</strong> again shortly.
        </>
      ),
    );
  }
  if (d.productionFailures.length) {
    steps.push(
      <>
        Redeliver each failed delivery with <strong>Retry</strong> on its notification's page (the{' '}
        <strong>Notifications</strong> tab).
      </>,
    );
  }
  return steps;
}

/** An email test's outcome and the diagnosis of the subscription. */
const EmailTestDiagnosis: FC<{ result: EmailTestResult }> = ({ result }) => {
  const d = result.diagnosis;
  return (
    <section class="panel" id="test-result" aria-labelledby="etest-h">
      <h2 id="etest-h">
        Email test <Badge status={d.test.outcome} />
      </h2>
      <p id="diagnosis-summary">
        <strong>{d.summary}</strong>
      </p>
      <KV
        rows={[
          [
            'Delivery id',
            result.deliveryId ? <Copyable value={result.deliveryId} label="delivery id" /> : '— (not sent)',
          ],
          ['Address', `${d.subscription.email} (${d.subscription.kind})`],
          [
            'Status',
            <>
              <Badge status={d.subscription.status} /> {d.subscription.statusReason ?? ''}
            </>,
          ],
          ['Provider', d.subscription.provider],
          [
            'Test',
            `${d.test.outcome}${d.test.errorClass ? ` (${d.test.errorClass})` : ''}` +
              `${d.test.detail ? `: ${d.test.detail}` : ''}`,
          ],
          [
            'Provider check',
            d.providerCheck
              ? `${d.providerCheck.provider} ${d.providerCheck.reference}: ${d.providerCheck.state}`
              : '—',
          ],
        ]}
      />
      {d.nextSteps.length ? <NextSteps steps={emailPageSteps(result)} api={d.nextSteps} /> : null}
    </section>
  );
};

const EmailPage: FC<{
  handle: string;
  subs: EmailSubscription[];
  nextCursor: string | null;
  csrf: string;
  idem: () => string;
  problem?: Problem | null;
  problemContext?: string;
  testResult?: EmailTestResult | null;
  form?: Form | undefined;
  devMailbox: boolean;
}> = (p) => {
  const base = handleBase(p.handle);
  const owner = p.subs.find((s) => s.id === OWNER_DEFAULT_ID);
  return (
    <>
      {owner && owner.status === 'unset' ? (
        <Notice tone="bad">
          <strong>No owner default email.</strong>{' '}
          {owner.statusReason ?? 'Critical events have no guaranteed recipient.'}{' '}
          <a href="#owner-default">Set one below</a>.
        </Notice>
      ) : null}
      {p.problem ? <ProblemBox problem={p.problem} context={p.problemContext} /> : null}
      {p.testResult ? <EmailTestDiagnosis result={p.testResult} /> : null}
      <DataTable
        caption="Email subscriptions, owner default first"
        columns={['Address', 'Status', 'Receives', 'Actions']}
      >
        {p.subs.map((s) => (
          <tr data-subscription={s.id} data-status={s.status}>
            <td>
              {s.email ?? <em>not set</em>}
              <div class="hint">{s.kind === 'owner_default' ? 'owner default' : <code>{s.id}</code>}</div>
            </td>
            <td>
              <Badge status={s.status} />
              {s.statusReason ? <div class="hint">{s.statusReason}</div> : null}
              {s.confirmedAt ? (
                <div class="hint">
                  confirmed <Time at={s.confirmedAt} />
                </div>
              ) : null}
            </td>
            <td>
              {s.kind === 'owner_default' ? 'per the owner fallback (settings)' : typeList(s.eventTypes)}
              {s.filterPolicy ? <div class="hint mono">{JSON.stringify(s.filterPolicy)}</div> : null}
            </td>
            <td>
              {s.status !== 'unset' ? (
                <PostForm action={`${base}/email/${s.id}/test`} csrf={p.csrf} idem={p.idem()}>
                  <button type="submit" class="secondary">
                    Send test
                  </button>
                </PostForm>
              ) : null}{' '}
              {s.status === 'pending_confirmation' ? (
                <PostForm action={`${base}/email/${s.id}/resend`} csrf={p.csrf} idem={p.idem()}>
                  <button type="submit" class="secondary">
                    Resend confirmation
                  </button>
                </PostForm>
              ) : null}{' '}
              {s.kind === 'standard' ? (
                <PostForm
                  action={`${base}/email/${s.id}/delete`}
                  csrf={p.csrf}
                  idem={p.idem()}
                  confirm={`Delete the subscription of ${s.email}?`}
                >
                  <button type="submit" class="danger">
                    Delete
                  </button>
                </PostForm>
              ) : null}
            </td>
          </tr>
        ))}
      </DataTable>
      {p.nextCursor ? <a href={`?cursor=${encodeURIComponent(p.nextCursor)}`}>Next page</a> : null}
      {p.devMailbox ? (
        <p class="hint">
          Development: mails land in the <a href="/dev/mailbox">local mailbox</a> (confirmation links are clickable
          there).
        </p>
      ) : null}
      <h2 id="add">Subscribe an address</h2>
      <PostForm action={`${base}/email`} csrf={p.csrf} idem={p.idem()} class="stack" label="Subscribe an address">
        <div class="field">
          <label for="sub-email">Email</label>
          <input id="sub-email" name="email" type="email" required value={p.form?.email ?? ''} autocomplete="email" />
          <span class="hint">
            The address gets a confirmation link first (double opt-in) and nothing else until it confirms.
          </span>
        </div>
        <div class="field">
          <label for="sub-types">
            Event types <span class="hint">comma-separated; empty = every type</span>
          </label>
          <input id="sub-types" name="eventTypes" type="text" value={p.form?.eventTypes ?? ''} />
        </div>
        <div class="field">
          <label for="sub-filter">
            Filter policy <span class="hint">JSON; empty = none</span>
          </label>
          <textarea id="sub-filter" name="filterPolicy">
            {p.form?.filterPolicy ?? ''}
          </textarea>
        </div>
        <div>
          <button type="submit">Subscribe</button>
        </div>
      </PostForm>
      <h2 id="owner-default">Owner default email</h2>
      <p>
        Receives every critical event whatever the filters (unless the owner fallback is “none”). Only the owner may
        change it.
      </p>
      <PostForm
        action={`${base}/email/owner-default`}
        csrf={p.csrf}
        idem={p.idem()}
        class="stack"
        label="Set or unset the owner default email"
      >
        <div class="field">
          <label for="owner-email">Owner default email</label>
          <input id="owner-email" name="email" type="email" value={owner?.email ?? ''} autocomplete="email" />
        </div>
        <div>
          <button type="submit" name="action" value="set">
            Save
          </button>{' '}
          <button type="submit" name="action" value="unset" class="danger">
            Unset
          </button>
        </div>
      </PostForm>
    </>
  );
};
