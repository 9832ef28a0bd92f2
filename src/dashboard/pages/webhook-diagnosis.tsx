/**
 * What a webhook test shows (`POST …/webhooks/{id}/test`): the attempt, and the diagnosis that compares it with recent
 * production deliveries; and the attempt list of a delivery in the log.
 */
import type { FC } from 'hono/jsx';
import type { Delivery, WebhookTestResult } from '../answers.ts';
import { Badge, Copyable, KV, Time } from '../layout.tsx';

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
export const TestResult: FC<{ result: WebhookTestResult }> = ({ result }) => {
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
        <>
          <h3>Next steps</h3>
          <ol>
            {d.nextSteps.map((s) => (
              <li>{s}</li>
            ))}
          </ol>
        </>
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
