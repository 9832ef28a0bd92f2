CREATE TABLE `access_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`name` text NOT NULL,
	`token_hash` text NOT NULL,
	`token_prefix` text NOT NULL,
	`scopes` text NOT NULL,
	`handle` text,
	`expires_at` text NOT NULL,
	`last_used_at` text,
	`revoked_at` text,
	`created_at` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `access_tokens_hash_uq` ON `access_tokens` (`token_hash`);--> statement-breakpoint
CREATE INDEX `access_tokens_user_idx` ON `access_tokens` (`user_id`,`id`);--> statement-breakpoint
CREATE TABLE `daily_write_counters` (
	`handle` text NOT NULL,
	`day` text NOT NULL,
	`count` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`handle`, `day`)
);
--> statement-breakpoint
CREATE TABLE `deliveries` (
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
	`updated_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `deliveries_notification_idx` ON `deliveries` (`notification_id`);--> statement-breakpoint
CREATE INDEX `deliveries_subscription_idx` ON `deliveries` (`subscription_id`,`id`);--> statement-breakpoint
CREATE INDEX `deliveries_dead_idx` ON `deliveries` (`handle`,`updated_at`) WHERE status = 'dead';--> statement-breakpoint
CREATE INDEX `deliveries_pending_idx` ON `deliveries` (`status`,`updated_at`) WHERE status in ('pending', 'queued', 'retrying');--> statement-breakpoint
CREATE TABLE `delivery_attempts` (
	`id` text PRIMARY KEY NOT NULL,
	`delivery_id` text NOT NULL,
	`attempt_number` integer NOT NULL,
	`outcome` text NOT NULL,
	`error_class` text,
	`http_status` integer,
	`duration_ms` integer NOT NULL,
	`request_bytes` integer,
	`response_snippet` text,
	`error_message` text,
	`created_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `delivery_attempts_delivery_idx` ON `delivery_attempts` (`delivery_id`,`attempt_number`);--> statement-breakpoint
CREATE TABLE `dev_mailbox` (
	`id` text PRIMARY KEY NOT NULL,
	`provider` text NOT NULL,
	`from_address` text NOT NULL,
	`to_address` text NOT NULL,
	`subject` text NOT NULL,
	`headers` text NOT NULL,
	`text_body` text NOT NULL,
	`html_body` text NOT NULL,
	`created_at` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `email_subscriptions` (
	`id` text PRIMARY KEY NOT NULL,
	`handle` text NOT NULL,
	`kind` text DEFAULT 'standard' NOT NULL,
	`email` text NOT NULL,
	`email_normalized` text NOT NULL,
	`event_types` text,
	`filter_policy` text,
	`status` text NOT NULL,
	`status_reason` text,
	`confirm_token_hash` text,
	`confirm_expires_at` text,
	`confirmed_at` text,
	`provider` text NOT NULL,
	`provider_ref` text,
	`provider_checked_at` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	FOREIGN KEY (`handle`) REFERENCES `handles`(`handle`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `email_subscriptions_handle_idx` ON `email_subscriptions` (`handle`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `email_subscriptions_address_uq` ON `email_subscriptions` (`handle`,`kind`,`email_normalized`);--> statement-breakpoint
CREATE UNIQUE INDEX `email_subscriptions_owner_default_uq` ON `email_subscriptions` (`handle`) WHERE kind = 'owner_default';--> statement-breakpoint
CREATE UNIQUE INDEX `email_subscriptions_confirm_token_uq` ON `email_subscriptions` (`confirm_token_hash`);--> statement-breakpoint
CREATE INDEX `email_subscriptions_provider_check_idx` ON `email_subscriptions` (`provider`,`provider_checked_at`) WHERE provider_ref IS NOT NULL;--> statement-breakpoint
CREATE TABLE `event_rejections` (
	`id` text PRIMARY KEY NOT NULL,
	`queue` text NOT NULL,
	`message_id` text NOT NULL,
	`handle` text,
	`reason` text NOT NULL,
	`body` text NOT NULL,
	`created_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `event_rejections_handle_idx` ON `event_rejections` (`handle`,`id`);--> statement-breakpoint
CREATE TABLE `handles` (
	`handle` text PRIMARY KEY NOT NULL,
	`display_name` text NOT NULL,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `idempotency_keys` (
	`principal` text NOT NULL,
	`handle` text NOT NULL,
	`key` text NOT NULL,
	`request_hash` text NOT NULL,
	`state` text NOT NULL,
	`response_status` integer,
	`response_headers` text,
	`response_body` text,
	`created_at` text NOT NULL,
	`expires_at` text NOT NULL,
	PRIMARY KEY(`principal`, `handle`, `key`)
);
--> statement-breakpoint
CREATE INDEX `idempotency_keys_expiry_idx` ON `idempotency_keys` (`expires_at`);--> statement-breakpoint
CREATE TABLE `memberships` (
	`handle` text NOT NULL,
	`user_id` text NOT NULL,
	`role` text NOT NULL,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	PRIMARY KEY(`handle`, `user_id`),
	FOREIGN KEY (`handle`) REFERENCES `handles`(`handle`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `memberships_user_idx` ON `memberships` (`user_id`,`handle`);--> statement-breakpoint
CREATE TABLE `notification_settings` (
	`handle` text PRIMARY KEY NOT NULL,
	`email_enabled` integer DEFAULT true NOT NULL,
	`webhook_enabled` integer DEFAULT true NOT NULL,
	`event_filter` text,
	`owner_fallback` text DEFAULT 'critical' NOT NULL,
	`version` integer DEFAULT 1 NOT NULL,
	`updated_at` text NOT NULL,
	FOREIGN KEY (`handle`) REFERENCES `handles`(`handle`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `notifications` (
	`id` text PRIMARY KEY NOT NULL,
	`handle` text NOT NULL,
	`type` text NOT NULL,
	`severity` text NOT NULL,
	`data` text NOT NULL,
	`source` text NOT NULL,
	`source_event_id` text,
	`occurred_at` text NOT NULL,
	`status` text NOT NULL,
	`recipient_count` integer DEFAULT 0 NOT NULL,
	`recipients` text DEFAULT '{}' NOT NULL,
	`open_count` integer DEFAULT 0 NOT NULL,
	`succeeded_count` integer DEFAULT 0 NOT NULL,
	`dead_count` integer DEFAULT 0 NOT NULL,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	FOREIGN KEY (`handle`) REFERENCES `handles`(`handle`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `notifications_handle_idx` ON `notifications` (`handle`,`id`);--> statement-breakpoint
CREATE INDEX `notifications_handle_status_idx` ON `notifications` (`handle`,`status`,`id`);--> statement-breakpoint
CREATE INDEX `notifications_handle_type_idx` ON `notifications` (`handle`,`type`,`id`);--> statement-breakpoint
CREATE INDEX `notifications_handle_severity_idx` ON `notifications` (`handle`,`severity`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `notifications_source_event_uq` ON `notifications` (`handle`,`source_event_id`);--> statement-breakpoint
CREATE TABLE `support_reports` (
	`id` text PRIMARY KEY NOT NULL,
	`principal_id` text NOT NULL,
	`auth_method` text NOT NULL,
	`handle` text,
	`handle_verified` integer DEFAULT false NOT NULL,
	`summary` text NOT NULL,
	`details` text NOT NULL,
	`session_id` text,
	`reported_request_id` text,
	`repro_artifact` text,
	`request_id` text NOT NULL,
	`deployment_id` text,
	`created_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `support_reports_principal_idx` ON `support_reports` (`principal_id`,`id`);--> statement-breakpoint
CREATE TABLE `webhook_subscriptions` (
	`id` text PRIMARY KEY NOT NULL,
	`handle` text NOT NULL,
	`url` text NOT NULL,
	`description` text,
	`event_types` text,
	`filter_policy` text,
	`headers` text,
	`enabled` integer DEFAULT true NOT NULL,
	`disabled_reason` text,
	`disabled_at` text,
	`secret_encrypted` text NOT NULL,
	`previous_secret_encrypted` text,
	`previous_secret_expires_at` text,
	`consecutive_failures` integer DEFAULT 0 NOT NULL,
	`failing_since` text,
	`last_success_at` text,
	`last_failure_at` text,
	`last_failure_class` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	FOREIGN KEY (`handle`) REFERENCES `handles`(`handle`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `webhook_subscriptions_handle_idx` ON `webhook_subscriptions` (`handle`,`id`);