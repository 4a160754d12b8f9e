/** JSON requests over a keep-alive agent, timed: for benchmarks that need response bodies. */
import { type Agent, request } from "node:http";
import { BATCHES_TYPE, decodeBatchesAnswer } from "../../client/src/batches.ts";
import { percentile } from "./load.ts";
import { CALL_TIMEOUT_MS, CallTimeout, withTimeout } from "./timeout.ts";

export interface JsonResponse<T = any> {
  status: number;
  /** The parsed body (undefined when empty or not JSON). */
  body: T;
  /** Wall time from sending to the end of the response body. */
  ms: number;
}

/**
 * One request; it fails with a CallTimeout naming it (and its socket is destroyed) when no whole
 * answer came within `timeoutMs` (default: CALL_TIMEOUT_MS plus the body's `waitMs`, if any).
 */
export function requestJson<T = any>(
  agent: Agent,
  method: string,
  url: URL,
  headers: Record<string, string>,
  body?: unknown,
  timeoutMs = CALL_TIMEOUT_MS + longPollMs(url, body),
): Promise<JsonResponse<T>> {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  const t0 = performance.now();
  let req: ReturnType<typeof request> | undefined;
  const answered = new Promise<JsonResponse<T>>((resolve, reject) => {
    req = request(url, { method, agent, headers: payload ? { ...headers, "content-length": payload.length } : headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const bytes = Buffer.concat(chunks);
        const type = res.headers["content-type"];
        let parsed: any;
        try {
          parsed =
            type === RAW_MESSAGES_TYPE
              ? parseRaw(bytes)
              : type === BATCHES_TYPE
                ? decodeBatchesAnswer(bytes) // the SDK's decoder: values as bytes (`value`)
                : bytes.length
                  ? JSON.parse(bytes.toString("utf8"))
                  : undefined;
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, ms: performance.now() - t0 });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
  const what = `${method} ${url.pathname}${url.search}${payload && payload.length <= 200 ? ` ${payload.toString("utf8")}` : ""}`;
  return withTimeout(what, answered, timeoutMs, (error) => req?.destroy(error)).catch((error: unknown) => {
    // Name the request that failed (a socket error alone does not say which).
    if (error instanceof CallTimeout) throw error;
    throw new Error(`${what}: ${(error as Error).message}`, { cause: error });
  });
}

export const RAW_MESSAGES_TYPE = "application/vnd.reservoir.messages";

/**
 * Reservoir's raw answer (Accept: application/vnd.reservoir.messages): the JSON head, and each
 * message's value as `valueBytes`, a view of the body (no string per value, as a byte-oriented
 * client of the other systems gets its payloads).
 */
function parseRaw(bytes: Buffer): any {
  const newline = bytes.indexOf(0x0a);
  const head = JSON.parse(bytes.toString("utf8", 0, newline));
  let at = newline + 1;
  for (const m of head.messages) {
    m.valueBytes = bytes.subarray(at, at + m.valueLength);
    at += m.valueLength;
  }
  return head;
}

export { BATCHES_TYPE };

/** The long-poll wait a request asks the server for (Reservoir's `waitMs`, in the body or the query). */
function longPollMs(url: URL, body: unknown): number {
  const waitMs =
    body && typeof body === "object" && !Buffer.isBuffer(body) ? (body as { waitMs?: unknown }).waitMs : url.searchParams.get("waitMs");
  return Number(waitMs) || 0;
}

/** p50/p99/max/mean of a list of latencies (ms), rounded to 0.01 ms. */
export function latencySummary(ms: number[]): { calls: number; p50: number; p99: number; max: number; mean: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  const r = (x: number) => Number(x.toFixed(2));
  const mean = sorted.length === 0 ? NaN : sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return {
    calls: sorted.length,
    p50: r(percentile(sorted, 50)),
    p99: r(percentile(sorted, 99)),
    max: r(sorted.at(-1) ?? NaN),
    mean: r(mean),
  };
}
