/**
 * Usage export: a tenant's own hourly rows (GET /v1/usage, manage scope) and the operator's
 * (GET /v1/admin/usage, any or every tenant), as JSON or CSV. The body is streamed page by
 * page (storage/usage/export.ts), so a large range never sits in memory whole.
 */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { type UsageRange, type UsageRow, usageFields, usageRows } from "../../storage/usage/export.ts";
import { requireScope } from "../auth.ts";
import type { AppEnv } from "../runtime.ts";
import { AdminUsageQuery, errorResponses, Usage, UsageQuery } from "../schemas.ts";

const content = {
  "application/json": { schema: Usage },
  "text/csv": {
    schema: { type: "string" as const, description: `A header row (${usageFields.join(",")}), then one row per tenant and hour` },
  },
};

const tenantUsage = createRoute({
  method: "get",
  path: "/v1/usage",
  operationId: "getUsage",
  summary: "The tenant's usage per UTC hour (from inclusive, to exclusive), as JSON or CSV",
  description:
    "Counted inside the transactions that commit the work: visible as soon as they commit. Rows are ordered by hour; the body is streamed.",
  security: [{ apiKey: [] }],
  middleware: [requireScope("manage")] as const,
  request: { query: UsageQuery },
  responses: { 200: { description: "Hourly usage rows", content }, ...errorResponses },
});

const adminUsage = createRoute({
  method: "get",
  path: "/v1/admin/usage",
  operationId: "getTenantsUsage",
  summary: "Usage per tenant and UTC hour (one tenant, or all), as JSON or CSV",
  description: "Rows are ordered by tenant, then hour; the body is streamed. An unknown tenant has no rows.",
  security: [{ operatorToken: [] }],
  request: { query: AdminUsageQuery },
  responses: { 200: { description: "Hourly usage rows", content }, ...errorResponses },
});

async function stream(c: Context<AppEnv>, range: UsageRange, format: "json" | "csv") {
  const rows = usageRows(c.env.db, range);
  // The first page is read before answering: a database failure then is a 503, not a cut body.
  let pending: IteratorResult<UsageRow> | null = await rows.next();
  const encoder = new TextEncoder();
  let count = 0;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(format === "csv" ? `${usageFields.join(",")}\n` : '{"usage":['));
    },
    async pull(controller) {
      // About a page per pull: the generator reads 1,000 rows per statement.
      const chunk: string[] = [];
      for (let i = 0; i < 1000; i++) {
        const next: IteratorResult<UsageRow> = pending ?? (await rows.next());
        pending = null;
        if (next.done) {
          if (format === "json") chunk.push("]}");
          controller.enqueue(encoder.encode(chunk.join("")));
          controller.close();
          return;
        }
        const row = next.value;
        if (format === "csv") chunk.push(`${usageFields.map((f) => csvCell(row[f])).join(",")}\n`);
        else chunk.push(`${count > 0 ? "," : ""}${JSON.stringify(row)}`);
        count++;
      }
      controller.enqueue(encoder.encode(chunk.join("")));
    },
    async cancel() {
      await rows.return(undefined);
    },
  });
  const type = format === "csv" ? "text/csv; charset=utf-8" : "application/json; charset=utf-8";
  return c.body(body, 200, { "content-type": type });
}

/** RFC 4180: quoted when it holds a comma, a quote or a line break (tenant ids could). */
function csvCell(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function registerUsage(app: OpenAPIHono<AppEnv>) {
  app.openapi(tenantUsage, async (c) => {
    const { from, to, format } = c.req.valid("query");
    // biome-ignore lint/suspicious/noExplicitAny: a streamed body is typed as neither schema
    return (await stream(c, { tenantId: c.get("principal").tenantId, from, to }, format)) as any;
  });
  app.openapi(adminUsage, async (c) => {
    const { tenant, from, to, format } = c.req.valid("query");
    // biome-ignore lint/suspicious/noExplicitAny: a streamed body is typed as neither schema
    return (await stream(c, { tenantId: tenant, from, to }, format)) as any;
  });
}
