/**
 * The settings warnings (`warnings` of the settings and of the delivery doctor) as the dashboard shows them: what is
 * wrong in the page's words with the link or button that fixes it, and the API's own sentence, when it names an API
 * call, behind "Via the API".
 */
import type { Child, FC } from 'hono/jsx';
import type { Settings } from '../answers.ts';
import { handleBase, NextSteps, Notice } from '../layout.tsx';

type Warning = Settings['warnings'][number];

/** The step of each warning, named by the control that does it. */
function stepOf(w: Warning, base: string): Child {
  const settings = <a href={`${base}/settings`}>Settings</a>;
  switch (w.code) {
    case 'owner_default_email_unset':
      return (
        <>
          No owner default email is set, so critical events have no guaranteed recipient and may be recorded as
          undeliverable. <a href={`${base}/email#owner-default`}>Set it</a> on the Email page and press{' '}
          <strong>Save</strong>.
        </>
      );
    case 'owner_default_email_not_deliverable':
      return (
        <>
          {w.message} <a href={`${base}/email#owner-default`}>Set another address</a> on the Email page.
        </>
      );
    case 'webhook_channel_disabled_with_subscriptions':
    case 'email_channel_disabled_with_subscriptions':
      return (
        <>
          {w.message} Tick the channel under <strong>Channels</strong> on the {settings} page and press{' '}
          <strong>Save</strong>.
        </>
      );
    default:
      return (
        <>
          {w.message} Change it on the {settings} page.
        </>
      );
  }
}

const API_CALL = /\b(GET|POST|PUT|PATCH|DELETE) (\/v2|…)\//;

/** One warning: its code, the page's step, and the API's sentence in a disclosure when it names a call. */
export const SettingsWarning: FC<{ warning: Warning; handle: string }> = ({ warning, handle }) => (
  <Notice tone="warn">
    <strong>{warning.code}</strong>:{' '}
    <NextSteps
      steps={[stepOf(warning, handleBase(handle))]}
      api={API_CALL.test(warning.message) ? [warning.message] : []}
    />
  </Notice>
);
