ALTER TABLE `notifications` ADD `alert_check_at` text;--> statement-breakpoint
CREATE INDEX `notifications_alert_check_idx` ON `notifications` (`alert_check_at`) WHERE alert_check_at IS NOT NULL;