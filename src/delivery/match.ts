/**
 * Who receives an event, and why each candidate does or does not (docs/design.md#events-settings-and-matching). Pure:
 * the same function answers the `evaluate` dry run, ingest's matching and the test-send diagnosis, so they can never
 * disagree.
 *
 * Order of checks for a subscription: channel switch → confirmation/suppression (email) → eventTypes → the handle's
 * eventFilter → the subscription's filterPolicy → enabled. A disabled webhook that would otherwise match is
 * `skip_disabled` (it gets a visible `skipped` delivery, recoverable later). The owner default email receives critical
 * events whatever the filters say unless ownerFallback is `none`; with `all` it also receives the rest.
 */
import {
  evaluateFilterPolicy,
  type FilterableEvent,
  type FilterPolicy,
  matchesEventTypes,
} from '../lib/filter-policy.ts';

export interface MatchSettings {
  emailEnabled: boolean;
  webhookEnabled: boolean;
  eventFilter: FilterPolicy | null;
  ownerFallback: 'critical' | 'all' | 'none';
}

export interface WebhookCandidate {
  id: string;
  url: string;
  enabled: boolean;
  eventTypes: string[] | null;
  filterPolicy: FilterPolicy | null;
}

export interface EmailCandidate {
  id: string;
  kind: 'standard' | 'owner_default';
  email: string;
  status: 'pending_confirmation' | 'active' | 'unsubscribed' | 'suppressed' | 'stale';
  eventTypes: string[] | null;
  filterPolicy: FilterPolicy | null;
}

export type RecipientType = 'webhook' | 'email' | 'owner_default';

/** Why a candidate gets the event or not. Stable codes: clients and the dashboard branch on them. */
export type MatchRule =
  | 'matched'
  | 'owner_fallback_critical'
  | 'owner_fallback_all'
  | 'owner_fallback_critical_only'
  | 'owner_fallback_none'
  | 'webhook_channel_disabled'
  | 'email_channel_disabled'
  | 'event_types'
  | 'settings_event_filter'
  | 'filter_policy'
  | 'subscription_disabled'
  | 'not_confirmed'
  | 'unsubscribed'
  | 'suppressed'
  | 'stale';

export interface RecipientVerdict {
  recipientType: RecipientType;
  channel: 'webhook' | 'email';
  subscriptionId: string;
  target: string;
  /** deliver: a delivery is made; skip_disabled: a `skipped` delivery is recorded; excluded: nothing is recorded. */
  outcome: 'deliver' | 'skip_disabled' | 'excluded';
  rule: MatchRule;
  detail: string;
}

export interface MatchEvent extends FilterableEvent {
  severity: 'info' | 'warning' | 'critical';
}

export interface RecipientPlan {
  recipients: RecipientVerdict[];
  /**
   * A critical event that no recipient will receive (docs/design.md#events-settings-and-matching): recorded as
   * `undeliverable`, never dropped quietly.
   */
  undeliverable: boolean;
}

type Filters = { eventTypes: string[] | null; filterPolicy: FilterPolicy | null };

/** eventTypes → settings eventFilter → subscription filterPolicy; null when all pass. */
function filterVerdict(
  sub: Filters,
  settings: MatchSettings,
  event: MatchEvent,
): { rule: MatchRule; detail: string } | null {
  if (!matchesEventTypes(sub.eventTypes, event.type)) {
    return {
      rule: 'event_types',
      detail: `${event.type} is not in the subscription's eventTypes (${(sub.eventTypes ?? []).join(', ')}).`,
    };
  }
  const handleFilter = evaluateFilterPolicy(settings.eventFilter, event);
  if (!handleFilter.match) {
    return {
      rule: 'settings_event_filter',
      detail: `The handle's eventFilter excludes it at ${handleFilter.key}: ${handleFilter.reason}`,
    };
  }
  const own = evaluateFilterPolicy(sub.filterPolicy, event);
  if (!own.match) {
    return {
      rule: 'filter_policy',
      detail: `The subscription's filterPolicy excludes it at ${own.key}: ${own.reason}`,
    };
  }
  return null;
}

const EMAIL_STATUS_RULE: Record<Exclude<EmailCandidate['status'], 'active'>, { rule: MatchRule; detail: string }> = {
  pending_confirmation: { rule: 'not_confirmed', detail: 'The address has not confirmed its subscription yet.' },
  unsubscribed: { rule: 'unsubscribed', detail: 'The address unsubscribed.' },
  suppressed: { rule: 'suppressed', detail: 'The address is suppressed after a bounce or complaint.' },
  stale: { rule: 'stale', detail: 'The subscription no longer exists at the email provider.' },
};

