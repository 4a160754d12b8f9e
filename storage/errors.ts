/**
 * The one error family of Reservoir. Code that refuses a request throws a ReservoirError with
 * a stable `code`; adapters of the database and the object store turn their failures into
 * `unavailable(...)` where they happen. functions/problem.ts alone maps codes to HTTP statuses
 * and problem+json (docs/problems.md documents each); anything else thrown is a bug: a 500.
 */
export const errorCodeNames = [
  "invalid_request",
  "malformed_json",
  "invalid_name",
  "partitions_cannot_shrink",
  "partition_out_of_range",
  "delay_too_long",
  "url_not_allowed",
  "unauthorized",
  "insufficient_scope",
  "not_found",
  "tenant_not_found",
  "key_not_found",
  "topic_not_found",
  "transaction_not_found",
  "partition_not_found",
  "subscription_not_found",
  "method_not_allowed",
  "topic_conflict",
  "transaction_not_open",
  "receipt_expired",
  "receipt_unknown",
  "message_too_large",
  "too_many_messages",
  "body_too_large",
  "too_many_receipts",
  "transaction_too_large",
  "unsupported_media_type",
  "request_timeout",
  "deadline_exceeded",
  "offset_out_of_range",
  "expectation_failed",
  "quota_exceeded",
  "too_many_transactions",
  "headers_too_large",
  "internal_error",
  "service_unavailable",
] as const;

export type ErrorCode = (typeof errorCodeNames)[number];

export class ReservoirError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    /** Extra members of the problem document, e.g. `{ earliestOffset }`. */
    readonly extra: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(detail, options);
    this.name = "ReservoirError";
  }
}

/** A failure of the service itself (object store or database): the client may retry. */
export function unavailable(detail: string, cause?: unknown): ReservoirError {
  return new ReservoirError("service_unavailable", detail, {}, { cause });
}

/** An error and its causes on one line ("a <- b <- c"), for logs. */
export function describeError(error: unknown): string {
  const causes: string[] = [];
  for (let e: unknown = error; e instanceof Error && causes.length < 4; e = e.cause) causes.push(e.message.split("\n")[0]);
  return causes.join(" <- ") || String(error);
}
