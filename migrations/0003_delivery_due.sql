ALTER TABLE `deliveries` ADD `requeued_updated_at` text;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `requeue_due_at` text;--> statement-breakpoint
CREATE INDEX `deliveries_due_idx` ON `deliveries` ((CASE WHEN requeued_updated_at = updated_at THEN requeue_due_at WHEN next_attempt_at IS NOT NULL THEN next_attempt_at ELSE updated_at END),`handle`) WHERE status in ('queued', 'retrying');