/** What one measured run records (bench/results/latest.json `runs[]`), and the figures it derives. */
import { percentile } from "../lib/load.ts";
import type { CostCounters, SystemName } from "./system.ts";
import type { ProduceOverhead } from "./produce-overhead.ts";
import type { RunCpu } from "./cpu.ts";

export type RunMode = "max-rate" | "fixed-rate" | "backlog-drain";

export interface RunResult {
  system: SystemName;
  workload: string;
  mode: RunMode;
  /** Fixed rate: the schedule (msgs/s). */
  ratePerSec?: number;
  messageBytes: number;
  partitions: number;
  messages: number;
  skipped?: string;
  publish?: { msgsPerSec: number; mibPerSec: number; p50Ms: number; p99Ms: number; p999Ms: number };
  /** Fixed rate only (at max rate and in a backlog drain, publish and consume run one after the other). */
  endToEnd?: { p50Ms: number | null; p99Ms: number | null };
  /** Backlog drain: the drain rate. */
  consume?: { msgsPerSec: number };
  /** Backlog drain only: consuming a backlog published beforehand, with nothing else running. */
  drain?: { backlogMiB: number; messages: number; seconds: number; msgsPerSec: number; mibPerSec: number };
  cost?: {
    putsPerFlush: number | null;
    commitsPerFlush: number | null;
    putsPerMillion: number | null;
    getsPerMillion: number | null;
    commitsPerMillion: number | null;
    /** Reservoir: database statements per message. */
    statementsPerMessage?: number;
  };
  /** Reservoir only: a produce request's p99 beyond its segment PUT and commit p99s. */
  produceOverhead?: ProduceOverhead;
  /** CPU seconds per process during the run (a backlog drain: during the drain). */
  cpu?: RunCpu;
  /** All of cpu.seconds per message, µs: what a message costs the machine, whoever spends it. */
  cpuMicrosPerMessage?: number;
  settings?: Record<string, string | number | boolean>;
  /** Max rate in trials (trials.ts): each trial's figures, this run being the fastest of them. */
  trials?: { publishMsgsPerSec: number; consumeMsgsPerSec: number }[];
}

export const round = (x: number, digits = 2) => Number(x.toFixed(digits));

export function costFigures(before: CostCounters, after: CostCounters, messages: number): RunResult["cost"] {
  const delta = (k: keyof CostCounters) => (after[k] === undefined || before[k] === undefined ? null : after[k]! - before[k]!);
  const puts = delta("puts");
  const gets = delta("gets");
  const commits = delta("commits");
  const flushes = delta("flushes");
  const statements = delta("statements");
  const perMillion = (x: number | null) => (x === null ? null : round((x / messages) * 1e6, 1));
  const perFlush = (x: number | null) => (x === null || !flushes ? null : round(x / flushes, 3));
  return {
    putsPerFlush: perFlush(puts),
    commitsPerFlush: perFlush(commits),
    putsPerMillion: perMillion(puts),
    getsPerMillion: perMillion(gets),
    commitsPerMillion: perMillion(commits),
    ...(statements !== null && { statementsPerMessage: round(statements / messages, 3) }),
  };
}

/** Publish throughput and latency percentiles of `messages` published in `seconds`. */
export function publishFigures(
  messages: number,
  messageBytes: number,
  seconds: number,
  latenciesMs: number[],
): NonNullable<RunResult["publish"]> {
  const sorted = latenciesMs.slice().sort((a, b) => a - b);
  return {
    msgsPerSec: Math.round(messages / seconds),
    mibPerSec: round((messages * messageBytes) / seconds / 1024 / 1024),
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    p999Ms: round(percentile(sorted, 99.9)),
  };
}
