/**
 * The metadata that must be agreed on. Every row carries tenant_id (directly or through its
 * topic) and every query is scoped by it. Offsets are bigint in SQL and JS numbers in the API.
 */
import { bigint, boolean, bigserial, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";

export const tenants = pgTable("tenants", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  quotas: jsonb("quotas").$type<Record<string, number>>().notNull().default({}),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});

export const apiKeys = pgTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    /** SHA-256 of the whole secret, hex. The secret itself is never stored. */
    secretHash: text("secret_hash").notNull(),
    scopes: text("scopes").array().notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("api_keys_secret_hash_idx").on(t.secretHash), index("api_keys_tenant_idx").on(t.tenantId)],
);

export const topics = pgTable(
  "topics",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    partitions: integer("partitions").notNull(),
    retentionHours: integer("retention_hours").notNull(),
    /** Per partition: retention keeps at least this many bytes (Kafka's retention.bytes). Null: no size limit. */
    retentionBytes: bigint("retention_bytes", { mode: "number" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("topics_tenant_name_idx").on(t.tenantId, t.name)],
);

export const partitions = pgTable(
  "partitions",
  {
    topicId: bigint("topic_id", { mode: "number" })
      .notNull()
      .references(() => topics.id, { onDelete: "cascade" }),
    partition: integer("partition").notNull(),
    /** The offset the next committed message gets: also the high watermark. */
    nextOffset: bigint("next_offset", { mode: "number" }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.topicId, t.partition] })],
);

/** A row per committed segment object. An object no row names is an orphan. */
export const segments = pgTable(
  "segments",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    objectKey: text("object_key").notNull(),
    byteLength: integer("byte_length").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    /**
     * When a collection pass first found no row naming this segment (storage/lifecycle/references.ts);
     * its object is deleted once this is older than RESERVOIR_GC_GRACE_SECONDS. Null: referenced.
     */
    unreferencedAt: timestamp("unreferenced_at", { withTimezone: true, mode: "date" }),
  },
  (t) => [index("segments_tenant_idx").on(t.tenantId, t.id), index("segments_unreferenced_idx").on(t.unreferencedAt)],
);

/**
 * The index: a dense run of offsets [base_offset, last_offset] of one partition, stored in
 * `byte_length` bytes at `byte_offset` of a segment (one or more whole batches). The run is
 * the records of that range after skipping `record_skip` of them, so a run may name part of a
 * batch (a duplicate dropped inside a batch, a single message moved by reference).
 */
export const segmentIndex = pgTable(
  "segment_index",
  {
    topicId: bigint("topic_id", { mode: "number" })
      .notNull()
      .references(() => topics.id, { onDelete: "cascade" }),
    partition: integer("partition").notNull(),
    baseOffset: bigint("base_offset", { mode: "number" }).notNull(),
    lastOffset: bigint("last_offset", { mode: "number" }).notNull(),
    tenantId: text("tenant_id").notNull(),
    segmentId: text("segment_id")
      .notNull()
      .references(() => segments.id),
    byteOffset: integer("byte_offset").notNull(),
    byteLength: integer("byte_length").notNull(),
    recordSkip: integer("record_skip").notNull().default(0),
    minTimestamp: bigint("min_timestamp", { mode: "number" }).notNull(),
    maxTimestamp: bigint("max_timestamp", { mode: "number" }).notNull(),
    /** Delayed messages: not delivered to groups before this time (ms). Null: at once. */
    deliverAt: bigint("deliver_at", { mode: "number" }),
    /** Headers added to the stored ones on read (a dead letter's x-reservoir-* headers). */
    extraHeaders: jsonb("extra_headers").$type<Record<string, string>>(),
  },
  (t) => [primaryKey({ columns: [t.topicId, t.partition, t.baseOffset] }), index("segment_index_segment_idx").on(t.segmentId)],
);

/** Producer idempotency keys, deduplicated inside the commit for 24 hours. */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    topicId: bigint("topic_id", { mode: "number" })
      .notNull()
      .references(() => topics.id, { onDelete: "cascade" }),
    key: text("key").notNull(),
    /** Null while the committing transaction that claimed the key is still open. */
    partition: integer("partition"),
    offset: bigint("offset", { mode: "number" }),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.topicId, t.key] }), index("idempotency_keys_expiry_idx").on(t.expiresAt)],
);

/** Instance-wide secrets shared by every instance (e.g. the key that signs receipts). */
export const settings = pgTable("settings", {
  name: text("name").primaryKey(),
  value: text("value").notNull(),
});

export const consumerGroups = pgTable(
  "consumer_groups",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    tenantId: text("tenant_id").notNull(),
    topicId: bigint("topic_id", { mode: "number" })
      .notNull()
      .references(() => topics.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    startAt: text("start_at").$type<"earliest" | "latest">().notNull(),
    ordering: text("ordering").$type<"none" | "key">().notNull(),
    maxAttempts: integer("max_attempts").notNull(),
    deadLetterTopic: text("dead_letter_topic").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("consumer_groups_topic_name_idx").on(t.topicId, t.name)],
);

