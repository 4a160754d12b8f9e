/** Counts every request by method, route pattern (never the raw path) and status. */
import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "../runtime.ts";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * Outermost middleware: by the time next() resolves, an error thrown anywhere below has been
 * answered (app.onError), so the status is the one the client gets. The route is the pattern
 * of the handler that matched (`/v1/topics/:topic/messages`); middleware patterns (`/v1/*`)
 * are skipped, and a path no handler matches is `unmatched`: labels stay bounded whatever
 * paths clients send.
 */
export const countRequests: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  const route = matchedRoutes(c).findLast((r) => r.method !== "ALL")?.path ?? "unmatched";
  const method = METHODS.has(c.req.method) ? c.req.method : "OTHER";
  // No metrics when the app answers without a runtime (the OpenAPI document built in process
  // for the SDK's types: client/scripts/openapi-types.ts).
  c.env?.metrics?.requests.inc({ method, route, status: c.res.status });
};
