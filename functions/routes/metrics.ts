/**
 * GET /metrics (API.md "Operations"): the Prometheus text exposition, for the operator token.
 * Counters and histograms are this instance's (a Node process; on Workers, the isolate that
 * answers); consumer lag and storage are read from the database here, with bounded statements,
 * and the read cache's gauges from the instance.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { largestLags } from "../../storage/groups/lag-report.ts";
import { objectsByTenant } from "../../storage/lifecycle/storage-report.ts";
import type { AppEnv } from "../runtime.ts";
import { errorResponses } from "../schemas.ts";

/** Rows a scrape reads at most per gauge family: the largest lags, the largest tenants. */
const SCRAPE_ROWS = 1000;

const metricsRoute = createRoute({
  method: "get",
  path: "/metrics",
  operationId: "getPrometheusMetrics",
  summary: "Prometheus text exposition: requests, produce and receive latency, flushes, messages, webhooks, consumer lag, storage",
  description:
    "Counters and histograms count the answering instance's work since it started (a Node process, or on Workers the isolate that answers: sum over instances in the query). Consumer lag (the 1,000 largest) and storage (the 1,000 largest tenants) are read from the database at each scrape.",
  security: [{ operatorToken: [] }],
  responses: {
    200: {
      description: "The text exposition format, version 0.0.4",
      content: { "text/plain": { schema: z.string().openapi({ example: "# TYPE reservoir_http_requests_total counter" }) } },
    },
    401: errorResponses[401],
  },
});

export function registerMetrics(app: OpenAPIHono<AppEnv>) {
  app.openapi(metricsRoute, async (c) => {
    const { metrics, db } = c.env;
    const [lags, storage] = await Promise.all([largestLags(db, SCRAPE_ROWS), objectsByTenant(db, SCRAPE_ROWS)]);
    metrics.consumerLag.reset();
    for (const l of lags) metrics.consumerLag.set(l.lag, { tenant: l.tenantId, topic: l.topic, group: l.group });
    metrics.storageObjects.reset();
    metrics.storageBytes.reset();
    for (const s of storage) {
      metrics.storageObjects.set(s.objects, { tenant: s.tenantId });
      metrics.storageBytes.set(s.bytes, { tenant: s.tenantId });
    }
    metrics.readCacheBytes.set(c.env.cache.bytes);
    metrics.readCacheMaxBytes.set(c.env.cache.maxBytes);
    metrics.readCacheEntries.set(c.env.cache.size);
    const text = await metrics.registry.render();
    return c.text(text, 200, { "content-type": metrics.registry.contentType });
  });
}
