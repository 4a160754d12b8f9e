/** Bearer authentication: tenant API keys on /v1/*, the operator token on /v1/admin/*. */
import type { Context, MiddlewareHandler, Next } from "hono";
import { ReservoirError } from "../storage/errors.ts";
import { allScopes, authenticateHash, type Principal, type Scope, tenantExists } from "../storage/tenancy/tenants.ts";
import { type DeferredKeyCheck, KeyCheckRefused, mayDeferKeyCheck } from "../storage/tenancy/deferred-key-check.ts";
import type { KnownKey } from "../storage/tenancy/known-keys.ts";
import { secretsEqual, sha256Hex } from "../storage/metadata/secrets.ts";
import { uncountRefusedRequest } from "../storage/usage/quota.ts";
import type { AppEnv } from "./runtime.ts";

function bearer(header: string | undefined): string | null {
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return match ? match[1] : null;
}

/** POST /v1/topics/{topic}/messages (the only POST whose path ends so). */
function isProduce(method: string, path: string): boolean {
  return method === "POST" && path.endsWith("/messages");
}

/**
 * The requests that may leave their key check to the statements that do their work: a produce
 * (its flush commit), a receive and an ack (their lease and ack statements). Each vouches for
 * the key before it changes anything (storage/tenancy/tenants.ts, DeferredKeyCheck).
 */
function mayDeferTo(method: string, path: string): boolean {
  return isProduce(method, path) || (method === "POST" && /\/groups\/[^/]+\/(receive|ack)$/.test(path));
}

/**
 * What a request takes from its tenant's bytes bucket in the key check: a produce body's
 * declared length (the bytes the tenant sends). A produce without a Content-Length (chunked)
 * is charged its messages' bytes once parsed (routes/produce.ts); other requests take none.
 */
function producedBytes(method: string, path: string, contentLength: string | undefined): number {
  if (!isProduce(method, path)) return 0;
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
  if (!token) throw unauthorized();
  const hash = sha256Hex(token);
  const known = mayDeferTo(c.req.method, c.req.path) ? c.env.knownKeys.get(hash) : undefined;
  if (known && mayDeferKeyCheck(known.quotas)) return deferKeyCheck(c, next, known);
  c.set("principal", await checkKey(c, hash));
  await next();
  // Refused by a quota past the key check (bytes, storage, topics): not a billable request.
  if (isQuotaRefusal(c.error)) await uncountRefusedRequest(c.env.db, c.get("principal").tenantId);
};

/**
 * A request of mayDeferTo by a key this instance has seen pass, of a tenant without rate or
 * storage quotas: the first statement that changes something checks the key (storage/tenancy/
 * deferred-key-check.ts), one statement and one wait for the database fewer per request.
 * A request refused before a statement vouched for its key takes the key check once it is
 * answered, so that a revoked key answers 401 whatever else was wrong with the request (its
 * topic, its body, its receipts), and it is counted as before.
 * One that failed on our side (5xx: the database or the store failing, nothing stored) keeps its
 * answer: a key check would wait on the same failure, and a retry is checked anyway.
 */
async function deferKeyCheck(c: Context<AppEnv>, next: Next, known: KnownKey): Promise<void> {
  const deferred: DeferredKeyCheck = { keyId: known.keyId };
  c.set("principal", { ...known, bytesCharged: false, deferred });
  await next();
  if (deferred.outcome === undefined && c.res.status < 500) await confirmKey(c);
  if (isQuotaRefusal(c.error) && deferred.outcome === "checked") await uncountRefusedRequest(c.env.db, known.tenantId);
}

/**
 * Runs a handler that may leave its key check to its statements. One that found the key no
 * longer holds (revoked, or its tenant gained a quota) changed nothing: the key check runs (401
 * or 429 if so), and the handler again, as an ordinary request under what the check found.
 */
export async function withDeferredKeyCheck<T>(c: Context<AppEnv>, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (!(error instanceof KeyCheckRefused)) throw error;
    await confirmKey(c);
    return run();
  }
}

/**
 * Runs a deferred key check now (a no-op when none is pending): before work no statement vouches
 * for (a produce into a transaction, a consumer group created on first use), or after a
 * statement refused the key. Throws as the key check does; on success the request goes on as an
 * ordinary one, under what the check found.
 */
export async function confirmKey(c: Context<AppEnv>): Promise<void> {
  const deferred = c.get("principal").deferred;
  if (!deferred || deferred.outcome !== undefined) return;
  deferred.outcome = "refused";
  const hash = sha256Hex(bearer(c.req.header("authorization")) ?? "");
  const principal = await checkKey(c, hash);
  deferred.outcome = "checked";
  c.set("principal", principal);
}

/** The key check's statement; remembers a key that passed it (for later requests), forgets one that did not. */
async function checkKey(c: Context<AppEnv>, hash: string): Promise<Principal> {
  const principal = await authenticateHash(c.env.db, hash, producedBytes(c.req.method, c.req.path, c.req.header("content-length")));
  if (!principal) {
    c.env.knownKeys.forget(hash);
    throw unauthorized();
  }
  c.env.knownKeys.remember(hash, principal);
  return principal;
}

function unauthorized(): ReservoirError {
  return new ReservoirError("unauthorized", "a valid API key is required (Authorization: Bearer <key>)");
}

function isQuotaRefusal(error: unknown): boolean {
  return error instanceof ReservoirError && error.code === "quota_exceeded";
}

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
