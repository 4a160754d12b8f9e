/**
 * The Hono application. It is built once with no dependencies; each request brings its
 * Runtime as Hono's `env` (see runtime.ts), so the same app serves Node and Workers.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ReservoirError } from "../storage/errors.ts";
import { requireOperator, requireTenant } from "./auth.ts";
import { requestDeadline } from "./deadline.ts";
import { invalid } from "./produce/parse.ts";
import { errorToResponse, problemResponse } from "./problem.ts";
import { registerAdmin } from "./routes/admin.ts";
import { registerGroups } from "./routes/groups.ts";
import { registerSubscriptions } from "./routes/subscriptions.ts";
import { registerHealth } from "./routes/health.ts";
import { registerProduce } from "./routes/produce.ts";
import { registerRead } from "./routes/read.ts";
import { registerTopics } from "./routes/topics.ts";
import type { AppEnv } from "./runtime.ts";
import { limits } from "./schemas.ts";

/** JSON bodies other than produce: JSON only, and at most 1 MiB. */
const jsonBodies: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === "GET" || c.req.method === "HEAD" || c.req.method === "DELETE") return next();
  const length = Number(c.req.header("content-length") ?? NaN);
  const hasBody = length > 0 || (Number.isNaN(length) && c.req.raw.body !== null);
  if (!hasBody) return next();
  const type = c.req.header("content-type")?.split(";")[0].trim().toLowerCase();
  if (type !== "application/json") {
    throw new ReservoirError("unsupported_media_type", "request bodies must be application/json");
  }
  return limitJsonBody(c, next);
};

const tooLarge = () => new ReservoirError("body_too_large", `the request body exceeds ${limits.jsonBodyBytes} bytes`);

const limitStreamedBody = bodyLimit({
  maxSize: limits.jsonBodyBytes,
  onError: () => {
    throw tooLarge();
  },
});

/**
 * A declared length is checked from the header alone (the HTTP parser reads no further), so
 * the body stays unread until the validator reads it once: on Node that read skips web
 * streams altogether. Only a body without a length is counted as it streams in.
 */
const limitJsonBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  const declared = c.req.header("content-length");
  if (declared === undefined || c.req.header("transfer-encoding") !== undefined) return limitStreamedBody(c, next);
  if (Number(declared) > limits.jsonBodyBytes) throw tooLarge();
  return next();
};

export function createApp() {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (result.success) return;
      const badName = result.target === "param" && result.error.issues.some((i) => i.path[0] === "topic");
      if (badName) throw new ReservoirError("invalid_name", "names match ^[A-Za-z0-9._-]{1,200}$");
      throw invalid(result.error);
    },
  });

  app.onError((error, c) => errorToResponse(error, c));
  app.notFound(() => problemResponse("not_found", "no such route"));

  app.use("*", requestDeadline);
  app.use("/v1/admin/*", requireOperator, jsonBodies);
  app.use("/v1/*", async (c, next) => (c.req.path.startsWith("/v1/admin/") ? next() : requireTenant(c, next)));
  app.use("/v1/*", async (c, next) => (c.req.path.endsWith("/messages") && c.req.method === "POST" ? next() : jsonBodies(c, next)));

  registerHealth(app);
  registerAdmin(app);
  registerTopics(app);
  registerProduce(app);
  registerRead(app);
  registerGroups(app);
  registerSubscriptions(app);

  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description: "A tenant API key",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "operatorToken", {
    type: "http",
    scheme: "bearer",
    description: "The operator token (RESERVOIR_ADMIN_TOKEN)",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Reservoir",
      version: "1",
      description: "A serverless message queue and event log. Errors are application/problem+json with a stable `code`.",
    },
  });
  return app;
}

export type App = ReturnType<typeof createApp>;
