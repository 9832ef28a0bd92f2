/**
 * What a webhook test shows (`POST …/webhooks/{id}/test`): the attempt, and the diagnosis that compares it with recent
 * production deliveries; and the attempt list of a delivery in the log.
 */
import type { Child, FC } from 'hono/jsx';
import type { Delivery, WebhookTestResult } from '../answers.ts';
import { Badge, Copyable, KV, NextSteps, Time } from '../layout.tsx';

/** The attempts of one delivery, newest first. */
export const AttemptRows: FC<{ attempts: Delivery['attempts'] }> = ({ attempts }) => (
  <>
    {attempts.map((a) => (
      // biome-ignore format: its JSX fill would end this line with {' '} past 120 columns
      <li>
        #{a.attemptNumber} <Badge status={a.outcome} /> {a.errorClass ?? ''} HTTP {a.httpStatus ?? '—'} ·{' '}
        {a.durationMs} ms · <Time at={a.at} />
        {a.errorMessage ? <div class="hint">{a.errorMessage}</div> : null}
        {a.responseSnippet ? (
          <details>
            <summary>Response</summary>
            <pre>{a.responseSnippet}</pre>
          </details>
        ) : null}
      </li>
    ))}
  </>
);

/** The test delivery's attempt and the diagnosis of the endpoint. */
export const TestResult: FC<{ result: WebhookTestResult; settingsHref: string }> = ({ result, settingsHref }) => {
  const a = result.attempt;
  const d = result.diagnosis;
  return (
    <section class="panel" aria-labelledby="test-h" id="test-result">
      <h2 id="test-h">
        Test delivery <Badge status={a.outcome} />
      </h2>
      <KV
        rows={[
          ['Delivery id', <Copyable value={result.deliveryId} label="delivery id" />],
          ['Event type', d.test.eventType],
          [
            'Result',
            `${a.outcome}${a.errorClass ? ` (${a.errorClass})` : ''}, HTTP ${a.httpStatus ?? '—'}, ` +
              `${a.durationMs} ms, ${a.requestBytes ?? '—'} bytes`,
          ],
          ['Error', a.errorMessage ?? '—'],
        ]}
      />
      {a.responseSnippet ? (
        <details>
          <summary>Response snippet</summary>
          <pre>{a.responseSnippet}</pre>
        </details>
      ) : null}
      <h3>Diagnosis</h3>
      <p id="diagnosis-summary">
        <strong>{d.summary}</strong>
      </p>
      <KV
        rows={[
          [
            'Subscription',
            `${d.subscription.status}${d.subscription.disabledReason ? ` (${d.subscription.disabledReason})` : ''}, ` +
              `${d.subscription.consecutiveFailures} consecutive failures`,
          ],
          ['Projected auto-disable', <Time at={d.subscription.projectedAutoDisableAt} />],
          ['Secret in rotation', d.subscription.secretInRotation ? 'yes' : 'no'],
          ['Retry policy', d.subscription.retryPolicy],
          ['Rate limit', d.subscription.rateLimit ? `${d.subscription.rateLimit} per second` : 'none'],
        ]}
      />
      {d.differences.length ? (
        <>
          <h3>What differs from production</h3>
          <ul class="findings">
            {d.differences.map((f) => (
              <li>
                <code>{f.code}</code>: {f.message}
              </li>
            ))}
          </ul>
        </>
      ) : null}
      {d.nextSteps.length ? (
        <NextSteps heading="Next steps" steps={pageSteps(result, settingsHref)} api={d.nextSteps} />
      ) : null}
      {d.matching.recentEventTypes.length ? (
        <>
          <h3>Recent event types</h3>
          <ul>
            {d.matching.recentEventTypes.map((t) => (
              <li>
                <code>{t.type}</code> ×{t.count}:{' '}
                {t.wouldMatch ? 'would be delivered' : `not delivered (${t.reason ?? 'filtered'})`}
              </li>
            ))}
          </ul>
        </>
      ) : null}
      {d.productionFailures.length ? (
        <>
          <h3>Recent production failures</h3>
          {/* biome-ignore format: its JSX fill would end this line with {' '} past 120 columns */}
          <ul>
            {d.productionFailures.map((f) => (
              <li>
                <code>{f.deliveryId}</code> {f.type ?? ''} <Badge status={f.deliveryStatus} />{' '}
                {f.errorClass ?? ''} HTTP {f.httpStatus ?? '—'} after {f.attempts} attempt(s) · <Time at={f.at} />
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </section>
  );
};

const b = (label: string) => <strong>{label}</strong>;

/** What each finding asks the user to do, named by the control on the webhook page that does it. */
const pageStep = (settings: string): Record<string, Child> => ({
  subscription_disabled: (
    <>
      Press {b('Enable')} above, then {b('Recover')} under Delivery log to redeliver what was skipped.
    </>
  ),
  channel_disabled: (
    <>
      Turn the webhook channel on with {b('Save')} on the <a href={settings}>Settings</a> page.
    </>
  ),
  // biome-ignore format: its JSX fill would end this line with {' '} past 120 columns
  filters_exclude_recent_events: (
    <>
      Check {b('Event types')} and {b('Filter policy')} under Edit below, or try an event with {b('Evaluate')}
      on the <a href={settings}>Settings</a> page.
    </>
  ),
  event_type_specific: (
    <>
      Pick a failing type in the {b('Send test')} list above and press {b('Send test')}.
    </>
  ),
  payload_size: <>Raise the receiver's body limit, then press {b('Send test')} again.</>,
  latency: <>Make the receiver answer within the timeout (queue the work), then press {b('Send test')} again.</>,
  receiver_rejects_payload: (
    <>
      Fix what the receiver rejects (see its response above and{' '}
      <a href="#receiving-guide">How to receive and verify these requests</a>), then press {b('Send test')}.
    </>
  ),
  blocked_destination: (
    <>
      Change {b('URL')} under Edit below to a public https endpoint and press {b('Save changes')}.
    </>
  ),
  redirect: (
    <>
      Put the final URL in {b('URL')} under Edit below and press {b('Save changes')}.
    </>
  ),
});

/** The page's own next steps for a test result: one per finding, then the test's failure, then the recovery. */
function pageSteps(result: WebhookTestResult, settings: string): Child[] {
  const d = result.diagnosis;
  const byCode = pageStep(settings);
  const steps: Child[] = d.differences.flatMap((f) => (byCode[f.code] ? [byCode[f.code]] : []));
  if (result.attempt.outcome === 'failed') {
    steps.push(
      <>
        Fix the endpoint (see <a href="#receiving-guide">How to receive and verify these requests</a>), then press{' '}
        {b('Send test')} again.
      </>,
    );
  }
  if (d.productionFailures.length) {
    steps.push(<>Once fixed, press {b('Recover')} under Delivery log to redeliver what failed.</>);
  }
  return steps.length ? steps : [<>Press {b('Send test')} again after any change to the receiver.</>];
}
