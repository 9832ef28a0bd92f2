CREATE TABLE `archives` (
	`id` text PRIMARY KEY NOT NULL,
	`handle` text NOT NULL,
	`period` text NOT NULL,
	`object_key` text NOT NULL,
	`first_notification_id` text NOT NULL,
	`last_notification_id` text NOT NULL,
	`notification_count` integer DEFAULT 0 NOT NULL,
	`delivery_count` integer DEFAULT 0 NOT NULL,
	`attempt_count` integer DEFAULT 0 NOT NULL,
	`bytes` integer,
	`sha256` text,
	`status` text NOT NULL,
	`created_at` text NOT NULL,
	`verified_at` text,
	`purged_at` text,
	FOREIGN KEY (`handle`) REFERENCES `handles`(`handle`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `archives_handle_idx` ON `archives` (`handle`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `archives_range_uq` ON `archives` (`handle`,`first_notification_id`);--> statement-breakpoint
CREATE INDEX `archives_handle_last_idx` ON `archives` (`handle`,`last_notification_id`);--> statement-breakpoint
CREATE INDEX `archives_open_idx` ON `archives` (`handle`) WHERE status <> 'purged';--> statement-breakpoint
CREATE TABLE `platform_alerts` (
	`key` text PRIMARY KEY NOT NULL,
	`sent_at` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `purge_state` (
	`handle` text PRIMARY KEY NOT NULL,
	`last_run_at` text NOT NULL,
	`last_purge_at` text,
	`waiting_on` text,
	`last_error` text,
	`purged_notifications` integer DEFAULT 0 NOT NULL,
	`purged_deliveries` integer DEFAULT 0 NOT NULL,
	`purged_attempts` integer DEFAULT 0 NOT NULL,
	`archives` integer DEFAULT 0 NOT NULL,
	`archived_bytes` integer DEFAULT 0 NOT NULL,
	FOREIGN KEY (`handle`) REFERENCES `handles`(`handle`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
ALTER TABLE `handles` ADD `retention_days` integer DEFAULT 30 NOT NULL;--> statement-breakpoint
ALTER TABLE `handles` ADD `purge_checked_at` text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX `handles_purge_checked_idx` ON `handles` (`purge_checked_at`);