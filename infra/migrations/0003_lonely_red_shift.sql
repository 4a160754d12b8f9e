ALTER TABLE "segments" ADD COLUMN "unreferenced_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "topics" ADD COLUMN "retention_bytes" bigint;--> statement-breakpoint
CREATE INDEX "segments_unreferenced_idx" ON "segments" USING btree ("unreferenced_at");