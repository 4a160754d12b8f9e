CREATE TABLE "collectable_segments" (
	"segment_id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"reason" text NOT NULL,
	"at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "open_transactions" (
	"tenant_id" text PRIMARY KEY NOT NULL,
	"open" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "transaction_runs" (
	"transaction_id" text NOT NULL,
	"segment_id" text NOT NULL,
	"byte_offset" integer NOT NULL,
	"tenant_id" text NOT NULL,
	"topic_id" bigint NOT NULL,
	"partition" integer NOT NULL,
	"byte_length" integer NOT NULL,
	"first_position" integer NOT NULL,
	"records" jsonb NOT NULL,
	CONSTRAINT "transaction_runs_transaction_id_segment_id_byte_offset_pk" PRIMARY KEY("transaction_id","segment_id","byte_offset")
);
--> statement-breakpoint
CREATE TABLE "transactions" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"state" text NOT NULL,
	"created_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL,
	"check_url" text,
	"check_secret" text,
	"check_interval_ms" integer NOT NULL,
	"checks" integer DEFAULT 0 NOT NULL,
	"unknowns" integer DEFAULT 0 NOT NULL,
	"next_check_at" bigint NOT NULL,
	"claimed_until" bigint DEFAULT 0 NOT NULL,
	"messages" integer DEFAULT 0 NOT NULL,
	"bytes" bigint DEFAULT 0 NOT NULL,
	"offsets" jsonb,
	"ended_at" bigint,
	"end_reason" text
);
--> statement-breakpoint
ALTER TABLE "transaction_runs" ADD CONSTRAINT "transaction_runs_transaction_id_transactions_id_fk" FOREIGN KEY ("transaction_id") REFERENCES "public"."transactions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "transaction_runs" ADD CONSTRAINT "transaction_runs_segment_id_segments_id_fk" FOREIGN KEY ("segment_id") REFERENCES "public"."segments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "transaction_runs" ADD CONSTRAINT "transaction_runs_topic_id_topics_id_fk" FOREIGN KEY ("topic_id") REFERENCES "public"."topics"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "transaction_runs_segment_idx" ON "transaction_runs" USING btree ("segment_id");--> statement-breakpoint
CREATE INDEX "transactions_tenant_state_idx" ON "transactions" USING btree ("tenant_id","state");--> statement-breakpoint
CREATE INDEX "transactions_due_idx" ON "transactions" USING btree ("state","next_check_at");