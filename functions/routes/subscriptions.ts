/** Webhook subscriptions (docs/webhooks.md): configuration, pause/resume, replay, rotation, the log. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ReservoirError } from "../../storage/errors.ts";
import { groupView, seek } from "../../storage/groups/position.ts";
import type { Topic } from "../../storage/metadata/topics.ts";
import { latestAttempts } from "../../storage/subscriptions/delivery-log.ts";
import {
  deleteSubscription,
  findSubscription,
  listSubscriptions,
  rotateSecret,
  saveSubscription,
  setState,
  type Subscription as Stored,
  type SubscriptionSettings as StoredSettings,
} from "../../storage/subscriptions/subscriptions.ts";
import { requireScope } from "../auth.ts";
import { webhookId } from "../push/payload.ts";
import { newWebhookSecret } from "../push/signing.ts";
import type { AppEnv } from "../runtime.ts";
import {
  Deliveries,
  DeliveriesQuery,
  errorResponses,
  ReplayBody,
  RotateSecretBody,
  Subscription,
  SubscriptionParams,
  SubscriptionSettings,
  TopicParams,
} from "../schemas.ts";

const security = [{ apiKey: [] }];
const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
const base = "/v1/topics/{topic}/subscriptions/{name}";
const DEFAULT_GRACE_S = 86_400;

const putRoute = createRoute({
  method: "put",
  path: base,
  operationId: "putSubscription",
  summary: "Create a webhook subscription (201, with its secret) or update the settings given (200)",
  description: "The URL must pass the address guard (400 url_not_allowed). startAt applies only at creation; use replay to move.",
  security,
  middleware: [requireScope("manage")] as const,
  request: { params: SubscriptionParams, body: { content: json(SubscriptionSettings), required: true } },
  responses: {
    200: { description: "Updated", content: json(Subscription) },
    201: { description: "Created; the only answer besides rotation that shows the secret", content: json(Subscription) },
    ...errorResponses,
  },
});

const getRoute = createRoute({
  method: "get",
  path: base,
  operationId: "getSubscription",
  summary: "The subscription, its state and its backlog",
  security,
  middleware: [requireScope("consume")] as const,
  request: { params: SubscriptionParams },
  responses: { 200: { description: "The subscription", content: json(Subscription) }, ...errorResponses },
});

/** Subscriptions listed per call at most. */
const LIST_LIMIT = 1000;

const listRoute = createRoute({
  method: "get",
  path: "/v1/topics/{topic}/subscriptions",
  operationId: "listSubscriptions",
  summary: "The topic's webhook subscriptions, their state and backlog, by name (at most 1,000; no secrets)",
  security,
  middleware: [requireScope("consume")] as const,
  request: { params: TopicParams },
  responses: {
    200: {
      description: "The subscriptions",
      content: json(z.object({ subscriptions: z.array(Subscription) }).openapi("SubscriptionList")),
    },
    ...errorResponses,
  },
});

const deleteRoute = createRoute({
  method: "delete",
  path: base,
  operationId: "deleteSubscription",
  summary: "Delete the subscription with its positions and delivery log",
  security,
  middleware: [requireScope("manage")] as const,
  request: { params: SubscriptionParams },
  responses: { 204: { description: "Deleted" }, ...errorResponses },
});

function actionRoute<B extends z.ZodType>(path: string, operationId: string, summary: string, body: B, required: boolean) {
  return createRoute({
    method: "post",
    path: `${base}/${path}`,
    operationId,
    summary,
    security,
    middleware: [requireScope("manage")] as const,
    request: { params: SubscriptionParams, body: { content: json(body), required } },
    responses: { 200: { description: "The subscription", content: json(Subscription) }, ...errorResponses },
  });
}
const NoBody = z.object({}).strict();
const pauseRoute = actionRoute("pause", "pauseSubscription", "Stop delivering (deliveries in flight finish)", NoBody, false);
const resumeRoute = actionRoute(
  "resume",
  "resumeSubscription",
  "Deliver again (also after a 410 disabled the subscription)",
  NoBody,
  false,
);
const replayRoute = actionRoute(
  "replay",
  "replaySubscription",
  "Deliver again from an offset, a timestamp, or the earliest/latest",
  ReplayBody,
  true,
);
const rotateRoute = actionRoute(
  "rotate-secret",
  "rotateSubscriptionSecret",
  "A new secret; the old one also signs during graceSeconds",
  RotateSecretBody,
  false,
);

