import { z } from '@hono/zod-openapi';
import { HandleParam } from '../../http/openapi.ts';
import { EmailSchema, EventTypesSchema, FilterPolicySchema } from '../../http/schemas.ts';
import { idPattern } from '../../lib/ids.ts';

export const EMAIL_SUBSCRIPTION_ID = idPattern('esub');
/** The owner default email's id in the API (its row has an `esub_` id of its own). */
export const OWNER_DEFAULT_ID = 'owner-default';

export const CreateEmailSubscriptionBody = z
  .strictObject({
    email: EmailSchema,
    eventTypes: EventTypesSchema.nullable().optional(),
    filterPolicy: FilterPolicySchema.nullable().optional(),
  })
  .openapi('CreateEmailSubscriptionRequest');

export const EMAIL_STATUSES = ['pending_confirmation', 'active', 'unsubscribed', 'suppressed', 'stale'] as const;

export const EmailSubscriptionSchema = z
  .object({
    id: z.string().openapi({
      example: 'esub_01JD3Q7X9T0000000000000000',
      description: '`owner-default` for the owner default email.',
    }),
    kind: z.enum(['standard', 'owner_default']),
    email: z.string().nullable().openapi({ description: 'Null only for an unset owner default email.' }),
    eventTypes: z.array(z.string()).nullable(),
    filterPolicy: z.record(z.string(), z.array(z.unknown())).nullable(),
    status: z.enum([...EMAIL_STATUSES, 'unset']),
    statusReason: z.string().nullable(),
    confirmedAt: z.string().nullable(),
    createdAt: z.string().nullable(),
    updatedAt: z.string().nullable(),
  })
  .openapi('EmailSubscription');

export const EmailSubscriptionParams = z.object({
  handle: HandleParam,
  id: z
    .string()
    .refine((v) => v === OWNER_DEFAULT_ID || EMAIL_SUBSCRIPTION_ID.test(v))
    .openapi({ param: { name: 'id', in: 'path' }, example: 'esub_01JD3Q7X9T0000000000000000' }),
});

export const OwnerDefaultBody = z
  .strictObject({ email: EmailSchema.nullable() })
  .openapi('OwnerDefaultEmailRequest', { description: '`null` unsets the owner default email.' });
