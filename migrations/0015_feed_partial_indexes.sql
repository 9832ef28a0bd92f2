DROP INDEX `notifications_handle_status_idx`;--> statement-breakpoint
DROP INDEX `notifications_handle_severity_idx`;--> statement-breakpoint
CREATE INDEX `notifications_handle_status_idx` ON `notifications` (`handle`,`status`,`id`) WHERE status NOT IN ('delivering', 'delivered');--> statement-breakpoint
CREATE INDEX `notifications_handle_severity_idx` ON `notifications` (`handle`,`severity`,`id`) WHERE severity <> 'info';