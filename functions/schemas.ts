/** The zod schemas of the API: they validate requests and generate /openapi.json. */
import { z } from "@hono/zod-openapi";

export const limits = {
  messageBytes: 1024 * 1024,
  messagesPerRequest: 1000,
  produceBodyBytes: 8 * 1024 * 1024,
  jsonBodyBytes: 1024 * 1024,
  readLimit: 1000,
  waitMs: 30_000,
  /** The longest delay a message may carry (delaySeconds or deliverAt). */
  maxDelayMs: 7 * 24 * 60 * 60 * 1000,
} as const;

export const NAME_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;
export const Name = z.string().regex(NAME_PATTERN);

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string().openapi({ example: "topic_not_found" }),
  })
  .passthrough()
  .openapi("Problem");

export const problemContent = { "application/problem+json": { schema: Problem } };
/** The rest of each route's problem statuses (403, 404, 413, 415, 500, 503) are added by openapi-problems.ts. */
export const errorResponses = {
  400: { description: "Invalid request", content: problemContent },
  401: { description: "Missing or unknown credentials", content: problemContent },
} as const;

export const Quotas = z
  .object({
    requestsPerSecond: z.number().positive().optional(),
    bytesPerSecond: z.number().positive().optional(),
    storageBytes: z.number().int().positive().optional(),
    topics: z.number().int().positive().optional(),
  })
  .strict();

/** PATCH: each quota a new value, or null to remove it; absent ones stay. */
export const QuotaChanges = z
  .object({
    requestsPerSecond: z.number().positive().nullable().optional(),
    bytesPerSecond: z.number().positive().nullable().optional(),
    storageBytes: z.number().int().positive().nullable().optional(),
    topics: z.number().int().positive().nullable().optional(),
  })
  .strict();
export const PatchTenant = z.object({ quotas: QuotaChanges }).strict().openapi("PatchTenant");
export const TenantView = z
  .object({ tenantId: z.string(), name: z.string(), quotas: Quotas, createdAt: z.number().int() })
  .openapi("Tenant");

const UsageMs = z.coerce.number().int().min(0).max(8.64e15);
export const UsageQuery = z.object({
  from: UsageMs.default(0).openapi({ description: "Inclusive, ms since the epoch (default 0)" }),
  to: UsageMs.default(8.64e15).openapi({ description: "Exclusive, ms since the epoch (default: no end)" }),
  format: z.enum(["json", "csv"]).default("json"),
});
export const AdminUsageQuery = UsageQuery.extend({
  tenant: z.string().min(1).max(200).optional().openapi({ description: "One tenant's rows (default: every tenant)" }),
});
export const UsageRow = z
  .object({
    tenantId: z.string(),
    hour: z.number().int().openapi({ description: "ms at the start of the UTC hour" }),
    messagesIn: z.number().int(),
    bytesIn: z.number().int(),
    messagesOut: z.number().int(),
    bytesOut: z.number().int(),
    deliveries: z.number().int(),
    requests: z.number().int(),
    storageByteHours: z.number().int(),
  })
  .openapi("UsageRow");
export const Usage = z.object({ usage: z.array(UsageRow) }).openapi("Usage");

export const CreateTenant = z
  .object({ name: z.string().min(1).max(200), quotas: Quotas.optional() })
  .strict()
  .openapi("CreateTenant");
export const CreatedTenant = z.object({ tenantId: z.string(), apiKey: z.string(), keyId: z.string() }).openapi("CreatedTenant");
export const CreateKey = z
  .object({
    scopes: z
      .array(z.enum(["produce", "consume", "manage"]))
      .min(1)
      .optional(),
  })
  .strict()
  .openapi("CreateKey");
export const CreatedKey = z.object({ apiKey: z.string(), keyId: z.string(), scopes: z.array(z.string()) }).openapi("CreatedKey");

export const TopicSettings = z
  .object({
    partitions: z.number().int().min(1).max(256).optional(),
    retentionHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 365 * 10)
      .optional(),
    retentionBytes: z
      .number()
      .int()
      .min(1024 * 1024)
      .max(Number.MAX_SAFE_INTEGER)
      .nullable()
      .optional()
      .openapi({ description: "Per partition: retention keeps at least this many bytes (≥ 1 MiB); null: no size limit" }),
  })
  .strict()
  .openapi("TopicSettings");
export const Topic = z
  .object({
    name: z.string(),
    partitions: z.number().int(),
    retentionHours: z.number().int(),
    retentionBytes: z.number().int().optional(),
    createdAt: z.number().int(),
  })
  .openapi("Topic");
