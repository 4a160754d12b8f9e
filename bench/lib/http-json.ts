/** JSON requests over a keep-alive agent, timed: for benchmarks that need response bodies. */
import { Agent, request } from "node:http";
import { percentile } from "./load.ts";

export interface JsonResponse<T = any> {
  status: number;
  /** The parsed body (undefined when empty or not JSON). */
  body: T;
  /** Wall time from sending to the end of the response body. */
  ms: number;
}

export function requestJson<T = any>(
  agent: Agent,
  method: string,
  url: URL,
  headers: Record<string, string>,
  body?: unknown,
): Promise<JsonResponse<T>> {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method, agent, headers: payload ? { ...headers, "content-length": payload.length } : headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: any;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, ms: performance.now() - t0 });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** p50/p99/max/mean of a list of latencies (ms), rounded to 0.01 ms. */
export function latencySummary(ms: number[]): { calls: number; p50: number; p99: number; max: number; mean: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  const r = (x: number) => Number(x.toFixed(2));
  const mean = sorted.length === 0 ? NaN : sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { calls: sorted.length, p50: r(percentile(sorted, 50)), p99: r(percentile(sorted, 99)), max: r(sorted.at(-1) ?? NaN), mean: r(mean) };
}
