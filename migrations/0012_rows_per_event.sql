PRAGMA foreign_keys=OFF;--> statement-breakpoint
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
);
--> statement-breakpoint
INSERT INTO `__new_delivery_attempts`("id", "delivery_id", "attempt_number", "outcome", "error_class", "http_status", "duration_ms", "request_bytes", "response_snippet", "error_message", "created_at") SELECT "id", "delivery_id", "attempt_number", "outcome", "error_class", "http_status", "duration_ms", "request_bytes", "response_snippet", "error_message", "created_at" FROM `delivery_attempts`;--> statement-breakpoint
DROP TABLE `delivery_attempts`;--> statement-breakpoint
ALTER TABLE `__new_delivery_attempts` RENAME TO `delivery_attempts`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
DROP INDEX `deliveries_pending_idx`;--> statement-breakpoint
CREATE INDEX `deliveries_pending_idx` ON `deliveries` (`updated_at`) WHERE status = 'pending';--> statement-breakpoint
DROP INDEX `notifications_source_event_uq`;--> statement-breakpoint
CREATE UNIQUE INDEX `notifications_source_event_uq` ON `notifications` (`handle`,`source_event_id`) WHERE source_event_id IS NOT NULL;