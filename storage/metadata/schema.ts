/**
 * The metadata that must be agreed on. Every row carries tenant_id (directly or through its
 * topic) and every query is scoped by it. Offsets are bigint in SQL and JS numbers in the API.
 */
import {
  bigint,
  boolean,
  bigserial,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import { sql } from "drizzle-orm";

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
  (t) => [
    primaryKey({ columns: [t.topicId, t.partition, t.baseOffset] }),
    index("segment_index_segment_idx").on(t.segmentId),
    // The delayed runs alone: a receive looks for them past each frontier, and through the
    // primary key that meant reading every run from the partition's start (a drain slowed as it
    // went). Most topics have none, so this index stays small.
    index("segment_index_delayed_idx").on(t.topicId, t.partition, t.baseOffset).where(sql`${t.deliverAt} IS NOT NULL`),
  ],
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

/**
 * What the SQS-compatible endpoint keeps of a queue beyond its topic and its group `sqs`
 * (functions/sqs/): the SQS attributes as set (string values, SQS units) and the queue's tags.
 */
export const sqsQueues = pgTable("sqs_queues", {
  topicId: bigint("topic_id", { mode: "number" })
    .primaryKey()
    .references(() => topics.id, { onDelete: "cascade" }),
  attributes: jsonb("attributes").$type<Record<string, string>>().notNull().default({}),
  tags: jsonb("tags").$type<Record<string, string>>().notNull().default({}),
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
    /**
     * Counts the writes that may move `committed` other than by a lease's frontier: cursor moves
     * (and the position locks taken to compute one), seeks, retention. The two-statement ack
     * (storage/groups/ack-fast.ts) keeps the cursor it computed only if this did not change
     * since its snapshot; a lease moving the frontier cannot make that cursor wrong.
     */
    cursorVersion: bigint("cursor_version", { mode: "number" }).notNull().default(0),
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
    /** When these messages were first received (ms); null while none has been (a delayed row). */
    firstReceivedAt: bigint("first_received_at", { mode: "number" }),
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

/**
 * A transaction (API.md "Transactions"): messages produced into it wait in transaction_runs,
 * holding no offsets, until a commit indexes them all at once or a rollback drops them.
 * Times are ms. `next_check_at` is when the sweep next acts on it (at first its expiry);
 * `claimed_until` is the lease of the instance checking it back, so that two never check one
 * transaction at the same moment. Ended transactions are kept a week (commit answers again).
 */
export const transactions = pgTable(
  "transactions",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    state: text("state").$type<"open" | "committed" | "rolled_back">().notNull(),
    createdAt: bigint("created_at", { mode: "number" }).notNull(),
    expiresAt: bigint("expires_at", { mode: "number" }).notNull(),
    checkUrl: text("check_url"),
    checkSecret: text("check_secret"),
    checkIntervalMs: integer("check_interval_ms").notNull(),
    checks: integer("checks").notNull().default(0),
    unknowns: integer("unknowns").notNull().default(0),
    nextCheckAt: bigint("next_check_at", { mode: "number" }).notNull(),
    claimedUntil: bigint("claimed_until", { mode: "number" }).notNull().default(0),
    /** Messages and record bytes accepted so far (the per-transaction limits count these). */
    messages: integer("messages").notNull().default(0),
    bytes: bigint("bytes", { mode: "number" }).notNull().default(0),
    /** The commit's answer, in production order, so that committing again answers the same. */
    offsets: jsonb("offsets").$type<{ topic: string; partition: number; offset: number }[]>(),
    endedAt: bigint("ended_at", { mode: "number" }),
    /** commit, rollback, timeout, check_commit, check_rollback, check_unknowns. */
    endReason: text("end_reason"),
  },
  (t) => [index("transactions_tenant_state_idx").on(t.tenantId, t.state), index("transactions_due_idx").on(t.state, t.nextCheckAt)],
);

/**
 * A pending run: records of one (topic, partition) that a flush wrote to a segment for an open
 * transaction. `records` holds, per record in the batch: its position in the transaction's
 * production order (first_position + p), timestamp (t), key + value + header bytes (b, what usage
 * counts at the commit), idempotency key (k) and due time (d).
 */
export const transactionRuns = pgTable(
  "transaction_runs",
  {
    transactionId: text("transaction_id")
      .notNull()
      .references(() => transactions.id, { onDelete: "cascade" }),
    segmentId: text("segment_id")
      .notNull()
      .references(() => segments.id),
    byteOffset: integer("byte_offset").notNull(),
    tenantId: text("tenant_id").notNull(),
    topicId: bigint("topic_id", { mode: "number" })
      .notNull()
      .references(() => topics.id, { onDelete: "cascade" }),
    partition: integer("partition").notNull(),
    byteLength: integer("byte_length").notNull(),
    /** The transaction's message count before this run's flush: records' `p` count from it. */
    firstPosition: integer("first_position").notNull(),
    records: jsonb("records").$type<{ p: number; t: number; b: number; k?: string; d?: number }[]>().notNull(),
  },
  (t) => [primaryKey({ columns: [t.transactionId, t.segmentId, t.byteOffset] }), index("transaction_runs_segment_idx").on(t.segmentId)],
);

/** The usage counters, as deltas (usage_deltas) and as hourly sums (usage_hourly). */
const usageCounters = () => ({
  messagesIn: bigint("messages_in", { mode: "number" }).notNull().default(0),
  bytesIn: bigint("bytes_in", { mode: "number" }).notNull().default(0),
  messagesOut: bigint("messages_out", { mode: "number" }).notNull().default(0),
  bytesOut: bigint("bytes_out", { mode: "number" }).notNull().default(0),
  deliveries: bigint("deliveries", { mode: "number" }).notNull().default(0),
  requests: bigint("requests", { mode: "number" }).notNull().default(0),
});

/**
 * Usage, insert-only: every transaction that commits work (a flush, a receive's read, a webhook
 * settle) and every authenticated request adds one row of deltas for its tenant and UTC hour
 * (ms). Nothing updates these rows, so no lock is ever taken on a shared counter; a roll-up
 * moves them into usage_hourly (storage/usage/rollup.ts).
 */
export const usageDeltas = pgTable(
  "usage_deltas",
  {
    // No key, no sequence: every request inserts a row, and the roll-up moves rows by ctid.
    tenantId: text("tenant_id").notNull(),
    hour: bigint("hour", { mode: "number" }).notNull(),
    ...usageCounters(),
  },
  (t) => [index("usage_deltas_tenant_hour_idx").on(t.tenantId, t.hour)],
);

/** Usage per tenant and UTC hour, as rolled up from usage_deltas (only the roll-up writes it). */
export const usageHourly = pgTable(
  "usage_hourly",
  {
    tenantId: text("tenant_id").notNull(),
    hour: bigint("hour", { mode: "number" }).notNull(),
    ...usageCounters(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.hour] })],
);

/** Stored bytes of each tenant, sampled once per UTC hour (the first sample of an hour wins). */
export const usageStorage = pgTable(
  "usage_storage",
  {
    tenantId: text("tenant_id").notNull(),
    hour: bigint("hour", { mode: "number" }).notNull(),
    bytes: bigint("bytes", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.hour] })],
);

/**
 * Quota token buckets, one per tenant and kind ("requests", "bytes"), shared by every
 * instance: taken from in the statement a request runs anyway (storage/tenancy/tenants.ts).
 * `rate` is the refill per second and the burst; `updated_ms` the database clock at the last take.
 */
export const quotaBuckets = pgTable(
  "quota_buckets",
  {
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id, { onDelete: "cascade" }),
    kind: text("kind").notNull(),
    tokens: doublePrecision("tokens").notNull(),
    rate: doublePrecision("rate").notNull(),
    updatedMs: doublePrecision("updated_ms").notNull(),
    /** Whether the last take was granted (RETURNING sees only the new row). */
    granted: boolean("granted").notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.kind] })],
);
