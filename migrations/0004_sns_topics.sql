CREATE TABLE `sns_topics` (
	`arn` text PRIMARY KEY NOT NULL,
	`handle` text,
	`created_at` text NOT NULL
);
