-- Hand-written (drizzle-kit cannot express WITHOUT ROWID): deliveries and delivery_attempts rebuilt as WITHOUT ROWID
-- tables, stored in the order of their primary key, so no separate index for the key is written with every row
-- (docs/performance.md#rows-and-bytes-of-one-event). Not notifications: their rows (data, recipient summaries) are
-- often larger than a WITHOUT ROWID cell holds on its page, and each would take an overflow page. Columns,
-- constraints and indexes are exactly those of 0012's schema; every row is copied.
PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_deliveries` (
	`id` text PRIMARY KEY NOT NULL,
	`handle` text NOT NULL,
	`notification_id` text,
	`kind` text NOT NULL,
	`channel` text NOT NULL,
	`recipient_type` text NOT NULL,
	`subscription_id` text,
	`target` text NOT NULL,
	`status` text NOT NULL,
	`status_reason` text,
	`attempt_count` integer DEFAULT 0 NOT NULL,
	`last_error_class` text,
	`last_http_status` integer,
	`next_attempt_at` text,
	`last_attempt_at` text,
	`retry_base` integer DEFAULT 0 NOT NULL,
	`payload` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	`requeued_updated_at` text,
	`requeue_due_at` text,
	`provider_message_id` text,
	`delivered_at` text,
	`provider_verdict` text,
	`replay_id` text
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `__new_deliveries`("id", "handle", "notification_id", "kind", "channel", "recipient_type", "subscription_id", "target", "status", "status_reason", "attempt_count", "last_error_class", "last_http_status", "next_attempt_at", "last_attempt_at", "retry_base", "payload", "created_at", "updated_at", "requeued_updated_at", "requeue_due_at", "provider_message_id", "delivered_at", "provider_verdict", "replay_id") SELECT "id", "handle", "notification_id", "kind", "channel", "recipient_type", "subscription_id", "target", "status", "status_reason", "attempt_count", "last_error_class", "last_http_status", "next_attempt_at", "last_attempt_at", "retry_base", "payload", "created_at", "updated_at", "requeued_updated_at", "requeue_due_at", "provider_message_id", "delivered_at", "provider_verdict", "replay_id" FROM `deliveries`;--> statement-breakpoint
DROP TABLE `deliveries`;--> statement-breakpoint
ALTER TABLE `__new_deliveries` RENAME TO `deliveries`;--> statement-breakpoint
CREATE INDEX `deliveries_notification_idx` ON `deliveries` (`notification_id`);--> statement-breakpoint
CREATE INDEX `deliveries_subscription_idx` ON `deliveries` (`subscription_id`,`id`);--> statement-breakpoint
CREATE INDEX `deliveries_dead_idx` ON `deliveries` (`handle`,`updated_at`) WHERE status = 'dead';--> statement-breakpoint
CREATE INDEX `deliveries_due_idx` ON `deliveries` ((CASE WHEN requeued_updated_at = updated_at THEN requeue_due_at WHEN next_attempt_at IS NOT NULL THEN next_attempt_at ELSE updated_at END),`handle`) WHERE status in ('queued', 'retrying');--> statement-breakpoint
CREATE INDEX `deliveries_test_sends_idx` ON `deliveries` (`handle`,`id`) WHERE notification_id IS NULL;--> statement-breakpoint
CREATE INDEX `deliveries_provider_message_idx` ON `deliveries` (`provider_message_id`) WHERE provider_message_id IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX `deliveries_replay_uq` ON `deliveries` (`subscription_id`,`notification_id`) WHERE replay_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX `deliveries_replay_idx` ON `deliveries` (`replay_id`,`status`) WHERE replay_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX `deliveries_deferred_idx` ON `deliveries` (`next_attempt_at`) WHERE status = 'deferred';--> statement-breakpoint
CREATE INDEX `deliveries_handle_deferred_idx` ON `deliveries` (`handle`,`next_attempt_at`) WHERE status = 'deferred';--> statement-breakpoint
CREATE INDEX `deliveries_pending_idx` ON `deliveries` (`updated_at`) WHERE status = 'pending';--> statement-breakpoint
CREATE TABLE `__new_delivery_attempts` (
	`id` text NOT NULL,
	`delivery_id` text NOT NULL,
	`attempt_number` integer NOT NULL,
	`outcome` text NOT NULL,
	`error_class` text,
	`http_status` integer,
	`duration_ms` integer NOT NULL,
	`request_bytes` integer,
	`response_snippet` text,
	`error_message` text,
	`created_at` text NOT NULL,
	PRIMARY KEY(`delivery_id`, `attempt_number`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `__new_delivery_attempts`("id", "delivery_id", "attempt_number", "outcome", "error_class", "http_status", "duration_ms", "request_bytes", "response_snippet", "error_message", "created_at") SELECT "id", "delivery_id", "attempt_number", "outcome", "error_class", "http_status", "duration_ms", "request_bytes", "response_snippet", "error_message", "created_at" FROM `delivery_attempts`;--> statement-breakpoint
DROP TABLE `delivery_attempts`;--> statement-breakpoint
ALTER TABLE `__new_delivery_attempts` RENAME TO `delivery_attempts`;--> statement-breakpoint
PRAGMA foreign_keys=ON;
