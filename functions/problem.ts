/** The one place errors become HTTP: RFC 9457 problem+json with a stable `code`. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { errorCodes, ReservoirError, type ErrorCode } from "../storage/errors.ts";

const titles: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export function problemResponse(code: ErrorCode, detail: string, extra: Record<string, unknown> = {}): Response {
  const status = errorCodes[code];
  const body = {
    type: `https://reservoir.dev/problems/${code.replaceAll("_", "-")}`,
    title: titles[status] ?? "Error",
    status,
    detail,
    code,
    ...extra,
  };
  const headers: Record<string, string> = { "content-type": "application/problem+json; charset=utf-8" };
  if (status === 503) headers["retry-after"] = "1";
  if (status === 401) headers["www-authenticate"] = 'Bearer realm="reservoir"';
  return new Response(JSON.stringify(body), { status, headers });
}

/** Maps anything thrown by a handler. Unknown errors are the service's fault: logged, 500. */
export function errorToResponse(error: unknown, c: Context): Response {
  if (error instanceof ReservoirError) {
    if (errorCodes[error.code] >= 500) logFailure(c, error);
    return problemResponse(error.code, error.detail, error.extra);
  }
  if (error instanceof HTTPException && error.status === 400) {
    // Hono's JSON validator throws this, and only this, for a body that is not JSON.
    return problemResponse("malformed_json", "the request body is not valid JSON");
  }
  logFailure(c, error);
  if (isDependencyFailure(error)) {
    return problemResponse("service_unavailable", "a storage dependency failed; retry the request");
  }
  return problemResponse("internal_error", "the service failed; the request may be retried");
}

/** Database and network errors carry a string `code` (SQLSTATE, errno) somewhere in their chain. */
function isDependencyFailure(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (typeof (e as { code?: unknown }).code === "string") return true;
  }
  return false;
}

function logFailure(c: Context, error: unknown): void {
  const causes: string[] = [];
  for (let e: unknown = error; e instanceof Error && causes.length < 4; e = e.cause) causes.push(e.message.split("\n")[0]);
  console.error(`${c.req.method} ${new URL(c.req.url).pathname} failed: ${causes.join(" <- ")}`);
}
