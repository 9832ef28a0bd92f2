CREATE TABLE `replays` (
	`id` text PRIMARY KEY NOT NULL,
	`handle` text NOT NULL,
	`subscription_id` text NOT NULL,
	`from_at` text NOT NULL,
	`to_at` text NOT NULL,
	`event_types` text,
	`cursor` text,
	`matched` integer DEFAULT 0 NOT NULL,
	`created` integer DEFAULT 0 NOT NULL,
	`status` text NOT NULL,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	FOREIGN KEY (`handle`) REFERENCES `handles`(`handle`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `replays_subscription_idx` ON `replays` (`subscription_id`,`id`);--> statement-breakpoint
ALTER TABLE `deliveries` ADD `replay_id` text;--> statement-breakpoint
CREATE UNIQUE INDEX `deliveries_replay_uq` ON `deliveries` (`subscription_id`,`notification_id`) WHERE replay_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX `deliveries_replay_idx` ON `deliveries` (`replay_id`,`status`) WHERE replay_id IS NOT NULL;--> statement-breakpoint
ALTER TABLE `webhook_subscriptions` ADD `retry_policy` text DEFAULT 'default' NOT NULL;--> statement-breakpoint
ALTER TABLE `webhook_subscriptions` ADD `retry_delays` text;--> statement-breakpoint
ALTER TABLE `webhook_subscriptions` ADD `rate_limit` integer;