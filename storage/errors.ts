/**
 * The one error family of Reservoir. Code that refuses a request throws a ReservoirError with
 * a stable `code`; functions/problem.ts alone maps codes to HTTP statuses and problem+json.
 */
export const errorCodes = {
  invalid_request: 400,
  malformed_json: 400,
  invalid_name: 400,
  partitions_cannot_shrink: 400,
  partition_out_of_range: 400,
  delay_too_long: 400,
  url_not_allowed: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  tenant_not_found: 404,
  key_not_found: 404,
  topic_not_found: 404,
  transaction_not_found: 404,
  partition_not_found: 404,
  subscription_not_found: 404,
  method_not_allowed: 405,
  topic_conflict: 409,
  message_too_large: 413,
  too_many_messages: 413,
  body_too_large: 413,
  too_many_receipts: 413,
  unsupported_media_type: 415,
  offset_out_of_range: 416,
  quota_exceeded: 429,
  internal_error: 500,
  service_unavailable: 503,
  /** The request overran its server-side deadline (functions/deadline.ts); retry it. */
  request_timeout: 503,
} as const;

export type ErrorCode = keyof typeof errorCodes;

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