const deliveriesRoute = createRoute({
  method: "get",
  path: `${base}/deliveries`,
  operationId: "listDeliveries",
  summary: "The latest delivery attempts, newest first",
  security,
  middleware: [requireScope("consume")] as const,
  request: { params: SubscriptionParams, query: DeliveriesQuery },
  responses: { 200: { description: "Attempts", content: json(Deliveries) }, ...errorResponses },
});

type Params = { topic: string; name: string };

async function resolve(c: Context<AppEnv>, params: Params): Promise<{ topic: Topic; subscription: Stored }> {
  const topic = await c.env.topics.get(c.env.db, c.get("principal").tenantId, params.topic);
  const subscription = await findSubscription(c.env.db, topic, params.name);
  if (!subscription) throw new ReservoirError("subscription_not_found", `topic '${topic.name}' has no subscription '${params.name}'`);
  return { topic, subscription };
}

async function view(c: Context<AppEnv>, s: Stored, secret?: string) {
  const g = await groupView(c.env.db, s.group, c.env.clock.now());
  return {
    name: s.name,
    topic: s.topic.name,
    url: s.url,
    ordering: s.group.ordering,
    startAt: s.group.startAt,
    maxAttempts: s.group.maxAttempts,
    backoff: { initialSeconds: s.backoffInitialMs / 1000, maxSeconds: s.backoffMaxMs / 1000 },
    maxConcurrency: s.maxConcurrency,
    timeoutMs: s.timeoutMs,
    ...(s.filterHeaders && { filter: { headers: s.filterHeaders } }),
    deadLetterTopic: s.group.deadLetterTopic,
    format: s.format,
    state: s.state,
    ...(s.stateReason && { stateReason: s.stateReason }),
    createdAt: s.createdAt,
    ...(s.secretRotatedAt !== null && { secretRotatedAt: s.secretRotatedAt }),
    ...(s.previousSecretExpiresAt !== null &&
      s.previousSecretExpiresAt > c.env.clock.now() && { previousSecretExpiresAt: s.previousSecretExpiresAt }),
    lag: g.partitions.reduce((n, p) => n + p.lag, 0),
    inFlight: g.partitions.reduce((n, p) => n + p.inFlight, 0),
    deadLettered: g.deadLettered,
    ...(secret && { secret }),
  };
}

function settingsOf(body: z.infer<typeof SubscriptionSettings>): Partial<StoredSettings> & { url: string } {
  const initial = body.backoff?.initialSeconds;
  const max = body.backoff?.maxSeconds;
  return {
    url: body.url,
    ordering: body.ordering,
    startAt: body.startAt,
    maxAttempts: body.maxAttempts,
    backoffInitialMs: initial === undefined ? undefined : Math.max(1, Math.round(initial * 1000)),
    backoffMaxMs: max === undefined ? undefined : Math.max(1, Math.round(max * 1000)),
    maxConcurrency: body.maxConcurrency,
    timeoutMs: body.timeoutMs,
    ...(body.filter !== undefined && {
      filterHeaders: body.filter.headers && Object.keys(body.filter.headers).length > 0 ? body.filter.headers : null,
    }),
    deadLetterTopic: body.deadLetterTopic,
    format: body.format,
  };
}

