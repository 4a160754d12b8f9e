/** A closed-loop HTTP load generator on keep-alive sockets, with latency percentiles. */
import { type Agent, request } from "node:http";
import { CALL_TIMEOUT_MS, CallTimeout, withTimeout } from "./timeout.ts";

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** A POST; it fails with a CallTimeout naming it (its socket destroyed) without an answer within `timeoutMs`. */
export function post(agent: Agent, url: URL, headers: Record<string, string>, body: Buffer, timeoutMs = CALL_TIMEOUT_MS): Promise<number> {
  let req: ReturnType<typeof request> | undefined;
  const answered = new Promise<number>((resolve, reject) => {
    req = request(url, { method: "POST", agent, headers: { ...headers, "content-length": body.length } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(body);
  });
  return withTimeout(`POST ${url.pathname} (${body.length} bytes)`, answered, timeoutMs, (error) => req?.destroy(error));
}

/** `clients` loops, each sending one request after the other, for `seconds`. */
export async function closedLoop(
  clients: number,
  seconds: number,
  send: (client: number, i: number) => Promise<boolean>,
): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  let requests = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = 0; performance.now() < end; i++) {
        const t0 = performance.now();
        // A failed request is counted; one that hung ends the run, naming it.
        const ok = await send(client, i).catch((error: unknown) => {
          if (error instanceof CallTimeout) throw error;
          return false;
        });
        latenciesMs.push(performance.now() - t0);
        requests++;
        if (!ok) errors++;
      }
    }),
  );
  latenciesMs.sort((a, b) => a - b);
  return { requests, errors, seconds: (performance.now() - start) / 1000, latenciesMs };
}
