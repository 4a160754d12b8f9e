CREATE TABLE "consumer_groups" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"topic_id" bigint NOT NULL,
	"name" text NOT NULL,
	"start_at" text NOT NULL,
	"ordering" text NOT NULL,
	"max_attempts" integer NOT NULL,
	"dead_letter_topic" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "dead_letters" (
	"group_id" bigint NOT NULL,
	"partition" integer NOT NULL,
	"offset" bigint NOT NULL,
	"dead_letter_topic_id" bigint NOT NULL,
	"dead_letter_partition" integer NOT NULL,
	"dead_letter_offset" bigint NOT NULL,
	"at" bigint NOT NULL,
	"redriven_at" bigint,
	CONSTRAINT "dead_letters_group_id_partition_offset_pk" PRIMARY KEY("group_id","partition","offset")
);
--> statement-breakpoint
CREATE TABLE "group_leases" (
	"group_id" bigint NOT NULL,
	"partition" integer NOT NULL,
	"first_offset" bigint NOT NULL,
	"last_offset" bigint NOT NULL,
	"settled" integer[] DEFAULT '{}' NOT NULL,
	"attempt" integer NOT NULL,
	"visible_at" bigint NOT NULL,
	"token" bigint NOT NULL,
	"receiver" text,
	"last_error" text,
	CONSTRAINT "group_leases_group_id_partition_first_offset_pk" PRIMARY KEY("group_id","partition","first_offset")
);
--> statement-breakpoint
CREATE TABLE "group_partitions" (
	"group_id" bigint NOT NULL,
	"partition" integer NOT NULL,
	"committed" bigint NOT NULL,
	"frontier" bigint NOT NULL,
	CONSTRAINT "group_partitions_group_id_partition_pk" PRIMARY KEY("group_id","partition")
);
--> statement-breakpoint
CREATE TABLE "settings" (
	"name" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "segment_index" ADD COLUMN "deliver_at" bigint;--> statement-breakpoint
ALTER TABLE "segment_index" ADD COLUMN "extra_headers" jsonb;--> statement-breakpoint
ALTER TABLE "consumer_groups" ADD CONSTRAINT "consumer_groups_topic_id_topics_id_fk" FOREIGN KEY ("topic_id") REFERENCES "public"."topics"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "dead_letters" ADD CONSTRAINT "dead_letters_group_id_consumer_groups_id_fk" FOREIGN KEY ("group_id") REFERENCES "public"."consumer_groups"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "group_leases" ADD CONSTRAINT "group_leases_group_id_consumer_groups_id_fk" FOREIGN KEY ("group_id") REFERENCES "public"."consumer_groups"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "group_partitions" ADD CONSTRAINT "group_partitions_group_id_consumer_groups_id_fk" FOREIGN KEY ("group_id") REFERENCES "public"."consumer_groups"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "consumer_groups_topic_name_idx" ON "consumer_groups" USING btree ("topic_id","name");--> statement-breakpoint
CREATE INDEX "group_leases_due_idx" ON "group_leases" USING btree ("group_id","visible_at");