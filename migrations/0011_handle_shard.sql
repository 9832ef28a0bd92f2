ALTER TABLE `handles` ADD `shard` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `handles` ADD `moving_since` text;