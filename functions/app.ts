/**
 * The Hono application. It is built once with no dependencies; each request brings its
 * Runtime as Hono's `env` (see runtime.ts), so the same app serves Node and Workers.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { isUtf8, mediaType } from "./media-type.ts";
import { ReservoirError } from "../storage/errors.ts";
import { requireOperator, requireTenant } from "./auth.ts";
import { requestDeadline } from "./deadline.ts";
import { invalid } from "./produce/parse.ts";
import { documentProblems } from "./openapi-problems.ts";
import { errorToResponse, problemResponse } from "./problem.ts";
import { refuseUnstorableText } from "./storable-text.ts";
import { registerAdmin } from "./routes/admin.ts";
import { registerGroups } from "./routes/groups.ts";
import { registerLifecycle } from "./routes/lifecycle.ts";
import { registerSubscriptions } from "./routes/subscriptions.ts";
import { registerHealth } from "./routes/health.ts";
import { registerProblems } from "./routes/problems.ts";
import { registerProduce } from "./routes/produce.ts";
import { registerRead } from "./routes/read.ts";
import { registerTopics } from "./routes/topics.ts";
import { registerTransactions } from "./routes/transactions.ts";
import { registerUsage } from "./routes/usage.ts";
import { registerMetrics } from "./routes/metrics.ts";
import { registerDashboard } from "./routes/dashboard.ts";
import { countRequests } from "./metrics/middleware.ts";
import { registerSqs } from "./sqs/router.ts";
import { documentSqs } from "./sqs/openapi.ts";
import type { AppEnv } from "./runtime.ts";
import { limits } from "./schemas.ts";

/**
 * JSON bodies other than produce: JSON only, and at most 1 MiB. This is the one place that
 * judges a Content-Type; the route validators downstream see either none or a plain one.
 * - No content (Content-Length: 0, or no body at all): a Content-Type describes nothing and is
 *   ignored, so `PUT /v1/topics/t` with `Content-Type: text/plain` and no body creates `t`.
 * - Content: its media type must be application/json (415 otherwise). Parameters are ignored,
 *   even malformed ones (`application/json;`), except a charset other than UTF-8 (415): JSON
 *   is UTF-8 (RFC 8259).
 */
const jsonBodies: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === "GET" || c.req.method === "HEAD" || c.req.method === "DELETE") return next();
  const contentType = c.req.header("content-type");
  // HTTP/1.1 framing: a body has a length, or is chunked; a request with neither has none (on
  // Node the Request still carries an empty stream then).
  const declared = c.req.header("content-length");
  const hasBody = declared !== undefined ? Number(declared) !== 0 : c.req.header("transfer-encoding") !== undefined;
  if (!hasBody) {
    if (contentType !== undefined) c.req.raw = withHeaders(c.req.raw, { "content-type": null }, false);
    return next();
  }
  const media = mediaType(contentType);
  if (media.type !== "application/json") {
    throw new ReservoirError("unsupported_media_type", "request bodies must be application/json");
  }
  if (!isUtf8(media)) {
    throw new ReservoirError("unsupported_media_type", `JSON is UTF-8; charset=${media.charset} is not accepted`);
  }
  // Only a Content-Type the route validator would refuse (`application/json;`) is replaced: a
  // new Request costs Node's fast body read, and nearly every client sends a well-formed one.
  if (!wellFormedJson.test(contentType!)) c.req.raw = withHeaders(c.req.raw, { "content-type": "application/json" }, true);
  return limitJsonBody(c, next);
};

/** What @hono/zod-openapi's validator takes for a JSON Content-Type (its jsonRequestRegex). */
const wellFormedJson = /^application\/json(;\s*[a-zA-Z0-9-]+=([^;]+))*$/i;

/** The same request with some headers replaced (null: removed), with or without its body. */
function withHeaders(request: Request, changes: Record<string, string | null>, keepBody: boolean): Request {
  const headers = new Headers(request.headers);
  for (const [name, value] of Object.entries(changes)) {
    if (value === null) headers.delete(name);
    else headers.set(name, value);
  }
  if (!keepBody) headers.delete("content-length");
  const init: RequestInit & { duplex?: "half" } = { method: request.method, headers, signal: request.signal };
  if (keepBody) Object.assign(init, { body: request.body, duplex: "half" });
  return new Request(request.url, init);
}

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
      // Every validated string (params, query, JSON body) passes here once: the one edge check
      // for text Postgres cannot store.
      if (result.success) return refuseUnstorableText(result.data, result.target === "json" ? "body" : result.target);
      const badName = result.target === "param" && result.error.issues.some((i) => i.path[0] === "topic");
      if (badName) throw new ReservoirError("invalid_name", "names match ^[A-Za-z0-9._-]{1,200}$");
      throw invalid(result.error);
    },
  });

  app.onError((error, c) => errorToResponse(error, c));
  app.notFound(() => problemResponse("not_found", "no such route"));

  app.use("*", countRequests);
  app.use("*", requestDeadline);
  app.use("/metrics", requireOperator);
  app.use("/v1/admin/*", requireOperator, jsonBodies);
  app.use("/v1/*", async (c, next) => (c.req.path.startsWith("/v1/admin/") ? next() : requireTenant(c, next)));
  app.use("/v1/*", async (c, next) => (c.req.path.endsWith("/messages") && c.req.method === "POST" ? next() : jsonBodies(c, next)));

  registerHealth(app);
  registerProblems(app);
  registerAdmin(app);
  registerLifecycle(app);
  registerTopics(app);
  registerProduce(app);
  registerRead(app);
  registerGroups(app);
  registerSubscriptions(app);
  registerTransactions(app);
  registerUsage(app);
  registerMetrics(app);
  registerDashboard(app);
  registerSqs(app);
  documentSqs(app);

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
  documentProblems(app.openAPIRegistry);
  // The document names the origin it was fetched from as its server, so a generated client
  // works against whichever deployment (or local server) served it.
  app.doc31("/openapi.json", (c) => ({
    openapi: "3.1.0",
    info: {
      title: "Reservoir",
      version: "1",
      description: "A serverless message queue and event log. Errors are application/problem+json with a stable `code`.",
      // No license has been chosen for the project yet: the document says so rather than guess one.
      license: { name: "Proprietary: no license granted yet", identifier: "LicenseRef-Proprietary" },
    },
    servers: [{ url: new URL(c.req.url).origin, description: "The server that answered this document" }],
  }));
  return app;
}

export type App = ReturnType<typeof createApp>;
