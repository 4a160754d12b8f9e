/**
 * The publish loop of systems that take messages in batches (Reservoir requests, pg-boss
 * inserts, S3 objects): `window` lanes, each sending the next batch of up to `batch` messages.
 * At max rate a batch is taken at once and a message's latency is its batch's round trip. At a
 * fixed rate (open loop) a lane waits until a full batch is due or its first message has waited
 * `lingerMs`, and latency counts from each message's scheduled time, so a stall is charged.
 * Each request's own round trip is kept too (requestLatenciesMs), whatever the mode. Once a
 * send fails, no lane sends again: a failed run must not go on publishing behind the next one.
 */
import type { PublishOutcome } from "./system.ts";

export interface BatchedPublish {
  count: number;
  batch: number;
  window: number;
  lingerMs: number;
  ratePerSec?: number;
  onAck?: (i: number) => void;
  /** Sends messages first .. first + n − 1; resolves once they are acknowledged. */
  send(first: number, n: number): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function publishInBatches(p: BatchedPublish): Promise<PublishOutcome> {
  const { count, batch, ratePerSec } = p;
  const latenciesMs: number[] = new Array(count);
  const requestLatenciesMs: number[] = [];
  const start = performance.now();
  const readyAt = (i: number) => (ratePerSec ? start + (i * 1000) / ratePerSec : start);
  let next = 0;
  let failed = false;
  const lane = async () => {
    for (;;) {
      const first = next;
      if (first >= count || failed) return;
      const due = ratePerSec ? Math.min(readyAt(Math.min(count, first + batch) - 1), readyAt(first) + p.lingerMs) : 0;
      const now = performance.now();
      if (now < due) {
        await sleep(due - now);
        continue; // another lane may have taken these messages meanwhile
      }
      const ready = ratePerSec ? Math.floor(((now - start) * ratePerSec) / 1000) + 1 : count;
      const n = Math.max(1, Math.min(batch, ready - first, count - first));
      next = first + n;
      const sentAt = performance.now();
      await p.send(first, n).catch((error: unknown) => {
        failed = true;
        throw error;
      });
      const at = performance.now();
      requestLatenciesMs.push(at - sentAt);
      for (let j = 0; j < n; j++) {
        latenciesMs[first + j] = at - (ratePerSec ? readyAt(first + j) : sentAt);
        p.onAck?.(first + j);
      }
    }
  };
  await Promise.all(Array.from({ length: p.window }, lane));
  return { acked: count, latenciesMs, requestLatenciesMs };
}
