ALTER TABLE `deliveries` ADD `provider_message_id` text;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `delivered_at` text;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `provider_verdict` text;--> statement-breakpoint
CREATE INDEX `deliveries_provider_message_idx` ON `deliveries` (`provider_message_id`) WHERE provider_message_id IS NOT NULL;