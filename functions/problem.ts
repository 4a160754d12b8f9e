/**
 * The one place errors become HTTP: RFC 9457 problem+json with a stable `code`. The status of
 * each code of the error family (storage/errors.ts) is decided here, next to the mapping, and
 * each code is documented at `GET /problems/{code}` (the problem's `type`) and in
 * docs/problems.md (a test keeps the three in step).
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { describeError, ReservoirError, type ErrorCode } from "../storage/errors.ts";

export interface ProblemType {
  status: number;
  /** What the code means and what a client does about it. */
  description: string;
}

export const problemTypes: Record<ErrorCode, ProblemType> = {
  invalid_request: {
    status: 400,
    description:
      "The request does not match the API: a field is missing, of the wrong type or out of range, or a string holds U+0000 or an unpaired surrogate. `errors` lists the problems. Fix the request; repeating it fails again.",
  },
  malformed_json: { status: 400, description: "The body (or an ndjson line) is not valid JSON." },
  invalid_name: { status: 400, description: "A topic, group or subscription name does not match ^[A-Za-z0-9._-]{1,200}$." },
  partitions_cannot_shrink: { status: 400, description: "A topic's partition count may only grow." },
  partition_out_of_range: { status: 400, description: "A message names a partition the topic does not have." },
  delay_too_long: { status: 400, description: "A message is delayed (delaySeconds or deliverAt) more than 7 days ahead." },
  url_not_allowed: {
    status: 400,
    description:
      "A webhook URL resolves to a private, loopback or link-local address that RESERVOIR_WEBHOOK_ALLOW_PRIVATE does not allow, or does not resolve.",
  },
  unauthorized: {
    status: 401,
    description: "No credentials, or unknown or revoked ones: send Authorization: Bearer <API key> (the operator token on /v1/admin/*).",
  },
  insufficient_scope: {
    status: 403,
    description:
      "The API key lacks the scope the route needs: produce (producing, transactions), consume (reads, groups' receive, ack, nack, extend, seek, redrive, views) or manage (topics, group and subscription settings, usage). Keys get their scopes at creation.",
  },
  not_found: { status: 404, description: "No such route." },
  tenant_not_found: { status: 404, description: "No tenant has this id." },
  key_not_found: { status: 404, description: "The tenant has no API key with this id." },
  topic_not_found: { status: 404, description: "The tenant has no topic of this name (also when it was deleted while the request ran)." },
  transaction_not_found: {
    status: 404,
    description: "The tenant has no transaction with this id (also one that ended more than 7 days ago, or another tenant's).",
  },
  partition_not_found: { status: 404, description: "The topic has no partition of this number." },
  subscription_not_found: {
    status: 404,
    description: "The topic has no subscription (or group) of this name (also when it was deleted while the request ran).",
  },
  method_not_allowed: { status: 405, description: "The route exists but not with this method." },
  topic_conflict: { status: 409, description: "The topic exists with other settings; `existing` holds them." },
  transaction_not_open: {
    status: 409,
    description:
      "The transaction has ended: committed (rollback refused), rolled back or timed out (produce and commit refused); `state` says which. Begin a new one.",
  },
  receipt_expired: {
    status: 409,
    description:
      "A commit carried an ack whose lease has ended (timed out, nacked or redelivered): nothing of the commit took effect and the transaction is still open. `failed` lists the receipts.",
  },
  receipt_unknown: {
    status: 409,
    description:
      "A commit carried an ack that is not a receipt of this tenant's group of that name (forged, garbled, or of another group): nothing took effect and the transaction is still open. `failed` lists the receipts.",
  },
  message_too_large: { status: 413, description: "A message's key, value and headers exceed 1 MiB; `index` names it." },
  too_many_messages: { status: 413, description: "More than 1,000 messages in one produce request." },
  body_too_large: { status: 413, description: "The body exceeds the limit (8 MiB for produce, 1 MiB elsewhere)." },
  transaction_too_large: {
    status: 413,
    description:
      "The produce would take the transaction past 10,000 messages or 64 MiB of stored record bytes; `limit` names which. Nothing of the request was added; commit what is there, or roll back.",
  },
  too_many_receipts: { status: 413, description: "More receipts in one ack, nack or extend than allowed." },
  unsupported_media_type: {
    status: 415,
    description:
      "The body's Content-Type is not accepted: application/json (UTF-8) everywhere, application/x-ndjson too for produce. A request without a body may carry any Content-Type.",
  },
  request_timeout: {
    status: 408,
    description: "The request did not arrive completely in time (Node: the server's request timeout). Send it again.",
  },
  offset_out_of_range: { status: 416, description: "The offset is below the earliest retained one; `earliestOffset` says where to start." },
  expectation_failed: { status: 417, description: "The Expect header holds something other than 100-continue." },
  quota_exceeded: {
    status: 429,
    description:
      "The tenant exceeded a quota: requestsPerSecond or bytesPerSecond (token buckets shared by every instance, a burst of one second's worth), storageBytes (a produce that would store more) or topics (a topic creation past the count). Nothing was done and the request is not counted in usage. Retry after Retry-After (seconds; also `retryAfterSeconds`); other tenants are unaffected.",
  },
  too_many_transactions: {
    status: 429,
    description: "The tenant has 1,000 open transactions already; commit or roll back some (or let them time out) first.",
  },
  headers_too_large: { status: 431, description: "The request's header section is larger than the server accepts." },
  internal_error: {
    status: 500,
    description: "A bug in Reservoir, logged with the request. The request may or may not have taken effect.",
  },
  service_unavailable: {
    status: 503,
    description:
      "A dependency (the database or the object store) failed or did not answer in time; nothing was acknowledged. Retry after Retry-After.",
  },
  deadline_exceeded: {
    status: 503,
    description:
      "The request overran its server-side deadline (RESERVOIR_REQUEST_TIMEOUT_MS, 65 s by default, plus waitMs for a long-poll); the log names where it waited. A produce answered so may still commit: retry with the same idempotency keys. Retry after Retry-After.",
  },
};