export function registerSubscriptions(app: OpenAPIHono<AppEnv>) {
  app.openapi(putRoute, async (c) => {
    const params = c.req.valid("param");
    const body = c.req.valid("json");
    const tenantId = c.get("principal").tenantId;
    const topic = await c.env.topics.get(c.env.db, tenantId, params.topic);
    await c.env.guard.check(new URL(body.url));
    const secret = newWebhookSecret();
    const { subscription, created } = await saveSubscription(
      c.env.db,
      tenantId,
      topic,
      params.name,
      settingsOf(body),
      secret,
      c.env.clock.now(),
    );
    if (created) c.env.push.wake([topic.id]);
    return c.json(await view(c, subscription, created ? secret : undefined), created ? 201 : 200);
  });

  app.openapi(listRoute, async (c) => {
    const topic = await c.env.topics.get(c.env.db, c.get("principal").tenantId, c.req.valid("param").topic);
    const found = await listSubscriptions(c.env.db, topic, LIST_LIMIT);
    return c.json({ subscriptions: await Promise.all(found.map((s) => view(c, s))) }, 200);
  });

  app.openapi(getRoute, async (c) => {
    const { subscription } = await resolve(c, c.req.valid("param"));
    return c.json(await view(c, subscription), 200);
  });

  app.openapi(deleteRoute, async (c) => {
    const params = c.req.valid("param");
    const topic = await c.env.topics.get(c.env.db, c.get("principal").tenantId, params.topic);
    if (!(await deleteSubscription(c.env.db, topic, params.name))) {
      throw new ReservoirError("subscription_not_found", `topic '${topic.name}' has no subscription '${params.name}'`);
    }
    return c.body(null, 204);
  });

  const changeState = (state: "active" | "paused") => async (c: Context<AppEnv>, params: Params) => {
    const { topic, subscription } = await resolve(c, params);
    await setState(c.env.db, subscription.id, state, null);
    if (state === "active") c.env.push.wake([topic.id]);
    return c.json(await view(c, { ...subscription, state, stateReason: null }), 200);
  };
  app.openapi(pauseRoute, (c) => changeState("paused")(c, c.req.valid("param")));
  app.openapi(resumeRoute, (c) => changeState("active")(c, c.req.valid("param")));

  app.openapi(replayRoute, async (c) => {
    const { topic, subscription } = await resolve(c, c.req.valid("param"));
    const target = c.req.valid("json");
    if ("partition" in target && target.partition !== undefined && target.partition >= topic.partitions) {
      throw new ReservoirError("partition_not_found", `topic '${topic.name}' has no partition ${target.partition}`);
    }
    await seek(c.env, subscription.group, topic, target);
    c.env.push.wake([topic.id]);
    return c.json(await view(c, subscription), 200);
  });

  app.openapi(rotateRoute, async (c) => {
    const { topic, subscription } = await resolve(c, c.req.valid("param"));
    const graceMs = (c.req.valid("json")?.graceSeconds ?? DEFAULT_GRACE_S) * 1000;
    const secret = newWebhookSecret();
    await rotateSecret(c.env.db, subscription.id, secret, graceMs, c.env.clock.now());
    const rotated = (await findSubscription(c.env.db, topic, subscription.name)) ?? subscription;
    return c.json(await view(c, rotated, secret), 200);
  });

  app.openapi(deliveriesRoute, async (c) => {
    const { subscription } = await resolve(c, c.req.valid("param"));
    const attempts = await latestAttempts(c.env.db, subscription.id, c.req.valid("query").limit ?? 100);
    const deliveries = attempts.map((a) => ({
      messageId: webhookId(subscription.id, a.partition, a.offset),
      partition: a.partition,
      offset: a.offset,
      attempt: a.attempt,
      status: a.succeeded ? ("succeeded" as const) : ("failed" as const),
      ...(a.httpStatus !== null && { httpStatus: a.httpStatus }),
      ...(a.error !== null && { error: a.error }),
      at: a.at,
      durationMs: a.durationMs,
    }));
    return c.json({ deliveries }, 200);
  });
}
