/** Operator routes of the storage lifecycle (API.md "Storage lifecycle (operator)"): run a pass now, report storage. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { unavailable } from "../../storage/errors.ts";
import { maintainIfFree } from "../../storage/lifecycle/maintenance.ts";
import { storageByTenant } from "../../storage/lifecycle/storage-report.ts";
import type { AppEnv } from "../runtime.ts";
import { errorResponses } from "../schemas.ts";

const security = [{ operatorToken: [] }];
const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });

/** How long the route waits for a pass another instance (or the timer) is running to end. */
const WAIT_FOR_PASS_MS = 30_000;
const POLL_MS = 100;

const Counts = (names: string[]) => z.object(Object.fromEntries(names.map((n) => [n, z.number().int()])));

const MaintenanceRequest = z
  .object({
    asOf: z
      .number()
      .int()
      .min(0)
      .max(8_640_000_000_000_000)
      .optional()
      .openapi({ description: "Judge retention by time as of this instant (ms; default now). The grace period is always real time." }),
  })
  .strict()
  .openapi("MaintenanceRequest");

const MaintenanceReport = z
  .object({
    retention: Counts(["batches", "bytes"]),
    compaction: Counts(["segmentsIn", "segmentsOut", "bytes"]),
    collected: Counts(["objects", "bytes"]),
    orphans: Counts(["objects", "bytes"]),
  })
  .openapi("MaintenanceReport");

const StorageUsage = z.object({ objects: z.number().int(), bytes: z.number().int(), liveBytes: z.number().int() });
const StorageReport = StorageUsage.extend({ tenants: z.array(StorageUsage.extend({ tenantId: z.string() })) }).openapi("StorageReport");

const maintenanceRoute = createRoute({
  method: "post",
  path: "/v1/admin/maintenance",
  operationId: "runMaintenance",
  summary: "Run one maintenance pass now (retention, deleted topics, compaction, orphans) and report what it did",
  description: `Waits up to ${WAIT_FOR_PASS_MS / 1000} s for a pass another instance is running; past that, 503 with Retry-After.`,
  security,
  request: { body: { content: json(MaintenanceRequest), required: false } },
  responses: { 200: { description: "What this pass did", content: json(MaintenanceReport) }, ...errorResponses },
});

const storageRoute = createRoute({
  method: "get",
  path: "/v1/admin/storage",
  operationId: "getStorage",
  summary: "Segment objects, their bytes and the bytes index rows still reference, in all and per tenant",
  security,
  responses: { 200: { description: "Storage", content: json(StorageReport) }, 401: errorResponses[401] },
});

export function registerLifecycle(app: OpenAPIHono<AppEnv>) {
  app.openapi(maintenanceRoute, async (c) => {
    const { asOf } = c.req.valid("json") ?? {};
    const io = { db: c.env.db, store: c.env.store, now: () => c.env.clock.now() };
    const giveUpAt = c.env.clock.now() + WAIT_FOR_PASS_MS;
    for (;;) {
      const report = await maintainIfFree(io, { ...c.env.lifecycle, asOf });
      if (report) return c.json(report, 200);
      if (c.env.clock.now() > giveUpAt) throw unavailable("another maintenance pass is still running; retry later");
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  });

  app.openapi(storageRoute, async (c) => {
    const tenants = await storageByTenant(c.env.db);
    const sum = (k: "objects" | "bytes" | "liveBytes") => tenants.reduce((total, t) => total + t[k], 0);
    return c.json({ objects: sum("objects"), bytes: sum("bytes"), liveBytes: sum("liveBytes"), tenants }, 200);
  });
}
