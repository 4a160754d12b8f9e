/** Operator routes: tenants, their keys, and the instance's counters. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { ReservoirError } from "../../storage/errors.ts";
import {
  allScopes,
  createKey,
  createTenant,
  deleteKey,
  getTenant,
  listTenants,
  tenantExists,
  updateQuotas,
} from "../../storage/tenancy/tenants.ts";
import type { AppEnv } from "../runtime.ts";
import { CreatedKey, CreatedTenant, CreateKey, CreateTenant, errorResponses, PatchTenant, TenantView } from "../schemas.ts";

const security = [{ operatorToken: [] }];
const TenantParams = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });

const createTenantRoute = createRoute({
  method: "post",
  path: "/v1/admin/tenants",
  operationId: "createTenant",
  summary: "Create a tenant and its first API key (all scopes)",
  security,
  request: { body: { content: { "application/json": { schema: CreateTenant } }, required: true } },
  responses: { 201: { description: "Created", content: { "application/json": { schema: CreatedTenant } } }, ...errorResponses },
});

const createKeyRoute = createRoute({
  method: "post",
  path: "/v1/admin/tenants/{id}/keys",
  operationId: "createApiKey",
  summary: "Create another API key for a tenant (default: all scopes)",
  security,
  request: { params: TenantParams, body: { content: { "application/json": { schema: CreateKey } }, required: false } },
  responses: { 201: { description: "Created", content: { "application/json": { schema: CreatedKey } } }, ...errorResponses },
});

const deleteKeyRoute = createRoute({
  method: "delete",
  path: "/v1/admin/tenants/{id}/keys/{keyId}",
  operationId: "revokeApiKey",
  summary: "Revoke an API key at once",
  security,
  request: { params: TenantParams.extend({ keyId: z.string().openapi({ param: { name: "keyId", in: "path" } }) }) },
  responses: { 204: { description: "Revoked" }, ...errorResponses },
});

/** Tenants listed per call at most. */
const TENANT_LIST_LIMIT = 1000;

const listTenantsRoute = createRoute({
  method: "get",
  path: "/v1/admin/tenants",
  operationId: "listTenants",
  summary: "Tenants by creation time (at most 1,000): name, quotas, creation time",
  security,
  responses: {
    200: {
      description: "The tenants",
      content: { "application/json": { schema: z.object({ tenants: z.array(TenantView) }).openapi("TenantList") } },
    },
    401: errorResponses[401],
  },
});

const getTenantRoute = createRoute({
  method: "get",
  path: "/v1/admin/tenants/{id}",
  operationId: "getTenant",
  summary: "A tenant: name, quotas, creation time",
  security,
  request: { params: TenantParams },
  responses: { 200: { description: "The tenant", content: { "application/json": { schema: TenantView } } }, ...errorResponses },
});

const patchTenantRoute = createRoute({
  method: "patch",
  path: "/v1/admin/tenants/{id}",
  operationId: "updateTenantQuotas",
  summary: "Change a tenant's quotas (a null removes one; absent ones stay)",
  description: "Every instance applies the new quotas from the tenant's next request (the key check reads them).",
  security,
  request: { params: TenantParams, body: { content: { "application/json": { schema: PatchTenant } }, required: true } },
  responses: { 200: { description: "The tenant as changed", content: { "application/json": { schema: TenantView } } }, ...errorResponses },
});

const Histogram = z.object({
  boundsMs: z.array(z.number().nullable()),
  counts: z.array(z.number().int()),
  count: z.number().int(),
  sumMs: z.number(),
});

const metricsRoute = createRoute({
  method: "get",
  path: "/v1/admin/metrics",
  operationId: "getInstanceMetrics",
  summary:
    "This instance's counters: produce (flushes, PUTs, commits, messages, bytes), webhooks (attempts, claims, settles), object store requests, db statements",
  description:
    "latency holds cumulative histograms (ms, log-spaced buckets, the last bound null = +Infinity) of each flush's PUT and commit and of each produce request's wait for its offsets; subtract two snapshots to get an interval's distribution.",
  security,
  responses: {
    200: {
      description: "Counters since the instance started",
      content: {
        "application/json": {
          schema: z.object({
            produce: z.record(z.string(), z.number()),
            webhooks: z.record(z.string(), z.number()),
            store: z.object({ puts: z.number(), gets: z.number() }),
            db: z.object({ statements: z.number() }),
            latency: z.record(z.string(), Histogram),
          }),
        },
      },
    },
    401: errorResponses[401],
  },
});

export function registerAdmin(app: OpenAPIHono<AppEnv>) {
  app.openapi(createTenantRoute, async (c) => {
    const body = c.req.valid("json");
    const created = await createTenant(c.env.db, body.name, body.quotas ?? {}, c.env.keySecret);
    return c.json(created, 201);
  });

  app.openapi(listTenantsRoute, async (c) => c.json({ tenants: await listTenants(c.env.db, TENANT_LIST_LIMIT) }, 200));

  app.openapi(getTenantRoute, async (c) => {
    const { id } = c.req.valid("param");
    const found = await getTenant(c.env.db, id);
    if (!found) throw new ReservoirError("tenant_not_found", `tenant '${id}' does not exist`);
    return c.json(found, 200);
  });

  app.openapi(patchTenantRoute, async (c) => {
    const { id } = c.req.valid("param");
    const changed = await updateQuotas(c.env.db, id, c.req.valid("json").quotas);
    if (!changed) throw new ReservoirError("tenant_not_found", `tenant '${id}' does not exist`);
    return c.json(changed, 200);
  });

  app.openapi(createKeyRoute, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json") ?? {};
    if (!(await tenantExists(c.env.db, id))) throw new ReservoirError("tenant_not_found", `tenant '${id}' does not exist`);
    return c.json(await createKey(c.env.db, id, body.scopes ?? [...allScopes], c.env.keySecret), 201);
  });

  app.openapi(deleteKeyRoute, async (c) => {
    const { id, keyId } = c.req.valid("param");
    if (!(await tenantExists(c.env.db, id))) throw new ReservoirError("tenant_not_found", `tenant '${id}' does not exist`);
    if (!(await deleteKey(c.env.db, id, keyId))) throw new ReservoirError("key_not_found", `key '${keyId}' does not exist`);
    return c.body(null, 204);
  });

  app.openapi(metricsRoute, (c) => {
    const { putMs, commitMs, submitMs } = c.env.batcher.latency;
    return c.json(
      {
        produce: { ...c.env.batcher.stats },
        webhooks: { ...c.env.push.stats },
        store: { ...c.env.counters.store },
        db: { statements: c.env.counters.dbStatements },
        latency: { putMs: putMs.snapshot(), commitMs: commitMs.snapshot(), produceWaitMs: submitMs.snapshot() },
      },
      200,
    );
  });
}