/**
 * A group's position in one partition. Every offset below `committed` is settled (acked or
 * dead-lettered). At or above it, an offset a lease row covers is delivered (in flight, due
 * again, or settled); an offset no row covers was never delivered. `frontier` is a hint: no
 * offset below it is uncovered.
 */
export const groupPartitions = pgTable(
  "group_partitions",
  {
    groupId: bigint("group_id", { mode: "number" })
      .notNull()
      .references(() => consumerGroups.id, { onDelete: "cascade" }),
    partition: integer("partition").notNull(),
    committed: bigint("committed", { mode: "number" }).notNull(),
    frontier: bigint("frontier", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.partition] })],
);

/**
 * A lease: offsets [first_offset, last_offset] of one partition delivered together, minus the
 * relative positions in `settled`. In flight while visible_at (ms) is in the future; then due
 * for redelivery with attempt + 1. Attempt 0 marks a delayed message not yet delivered.
 * `token` changes with every grant, so receipts of an earlier grant go stale.
 */
export const groupLeases = pgTable(
  "group_leases",
  {
    groupId: bigint("group_id", { mode: "number" })
      .notNull()
      .references(() => consumerGroups.id, { onDelete: "cascade" }),
    partition: integer("partition").notNull(),
    firstOffset: bigint("first_offset", { mode: "number" }).notNull(),
    lastOffset: bigint("last_offset", { mode: "number" }).notNull(),
    settled: integer("settled").array().notNull().default([]),
    attempt: integer("attempt").notNull(),
    visibleAt: bigint("visible_at", { mode: "number" }).notNull(),
    token: bigint("token", { mode: "number" }).notNull(),
    receiver: text("receiver"),
    lastError: text("last_error"),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.partition, t.firstOffset] }), index("group_leases_due_idx").on(t.groupId, t.visibleAt)],
);

/** Messages a group gave up on, and where their references went. */
export const deadLetters = pgTable(
  "dead_letters",
  {
    groupId: bigint("group_id", { mode: "number" })
      .notNull()
      .references(() => consumerGroups.id, { onDelete: "cascade" }),
    partition: integer("partition").notNull(),
    offset: bigint("offset", { mode: "number" }).notNull(),
    deadLetterTopicId: bigint("dead_letter_topic_id", { mode: "number" }).notNull(),
    deadLetterPartition: integer("dead_letter_partition").notNull(),
    deadLetterOffset: bigint("dead_letter_offset", { mode: "number" }).notNull(),
    at: bigint("at", { mode: "number" }).notNull(),
    redrivenAt: bigint("redriven_at", { mode: "number" }),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.partition, t.offset] })],
);

/**
 * A webhook subscription: a consumer group (its own, named `subscription:<name>`) whose
 * receiver is the dispatcher. The signing secrets are kept as issued: signing needs them.
 */
export const subscriptions = pgTable(
  "subscriptions",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    tenantId: text("tenant_id").notNull(),
    topicId: bigint("topic_id", { mode: "number" })
      .notNull()
      .references(() => topics.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    groupId: bigint("group_id", { mode: "number" })
      .notNull()
      .references(() => consumerGroups.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    format: text("format").$type<"json" | "cloudevents">().notNull(),
    maxConcurrency: integer("max_concurrency").notNull(),
    timeoutMs: integer("timeout_ms").notNull(),
    backoffInitialMs: integer("backoff_initial_ms").notNull(),
    backoffMaxMs: integer("backoff_max_ms").notNull(),
    filterHeaders: jsonb("filter_headers").$type<Record<string, string>>(),
    secret: text("secret").notNull(),
    /** The secret before the last rotation: it signs too until previous_secret_expires_at (ms). */
    previousSecret: text("previous_secret"),
    previousSecretExpiresAt: bigint("previous_secret_expires_at", { mode: "number" }),
    secretRotatedAt: bigint("secret_rotated_at", { mode: "number" }),
    state: text("state").$type<"active" | "paused" | "disabled">().notNull(),
    stateReason: text("state_reason"),
    createdAt: bigint("created_at", { mode: "number" }).notNull(),
  },
  (t) => [uniqueIndex("subscriptions_topic_name_idx").on(t.topicId, t.name), uniqueIndex("subscriptions_group_idx").on(t.groupId)],
);

/** One row per delivery attempt, written with the attempt's ack or retry; kept for days. */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    subscriptionId: bigint("subscription_id", { mode: "number" })
      .notNull()
      .references(() => subscriptions.id, { onDelete: "cascade" }),
    partition: integer("partition").notNull(),
    offset: bigint("offset", { mode: "number" }).notNull(),
    attempt: integer("attempt").notNull(),
    succeeded: boolean("succeeded").notNull(),
    httpStatus: integer("http_status"),
    error: text("error"),
    at: bigint("at", { mode: "number" }).notNull(),
    durationMs: integer("duration_ms").notNull(),
  },
  (t) => [index("webhook_deliveries_subscription_idx").on(t.subscriptionId, t.id), index("webhook_deliveries_at_idx").on(t.at)],
);
