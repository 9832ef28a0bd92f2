/**
 * The OpenAPI document's top-level `webhooks` (docs/receiving-webhooks.md): for every catalog type, the request this
 * service sends to a subscription (docs/design.md#webhook-request) — the Standard Webhooks headers and the body with
 * the type's `data` schema — so receivers can generate types from `/v2/openapi.json`.
 */
import { type OpenAPIHono, z } from '@hono/zod-openapi';
import { EVENT_CATALOG, type EventTypeInfo } from '../lib/event-catalog.ts';

type WebhookRegistry = OpenAPIHono['openAPIRegistry'];

const WebhookHeaders = z.object({
  'webhook-id': z.string().openapi({
    description: 'The delivery id, the same on every retry: de-duplicate on it.',
    example: 'dlv_01JD0000000000000000000000',
  }),
  'webhook-timestamp': z.string().regex(/^\d+$/).openapi({
    description: 'Unix seconds of this attempt; refuse it when far from your clock.',
    example: '1795169700',
  }),
  'webhook-signature': z.string().openapi({
    description:
      'Space-separated `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, one per live ' +
      'secret (two during a rotation); accept the request when any verifies.',
    example: 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=',
  }),
});

/** The component name of a type's body: `order.created` → `OrderCreatedWebhook`. */
function componentName(type: string): string {
  return `${type
    .split(/[._]/)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('')}Webhook`;
}

/** The JSON body of one delivery of `info.type` (the keys and their order of `webhookBody` in delivery/attempt.ts). */
export function webhookBodySchema(info: EventTypeInfo) {
  return z
    .object({
      id: z.string().openapi({ description: 'The notification id: the same for every recipient of this event.' }),
      type: z.literal(info.type),
      handle: z.string().openapi({ description: 'The handle the event belongs to.' }),
      severity: z.enum(['info', 'warning', 'critical']),
      timestamp: z.string().openapi({ description: "When the event happened (the publisher's occurredAt), ISO 8601." }),
      data: info.schema,
      test: z.boolean().openapi({ description: 'True only for test sends.' }),
    })
    .openapi(componentName(info.type), { description: info.description });
}

/** A whole body of `info.type` as a receiver gets it, built from the catalog sample. */
export function exampleWebhookBody(info: EventTypeInfo) {
  return {
    id: 'ntf_01JD0000000000000000000000',
    type: info.type,
    handle: 'demo-store',
    severity: info.defaultSeverity,
    timestamp: '2026-11-20T10:15:00Z',
    data: info.sample,
    test: false,
  };
}

/** Registers one `webhooks` entry per catalog type, named by the type. */
export function registerCatalogWebhooks(registry: WebhookRegistry): void {
  for (const info of EVENT_CATALOG) {
    registry.registerWebhook({
      method: 'post',
      path: info.type,
      operationId: `receive${componentName(info.type).replace(/Webhook$/, '')}`,
      tags: ['Webhooks'],
      summary: info.description,
      description:
        `Sent to every webhook whose eventTypes and filters let \`${info.type}\` through` +
        `${info.system ? ' (emitted by this service itself)' : ''}. Verify the signature, de-duplicate on ` +
        '`webhook-id`, answer 2xx within a few seconds; see docs/receiving-webhooks.md.',
      request: {
        headers: WebhookHeaders,
        // The example sits on the media type, not the schema: component examples would repeat the same `id`.
        body: {
          required: true,
          content: { 'application/json': { schema: webhookBodySchema(info), example: exampleWebhookBody(info) } },
        },
      },
      responses: {
        200: { description: 'Any 2xx acknowledges the delivery.' },
        410: { description: 'Gone: the webhook is disabled and nothing more is sent to it.' },
      },
    });
  }
}
