/**
 * One error class for everything a call can fail with. A refusal by the service carries its
 * problem+json (`code`, `detail`, the HTTP `status`); a request that never got an answer (the
 * network, a timeout) has status 0 and code `network_error`. `retryable` says whether repeating
 * the same request may succeed: 5xx, 429 (after `retryAfterMs`) and network failures.
 */
import type { ProblemCode } from "./generated/openapi.ts";
import type { Problem } from "./types.ts";

/**
 * A problem code the service answers with, `network_error` when no answer came, or `http_<status>`
 * when the answer was not problem+json (a proxy's page). Open-ended, so a code a newer server
 * adds is still a string the SDK passes on.
 */
export type ErrorCode = ProblemCode | "network_error" | `http_${number}` | (string & {});

export class ReservoirError extends Error {
  override readonly name = "ReservoirError";
  /** The HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The problem's stable `code` (e.g. `topic_not_found`), or `network_error`. */
  readonly code: ErrorCode;
  readonly detail: string;
  /** Whether the same request may succeed if repeated. */
  readonly retryable: boolean;
  /** What the service asked to wait (Retry-After), in ms, if it said. */
  readonly retryAfterMs: number | undefined;
  /** The whole problem document (extra members such as `earliestOffset` included). */
  readonly problem: Problem | undefined;

  constructor(init: { status: number; code: ErrorCode; detail: string; retryAfterMs?: number; problem?: Problem; cause?: unknown }) {
    super(
      `${init.code}${init.status ? ` (${init.status})` : ""}: ${init.detail}`,
      init.cause === undefined ? undefined : { cause: init.cause },
    );
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    this.retryAfterMs = init.retryAfterMs;
    this.problem = init.problem;
    this.retryable = init.status === 0 || init.status === 429 || init.status >= 500;
  }
}

/** Whether `error` is a ReservoirError with the given code. */
export function isProblem(error: unknown, code?: ErrorCode): error is ReservoirError {
  return error instanceof ReservoirError && (code === undefined || error.code === code);
}

/** Retry-After as ms: delta-seconds or an HTTP date; undefined if absent or unreadable. */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The error of a response that is not 2xx, from its problem+json body (or what came instead). */
export async function errorFromResponse(res: Response): Promise<ReservoirError> {
  const text = await res.text().catch(() => "");
  let problem: Problem | undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === "object" && typeof (parsed as { code?: unknown }).code === "string") problem = parsed as Problem;
  } catch {
    // Not JSON (a proxy's error page): the status speaks for it.
  }
  return new ReservoirError({
    status: res.status,
    code: problem?.code ?? `http_${res.status}`,
    detail: problem?.detail ?? (text.slice(0, 500) || res.statusText),
    retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
    problem,
  });
}
