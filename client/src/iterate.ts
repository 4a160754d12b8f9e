/**
 * Reading a partition as an async iterator: `for await (const m of client.messages("orders", 0,
 * { from: 0 }))`. It reads pages from an offset (a number, `"earliest"`, `"latest"`, or the first
 * offset at a time: `{ timestamp }`) and ends at the high watermark, or with `follow: true`
 * long-polls for more until `signal` aborts (the loop then ends without an error).
 */
import { ReservoirError } from "./errors.ts";
import { seg, type Transport } from "./http.ts";
import type { Message, ReadResult, ResponseBody } from "./types.ts";

export type StartFrom = number | "earliest" | "latest" | { timestamp: number };

export interface ReadOptions {
  /** Where to start (default "earliest"). */
  from?: StartFrom;
  /** Keep waiting for new messages at the end instead of ending (default false). */
  follow?: boolean;
  /** Messages per read (1..1000, default 100). */
  limit?: number;
  /** Long-poll wait of a read when following (default 20,000 ms). */
  waitMs?: number;
  /** Ends the iteration (no error). */
  signal?: AbortSignal;
}

/** Reads one page: `{ messages, nextOffset, highWatermark }`. */
export function readPage(
  http: Transport,
  topic: string,
  partition: number,
  q: { offset: number; limit?: number; waitMs?: number },
  signal?: AbortSignal,
): Promise<ReadResult> {
  return http.json<ResponseBody<"readMessages">>("GET", `/v1/topics/${seg(topic)}/partitions/${seg(partition)}/messages`, {
    query: q,
    waitMs: q.waitMs,
    signal,
  });
}

export async function resolveStart(http: Transport, topic: string, partition: number, from: StartFrom): Promise<number> {
  if (typeof from === "number") return from;
  if (typeof from === "object") {
    const res = await http.json<ResponseBody<"getOffsets">>("GET", `/v1/topics/${seg(topic)}/offsets`, {
      query: { timestamp: from.timestamp },
    });
    const found = res.offsets.find((o) => o.partition === partition);
    if (!found) throw new ReservoirError({ status: 404, code: "partition_not_found", detail: `${topic} has no partition ${partition}` });
    return found.offset;
  }
  const detail = await http.json<ResponseBody<"getTopic">>("GET", `/v1/topics/${seg(topic)}`);
  if (partition < 0 || partition >= detail.partitions) {
    throw new ReservoirError({ status: 404, code: "partition_not_found", detail: `${topic} has ${detail.partitions} partition(s)` });
  }
  return from === "earliest" ? detail.earliestOffsets[partition]! : detail.highWatermarks[partition]!;
}

export async function* iterateMessages(http: Transport, topic: string, partition: number, opts: ReadOptions = {}): AsyncGenerator<Message> {
  const { signal } = opts;
  let offset = await resolveStart(http, topic, partition, opts.from ?? "earliest");
  while (!signal?.aborted) {
    let page: ReadResult;
    try {
      page = await readPage(
        http,
        topic,
        partition,
        { offset, limit: opts.limit, waitMs: opts.follow ? (opts.waitMs ?? 20_000) : undefined },
        signal,
      );
    } catch (error) {
      if (signal?.aborted) return;
      throw error;
    }
    for (const m of page.messages) yield m;
    offset = page.nextOffset;
    if (!opts.follow && offset >= page.highWatermark) return;
  }
}
