/**
 * For a profiler outside (perf record -p, or -a with a window): when the environment variable
 * `variable` names a file, writes the given pids there (space-separated) as a phase starts
 * (BENCH_PUBLISH_MARK, BENCH_CONSUME_MARK, BENCH_DRAIN_MARK; docs/benchmarks.md, "Reproduce").
 */
import { writeFileSync } from "node:fs";

export function markPhase(variable: string, ...pids: (number | undefined)[]): void {
  const file = process.env[variable];
  if (file) writeFileSync(file, `${pids.map((pid) => pid ?? "").join(" ")}\n`);
}
