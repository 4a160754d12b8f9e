/** Consumer groups: lease-based receive, ack/nack/extend, seek, redrive, and the group view. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ReservoirError } from "../../storage/errors.ts";
import { ensureGroup, findGroup, listGroups, type Group as StoredGroup } from "../../storage/groups/groups.ts";
import { groupView, seek } from "../../storage/groups/position.ts";
import { redrive } from "../../storage/groups/dead-letter.ts";
import type { ReceiptRef } from "../../storage/groups/receipts.ts";
import type { SettleResult, Settlement } from "../../storage/groups/settle.ts";
import type { Database } from "../../storage/metadata/db.ts";
import { holdTopic } from "../../storage/metadata/topic-hold.ts";
import type { Topic } from "../../storage/metadata/topics.ts";
import { confirmKey, requireScope, withDeferredKeyCheck } from "../auth.ts";
import { receiveChunks, receiveLeases, settleReceipts } from "../receive-leases.ts";
import { acceptsBatches, BATCHES_TYPE, batchesBody, batchesContent } from "../stored-batches.ts";
import { messageJson } from "../message-json.ts";
import { acceptsRaw, RAW_MESSAGES_TYPE, rawMessagesBody, rawMessagesContent } from "../raw-messages.ts";
import type { AppEnv } from "../runtime.ts";
import {
  AckBody,
  Acked,
  errorResponses,
  Extended,
  ExtendBody,
  Group,
  GroupParams,
  GroupSettings,
  GroupView,
  NackBody,
  Nacked,
  problemContent,
  Received,
  ReceiveBody,
  RedriveBody,
  Redriven,
  SeekBody,
  TopicParams,
} from "../schemas.ts";

const security = [{ apiKey: [] }];
const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
const base = "/v1/topics/{topic}/groups/{group}";
const MAX_RECEIPTS = 1000;
const DEFAULT_VISIBILITY_S = 30;

const putGroup = createRoute({
  method: "put",
  path: base,
  operationId: "putGroup",
  summary: "Create a consumer group (201) or update its settings (200)",
  description: "Positions are set at creation by startAt and never moved by an update; use seek for that.",
  security,
  middleware: [requireScope("manage")] as const,
  request: { params: GroupParams, body: { content: json(GroupSettings), required: false } },
  responses: {
    200: { description: "Updated", content: json(Group) },
    201: { description: "Created", content: json(Group) },
    ...errorResponses,
  },
});

const getGroup = createRoute({
  method: "get",
  path: base,
  operationId: "getGroup",
  summary: "Positions, lag and messages in flight per partition, and the dead-letter count",
  security,
  middleware: [requireScope("consume")] as const,
  request: { params: GroupParams },
  responses: { 200: { description: "The group", content: json(GroupView) }, ...errorResponses },
});

/** Groups listed per call at most (a dashboard's page; the API has no paging here yet). */
const LIST_LIMIT = 1000;
const GroupList = z.object({ groups: z.array(Group) }).openapi("GroupList");

const listGroupsRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/groups",
  operationId: "listGroups",
  summary: "The topic's consumer groups and their settings, by name (at most 1,000)",
  description: "Positions, lag and in-flight counts are per group: GET the group. Subscriptions' groups are listed as subscriptions.",
  security,
  middleware: [requireScope("consume")] as const,
  request: { params: TopicParams },
  responses: { 200: { description: "The groups", content: json(GroupList) }, ...errorResponses },
});

const receiveRoute = createRoute({
  method: "post",
  path: `${base}/receive`,
  operationId: "receiveMessages",
  summary: "Lease up to `max` messages for visibilityTimeoutSeconds; with waitMs, wait for some",
  security,
  middleware: [requireScope("consume")] as const,
  request: { params: GroupParams, body: { content: json(ReceiveBody), required: false } },
  responses: {
    200: { description: "Leased messages with receipts", content: { ...json(Received), ...rawMessagesContent, ...batchesContent } },
    413: { description: "More than 1,000 receipts in `ack`", content: problemContent },
    ...errorResponses,
  },
});

