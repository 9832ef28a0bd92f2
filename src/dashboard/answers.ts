/**
 * What the dashboard reads from the API and what it sends, typed from the schemas the routes themselves declare (the
 * ones the OpenAPI document is generated from). Renaming or retyping a field in a route's schema fails the type check
 * of every page that reads it, instead of rendering `undefined`.
 *
 * Type-only imports: the dashboard never runs a route's code, it calls the app in process (api.ts).
 */
import type { z } from '@hono/zod-openapi';
import type { pageOf } from '../http/openapi.ts';
import type { ArchiveSchema } from '../routes/archives/archives.schemas.ts';
import type { DeliverySchema } from '../routes/deliveries/deliveries.schemas.ts';
import type {
  DeliveryStatsSchema,
  ErrorClassCountSchema,
  LatencyBucketSchema,
  OutcomeBucketSchema,
  WebhookDeliveryStatsSchema,
} from '../routes/deliveries/delivery-stats.schemas.ts';
import type { EmailTestResultSchema } from '../routes/email-subscriptions/email-subscriptions.routes.ts';
import type {
  CreateEmailSubscriptionBody,
  EmailSubscriptionSchema,
  OwnerDefaultBody,
} from '../routes/email-subscriptions/email-subscriptions.schemas.ts';
import type { PublishResponse } from '../routes/events/events.routes.ts';
import type { HandleAccessSchema, MyHandleListSchema } from '../routes/handles/handles.routes.ts';
import type { HealthReport as HealthReportSchema } from '../routes/health/health.routes.ts';
import type { EventTypeListSchema } from '../routes/meta/meta.routes.ts';
import type { NotificationSchema, NotificationSummarySchema } from '../routes/notifications/notifications.schemas.ts';
import type {
  EvaluateBody,
  EvaluateResponse,
  PutSettingsBody,
  SampleEventSchema,
  SettingsSchema,
} from '../routes/settings/settings.schemas.ts';
import type { ReportResponse } from '../routes/support/support.routes.ts';
import type {
  RecoverResultSchema,
  RotatedWebhookSchema,
  TestResponse,
} from '../routes/webhooks/webhook-actions.routes.ts';
import type { WebhookListItemSchema } from '../routes/webhooks/webhooks.routes.ts';
import type {
  CreatedWebhookSchema,
  CreateWebhookBody,
  UpdateWebhookBody,
  WebhookSchema,
} from '../routes/webhooks/webhooks.schemas.ts';

/** One page of a list, as {@link pageOf} declares it: `{ data, nextCursor }`. */
type Page<S extends z.ZodType> = z.infer<ReturnType<typeof pageOf<S>>>;

/**
 * A request body the dashboard builds from a form: only the route schema's field names, each value as typed by the
 * user (the API validates them and answers with its own problem, so the dashboard never second-guesses a value).
 */
type FormBody<S extends z.ZodType> = { [K in keyof z.input<S>]?: unknown };

// ── handles and the catalog ──
/** `GET /v2/handles/{handle}`: the handle and the caller's access to it. */
export type HandleAccess = z.infer<typeof HandleAccessSchema>;
/** `GET /v2/handles`: the handle switcher. */
export type MyHandleList = z.infer<typeof MyHandleListSchema>;
export type MyHandle = MyHandleList['data'][number];
/** `GET /v2/event-types`. */
export type EventTypeList = z.infer<typeof EventTypeListSchema>;
export type EventType = EventTypeList['data'][number];
/** `GET /v2/handles/{handle}/health`: the delivery doctor. */
export type HealthReport = z.infer<typeof HealthReportSchema>;
/** `POST /v2/support/report`. */
export type SupportReport = z.infer<typeof ReportResponse>;
/** `GET …/archives`: notifications past the retention, archived to R2. */
export type ArchiveList = Page<typeof ArchiveSchema>;
export type Archive = z.infer<typeof ArchiveSchema>;

// ── charts ──
/** `GET …/delivery-stats`: the overview's charts. */
export type DeliveryStats = z.infer<typeof DeliveryStatsSchema>;
/** `GET …/webhooks/{id}/delivery-stats`: a webhook's charts. */
export type WebhookDeliveryStats = z.infer<typeof WebhookDeliveryStatsSchema>;
export type OutcomeBucket = z.infer<typeof OutcomeBucketSchema>;
export type LatencyBucket = z.infer<typeof LatencyBucketSchema>;
export type ErrorClassCount = z.infer<typeof ErrorClassCountSchema>;

// ── webhooks ──
/** `GET …/webhooks?include=activity`. */
export type WebhookList = Page<typeof WebhookListItemSchema>;
export type WebhookListItem = z.infer<typeof WebhookListItemSchema>;
/** `GET` and `PATCH …/webhooks/{id}`. */
export type Webhook = z.infer<typeof WebhookSchema>;
/** `POST …/webhooks`: the webhook and its secret, shown once. */
export type CreatedWebhook = z.infer<typeof CreatedWebhookSchema>;
/** `POST …/webhooks/{id}/rotate-secret`. */
export type RotatedWebhook = z.infer<typeof RotatedWebhookSchema>;
/** `POST …/webhooks/{id}/test`: the attempt and the diagnosis. */
export type WebhookTestResult = z.infer<typeof TestResponse>;
/** `POST …/webhooks/{id}/recover`. */
export type RecoverResult = z.infer<typeof RecoverResultSchema>;
/** `GET …/webhooks/{id}/deliveries`: the delivery log. */
export type DeliveryList = Page<typeof DeliverySchema>;
export type Delivery = z.infer<typeof DeliverySchema>;
/** The body of `POST …/webhooks` and `PATCH …/webhooks/{id}`. */
export type WebhookBody = FormBody<typeof CreateWebhookBody> & FormBody<typeof UpdateWebhookBody>;

// ── email ──
/** `GET …/notifications/email-subscriptions`. */
export type EmailSubscriptionList = Page<typeof EmailSubscriptionSchema>;
/** An email subscription (also the answer of `…/resend-confirmation`). */
export type EmailSubscription = z.infer<typeof EmailSubscriptionSchema>;
/** `POST …/email-subscriptions/{id}/test`. */
export type EmailTestResult = z.infer<typeof EmailTestResultSchema>;
/** The body of `POST …/notifications/email-subscriptions`. */
export type EmailSubscriptionBody = FormBody<typeof CreateEmailSubscriptionBody>;
/** The body of `PUT …/notifications/owner-default-email`. */
export type OwnerDefaultEmailBody = FormBody<typeof OwnerDefaultBody>;

// ── settings ──
/** `GET …/notification-settings`. */
export type Settings = z.infer<typeof SettingsSchema>;
/** `POST …/notification-settings/evaluate`: each recipient's verdict. */
export type Evaluation = z.infer<typeof EvaluateResponse>;
/** The body of `PUT …/notification-settings` (also `settings` of an evaluation). */
export type SettingsBody = FormBody<typeof PutSettingsBody>;
/** The body of `POST …/notification-settings/evaluate`. */
export type EvaluationBody = FormBody<typeof EvaluateBody>;
/** `event` of an evaluation. */
export type SampleEventBody = FormBody<typeof SampleEventSchema>;

// ── notifications ──
/** `GET …/notifications`: the feed. */
export type NotificationList = Page<typeof NotificationSummarySchema>;
export type NotificationSummary = z.infer<typeof NotificationSummarySchema>;
/** `GET …/notifications/{id}`. */
export type Notification = z.infer<typeof NotificationSchema>;
/** `POST …/events`. */
export type Published = z.infer<typeof PublishResponse>;
