DROP INDEX `deliveries_notification_idx`;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `id_from_notification` integer DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX `deliveries_notification_other_idx` ON `deliveries` (`notification_id`) WHERE id_from_notification = 0;