const titles: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export const statusOf = (code: ErrorCode): number => problemTypes[code].status;
export const titleOf = (code: ErrorCode): string => titles[statusOf(code)] ?? "Error";

/** The problem's `type`: a URI of this service (relative, so it names whatever host answered). */
export const problemTypeUri = (code: ErrorCode): string => `/problems/${code}`;

/** The problem+json document of a code (also used outside Hono, e.g. by the Node client-error hook). */
export function problemBody(code: ErrorCode, detail: string, extra: Record<string, unknown> = {}) {
  const status = statusOf(code);
  return { type: problemTypeUri(code), title: titleOf(code), status, detail, code, ...extra };
}

export function problemHeaders(code: ErrorCode, extra: Record<string, unknown> = {}): Record<string, string> {
  const status = statusOf(code);
  const headers: Record<string, string> = { "content-type": "application/problem+json; charset=utf-8" };
  if (status === 503) headers["retry-after"] = "1";
  // A quota refusal says how long its bucket needs (storage/usage/quota.ts).
  if (status === 429) headers["retry-after"] = String(typeof extra.retryAfterSeconds === "number" ? extra.retryAfterSeconds : 1);
  if (status === 401) headers["www-authenticate"] = 'Bearer realm="reservoir"';
  return headers;
}

export function problemResponse(code: ErrorCode, detail: string, extra: Record<string, unknown> = {}): Response {
  return new Response(JSON.stringify(problemBody(code, detail, extra)), { status: statusOf(code), headers: problemHeaders(code, extra) });
}

/**
 * The codes of HTTPExceptions that Hono and @hono/zod-openapi throw before a handler runs
 * (their validators: a body that is not JSON, a media type they refuse, a body limit).
 */
const httpExceptionCodes: Record<number, ErrorCode> = {
  400: "invalid_request",
  401: "unauthorized",
  403: "insufficient_scope",
  404: "not_found",
  405: "method_not_allowed",
  413: "body_too_large",
  415: "unsupported_media_type",
};

/**
 * Maps anything thrown by a handler. A ReservoirError carries its code (the storage adapters
 * throw `unavailable` for their dependencies' failures); anything else is the service's own
 * fault — a bug — and is logged and answered 500, never dressed up as a retryable 503.
 */
export function errorToResponse(error: unknown, c: Context): Response {
  if (error instanceof ReservoirError) {
    if (statusOf(error.code) >= 500) logFailure(c, error);
    return problemResponse(error.code, error.detail, error.extra);
  }
  if (error instanceof HTTPException && error.status < 500) {
    if (error.status === 400 && /json/i.test(error.message)) {
      // Hono's JSON validator throws this for a body that is not JSON.
      return problemResponse("malformed_json", "the request body is not valid JSON");
    }
    const code = httpExceptionCodes[error.status] ?? "invalid_request";
    return problemResponse(code, error.message || titleOf(code));
  }
  logFailure(c, error);
  return problemResponse("internal_error", "the service failed; the request may be retried");
}

function logFailure(c: Context, error: unknown): void {
  console.error(`${c.req.method} ${new URL(c.req.url).pathname} failed: ${describeError(error)}`);
}
