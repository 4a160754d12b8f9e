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
ALTER TABLE "quota_buckets" ADD CONSTRAINT "quota_buckets_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "usage_deltas_tenant_hour_idx" ON "usage_deltas" USING btree ("tenant_id","hour");