CREATE TABLE `confirmation_mail_counters` (
	`email_normalized` text PRIMARY KEY NOT NULL,
	`day` text NOT NULL,
	`count` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `dashboard_sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`expires_at` text NOT NULL,
	`revoked_at` text,
	`created_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `dashboard_sessions_expiry_idx` ON `dashboard_sessions` (`expires_at`);--> statement-breakpoint
ALTER TABLE `email_subscriptions` ADD `confirm_sent_at` text;