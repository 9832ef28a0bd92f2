/**
 * Request/response schemas shared by several resources: filter policies, event type lists, email addresses,
 * severities. Validation rules come from the pure modules in src/lib, so the API, the evaluator and the pipeline
 * agree on what is valid.
 */
import { z } from '@hono/zod-openapi';
import { patternTypoSuggestions } from '../lib/event-catalog.ts';
import { isValidEventTypePattern, validateFilterPolicy } from '../lib/filter-policy.ts';
import { problems } from '../lib/problem.ts';

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export const SeveritySchema = z.enum(SEVERITIES);

export const FilterPolicySchema = z
  .record(z.string(), z.unknown())
  // The pure validator owns the grammar and its messages ("Wrap it in an array: [\"eu\"]"), and returns the
  // normalised policy that is stored.
  .transform((value, ctx) => {
    const result = validateFilterPolicy(value);
    if (result.ok) return result.policy;
    for (const e of result.errors) ctx.addIssue({ code: 'custom', message: e.message, path: e.path ? [e.path] : [] });
    return z.NEVER;
  })
  .openapi('FilterPolicy', {
    description:
      'A subset of AWS SNS filter policies. Keys: `type`, `severity`, `source` or `data.<path>`; each value is ' +
      'an array of conditions, OR-ed; keys are AND-ed. A condition is a string, number or boolean (exact), ' +
      '`{"prefix": s}`, `{"suffix": s}`, `{"anything-but": [...]}`, `{"exists": bool}` or ' +
      '`{"numeric": [op, n, op?, n?]}`. At most 5 keys and 150 combinations.',
    example: { type: [{ prefix: 'order.' }], 'data.total': [{ numeric: ['>=', 1000] }] },
  });

export const EventTypesSchema = z
  .array(
    z
      .string()
      .max(100)
      .refine(isValidEventTypePattern, 'Use an event type such as order.paid, a prefix such as order.*, or *.'),
  )
  .min(1)
  .max(50)
  .refine((a) => new Set(a).size === a.length, 'Event types must not repeat.')
  .openapi({
    description: 'Exact types or `prefix.*`; omit (or null) for every type.',
    example: ['order.*', 'payment.failed'],
  });

/**
 * Refuses eventTypes entries that match no catalog type and read as a typo of one (`orders.*`, `order.shipped`): such
 * a subscription would be created and never receive anything. 422 with each entry's path and the nearest catalog
 * types or prefixes. Custom types in a namespace of their own (`inventory.*`) pass
 * (docs/design.md#eventtypes-patterns).
 */
export function requireKnownEventTypes(eventTypes: readonly string[] | null | undefined): void {
  const errors: { path: string; message: string; suggestions: string[] }[] = [];
  (eventTypes ?? []).forEach((pattern, i) => {
    const suggestions = patternTypoSuggestions(pattern);
    if (suggestions) {
      const message = `${pattern} matches no type in the event catalog; did you mean ${suggestions.join(' or ')}?`;
      errors.push({ path: `eventTypes.${i}`, message, suggestions });
    }
  });
  if (errors.length) {
    throw problems.unprocessable(`${errors.map((e) => e.message).join(' ')} (GET /v2/event-types lists them.)`, {
      code: 'unknown_event_type',
      errors,
    });
  }
}

/** An email address as users type it: trimmed; compared and sent lower-cased. */
export const EmailSchema = z
  .string()
  .trim()
  .max(254)
  .pipe(z.email({ message: 'Not a valid email address.' }))
  .openapi({ example: 'ops@example.com' });

/** An ISO 8601 timestamp with a zone. */
export const TimestampSchema = z.iso.datetime({ offset: true }).openapi({ example: '2026-11-26T10:00:00Z' });

/** The fields every view of a delivery shares (the feed's per-recipient entry and the delivery log). */
export const DeliveryCoreFields = {
  channel: z.enum(['webhook', 'email']),
  recipientType: z.enum(['webhook', 'email', 'owner_default', 'platform_alert']),
  subscriptionId: z.string().nullable(),
  target: z.string(),
  status: z.enum(['deferred', 'pending', 'queued', 'retrying', 'succeeded', 'dead', 'cancelled', 'skipped']),
  statusReason: z.string().nullable(),
  lastErrorClass: z.string().nullable(),
  lastHttpStatus: z.number().int().nullable(),
  updatedAt: z.string(),
};
