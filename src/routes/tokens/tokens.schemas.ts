import { z } from '@hono/zod-openapi';
import { USER_SCOPES } from '../../auth/scopes.ts';
import { HandleParam } from '../../http/openapi.ts';
import { idPattern } from '../../lib/ids.ts';

export const TOKEN_ID = idPattern('tok');

export const CreateTokenBody = z
  .strictObject({
    name: z.string().trim().min(1).max(100).openapi({ example: 'CRM sync' }),
    scopes: z
      .array(z.enum(USER_SCOPES))
      .min(1)
      .max(USER_SCOPES.length)
      .refine((s) => new Set(s).size === s.length, 'Scopes must not repeat.')
      .openapi({ example: ['notifications:read', 'webhooks:read'] }),
    handle: HandleParam.optional().openapi({ description: 'Restrict the token to this handle.' }),
    expiresInDays: z
      .number()
      .int()
      .min(1)
      .max(365)
      .default(90)
      .openapi({ description: 'Lifetime in days (at most PAT_MAX_LIFETIME_DAYS, 365 by default).' }),
  })
  .openapi('CreateTokenRequest');

export const TokenSchema = z
  .object({
    id: z.string().openapi({ example: 'tok_01JD3Q7X9T0000000000000000' }),
    name: z.string(),
    tokenPrefix: z.string().openapi({ description: 'First characters of the token, to recognise it.' }),
    scopes: z.array(z.string()),
    handle: z.string().nullable(),
    expiresAt: z.string(),
    lastUsedAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi('Token');

export const CreatedTokenSchema = TokenSchema.extend({
  token: z.string().openapi({ description: 'The token itself. Shown only in this response.' }),
}).openapi('CreatedToken');

export const TokenIdParam = z.object({
  id: z
    .string()
    .regex(TOKEN_ID)
    .openapi({ param: { name: 'id', in: 'path' } }),
});
