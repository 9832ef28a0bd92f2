/**
 * Settings warnings (docs/design.md#events-settings-and-matching, #debug-playbooks (playbook 3)): configurations that
 * make events go missing without any error. Pure: computed from the settings and the subscriptions matching would see.
 */
import type { EmailCandidate, MatchSettings, WebhookCandidate } from '../../delivery/match.ts';
import { EVENT_CATALOG } from '../../lib/event-catalog.ts';
import { evaluateFilterPolicy } from '../../lib/filter-policy.ts';

export interface SettingsWarning {
  code:
    | 'owner_default_email_unset'
    | 'owner_default_email_not_deliverable'
    | 'owner_fallback_none'
    | 'webhook_channel_disabled_with_subscriptions'
    | 'email_channel_disabled_with_subscriptions'
    | 'critical_events_filtered_out';
  message: string;
}

const CRITICAL_TYPES = EVENT_CATALOG.filter((e) => e.defaultSeverity === 'critical');

/** Every warning that applies, most severe first. */
export function settingsWarnings(
  settings: MatchSettings,
  webhooks: readonly WebhookCandidate[],
  emails: readonly EmailCandidate[],
): SettingsWarning[] {
  const warnings: SettingsWarning[] = [];
  const owner = emails.find((e) => e.kind === 'owner_default');
  if (!owner) {
    warnings.push({
      code: 'owner_default_email_unset',
      message:
        'No owner default email is set, so critical events have no guaranteed recipient and may be recorded as ' +
        'undeliverable. Set one with PUT …/notifications/owner-default-email.',
    });
  } else if (owner.status !== 'active') {
    warnings.push({
      code: 'owner_default_email_not_deliverable',
      message:
        `The owner default email ${owner.email} is ${owner.status}: critical events cannot reach it. ` +
        'Set another address.',
    });
  }
  if (settings.ownerFallback === 'none') {
    warnings.push({
      code: 'owner_fallback_none',
      message: 'ownerFallback is none: critical events reach only subscriptions whose filters match them.',
    });
  }
  const enabledWebhooks = webhooks.filter((w) => w.enabled).length;
  if (!settings.webhookEnabled && enabledWebhooks > 0) {
    warnings.push({
      code: 'webhook_channel_disabled_with_subscriptions',
      message:
        'The webhook channel is disabled, ' +
        `so ${enabledWebhooks} enabled webhook subscription(s) ` +
        'receive nothing.',
    });
  }
  const activeEmails = emails.filter((e) => e.kind === 'standard' && e.status === 'active').length;
  if (!settings.emailEnabled && activeEmails > 0) {
    warnings.push({
      code: 'email_channel_disabled_with_subscriptions',
      message: `The email channel is disabled, so ${activeEmails} active email subscription(s) receive nothing.`,
    });
  }
  if (settings.eventFilter) {
    const filtered = CRITICAL_TYPES.filter(
      (e) =>
        !evaluateFilterPolicy(settings.eventFilter, {
          type: e.type,
          severity: 'critical',
          source: null,
          data: e.sample,
        }).match,
    ).map((e) => e.type);
    if (filtered.length) {
      const ownerCovers = owner?.status === 'active' && settings.ownerFallback !== 'none';
      warnings.push({
        code: 'critical_events_filtered_out',
        message: `The eventFilter excludes critical events (${filtered.join(', ')}) from every subscription; ${
          ownerCovers ? 'only the owner default email still receives them.' : 'nobody receives them.'
        }`,
      });
    }
  }
  return warnings;
}