export const TopicDetail = Topic.extend({
  highWatermarks: z.array(z.number().int()).openapi({ description: "Per partition: the next offset" }),
  earliestOffsets: z.array(z.number().int()).openapi({ description: "Per partition: the first retained offset" }),
  storedBytes: z.number().int().openapi({ description: "Bytes the topic's retained messages occupy in segments" }),
}).openapi("TopicDetail");

export const MessageIn = z
  .object({
    value: z.string().optional(),
    valueBase64: z.string().optional(),
    key: z.string().optional(),
    headers: z.record(z.string(), z.string()).optional(),
    partition: z.number().int().min(0).optional(),
    idempotencyKey: z.string().min(1).max(256).optional(),
    delaySeconds: z.number().int().min(0).optional(),
    deliverAt: z.number().int().min(0).optional(),
  })
  .strict()
  .refine((m) => (m.value === undefined) !== (m.valueBase64 === undefined), {
    message: "exactly one of value and valueBase64 is required",
  })
  .openapi("MessageIn");
export const ProduceBody = z
  .object({ messages: z.array(MessageIn), transactionId: z.string().optional() })
  .strict()
  .openapi("ProduceRequest");
export const Produced = z
  .object({ offsets: z.array(z.object({ partition: z.number().int(), offset: z.number().int() })) })
  .openapi("ProduceResponse");

export const ProducedBatches = z
  .object({
    batches: z.array(
      z.object({
        partition: z.number().int(),
        baseOffset: z.number().int().openapi({ description: "The offset of the batch's first record; the others follow it" }),
        count: z.number().int(),
      }),
    ),
  })
  .openapi("ProduceBatchesResponse", { description: "A produce in batches: per batch of the request, in order, where its records went" });

export const ProducedPending = z
  .object({ pending: z.number().int().openapi({ description: "Messages of this request added to the transaction" }) })
  .openapi("ProducePendingResponse");
export const MessageOut = z
  .object({
    topic: z.string(),
    partition: z.number().int(),
    offset: z.number().int(),
    timestamp: z.number().int(),
    key: z.string().optional(),
    headers: z.record(z.string(), z.string()).optional(),
    value: z.string().optional(),
    valueBase64: z.string().optional(),
  })
  .openapi("Message");
export const ReadQuery = z.object({
  offset: z.coerce.number().int().min(0),
  limit: z.coerce.number().int().min(1).max(limits.readLimit).default(100),
  waitMs: z.coerce.number().int().min(0).max(limits.waitMs).default(0),
});
export const ReadResult = z
  .object({ messages: z.array(MessageOut), nextOffset: z.number().int(), highWatermark: z.number().int() })
  .openapi("ReadResult");
export const OffsetsQuery = z.object({ timestamp: z.coerce.number().int() });
export const Offsets = z
  .object({ offsets: z.array(z.object({ partition: z.number().int(), offset: z.number().int() })) })
  .openapi("Offsets");

export const TopicParams = z.object({ topic: Name.openapi({ param: { name: "topic", in: "path", required: true }, example: "orders" }) });
export const PartitionParams = TopicParams.extend({
  p: z.coerce
    .number()
    .int()
    .min(0)
    .openapi({ param: { name: "p", in: "path", required: true }, example: 0 }),
});

export const GroupParams = TopicParams.extend({
  group: Name.openapi({ param: { name: "group", in: "path", required: true }, example: "billing" }),
});
export const GroupSettings = z
  .object({
    startAt: z.enum(["earliest", "latest"]).optional(),
    ordering: z.enum(["none", "key"]).optional(),
    maxAttempts: z.number().int().min(1).max(100).optional(),
    deadLetterTopic: Name.optional(),
  })
  .strict()
  .openapi("GroupSettings");
export const Group = z
  .object({
    name: z.string(),
    topic: z.string(),
    startAt: z.enum(["earliest", "latest"]),
    ordering: z.enum(["none", "key"]),
    maxAttempts: z.number().int(),
    deadLetterTopic: z.string(),
  })
  .openapi("Group");
export const GroupView = z
  .object({
    partitions: z.array(
      z.object({
        partition: z.number().int(),
        committedOffset: z.number().int(),
        highWatermark: z.number().int(),
        lag: z.number().int(),
        inFlight: z.number().int(),
      }),
    ),
    deadLettered: z.number().int(),
  })
  .openapi("GroupView");
export const ReceivedMessage = MessageOut.extend({ receipt: z.string(), attempt: z.number().int() }).openapi("ReceivedMessage");
export const Lease = z
  .object({
    partition: z.number().int(),
    firstOffset: z.number().int(),
    lastOffset: z.number().int(),
    receipt: z.string().openapi({
      description:
        "A lease receipt: names the messages firstOffset..lastOffset of this partition leased by this receive, and is accepted " +
        "wherever a message's receipt is (ack, nack, extend, a transaction's acks), as if each message's receipt were given.",
    }),
    attempt: z.number().int().openapi({ description: "The delivery attempt of the run's messages (1 on the first)." }),
  })
  .openapi("Lease");