function webhookVerdict(w: WebhookCandidate, settings: MatchSettings, event: MatchEvent): RecipientVerdict {
  const base = { recipientType: 'webhook' as const, channel: 'webhook' as const, subscriptionId: w.id, target: w.url };
  if (!settings.webhookEnabled) {
    return {
      ...base,
      outcome: 'excluded',
      rule: 'webhook_channel_disabled',
      detail: 'The webhook channel is disabled in the notification settings.',
    };
  }
  const filtered = filterVerdict(w, settings, event);
  if (filtered) return { ...base, outcome: 'excluded', ...filtered };
  if (!w.enabled) {
    return {
      ...base,
      outcome: 'skip_disabled',
      rule: 'subscription_disabled',
      detail: 'The subscription matches but is disabled; the delivery is recorded as skipped.',
    };
  }
  return { ...base, outcome: 'deliver', rule: 'matched', detail: 'Matches the subscription.' };
}

function emailVerdict(e: EmailCandidate, settings: MatchSettings, event: MatchEvent): RecipientVerdict {
  const base = { recipientType: 'email' as const, channel: 'email' as const, subscriptionId: e.id, target: e.email };
  if (!settings.emailEnabled) {
    return {
      ...base,
      outcome: 'excluded',
      rule: 'email_channel_disabled',
      detail: 'The email channel is disabled in the notification settings.',
    };
  }
  if (e.status !== 'active') return { ...base, outcome: 'excluded', ...EMAIL_STATUS_RULE[e.status] };
  const filtered = filterVerdict(e, settings, event);
  if (filtered) return { ...base, outcome: 'excluded', ...filtered };
  return { ...base, outcome: 'deliver', rule: 'matched', detail: 'Matches the subscription.' };
}

function ownerVerdict(o: EmailCandidate, settings: MatchSettings, event: MatchEvent): RecipientVerdict {
  const base = {
    recipientType: 'owner_default' as const,
    channel: 'email' as const,
    subscriptionId: o.id,
    target: o.email,
  };
  if (o.status !== 'active') return { ...base, outcome: 'excluded', ...EMAIL_STATUS_RULE[o.status] };
  if (settings.ownerFallback === 'none') {
    return {
      ...base,
      outcome: 'excluded',
      rule: 'owner_fallback_none',
      detail: 'ownerFallback is none: the owner default email receives nothing.',
    };
  }
  if (event.severity === 'critical') {
    return {
      ...base,
      outcome: 'deliver',
      rule: 'owner_fallback_critical',
      detail: 'Critical events always reach the owner default email, whatever the filters.',
    };
  }
  if (settings.ownerFallback === 'critical') {
    return {
      ...base,
      outcome: 'excluded',
      rule: 'owner_fallback_critical_only',
      detail: 'ownerFallback is critical and this event is not critical.',
    };
  }
  if (!settings.emailEnabled) {
    return {
      ...base,
      outcome: 'excluded',
      rule: 'email_channel_disabled',
      detail: 'The email channel is disabled in the notification settings.',
    };
  }
  const handleFilter = evaluateFilterPolicy(settings.eventFilter, event);
  if (!handleFilter.match) {
    return {
      ...base,
      outcome: 'excluded',
      rule: 'settings_event_filter',
      detail: `The handle's eventFilter excludes it at ${handleFilter.key}: ${handleFilter.reason}`,
    };
  }
  return {
    ...base,
    outcome: 'deliver',
    rule: 'owner_fallback_all',
    detail: 'ownerFallback is all: the owner default email receives every event.',
  };
}

/** Every candidate's verdict for one event, webhooks first, then email subscriptions, then the owner default. */
export function planRecipients(
  event: MatchEvent,
  settings: MatchSettings,
  webhooks: readonly WebhookCandidate[],
  emails: readonly EmailCandidate[],
): RecipientPlan {
  const recipients: RecipientVerdict[] = [
    ...webhooks.map((w) => webhookVerdict(w, settings, event)),
    ...emails.filter((e) => e.kind === 'standard').map((e) => emailVerdict(e, settings, event)),
    ...emails.filter((e) => e.kind === 'owner_default').map((e) => ownerVerdict(e, settings, event)),
  ];
  const undeliverable = event.severity === 'critical' && !recipients.some((r) => r.outcome === 'deliver');
  return { recipients, undeliverable };
}
