import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { unavailable } from "../../storage/errors.ts";
import type { AppEnv } from "../runtime.ts";
import { problemContent } from "../schemas.ts";

const health = createRoute({
  method: "get",
  path: "/healthz",
  operationId: "getHealth",
  security: [],
  summary: "Liveness and readiness: the database and the object store answer",
  responses: {
    200: { description: "Healthy", content: { "application/json": { schema: z.object({ ok: z.literal(true) }) } } },
    503: { description: "A dependency does not answer", content: problemContent },
  },
});

export function registerHealth(app: OpenAPIHono<AppEnv>) {
  app.openapi(health, async (c) => {
    try {
      await Promise.all([c.env.db.execute(sql`SELECT 1`), c.env.store.check()]);
    } catch (error) {
      throw unavailable("the database or the object store does not answer", error);
    }
    return c.json({ ok: true as const }, 200);
  });
}
