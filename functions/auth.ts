/** Bearer authentication: tenant API keys on /v1/*, the operator token on /v1/admin/*. */
import type { MiddlewareHandler } from "hono";
import { ReservoirError } from "../storage/errors.ts";
import { authenticate, type Scope } from "../storage/tenancy/tenants.ts";
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

export const requireTenant: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = bearer(c.req.header("authorization"));
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
