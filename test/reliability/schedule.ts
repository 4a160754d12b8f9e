/**
 * The seeded fault schedule of a campaign run: which S3 requests fail and how, and when the
 * Postgres link is cut, stalled or its backends killed, and when which Node server gets kill -9.
 * Everything is drawn from one seed (printed by the run), so the same seed injects the same
 * faults; the interleaving with the load still varies with the machine, which is why every run
 * also writes the history it observed (../reliability/history.ts) for the checker to replay.
 */
import { prng } from "../support/prng.ts";
import type { S3Fault, S3FaultPicker } from "./faults/s3-fault-proxy.ts";

export type ScheduledFault =
  | { atMs: number; kind: "pg-drop" }
  | { atMs: number; kind: "pg-stall"; ms: number }
  | { atMs: number; kind: "pg-refuse"; ms: number }
  | { atMs: number; kind: "pg-terminate" }
  | { atMs: number; kind: "kill"; server: number; downMs: number };

export interface ScheduleOptions {
  durationMs: number;
  servers: number;
  /** Mean time between Postgres faults (ms). */
  pgEveryMs: number;
  /** Mean time between kill -9 of a server (ms). */
  killEveryMs: number;
  /** Share of S3 requests that get a fault (0..1). */
  s3FaultRate: number;
}

/** Postgres faults and kills at seeded times, never two servers down at once (one always serves). */
export function faultSchedule(seed: number, o: ScheduleOptions): ScheduledFault[] {
  const rand = prng(seed ^ 0x5eed);
  const out: ScheduledFault[] = [];
  // Leave the first and last tenth of the run clean: the load warms up and then settles.
  const from = o.durationMs * 0.1;
  const to = o.durationMs * 0.9;
  for (let at = from + rand() * o.pgEveryMs; at < to; at += o.pgEveryMs * (0.5 + rand())) {
    const r = rand();
    if (r < 0.3) out.push({ atMs: Math.round(at), kind: "pg-drop" });
    else if (r < 0.55) out.push({ atMs: Math.round(at), kind: "pg-stall", ms: 300 + Math.round(rand() * 2_000) });
    else if (r < 0.7) out.push({ atMs: Math.round(at), kind: "pg-refuse", ms: 200 + Math.round(rand() * 1_500) });
    else out.push({ atMs: Math.round(at), kind: "pg-terminate" });
  }
  let downUntil = 0;
  for (let at = from + rand() * o.killEveryMs; at < to; at += o.killEveryMs * (0.5 + rand())) {
    const downMs = 500 + Math.round(rand() * 3_000);
    if (at < downUntil || o.servers < 2) continue;
    out.push({ atMs: Math.round(at), kind: "kill", server: Math.floor(rand() * o.servers), downMs });
    // A restart takes seconds on a loaded machine: keep kills apart so one server always serves.
    downUntil = at + downMs + 15_000;
  }
  return out.sort((a, b) => a.atMs - b.atMs);
}

/** The S3 picker: each request gets a fault with probability `rate`, its kind drawn from the seed. */
export function s3FaultPicker(seed: number, rate: number): S3FaultPicker {
  const rand = prng(seed ^ 0x53);
  return (): S3Fault | undefined => {
    if (rand() >= rate) return undefined;
    const r = rand();
    if (r < 0.25) return { kind: "status", status: rand() < 0.5 ? 500 : 503 };
    if (r < 0.4) return { kind: "throttle", retryAfterSeconds: 1 };
    if (r < 0.55) return { kind: "stall", ms: 200 + Math.round(rand() * 2_500) };
    if (r < 0.8) return { kind: "reset", when: rand() < 0.5 ? "request" : "response" };
    return { kind: "slow", chunkBytes: 4_096, delayMs: 5 + Math.round(rand() * 20) };
  };
}
