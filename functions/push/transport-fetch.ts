/**
 * The webhook transport for Workers: fetch after the address guard. Workers have no way to pin
 * the connection to the checked address, but they cannot reach private networks either (see
 * docs/webhooks.md, "Address guard"). Also the place for what both transports say on failure.
 */
import { ReservoirError } from "../../storage/errors.ts";
import type { AddressGuard } from "./address-guard.ts";
import type { WebhookOutcome, WebhookTransport } from "./transport.ts";

/** The body is ignored; reading a little lets the connection end cleanly, reading all could take forever. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

export function fetchTransport(guard: AddressGuard, fetchFn: typeof fetch = fetch): WebhookTransport {
  return async ({ url, headers, body, timeoutMs, keepBody }) => {
    try {
      await guard.check(url);
      const response = await fetchFn(url, {
        method: "POST",
        headers,
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      const kept = await discard(response.body, keepBody === true);
      return {
        kind: "response",
        status: response.status,
        retryAfter: response.headers.get("retry-after"),
        ...(kept !== undefined && { body: kept }),
      };
    } catch (error) {
      return failure(error, timeoutMs);
    }
  };
}

/** A body that fails or times out after the status arrived changes nothing: the status is the answer. */
async function discard(body: ReadableStream<Uint8Array> | null, keep: boolean): Promise<string | undefined> {
  if (!body) return keep ? "" : undefined;
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let kept = "";
  let read = 0;
  try {
    while (read <= MAX_RESPONSE_BYTES) {
      const { done, value } = await reader.read();
      if (done) return keep ? kept + decoder.decode() : undefined;
      read += value.byteLength;
      if (keep && read <= MAX_RESPONSE_BYTES) kept += decoder.decode(value, { stream: true });
    }
  } catch {
    return keep ? kept : undefined;
  }
  await reader.cancel().catch(() => undefined);
  return keep ? kept : undefined;
}

const messages: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection reset",
  UND_ERR_SOCKET: "connection closed by the peer",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host not found (DNS temporarily failed)",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
};
const timeoutCodes = new Set(["ETIMEDOUT", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);
const tlsCode = /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED)/;

/** The errors an attempt failed with: the error, its causes, and the parts of an AggregateError. */
function chain(error: unknown, depth = 0): unknown[] {
  if (depth > 5 || error === null || typeof error !== "object") return [error];
  const parts = error instanceof AggregateError ? error.errors.flatMap((e) => chain(e, depth + 1)) : [];
  const cause = "cause" in error && error.cause !== undefined ? chain(error.cause, depth + 1) : [];
  return [error, ...cause, ...parts];
}

/** A short reason for the delivery log and the dead letter's x-reservoir-error. */
export function failure(error: unknown, timeoutMs: number): WebhookOutcome {
  const errors = chain(error);
  const refused = errors.find((e) => e instanceof ReservoirError && e.code === "url_not_allowed");
  if (refused) return { kind: "error", error: `url_not_allowed: ${(refused as ReservoirError).detail}` };
  const named = (e: unknown, key: "name" | "code") =>
    e !== null && typeof e === "object" && key in e ? String((e as Record<string, unknown>)[key]) : undefined;
  if (errors.some((e) => named(e, "name") === "TimeoutError" || timeoutCodes.has(named(e, "code") ?? ""))) {
    return { kind: "error", error: `timed out after ${timeoutMs} ms` };
  }
  for (const e of errors) {
    const code = named(e, "code");
    if (code && messages[code]) return { kind: "error", error: messages[code] };
    if (code && tlsCode.test(code)) return { kind: "error", error: `TLS failure: ${(e as Error).message}` };
  }
  const innermost = errors.findLast((e) => e instanceof Error) as Error | undefined;
  const text = innermost?.message || String(error);
  return { kind: "error", error: text.length > 200 ? `${text.slice(0, 199)}…` : text };
}
