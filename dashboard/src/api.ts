/** The dashboard's one door to the server: the public HTTP API, with the signed-in credential. */

export interface Session {
  token: string;
  /** The operator token reads every tenant; a tenant key reads its own. */
  role: "operator" | "tenant";
  /** Operator: the tenant whose resources the tenant routes read (Reservoir-Tenant). */
  tenantId?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(detail);
  }
}

export async function call<T = unknown>(session: Session | { token: string }, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${session.token}`, accept: "application/json" };
  if ("role" in session && session.role === "operator" && session.tenantId && !path.startsWith("/v1/admin/")) {
    headers["reservoir-tenant"] = session.tenantId;
  }
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const parsed = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new ApiError(res.status, parsed?.code ?? "error", parsed?.detail ?? `HTTP ${res.status}`);
  return parsed as T;
}

/** Which credential this is: the operator token answers the admin routes, a key the tenant routes. */
export async function signIn(token: string): Promise<Session> {
  try {
    await call({ token }, "GET", "/v1/admin/tenants");
    return { token, role: "operator" };
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
  }
  await call({ token }, "GET", "/v1/topics");
  return { token, role: "tenant" };
}

export const enc = encodeURIComponent;