function settleRoute<B extends z.ZodType, R extends z.ZodType>(path: string, operationId: string, summary: string, body: B, response: R) {
  return createRoute({
    method: "post",
    path: `${base}/${path}`,
    operationId,
    summary,
    security,
    middleware: [requireScope("consume")] as const,
    request: { params: GroupParams, body: { content: json(body), required: true } },
    responses: {
      200: { description: "Per-receipt outcome: failures are listed, not errors of the batch", content: json(response) },
      413: { description: "More than 1,000 receipts", content: problemContent },
      ...errorResponses,
    },
  });
}
const ackRoute = settleRoute("ack", "ackMessages", "Acknowledge messages: they are done", AckBody, Acked);
const nackRoute = settleRoute("nack", "nackMessages", "Give messages back: visible again after delaySeconds", NackBody, Nacked);
const extendRoute = settleRoute("extend", "extendLeases", "Extend the visibility timeout of leased messages", ExtendBody, Extended);

const seekRoute = createRoute({
  method: "post",
  path: `${base}/seek`,
  operationId: "seekGroup",
  summary: "Move the group to an offset, a timestamp, or the earliest/latest; leases in flight are dropped",
  security,
  middleware: [requireScope("consume")] as const,
  request: { params: GroupParams, body: { content: json(SeekBody), required: true } },
  responses: { 200: { description: "The group after the seek", content: json(GroupView) }, ...errorResponses },
});

const redriveRoute = createRoute({
  method: "post",
  path: `${base}/redrive`,
  operationId: "redriveDeadLetters",
  summary: "Move the group's dead letters back to the source topic (by reference)",
  security,
  middleware: [requireScope("consume")] as const,
  request: { params: GroupParams, body: { content: json(RedriveBody), required: false } },
  responses: { 200: { description: "How many were moved", content: json(Redriven) }, ...errorResponses },
});

const groupKey = (topic: Topic, name: string) => `${topic.id}\u0000${name}`;

async function resolve(c: Context<AppEnv>, params: { topic: string; group: string }): Promise<{ topic: Topic; group: StoredGroup }> {
  const tenantId = c.get("principal").tenantId;
  const topic = await c.env.topics.get(c.env.db, tenantId, params.topic);
  // Cached like the topic: a change made through another instance is seen within a second.
  const group = await c.env.groups.get(groupKey(topic, params.group), async () => {
    const existing = await findGroup(c.env.db, topic, params.group);
    if (existing) return existing;
    // A group is made on first use: only for a key checked by then.
    await confirmKey(c);
    return (await ensureGroup(c.env.db, tenantId, topic, params.group)).group;
  });
  return { topic, group };
}

function view(group: StoredGroup, topic: Topic) {
  return {
    name: group.name,
    topic: topic.name,
    startAt: group.startAt,
    ordering: group.ordering,
    maxAttempts: group.maxAttempts,
    deadLetterTopic: group.deadLetterTopic,
  };
}

function checkReceipts(receipts: ReceiptRef[]) {
  if (receipts.length > MAX_RECEIPTS) {
    throw new ReservoirError("too_many_receipts", `${receipts.length} receipts in one call; the limit is ${MAX_RECEIPTS}`, {
      limit: MAX_RECEIPTS,
    });
  }
}

