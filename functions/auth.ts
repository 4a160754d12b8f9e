/** Bearer authentication: tenant API keys on /v1/*, the operator token on /v1/admin/*. */
import type { MiddlewareHandler } from "hono";
import { ReservoirError } from "../storage/errors.ts";
import { allScopes, authenticate, tenantExists, type Scope } from "../storage/tenancy/tenants.ts";
import { secretsEqual } from "../storage/metadata/secrets.ts";
import { uncountRefusedRequest } from "../storage/usage/quota.ts";
import type { AppEnv } from "./runtime.ts";

function bearer(header: string | undefined): string | null {
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return match ? match[1] : null;
}

/**
 * What a request takes from its tenant's bytes bucket in the key check: a produce body's
 * declared length (the bytes the tenant sends). A produce without a Content-Length (chunked)
 * is charged its messages' bytes once parsed (routes/produce.ts); other requests take none.
 */
function producedBytes(method: string, path: string, contentLength: string | undefined): number {
  if (method !== "POST" || !path.endsWith("/messages")) return 0;
  const declared = Number(contentLength ?? "0");
  return Number.isSafeInteger(declared) && declared > 0 ? declared : 0;
}

/**
 * The header with which the operator token reads a tenant's resources through the tenant routes
 * (GET only): the dashboard's operator view. Without it the operator token is no tenant key (401).
 */
export const TENANT_HEADER = "reservoir-tenant";

/** Tenant ids are UUIDs (storage/metadata/secrets.ts); anything else names no tenant. */
const TENANT_ID = /^[0-9a-f-]{36}$/i;

export const requireTenant: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = bearer(c.req.header("authorization"));
  const asTenant = c.req.header(TENANT_HEADER);
  if (token && asTenant !== undefined && secretsEqual(token, c.env.adminToken)) {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      throw new ReservoirError(
        "insufficient_scope",
        `the operator token only reads a tenant's resources (GET with ${TENANT_HEADER}); changes take one of the tenant's API keys`,
      );
    }
    if (!TENANT_ID.test(asTenant) || !(await tenantExists(c.env.db, asTenant))) {
      throw new ReservoirError("tenant_not_found", `no tenant has the id named by ${TENANT_HEADER}`);
    }
    // Not the tenant's own request: no quota taken, no request or read counted in its usage.
    c.set("principal", { tenantId: asTenant, keyId: "operator", scopes: [...allScopes], quotas: {}, bytesCharged: false, operator: true });
    return next();
  }
  const principal = token
    ? await authenticate(c.env.db, token, producedBytes(c.req.method, c.req.path, c.req.header("content-length")))
    : null;
  if (!principal) throw new ReservoirError("unauthorized", "a valid API key is required (Authorization: Bearer <key>)");
  c.set("principal", principal);
  await next();
  // Refused by a quota past the key check (bytes, storage, topics): not a billable request.
  if (c.error instanceof ReservoirError && c.error.code === "quota_exceeded") await uncountRefusedRequest(c.env.db, principal.tenantId);
};

export const requireOperator: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = bearer(c.req.header("authorization"));
  if (!token || !secretsEqual(token, c.env.adminToken)) {
    throw new ReservoirError("unauthorized", "the operator token is required (Authorization: Bearer <token>)");
  }
  await next();
};

export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!c.get("principal").scopes.includes(scope)) {
      throw new ReservoirError("insufficient_scope", `this API key lacks the '${scope}' scope`);
    }
    await next();
  };
}
