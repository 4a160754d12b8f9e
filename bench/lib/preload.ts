/** Filling a topic before a consume-side benchmark, through the HTTP API. */
import type { Agent } from "node:http";
import { requestJson } from "./http-json.ts";

export type Call = (method: string, path: string, headers: Record<string, string>, body?: unknown, ok?: number[]) => Promise<any>;

/** A JSON request that throws unless the status is one of `ok`; resolves with the body. */
export function checkedCall(agent: Agent, base: string): Call {
  return async (method, path, headers, body, ok = [200, 201]) => {
    const r = await requestJson(agent, method, new URL(path, base), headers, body);
    if (!ok.includes(r.status)) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
}

const PRODUCE_BATCH = 1000;

/**
 * Produces messages 0 .. total − 1 (`valueOf(i)`, `keyOf(i)`) in requests of 1,000, `concurrency`
 * at once, and checks that the partitions' high watermarks add up. Returns the seconds taken.
 */
export async function preload(
  call: Call,
  auth: Record<string, string>,
  topic: string,
  o: { total: number; partitions: number; concurrency: number; valueOf: (i: number) => string; keyOf: (i: number) => string | undefined },
): Promise<number> {
  const started = performance.now();
  let nextBatch = 0;
  const batches = Math.ceil(o.total / PRODUCE_BATCH);
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      for (let b = nextBatch++; b < batches; b = nextBatch++) {
        const messages = [];
        for (let i = b * PRODUCE_BATCH; i < Math.min(o.total, (b + 1) * PRODUCE_BATCH); i++) {
          const key = o.keyOf(i);
          // Keyless messages of one request would share a partition: spread them evenly instead.
          messages.push(key === undefined ? { value: o.valueOf(i), partition: i % o.partitions } : { key, value: o.valueOf(i) });
        }
        await call("POST", `/v1/topics/${topic}/messages`, auth, { messages });
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const stored = ((await call("GET", `/v1/topics/${topic}`, auth)).highWatermarks as number[]).reduce((a, b) => a + b, 0);
  if (stored !== o.total) throw new Error(`preload: high watermarks sum to ${stored}, expected ${o.total}`);
  return seconds;
}
