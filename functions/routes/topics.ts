/** Topic management: create (idempotent), list, describe, grow, delete. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { ReservoirError } from "../../storage/errors.ts";
import {
  deleteTopic,
  earliestOffsets,
  ensureTopic,
  getTopic,
  highWatermarks,
  listTopics,
  updateTopic,
  type Topic as StoredTopic,
} from "../../storage/metadata/topics.ts";
import { retryConflicts } from "../../storage/metadata/db.ts";
import { addPartitionsToGroups } from "../../storage/groups/groups.ts";
import { topicStoredBytes } from "../../storage/lifecycle/storage-report.ts";
import { requireScope } from "../auth.ts";
import type { AppEnv } from "../runtime.ts";
import { errorResponses, problemContent, Topic, TopicDetail, TopicParams, TopicSettings } from "../schemas.ts";

const security = [{ apiKey: [] }];
const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
const DEFAULTS = { partitions: 1, retentionHours: 168, retentionBytes: null };

const putTopic = createRoute({
  method: "put",
  path: "/v1/topics/{topic}",
  operationId: "putTopic",
  summary: "Create a topic (200 if it exists with the same settings, 409 if with others)",
  security,
  middleware: [requireScope("manage")] as const,
  request: { params: TopicParams, body: { content: json(TopicSettings), required: false } },
  responses: {
    200: { description: "Exists with these settings", content: json(Topic) },
    201: { description: "Created", content: json(Topic) },
    409: { description: "Exists with other settings", content: problemContent },
    ...errorResponses,
  },
});

const listRoute = createRoute({
  method: "get",
  path: "/v1/topics",
  operationId: "listTopics",
  summary: "List the tenant's topics",
  security,
  responses: { 200: { description: "Topics", content: json(z.object({ topics: z.array(Topic) })) }, 401: errorResponses[401] },
});

const getRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}",
  operationId: "getTopic",
  summary: "Describe a topic, with the high watermark (next offset) and earliest retained offset of each partition, and its stored bytes",
  security,
  request: { params: TopicParams },
  responses: { 200: { description: "The topic", content: json(TopicDetail) }, ...errorResponses },
});

const patchRoute = createRoute({
  method: "patch",
  path: "/v1/topics/{topic}",
  operationId: "updateTopic",
  summary: "Change retention or add partitions (partitions may only grow)",
  security,
  middleware: [requireScope("manage")] as const,
  request: { params: TopicParams, body: { content: json(TopicSettings), required: true } },
  responses: { 200: { description: "Updated", content: json(Topic) }, ...errorResponses },
});

const deleteRoute = createRoute({
  method: "delete",
  path: "/v1/topics/{topic}",
  operationId: "deleteTopic",
  summary: "Delete a topic; its messages become unreachable and are collected",
  security,
  middleware: [requireScope("manage")] as const,
  request: { params: TopicParams },
  responses: { 204: { description: "Deleted" }, ...errorResponses },
});

function view(topic: StoredTopic) {
  return {
    name: topic.name,
    partitions: topic.partitions,
    retentionHours: topic.retentionHours,
    ...(topic.retentionBytes === null ? {} : { retentionBytes: topic.retentionBytes }),
    createdAt: topic.createdAt,
  };
}

export function registerTopics(app: OpenAPIHono<AppEnv>) {
  app.openapi(putTopic, async (c) => {
    const { topic: name } = c.req.valid("param");
    const settings = { ...DEFAULTS, ...(c.req.valid("json") ?? {}) };
    const tenantId = c.get("principal").tenantId;
    const { topic, created } = await ensureTopic(c.env.db, tenantId, name, settings, c.get("principal").quotas.topics);
    c.env.topics.invalidate(tenantId, name);
    if (created) return c.json(view(topic), 201);
    if (
      topic.partitions !== settings.partitions ||
      topic.retentionHours !== settings.retentionHours ||
      topic.retentionBytes !== settings.retentionBytes
    ) {
      throw new ReservoirError(
        "topic_conflict",
        `topic '${name}' exists with partitions=${topic.partitions}, retentionHours=${topic.retentionHours}, retentionBytes=${topic.retentionBytes ?? "none"}`,
        { existing: view(topic) },
      );
    }
    return c.json(view(topic), 200);
  });

  app.openapi(listRoute, async (c) => {
    const topics = await listTopics(c.env.db, c.get("principal").tenantId);
    return c.json({ topics: topics.map(view) }, 200);
  });

  app.openapi(getRoute, async (c) => {
    const topic = await getTopic(c.env.db, c.get("principal").tenantId, c.req.valid("param").topic);
    const [marks, earliest, storedBytes] = await Promise.all([
      highWatermarks(c.env.db, topic.id),
      earliestOffsets(c.env.db, topic.id),
      topicStoredBytes(c.env.db, topic.id),
    ]);
    return c.json({ ...view(topic), highWatermarks: marks, earliestOffsets: earliest, storedBytes }, 200);
  });

  app.openapi(patchRoute, async (c) => {
    const { topic: name } = c.req.valid("param");
    const tenantId = c.get("principal").tenantId;
    const topic = await updateTopic(c.env.db, tenantId, name, c.req.valid("json"), addPartitionsToGroups);
    c.env.topics.invalidate(tenantId, name);
    return c.json(view(topic), 200);
  });

  app.openapi(deleteRoute, async (c) => {
    const name = c.req.valid("param").topic;
    const tenantId = c.get("principal").tenantId;
    // The cascade locks rows that produce, receive and settle lock too: when Postgres breaks a
    // deadlock by aborting the delete, the delete runs again (the other side went on).
    const deleted = await retryConflicts(() => deleteTopic(c.env.db, tenantId, name));
    c.env.topics.invalidate(tenantId, name);
    if (!deleted) {
      throw new ReservoirError("topic_not_found", `topic '${name}' does not exist`);
    }
    return c.body(null, 204);
  });
}
