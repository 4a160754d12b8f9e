/** Reading by offset (with long-poll) and finding offsets by timestamp. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { ReservoirError } from "../../storage/errors.ts";
import { highWatermarks } from "../../storage/metadata/topics.ts";
import { offsetForTimestamp, partitionBounds, readFrom } from "../../storage/log/reader.ts";
import { messageJson } from "../message-json.ts";
import { acceptsRaw, RAW_MESSAGES_TYPE, rawMessagesBody, rawMessagesContent } from "../raw-messages.ts";
import { recordUsage } from "../../storage/usage/meter.ts";
import { outgoing } from "../../storage/usage/metered-bytes.ts";
import { requireScope } from "../auth.ts";
import { allowWait } from "../deadline.ts";
import type { AppEnv, Runtime } from "../runtime.ts";
import { errorResponses, Offsets, OffsetsQuery, PartitionParams, problemContent, ReadQuery, ReadResult, TopicParams } from "../schemas.ts";

const security = [{ apiKey: [] }];

const readRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/partitions/{p}/messages",
  operationId: "readMessages",
  summary: "Read a partition from an offset; with waitMs, wait for a message at that offset",
  security,
  middleware: [requireScope("consume")] as const,
  request: { params: PartitionParams, query: ReadQuery },
  responses: {
    200: { description: "Messages from the offset on", content: { "application/json": { schema: ReadResult }, ...rawMessagesContent } },
    416: { description: "The offset is below the earliest retained one (body: earliestOffset)", content: problemContent },
    ...errorResponses,
  },
});

const offsetsRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/offsets",
  operationId: "getOffsets",
  summary: "Per partition, the first offset whose timestamp is ≥ T (the high watermark if none)",
  security,
  middleware: [requireScope("consume")] as const,
  request: { params: TopicParams, query: OffsetsQuery },
  responses: { 200: { description: "Offsets", content: { "application/json": { schema: Offsets } } }, ...errorResponses },
});

/** Waits until the partition holds `offset` or the wait ends; returns the high watermark. */
async function waitForOffset(rt: Runtime, topicId: number, partition: number, offset: number, highWatermark: number, waitMs: number) {
  const deadline = rt.clock.now() + waitMs;
  let hw = highWatermark;
  while (hw <= offset) {
    const left = deadline - rt.clock.now();
    if (left <= 0) break;
    await rt.commits.wait(topicId, partition, Math.min(left, rt.pollIntervalMs));
    hw = (await partitionBounds(rt.db, topicId, partition))?.highWatermark ?? hw;
  }
  return hw;
}

export function registerRead(app: OpenAPIHono<AppEnv>) {
  app.openapi(readRoute, async (c) => {
    const { topic: name, p } = c.req.valid("param");
    const { offset, limit, waitMs } = c.req.valid("query");
    allowWait(c, waitMs);
    const topic = await c.env.topics.get(c.env.db, c.get("principal").tenantId, name);
    const bounds = p < topic.partitions ? await partitionBounds(c.env.db, topic.id, p) : null;
    if (!bounds) throw new ReservoirError("partition_not_found", `topic '${name}' has no partition ${p}`);
    if (offset < bounds.earliest) {
      throw new ReservoirError("offset_out_of_range", `offset ${offset} is below the earliest retained offset ${bounds.earliest}`, {
        earliestOffset: bounds.earliest,
      });
    }
    let highWatermark = bounds.highWatermark;
    if (offset >= highWatermark && waitMs > 0) {
      highWatermark = await waitForOffset(c.env, topic.id, p, offset, highWatermark, waitMs);
    }
    // The answer is built whole (its bytes copied out of the read cache) before the scope closes.
    return c.env.cache.scoped(async (reads) => {
      const stored = offset < highWatermark ? await readFrom({ ...c.env, readScope: reads }, topic.id, p, offset, limit) : [];
      // Usage: what this answer returns (one insert, only when it returns messages).
      if (!c.get("principal").operator) await recordUsage(c.env.db, c.get("principal").tenantId, outgoing(stored.map((m) => m.record)));
      c.env.metrics.messagesOut.inc({ via: "read" }, stored.length);
      const nextOffset = stored.length ? stored[stored.length - 1].offset + 1 : offset;
      // A commit after the bounds were read may put nextOffset past the high watermark seen then.
      const fields = { nextOffset, highWatermark: stored.length ? Math.max(highWatermark, nextOffset) : highWatermark };
      if (acceptsRaw(c.req.header("accept"))) {
        return c.body(rawMessagesBody(topic.name, stored, fields), 200, { "content-type": RAW_MESSAGES_TYPE });
      }
      const messages = stored.map((m) => messageJson(topic.name, m.partition, m.offset, m.record));
      return c.json({ messages, ...fields }, 200);
    });
  });

  app.openapi(offsetsRoute, async (c) => {
    const { timestamp } = c.req.valid("query");
    const topic = await c.env.topics.get(c.env.db, c.get("principal").tenantId, c.req.valid("param").topic);
    const marks = await highWatermarks(c.env.db, topic.id);
    const offsets = await Promise.all(
      marks.map(async (hw, partition) => ({
        partition,
        offset: (await offsetForTimestamp(c.env, topic.id, partition, timestamp)) ?? hw,
      })),
    );
    return c.json({ offsets }, 200);
  });
}
