/**
 * Produce. The body is read and parsed exactly once, by hand rather than by the OpenAPI
 * validator, so that each limit gets its own 413 code; the route is still documented.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ReservoirError } from "../../storage/errors.ts";
import { admitEncoded, admitEntries, commitEncoded, commitEntries } from "../produce/submit.ts";
import { parseProduceBatches, placeBatches, type ProducedBatch } from "../produce/batches.ts";
import { confirmKey, requireScope, withDeferredKeyCheck } from "../auth.ts";
import { refuseUnstorableText } from "../storable-text.ts";
import { toEntries } from "../produce/entries.ts";
import { findTransaction, notFound, notOpen } from "../../storage/transactions/transactions.ts";
import { bodyFormat, parseProduceBody, type ProduceRequestBody, readBody } from "../produce/parse.ts";
import { produceBatchesContent } from "../stored-batches.ts";
import type { AppEnv } from "../runtime.ts";
import {
  errorResponses,
  limits,
  problemContent,
  Produced,
  ProducedBatches,
  ProducedPending,
  ProduceBody,
  MessageIn,
  TopicParams,
} from "../schemas.ts";

const produceRoute = createRoute({
  method: "post",
  path: "/v1/topics/{topic}/messages",
  operationId: "produceMessages",
  summary: "Produce messages (JSON, ndjson with one message object per line, or record batches)",
  description:
    "Offsets come back in request order. A repeated idempotencyKey on the same topic within 24 h returns the original offsets and stores nothing. Limits: 1 MiB per message (key + value + headers), 1,000 messages and 8 MiB per request. With transactionId (JSON body only; ndjson has no place for it), 202 and the messages stay pending until the transaction commits; their idempotency keys are claimed at the commit.",
  security: [{ apiKey: [] }],
  request: {
    params: TopicParams,
    body: {
      required: true,
      content: {
        "application/json": { schema: ProduceBody },
        "application/x-ndjson": { schema: MessageIn },
        ...produceBatchesContent,
      },
    },
  },
  responses: {
    200: {
      description: "Committed: offsets per message (JSON, ndjson), or a range of offsets per batch (a body in batches)",
      content: { "application/json": { schema: z.union([Produced, ProducedBatches]) } },
    },
    202: {
      description: "With transactionId: stored, pending until the transaction commits (no offsets, nothing visible)",
      content: { "application/json": { schema: ProducedPending } },
    },
    409: { description: "transaction_not_open: the transaction is committed, rolled back or timed out", content: problemContent },
    413: {
      description: "A size or count limit was exceeded (transaction_too_large: the transaction's 10,000 messages or 64 MiB)",
      content: problemContent,
    },
    415: { description: "Not JSON or ndjson", content: problemContent },
    ...errorResponses,
    503: {
      description:
        "service_unavailable: storage failed, nothing was stored; deadline_exceeded: past the deadline, the messages may still commit (retry with idempotency keys)",
      content: problemContent,
    },
  },
});

export function registerProduce(app: OpenAPIHono<AppEnv>) {
  // Registered for the document only: a validator would parse the body a second time.
  app.openAPIRegistry.registerPath(produceRoute);
  app.post("/v1/topics/:topic/messages", requireScope("produce"), async (c) => {
    // GET /metrics: the latency of answered produces (200, 202), from here to the answer.
    const started = c.env.clock.now();
    const answered = () => c.env.metrics.produceSeconds.observe((c.env.clock.now() - started) / 1000);
    const name = c.req.param("topic");
    const parsedName = TopicParams.shape.topic.safeParse(name);
    if (!parsedName.success) throw new ReservoirError("invalid_name", `'${name}' is not a valid topic name`);
    const format = bodyFormat(c.req.header("content-type"));
    const bytes = await readBody(c.req.raw, limits.produceBodyBytes, c.env.declaredBody);
    try {
      const parsed = format === "batches" ? parseProduceBatches(bytes) : parseProduceBody(bytes, format);
      return await withDeferredKeyCheck<Response>(c, () =>
        Array.isArray(parsed) ? produceBatches(c, name, parsed, answered) : produce(c, name, parsed, answered),
      );
    } finally {
      // The values are views of `bytes` until the batcher has copied them into a segment, which
      // it has once its promise for them settled (awaited above, also past a deadline's answer).
      c.env.releaseBody?.(bytes);
    }
  });
}

/** A parsed produce body into the batcher: committed (200, offsets) or pending in a transaction (202). */
async function produce(c: Context<AppEnv>, name: string, body: ProduceRequestBody, answered: () => void) {
  // Of a message only the idempotency key reaches SQL; key, value and headers are segment bytes.
  body.messages.forEach((m, i) => {
    if (m.idempotencyKey !== undefined) refuseUnstorableText(m.idempotencyKey, `messages.${i}.idempotencyKey`);
  });
  if (body.transactionId !== undefined) refuseUnstorableText(body.transactionId, "transactionId");
  // A transaction's flush does not vouch for keys: its produce is checked first.
  if (body.transactionId !== undefined) await confirmKey(c);
  const tenantId = c.get("principal").tenantId;
  const topic = await c.env.topics.get(c.env.db, tenantId, name);
  const entries = toEntries(body.messages, topic, c.env.partitioner, c.env.clock.now());
  // A transaction is checked before any quota is taken: a refused request costs the tenant nothing.
  let transactionId: string | undefined;
  if (body.transactionId !== undefined) {
    // Refused early when it is plainly not open; the flush's commit decides under the row lock.
    const transaction = await findTransaction(c.env.db, tenantId, body.transactionId);
    if (!transaction) throw notFound(body.transactionId);
    if (transaction.state !== "open") throw notOpen(transaction, "take messages");
    if (transaction.expiresAt <= c.env.clock.now()) {
      throw new ReservoirError("transaction_not_open", `transaction '${transaction.id}' has timed out: it cannot take messages`, {
        state: "open",
      });
    }
    transactionId = transaction.id;
  }
  await admitEntries(c, entries);
  if (transactionId !== undefined) {
    for (const entry of entries) entry.transactionId = transactionId;
    await c.env.batcher.submit(tenantId, entries, { db: c.env.db, store: c.env.store });
    answered();
    return c.json({ pending: entries.length }, 202);
  }
  const offsets = await commitEntries(c, topic, entries);
  answered();
  return c.json({ offsets }, 200);
}

/** Record batches into the batcher as they are: one range of offsets per batch. */
async function produceBatches(c: Context<AppEnv>, name: string, batches: ProducedBatch[], answered: () => void) {
  const topic = await c.env.topics.get(c.env.db, c.get("principal").tenantId, name);
  const partitions = placeBatches(batches, topic, c.env.partitioner);
  const timestamp = c.env.clock.now();
  const parts = batches.map(({ records, starts, usageBytes, stored }, b) => ({
    topicId: topic.id,
    partition: partitions[b],
    timestamp,
    records,
    starts,
    usageBytes,
    stored,
  }));
  await admitEncoded(c, parts);
  const ranges = await commitEncoded(c, topic, parts);
  answered();
  return c.json({ batches: ranges }, 200);
}