export function registerGroups(app: OpenAPIHono<AppEnv>) {
  app.openapi(putGroup, async (c) => {
    const params = c.req.valid("param");
    const settings = c.req.valid("json") ?? {};
    const tenantId = c.get("principal").tenantId;
    const topic = await c.env.topics.get(c.env.db, tenantId, params.topic);
    const { group, created } = await c.env.db.transaction(async (tx) => {
      await holdTopic(tx, topic);
      return ensureGroup(tx as unknown as Database, tenantId, topic, params.group, settings);
    });
    c.env.groups.invalidate(groupKey(topic, params.group));
    return c.json(view(group, topic), created ? 201 : 200);
  });

  app.openapi(listGroupsRoute, async (c) => {
    const topic = await c.env.topics.get(c.env.db, c.get("principal").tenantId, c.req.valid("param").topic);
    const groups = await listGroups(c.env.db, topic, LIST_LIMIT);
    return c.json({ groups: groups.map((g) => view(g, topic)) }, 200);
  });

  app.openapi(getGroup, async (c) => {
    const { group } = await resolve(c, c.req.valid("param"));
    return c.json(await groupView(c.env.db, group, c.env.clock.now()), 200);
  });

  app.openapi(receiveRoute, async (c) => {
    const body = c.req.valid("json") ?? {};
    if (body.ack) checkReceipts(body.ack);
    const { topic, group } = await resolve(c, c.req.valid("param"));
    const request = {
      max: body.max ?? 10,
      visibilityMs: (body.visibilityTimeoutSeconds ?? DEFAULT_VISIBILITY_S) * 1000,
      waitMs: body.waitMs ?? 0,
      ack: body.ack,
    };
    const ackField = (acked: SettleResult | undefined) => (acked ? { ack: { acked: acked.done, failed: acked.failed } } : {});
    const accept = c.req.header("accept");
    // Each answer is built whole (its bytes copied out of the read cache) before the scope closes.
    return withDeferredKeyCheck<Response>(c, () =>
      c.env.cache.scoped(async (reads) => {
        if (acceptsBatches(accept)) {
          const { chunks, leases, acked } = await receiveChunks(c, topic, group, request, reads);
          return c.body(batchesBody(chunks, { leases, ...ackField(acked) }), 200, { "content-type": BATCHES_TYPE });
        }
        const { messages, leases, acked } = await receiveLeases(c, topic, group, request, reads);
        const fields = { ...(leases.length > 0 ? { leases } : {}), ...ackField(acked) };
        if (acceptsRaw(accept)) {
          return c.body(rawMessagesBody(topic.name, messages, fields), 200, { "content-type": RAW_MESSAGES_TYPE });
        }
        const json = messages.map((d) =>
          Object.assign(messageJson(topic.name, d.partition, d.offset, d.record), { receipt: d.receipt, attempt: d.attempt }),
        );
        return c.json({ messages: json, ...fields }, 200);
      }),
    );
  });

  const settleNamed = async (c: Context<AppEnv>, params: { topic: string; group: string }, receipts: ReceiptRef[], action: Settlement) => {
    checkReceipts(receipts);
    const { group } = await resolve(c, params);
    return settleReceipts(c, group, receipts, action);
  };
  app.openapi(ackRoute, async (c) => {
    const { receipts } = c.req.valid("json");
    const result = await withDeferredKeyCheck(c, () => settleNamed(c, c.req.valid("param"), receipts, { kind: "ack" }));
    return c.json({ acked: result.done, failed: result.failed }, 200);
  });
  app.openapi(nackRoute, async (c) => {
    const { receipts, delaySeconds } = c.req.valid("json");
    const result = await settleNamed(c, c.req.valid("param"), receipts, { kind: "nack", delayMs: (delaySeconds ?? 0) * 1000 });
    return c.json({ nacked: result.done, failed: result.failed }, 200);
  });
  app.openapi(extendRoute, async (c) => {
    const { receipts, visibilityTimeoutSeconds } = c.req.valid("json");
    const action = { kind: "extend", visibilityMs: visibilityTimeoutSeconds * 1000 } as const;
    const result = await settleNamed(c, c.req.valid("param"), receipts, action);
    return c.json({ extended: result.done, failed: result.failed }, 200);
  });

  app.openapi(seekRoute, async (c) => {
    const { topic, group } = await resolve(c, c.req.valid("param"));
    const target = c.req.valid("json");
    if ("partition" in target && target.partition !== undefined && target.partition >= topic.partitions) {
      throw new ReservoirError("partition_not_found", `topic '${topic.name}' has no partition ${target.partition}`);
    }
    await seek(c.env, group, topic, target);
    c.env.commits.undrain(topic.id);
    return c.json(await groupView(c.env.db, group, c.env.clock.now()), 200);
  });

  app.openapi(redriveRoute, async (c) => {
    const { topic, group } = await resolve(c, c.req.valid("param"));
    const max = c.req.valid("json")?.max ?? 1000;
    const redriven = await c.env.db.transaction((tx) => redrive(tx, group, topic, max, c.env.clock.now()));
    // New offsets of the topic without a flush: no lease of its groups may be skipped for them.
    c.env.commits.undrain(topic.id);
    c.env.topics.invalidate(group.tenantId, group.deadLetterTopic);
    return c.json({ redriven }, 200);
  });
}
