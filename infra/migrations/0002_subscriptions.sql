CREATE TABLE "subscriptions" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"topic_id" bigint NOT NULL,
	"name" text NOT NULL,
	"group_id" bigint NOT NULL,
	"url" text NOT NULL,
	"format" text NOT NULL,
	"max_concurrency" integer NOT NULL,
	"timeout_ms" integer NOT NULL,
	"backoff_initial_ms" integer NOT NULL,
	"backoff_max_ms" integer NOT NULL,
	"filter_headers" jsonb,
	"secret" text NOT NULL,
	"previous_secret" text,
	"previous_secret_expires_at" bigint,
	"secret_rotated_at" bigint,
	"state" text NOT NULL,
	"state_reason" text,
	"created_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subscription_id" bigint NOT NULL,
	"partition" integer NOT NULL,
	"offset" bigint NOT NULL,
	"attempt" integer NOT NULL,
	"succeeded" boolean NOT NULL,
	"http_status" integer,
	"error" text,
	"at" bigint NOT NULL,
	"duration_ms" integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE "subscriptions" ADD CONSTRAINT "subscriptions_topic_id_topics_id_fk" FOREIGN KEY ("topic_id") REFERENCES "public"."topics"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD CONSTRAINT "subscriptions_group_id_consumer_groups_id_fk" FOREIGN KEY ("group_id") REFERENCES "public"."consumer_groups"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_subscription_id_subscriptions_id_fk" FOREIGN KEY ("subscription_id") REFERENCES "public"."subscriptions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "subscriptions_topic_name_idx" ON "subscriptions" USING btree ("topic_id","name");--> statement-breakpoint
CREATE UNIQUE INDEX "subscriptions_group_idx" ON "subscriptions" USING btree ("group_id");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_subscription_idx" ON "webhook_deliveries" USING btree ("subscription_id","id");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_at_idx" ON "webhook_deliveries" USING btree ("at");