const ReceiptRef = z
  .union([
    z.string(),
    z
      .object({ receipt: z.string(), firstOffset: z.number().int().min(0), lastOffset: z.number().int().min(0).optional() })
      .strict()
      .openapi({
        description:
          "Part of a lease receipt's run: its messages firstOffset..lastOffset (default firstOffset), settled as if each " +
          "one's own receipt were given; a part outside the run is receipt_unknown. For clients without a receipt per " +
          "message (an answer in batches).",
      }),
  ])
  .openapi("ReceiptRef");
const Receipts = z.array(ReceiptRef);
export const AckBody = z.object({ receipts: Receipts }).strict().openapi("AckRequest");
export const ReceiveBody = z
  .object({
    max: z.number().int().min(1).max(1000).optional(),
    visibilityTimeoutSeconds: z.number().int().min(1).max(43_200).optional(),
    waitMs: z.number().int().min(0).max(limits.waitMs).optional(),
    ack: Receipts.optional().openapi({
      description:
        "Receipts to acknowledge before this receive leases (as POST .../ack would, in a transaction of their own): a " +
        "consumer that handles one receive and asks for the next acks the first with the second, one call instead of two. " +
        "Their outcome is the answer's `ack`.",
    }),
  })
  .strict()
  .openapi("ReceiveRequest");
export const NackBody = z
  .object({ receipts: Receipts, delaySeconds: z.number().int().min(0).max(43_200).optional() })
  .strict()
  .openapi("NackRequest");
export const ExtendBody = z
  .object({ receipts: Receipts, visibilityTimeoutSeconds: z.number().int().min(1).max(43_200) })
  .strict()
  .openapi("ExtendRequest");
const Failed = z.array(
  z.object({
    receipt: z.string(),
    code: z.enum(["receipt_expired", "receipt_unknown"]),
    offset: z.number().int().optional().openapi({ description: "For a lease receipt: the message of its run that failed." }),
  }),
);
export const Acked = z.object({ acked: z.number().int(), failed: Failed }).openapi("AckResponse");
export const Received = z
  .object({
    messages: z.array(ReceivedMessage),
    leases: z
      .array(Lease)
      .optional()
      .openapi({
        description:
          "The received messages as runs of consecutive offsets of one partition, each with one receipt for the run: a " +
          "consumer that handles a receive as a whole acks it with a few lease receipts instead of one per message. " +
          "Absent when no message was received.",
      }),
    ack: Acked.optional().openapi({ description: "The outcome of the request's `ack` receipts; absent when it had none." }),
  })
  .openapi("ReceiveResponse");
export const Nacked = z.object({ nacked: z.number().int(), failed: Failed }).openapi("NackResponse");
export const Extended = z.object({ extended: z.number().int(), failed: Failed }).openapi("ExtendResponse");
export const SeekBody = z
  .union([
    z.object({ offset: z.number().int().min(0), partition: z.number().int().min(0).optional() }).strict(),
    z.object({ timestamp: z.number().int() }).strict(),
    z.object({ to: z.enum(["earliest", "latest"]) }).strict(),
  ])
  .openapi("SeekRequest");
export const RedriveBody = z
  .object({ max: z.number().int().min(1).max(10_000).optional() })
  .strict()
  .openapi("RedriveRequest");
export const Redriven = z.object({ redriven: z.number().int() }).openapi("RedriveResponse");

// ------------------------------------------------------------ webhook subscriptions

export const SubscriptionParams = TopicParams.extend({
  name: Name.openapi({ param: { name: "name", in: "path", required: true }, example: "billing-hook" }),
});
export const WebhookUrl = z
  .string()
  .max(2048)
  .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), { message: "must be an absolute http:// or https:// URL" })
  .openapi({ example: "https://example.com/hooks/reservoir" });
