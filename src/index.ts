/**
 * gharart-notify: the Worker's entry points (docs/design.md#entry-points).
 * - fetch: the HTTP API (src/app.ts)
 * - queue: notify-events, the delivery queues notify-deliveries-<n>, their dead-letter queues (src/queue.ts)
 * - scheduled: the minute jobs (src/jobs/)
 * - EndpointPacer: the Durable Object that paces a webhook with a rateLimit (src/delivery/endpoint-pacer.ts)
 */
import { buildApp } from './app.ts';
import { handleScheduled } from './jobs/index.ts';
import { handleQueue } from './queue.ts';

export { EndpointPacer } from './delivery/endpoint-pacer.ts';

const app = buildApp();

export default {
  fetch: app.fetch,
  queue: handleQueue,
  scheduled: handleScheduled,
} satisfies ExportedHandler<Env>;
