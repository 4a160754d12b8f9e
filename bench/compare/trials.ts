/**
 * Max-rate runs in trials. A run of 200,000 messages lasts a few seconds, and on this shared
 * 2-core machine one system's figure moved by a third between two such runs a minute apart, as
 * much as the ratios the report compares (docs/benchmarks.md, session 24). Every system runs the
 * same number of trials; the report keeps the trial that published and consumed its messages in
 * the least time, and lists every trial's figures beside it (`trials`).
 */
import type { RunResult } from "./result.ts";

/** Runs `run` `count` times (stopping at a skipped run) and keeps the fastest trial. */
export async function fastestOf(count: number, run: () => Promise<RunResult>): Promise<RunResult> {
  const results: RunResult[] = [];
  for (let i = 0; i < count; i++) {
    const r = await run();
    if (r.skipped) return r;
    results.push(r);
  }
  return fastest(results);
}

/** The trial of least publish + consume time, with every trial's figures. */
export function fastest(results: RunResult[]): RunResult {
  if (results.length === 0) throw new Error("no trials");
  const seconds = (r: RunResult) => r.messages / r.publish!.msgsPerSec + r.messages / r.consume!.msgsPerSec;
  const best = results.reduce((a, b) => (seconds(b) < seconds(a) ? b : a));
  if (results.length === 1) return best;
  return {
    ...best,
    trials: results.map((r) => ({ publishMsgsPerSec: r.publish!.msgsPerSec, consumeMsgsPerSec: r.consume!.msgsPerSec })),
  };
}
