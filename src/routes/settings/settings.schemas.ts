import { z } from '@hono/zod-openapi';
import { FilterPolicySchema, SeveritySchema } from '../../http/schemas.ts';
import { isTimeZone, WEEKDAYS } from '../../lib/peak-windows.ts';

const ClockTime = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'Use a 24-hour local time HH:MM, e.g. 18:30.')
  .openapi({ example: '18:00' });

/** Peak campaign windows (docs/design.md#peak-campaign-windows). */
export const PeakWindowsSchema = z
  .strictObject({
    timeZone: z
      .string()
      .max(64)
      .refine(isTimeZone, 'Use an IANA time zone, e.g. Asia/Kolkata.')
      .openapi({ example: 'Asia/Kolkata' }),
    weekly: z
      .array(
        z.strictObject({
          days: z.array(z.enum(WEEKDAYS)).min(1).max(7),
          start: ClockTime,
          end: ClockTime.openapi({ description: 'At or before start: the window runs past midnight.' }),
        }),
      )
      .max(20)
      .default([]),
    oneOff: z
      .array(
        z
          .strictObject({
            start: z.iso.datetime({ offset: true }),
            end: z.iso.datetime({ offset: true }),
            label: z.string().max(100).optional(),
          })
          .refine((w) => Date.parse(w.end) > Date.parse(w.start), { message: 'end must be after start.' }),
      )
      .max(50)
      .default([]),
    campaignEvents: z.boolean().default(false).openapi({
      description: 'campaign.started opens a window (at most 24 h) that campaign.completed closes.',
    }),
  })
  .openapi('PeakWindows');

const Channels = z.strictObject({
  email: z.strictObject({ enabled: z.boolean() }),
  webhook: z.strictObject({ enabled: z.boolean() }),
});

export const OWNER_FALLBACKS = ['critical', 'all', 'none'] as const;

export const PutSettingsBody = z
  .strictObject({
    channels: Channels,
    eventFilter: FilterPolicySchema.nullable().openapi({
      description: 'Applied to every recipient; null lets everything through.',
    }),
    ownerFallback: z.enum(OWNER_FALLBACKS).openapi({
      description: 'What the owner default email receives: critical events (default), all events, or none.',
    }),
    peakWindows: PeakWindowsSchema.nullable()
      .optional()
      .openapi({ description: 'Peak campaign windows; null removes them, absent keeps them as they are.' }),
  })
  .openapi('PutNotificationSettingsRequest');

export const WarningSchema = z
  .object({
    code: z.enum([
      'owner_default_email_unset',
      'owner_default_email_not_deliverable',
      'owner_fallback_none',
      'webhook_channel_disabled_with_subscriptions',
      'email_channel_disabled_with_subscriptions',
      'critical_events_filtered_out',
    ]),
    message: z.string(),
  })
  .openapi('SettingsWarning');

export const SettingsSchema = z
  .object({
    channels: z.object({ email: z.object({ enabled: z.boolean() }), webhook: z.object({ enabled: z.boolean() }) }),
    eventFilter: z.record(z.string(), z.array(z.unknown())).nullable(),
    ownerFallback: z.enum(OWNER_FALLBACKS),
    peakWindows: PeakWindowsSchema.nullable(),
    campaignWindowUntil: z.string().nullable().openapi({
      description: 'A campaign window opened by campaign.started: open until then, or until campaign.completed.',
    }),
    version: z.number().int(),
    updatedAt: z.string(),
    warnings: z.array(WarningSchema),
  })
  .openapi('NotificationSettings');

export const SampleEventSchema = z
  .strictObject({
    type: z.string().min(1).max(100),
    severity: SeveritySchema.optional(),
    source: z.string().max(100).optional(),
    data: z.record(z.string(), z.unknown()).default({}),
  })
  .openapi('SampleEvent');

export const EvaluateBody = z
  .strictObject({
    eventType: z.string().max(100).optional().openapi({ description: 'Use the catalog sample of this type.' }),
    event: SampleEventSchema.optional(),
    settings: PutSettingsBody.optional().openapi({
      description: 'Evaluate these settings instead of the saved ones (dry run of an edit).',
    }),
    delivery: z.enum(['now', 'off_peak']).optional().openapi({
      description: 'The event published with this delivery (default now): whether it would be deferred.',
    }),
  })
  .refine((b) => (b.eventType === undefined) !== (b.event === undefined), {
    message: 'Send exactly one of eventType or event.',
  })
  .openapi('EvaluateRequest');

export const VerdictSchema = z
  .object({
    recipientType: z.enum(['webhook', 'email', 'owner_default']),
    channel: z.enum(['webhook', 'email']),
    subscriptionId: z.string(),
    target: z.string(),
    outcome: z.enum(['deliver', 'skip_disabled', 'excluded']),
    rule: z
      .string()
      .openapi({ description: 'The rule that decided: matched, event_types, filter_policy, settings_event_filter, …' }),
    detail: z.string(),
  })
  .openapi('RecipientVerdict');

export const EvaluateResponse = z
  .object({
    event: z.object({
      type: z.string(),
      severity: SeveritySchema,
      source: z.string().nullable(),
      data: z.record(z.string(), z.unknown()),
    }),
    recipients: z.array(VerdictSchema),
    undeliverable: z.boolean().openapi({ description: 'A critical event no recipient would receive.' }),
    deferral: z
      .object({
        deferred: z.boolean(),
        until: z.string().nullable().openapi({ description: 'When its deliveries would start to go (spread 10 min).' }),
        peakWindowEndsAt: z.string().nullable().openapi({ description: 'The end of the peak window open now.' }),
        reason: z.string(),
      })
      .openapi({ description: 'Whether an event published now would wait out a peak campaign window.' }),
    settingsSource: z.enum(['saved', 'request']),
  })
  .openapi('EvaluateResponse');
