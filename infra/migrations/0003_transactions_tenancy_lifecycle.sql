CREATE TABLE "quota_buckets" (
	"tenant_id" text NOT NULL,
	"kind" text NOT NULL,
	"tokens" double precision NOT NULL,
	"rate" double precision NOT NULL,
	"updated_ms" double precision NOT NULL,
	"granted" boolean NOT NULL,
	CONSTRAINT "quota_buckets_tenant_id_kind_pk" PRIMARY KEY("tenant_id","kind")
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
CREATE TABLE "usage_deltas" (
	"tenant_id" text NOT NULL,
	"hour" bigint NOT NULL,
	"messages_in" bigint DEFAULT 0 NOT NULL,
	"bytes_in" bigint DEFAULT 0 NOT NULL,
	"messages_out" bigint DEFAULT 0 NOT NULL,
	"bytes_out" bigint DEFAULT 0 NOT NULL,
	"deliveries" bigint DEFAULT 0 NOT NULL,
	"requests" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "usage_hourly" (
	"tenant_id" text NOT NULL,
	"hour" bigint NOT NULL,
	"messages_in" bigint DEFAULT 0 NOT NULL,
	"bytes_in" bigint DEFAULT 0 NOT NULL,
	"messages_out" bigint DEFAULT 0 NOT NULL,
	"bytes_out" bigint DEFAULT 0 NOT NULL,
	"deliveries" bigint DEFAULT 0 NOT NULL,
	"requests" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "usage_hourly_tenant_id_hour_pk" PRIMARY KEY("tenant_id","hour")
);
--> statement-breakpoint
CREATE TABLE "usage_storage" (
	"tenant_id" text NOT NULL,
	"hour" bigint NOT NULL,
	"bytes" bigint NOT NULL,
	CONSTRAINT "usage_storage_tenant_id_hour_pk" PRIMARY KEY("tenant_id","hour")
);
--> statement-breakpoint
ALTER TABLE "segments" ADD COLUMN "unreferenced_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "topics" ADD COLUMN "retention_bytes" bigint;--> statement-breakpoint
ALTER TABLE "quota_buckets" ADD CONSTRAINT "quota_buckets_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "transaction_runs" ADD CONSTRAINT "transaction_runs_transaction_id_transactions_id_fk" FOREIGN KEY ("transaction_id") REFERENCES "public"."transactions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "transaction_runs" ADD CONSTRAINT "transaction_runs_segment_id_segments_id_fk" FOREIGN KEY ("segment_id") REFERENCES "public"."segments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "transaction_runs" ADD CONSTRAINT "transaction_runs_topic_id_topics_id_fk" FOREIGN KEY ("topic_id") REFERENCES "public"."topics"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "transaction_runs_segment_idx" ON "transaction_runs" USING btree ("segment_id");--> statement-breakpoint
CREATE INDEX "transactions_tenant_state_idx" ON "transactions" USING btree ("tenant_id","state");--> statement-breakpoint
CREATE INDEX "transactions_due_idx" ON "transactions" USING btree ("state","next_check_at");--> statement-breakpoint
CREATE INDEX "usage_deltas_tenant_hour_idx" ON "usage_deltas" USING btree ("tenant_id","hour");--> statement-breakpoint
CREATE INDEX "segments_unreferenced_idx" ON "segments" USING btree ("unreferenced_at");