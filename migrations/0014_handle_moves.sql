CREATE TABLE `handle_moves` (
	`handle` text PRIMARY KEY NOT NULL,
	`from_shard` integer NOT NULL,
	`to_shard` integer NOT NULL,
	`phase` text NOT NULL,
	`table_index` integer DEFAULT 0 NOT NULL,
	`cursor` text,
	`rows_copied` integer DEFAULT 0 NOT NULL,
	`rows_removed` integer DEFAULT 0 NOT NULL,
	`counts` text,
	`wait_until` text,
	`error` text,
	`version` integer DEFAULT 0 NOT NULL,
	`started_at` text NOT NULL,
	`read_only_at` text,
	`flipped_at` text,
	`finished_at` text,
	`updated_at` text NOT NULL
);
