import { z } from '@hono/zod-openapi';
import { MAX_RATE_LIMIT } from '../../delivery/pacer.ts';
import { RETRY_POLICY_NAMES } from '../../delivery/retry-policy.ts';
import { HandleParam } from '../../http/openapi.ts';
import { EventTypesSchema, FilterPolicySchema } from '../../http/schemas.ts';
import { idPattern } from '../../lib/ids.ts';

export const WEBHOOK_ID = idPattern('whk');

/** Headers the service sets itself, or that only make sense hop by hop: a subscription may not set them. */
const RESERVED_HEADERS = new Set([
  'content-type',
  'content-length',
  'content-encoding',
  'host',
  'user-agent',
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);

const HeaderName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/, 'Not a valid header name.');
const HeaderValue = z
  .string()
  .max(1024)
  .regex(/^[^\r\n\0]*$/, 'Header values cannot contain line breaks or NUL.');

export const HeadersSchema = z
  .record(HeaderName, HeaderValue)
  .superRefine((headers, ctx) => {
    const names = Object.keys(headers);
    if (names.length > 20) ctx.addIssue({ code: 'custom', message: 'At most 20 custom headers.' });
    const seen = new Set<string>();
    for (const name of names) {
      const lower = name.toLowerCase();
      if (lower.startsWith('webhook-') || RESERVED_HEADERS.has(lower)) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `${name} is set by the service and cannot be overridden.`,
        });
      }
      if (seen.has(lower)) ctx.addIssue({ code: 'custom', path: [name], message: `${name} is given twice.` });
      seen.add(lower);
    }
  })
  .openapi({ description: 'Custom request headers sent with every delivery.', example: { 'X-Crm-Tenant': 'acme' } });

/** A retry policy as sent: a name, and for `custom` its delays (bounds checked by the route: a 422 names them). */
export const RetryPolicyBody = z
  .strictObject({
    name: z.enum(RETRY_POLICY_NAMES),
    delaysSeconds: z.array(z.number()).max(50).optional(),
  })
  .openapi('RetryPolicyRequest', {
    description:
      '`default` (5 s … 10 h, 8 attempts), `short` (5 s, 30 s, 2 min: for test endpoints) or `custom` with ' +
      '`delaysSeconds`: 1 to 7 whole seconds of 1 … 43,200 (Queues’ 12 h limit), the delay after attempt 1, 2, ….',
    example: { name: 'custom', delaysSeconds: [10, 60, 600] },
  });

const RateLimitField = z
  .number()
  .nullable()
  .openapi({
    description: `Deliveries per second at most (whole, 1 … ${MAX_RATE_LIMIT}); null = as fast as the queue goes.`,
    example: 20,
  });

const UrlField = z.string().min(1).max(2048).openapi({ example: 'https://crm.example.com/hooks/gharart' });

export const CreateWebhookBody = z
  .strictObject({
    url: UrlField,
    description: z.string().trim().max(500).optional(),
    eventTypes: EventTypesSchema.nullable().optional(),
    filterPolicy: FilterPolicySchema.nullable().optional(),
    headers: HeadersSchema.optional(),
    enabled: z.boolean().default(true),
    retryPolicy: RetryPolicyBody.optional(),
    rateLimit: RateLimitField.optional(),
  })
  .openapi('CreateWebhookRequest');

export const UpdateWebhookBody = z
  .strictObject({
    url: UrlField.optional(),
    description: z.string().trim().max(500).nullable().optional(),
    eventTypes: EventTypesSchema.nullable().optional(),
    filterPolicy: FilterPolicySchema.nullable().optional(),
    headers: HeadersSchema.optional(),
    enabled: z.boolean().optional(),
    retryPolicy: RetryPolicyBody.optional(),
    rateLimit: RateLimitField.optional(),
  })
  .refine((b) => Object.keys(b).length > 0, 'Send at least one field to change.')
  .openapi('UpdateWebhookRequest');

export const WebhookSchema = z
  .object({
    id: z.string().openapi({ example: 'whk_01JD3Q7X9T0000000000000000' }),
    url: z.string(),
    description: z.string().nullable(),
    eventTypes: z.array(z.string()).nullable(),
    filterPolicy: z.record(z.string(), z.array(z.unknown())).nullable(),
    headers: z.record(z.string(), z.string()).openapi({
      description:
        'Custom header names, with values only for callers who may change the subscription (webhooks:write, owner ' +
        'or admin); credential-like values are masked for them too. Others see `••••` for every value.',
    }),
    enabled: z.boolean(),
    status: z.enum(['active', 'disabled']),
    disabledReason: z.string().nullable(),
    disabledAt: z.string().nullable(),
    health: z.object({
      consecutiveFailures: z.number().int(),
      failingSince: z.string().nullable(),
      lastSuccessAt: z.string().nullable(),
      lastFailureAt: z.string().nullable(),
      lastFailureClass: z.string().nullable(),
    }),
    retryPolicy: z
      .object({
        name: z.enum(RETRY_POLICY_NAMES),
        delaysSeconds: z.array(z.number().int()),
        maxAttempts: z.number().int(),
      })
      .openapi({ description: 'The retry policy in force, with the delays it means (docs/design.md#retry-policies).' }),
    rateLimit: z.number().int().nullable().openapi({ description: 'Deliveries per second at most; null = unpaced.' }),
    secretRotation: z
      .object({ previousSecretExpiresAt: z.string() })
      .nullable()
      .openapi({ description: 'While set, deliveries are signed with both the new and the previous secret.' }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Webhook');

export const CreatedWebhookSchema = WebhookSchema.extend({
  secret: z.string().openapi({ description: 'The signing secret (`whsec_…`). Shown only here.' }),
}).openapi('CreatedWebhook');

export const WebhookParams = z.object({
  handle: HandleParam,
  id: z
    .string()
    .regex(WEBHOOK_ID)
    .openapi({ param: { name: 'id', in: 'path' } }),
});
