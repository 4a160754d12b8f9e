CREATE TABLE "sqs_queues" (
	"topic_id" bigint PRIMARY KEY NOT NULL,
	"attributes" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"tags" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
ALTER TABLE "group_leases" ADD COLUMN "first_received_at" bigint;--> statement-breakpoint
ALTER TABLE "sqs_queues" ADD CONSTRAINT "sqs_queues_topic_id_topics_id_fk" FOREIGN KEY ("topic_id") REFERENCES "public"."topics"("id") ON DELETE cascade ON UPDATE no action;