const Seconds = z.number().min(0.001).max(86_400);
export const SubscriptionSettings = z
  .object({
    url: WebhookUrl,
    ordering: z.enum(["none", "key"]).optional(),
    startAt: z.enum(["earliest", "latest"]).optional(),
    maxAttempts: z.number().int().min(1).max(100).optional().openapi({ description: "Default 10" }),
    backoff: z
      .object({
        initialSeconds: Seconds.optional().openapi({ description: "Default 5" }),
        maxSeconds: Seconds.optional().openapi({ description: "Default 3600" }),
      })
      .strict()
      .optional(),
    maxConcurrency: z.number().int().min(1).max(100).optional().openapi({ description: "Default 10; across all instances" }),
    timeoutMs: z.number().int().min(1).max(30_000).optional().openapi({ description: "Default 10000" }),
    filter: z
      .object({ headers: z.record(z.string(), z.string()).optional() })
      .strict()
      .optional()
      .openapi({ description: "Deliver only messages that carry every listed header with exactly that value" }),
    deadLetterTopic: Name.optional(),
    format: z.enum(["json", "cloudevents"]).optional(),
  })
  .strict()
  .openapi("SubscriptionSettings");
export const Subscription = z
  .object({
    name: z.string(),
    topic: z.string(),
    url: z.string(),
    ordering: z.enum(["none", "key"]),
    startAt: z.enum(["earliest", "latest"]),
    maxAttempts: z.number().int(),
    backoff: z.object({ initialSeconds: z.number(), maxSeconds: z.number() }),
    maxConcurrency: z.number().int(),
    timeoutMs: z.number().int(),
    filter: z.object({ headers: z.record(z.string(), z.string()) }).optional(),
    deadLetterTopic: z.string(),
    format: z.enum(["json", "cloudevents"]),
    state: z.enum(["active", "paused", "disabled"]),
    stateReason: z.string().optional(),
    createdAt: z.number().int(),
    secretRotatedAt: z.number().int().optional(),
    previousSecretExpiresAt: z.number().int().optional(),
    lag: z.number().int().openapi({ description: "Messages not yet delivered and acknowledged" }),
    inFlight: z.number().int(),
    deadLettered: z.number().int(),
    secret: z.string().optional().openapi({ description: "whsec_<base64>: only in the answers to creation and rotation" }),
  })
  .openapi("Subscription");
export const RotateSecretBody = z
  .object({
    graceSeconds: z
      .number()
      .int()
      .min(0)
      .max(604_800)
      .optional()
      .openapi({ description: "How long the old secret keeps signing too; default 86400" }),
  })
  .strict()
  .openapi("RotateSecretRequest");
export const ReplayBody = SeekBody.openapi("ReplayRequest");
export const DeliveriesQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .optional()
    .openapi({ param: { name: "limit", in: "query" }, example: 100 }),
});
export const Deliveries = z
  .object({
    deliveries: z.array(
      z.object({
        messageId: z.string(),
        partition: z.number().int(),
        offset: z.number().int(),
        attempt: z.number().int(),
        status: z.enum(["succeeded", "failed"]),
        httpStatus: z.number().int().optional(),
        error: z.string().optional(),
        at: z.number().int(),
        durationMs: z.number().int(),
      }),
    ),
  })
  .openapi("Deliveries");

// ------------------------------------------------------------ transactions

export const TransactionParams = z.object({
  id: z
    .string()
    .min(1)
    .max(100)
    .openapi({ param: { name: "id", in: "path", required: true }, example: "tx_0f9c2d6e7a6b4c1e9d3f5a7b8c9d0e1f" }),
});
export const BeginTransaction = z
  .object({
    timeoutSeconds: z.number().int().min(1).max(3600).optional().openapi({ description: "Default 60" }),
    checkUrl: WebhookUrl.optional().openapi({
      description:
        "Checked back when the timeout passes (POST { transactionId }, signed with checkSecret); passes the webhook address guard",
    }),
    checkIntervalSeconds: z.number().int().min(1).max(3600).optional().openapi({ description: "Default 30" }),
  })
  .strict()
  .openapi("BeginTransactionRequest");
export const BegunTransaction = z
  .object({
    transactionId: z.string(),
    expiresAt: z.number().int(),
    checkSecret: z.string().optional().openapi({ description: "whsec_<base64>; only with a checkUrl, shown only here" }),
  })
  .openapi("BeginTransactionResponse");
export const CommitTransaction = z
  .object({
    acks: z
      .array(z.object({ topic: Name, group: Name, receipts: Receipts.min(1) }).strict())
      .max(100)
      .optional()
      .openapi({
        description: "Consumer-group acks applied in the same Postgres transaction as the messages (at most 1,000 receipts in all)",
      }),
  })
  .strict()
  .openapi("CommitTransactionRequest");
export const CommittedTransaction = z
  .object({
    offsets: z.array(z.object({ topic: z.string(), partition: z.number().int(), offset: z.number().int() })),
  })
  .openapi("CommitTransactionResponse");
export const TransactionView = z
  .object({
    transactionId: z.string(),
    state: z.enum(["open", "committed", "rolled_back"]),
    expiresAt: z.number().int(),
    checks: z.number().int(),
  })
  .openapi("Transaction");
