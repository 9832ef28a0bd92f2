ALTER TABLE `daily_write_counters` ADD `events` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `notification_settings` ADD `peak_windows` text;--> statement-breakpoint
ALTER TABLE `notification_settings` ADD `campaign_window_until` text;--> statement-breakpoint
CREATE INDEX `deliveries_deferred_idx` ON `deliveries` (`next_attempt_at`) WHERE status = 'deferred';--> statement-breakpoint
CREATE INDEX `deliveries_handle_deferred_idx` ON `deliveries` (`handle`,`next_attempt_at`) WHERE status = 'deferred';