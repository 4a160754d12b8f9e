/**
 * Completes the OpenAPI document: every route lists every status it can answer, derived from
 * what the route is (authenticated, scoped, with a body, with parameters, reaching storage)
 * rather than repeated by hand in each route, with the codes of each status from the one table
 * in problem.ts. A route's own description of a status (409, 416, ...) is kept.
 */
import { z, type OpenAPIHono } from "@hono/zod-openapi";
import { TENANT_HEADER } from "./auth.ts";
import { errorCodeNames } from "../storage/errors.ts";
import { problemTypes } from "./problem.ts";
import { problemContent } from "./schemas.ts";

/** Tenant routes open to any key, whatever its scopes. */
const UNSCOPED = new Set(["get /v1/topics", "get /v1/topics/{topic}"]);

const summaries: Record<number, string> = {
  400: "The request does not match the API",
  401: "Missing or unknown credentials",
  403: "The API key lacks the scope this route needs",
  404: "Not found (also another tenant's resource, or one deleted while the request ran)",
  413: "The body exceeds its limit",
  415: "The body is not application/json",
  431: "The request's headers are too large (the HTTP layer refuses it before any route runs)",
  429: "A quota of the tenant is exhausted (requestsPerSecond, bytesPerSecond, storageBytes, topics); retry after Retry-After",
  500: "A bug in Reservoir (logged)",
  503: "The database or the object store failed; nothing was acknowledged; retry after Retry-After",
};

function response(status: number) {
  const codes = errorCodeNames.filter((code) => problemTypes[code].status === status);
  return { description: `${summaries[status] ?? "Refused"}: ${codes.map((c) => `\`${c}\``).join(", ")}`, content: problemContent };
}

interface RouteLike {
  method: string;
  path: string;
  security?: Record<string, unknown>[];
  request?: { params?: unknown; query?: unknown; body?: unknown; headers?: unknown };
  responses: Record<string, unknown>;
}

const operatorReadHeaders = z.object({
  [TENANT_HEADER]: z.string().optional().openapi({
    description:
      "With the operator token instead of an API key: the id of the tenant whose resources to read (GET only; nothing is metered). An unknown id: 404 tenant_not_found.",
  }),
});

export function documentProblems(registry: OpenAPIHono["openAPIRegistry"]): void {
  for (const definition of registry.definitions) {
    if (definition.type !== "route") continue;
    const route = definition.route as unknown as RouteLike;
    const statuses = new Set<number>([500]);
    if (!route.path.startsWith("/problems")) statuses.add(503);
    const schemes = (route.security ?? []).flatMap((s) => Object.keys(s));
    // A tenant route that only reads also takes the operator token with the tenant's id (auth.ts).
    if (route.method === "get" && schemes.includes("apiKey")) {
      route.security = [...(route.security ?? []), { operatorToken: [] }];
      route.request = { ...route.request, headers: operatorReadHeaders };
      statuses.add(404);
    }
    if (schemes.length > 0) statuses.add(401);
    if (schemes.includes("apiKey") && !UNSCOPED.has(`${route.method} ${route.path}`)) statuses.add(403);
    // Every key check takes from the tenant's requests bucket (storage/usage/quota.ts).
    if (schemes.includes("apiKey")) statuses.add(429);
    if (route.request?.params || route.request?.query || route.request?.body) statuses.add(400);
    if (route.path.includes("{")) statuses.add(404);
    if (route.request?.body) {
      statuses.add(413);
      statuses.add(415);
    }
    // Any route may meet the HTTP layer's own refusals; say so where nothing else is a 4xx (a
    // client generator and the linter want every operation to name one).
    if (![...statuses].some((s) => s >= 400 && s < 500) && !Object.keys(route.responses).some((s) => s.startsWith("4"))) statuses.add(431);
    for (const status of [...statuses].sort()) route.responses[status] ??= response(status);
  }
}
