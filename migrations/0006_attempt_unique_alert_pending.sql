DROP INDEX `delivery_attempts_delivery_idx`;--> statement-breakpoint
-- Hand-written data step (not generated), before the unique index: an attempt number recorded twice for one delivery
-- (two consumer invocations raced on one message) keeps its first row.
DELETE FROM `delivery_attempts` WHERE rowid NOT IN (SELECT min(rowid) FROM `delivery_attempts` GROUP BY `delivery_id`, `attempt_number`);--> statement-breakpoint
CREATE UNIQUE INDEX `delivery_attempts_delivery_number_uq` ON `delivery_attempts` (`delivery_id`,`attempt_number`);--> statement-breakpoint
ALTER TABLE `webhook_subscriptions` ADD `disabled_alert_pending` integer DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX `webhook_subscriptions_alert_pending_idx` ON `webhook_subscriptions` (`id`) WHERE disabled_alert_pending = 1;