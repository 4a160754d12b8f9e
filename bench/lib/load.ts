/** A closed-loop HTTP load generator on keep-alive sockets, with latency percentiles. */
import { Agent, request } from "node:http";

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

export function post(agent: Agent, url: URL, headers: Record<string, string>, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", agent, headers: { ...headers, "content-length": body.length } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(body);
  });
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
        const ok = await send(client, i).catch(() => false);
        latenciesMs.push(performance.now() - t0);
        requests++;
        if (!ok) errors++;
      }
    }),
  );
  latenciesMs.sort((a, b) => a - b);
  return { requests, errors, seconds: (performance.now() - start) / 1000, latenciesMs };
}
