/** The Markdown table of a comparison run (bench/results/latest.md). */
import type { RunResult } from "./run.ts";

interface Report {
  machine: Record<string, unknown>;
  runs: RunResult[];
}

const cell = (x: number | null | undefined) => (x === null || x === undefined ? "—" : x.toLocaleString("en-US"));

const e2e = (r: RunResult) => (r.endToEnd?.p50Ms == null ? "—" : `${cell(r.endToEnd.p50Ms)} / ${cell(r.endToEnd.p99Ms)}`);

export function markdownReport(report: Report): string {
  const lines = [
    "# Reservoir and its peers, side by side",
    "",
    `Machine: ${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memoryGiB} GiB, ${report.machine.os}, Node ${report.machine.node}.`,
    `Run: ${report.machine.startedAt}, ${report.machine.messagesPerRun} messages per system and workload at max rate, half as many at ${report.machine.fixedRatePerSec} msgs/s${report.machine.quick ? " (--quick)" : ""}.`,
    "",
    "| workload | system | mode | publish msgs/s | MiB/s | p50 ms | p99 ms | p99.9 ms | end-to-end p50 / p99 ms | consume msgs/s | PUTs/flush | commits/flush | PUTs/M msgs | GETs/M msgs | commits/M msgs |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of report.runs) {
    if (r.skipped) {
      lines.push(`| ${r.workload} | ${r.system} | ${r.mode} | skipped: ${r.skipped.replaceAll("|", "/")} | | | | | | | | | | | |`);
      continue;
    }
    const p = r.publish!;
    const c = r.cost!;
    lines.push(
      `| ${r.workload} | ${r.system} | ${r.mode} | ${cell(p.msgsPerSec)} | ${cell(p.mibPerSec)} | ${cell(p.p50Ms)} | ${cell(p.p99Ms)} | ${cell(p.p999Ms)} | ${e2e(r)} | ${cell(r.consume!.msgsPerSec)} | ${cell(c.putsPerFlush)} | ${cell(c.commitsPerFlush)} | ${cell(c.putsPerMillion)} | ${cell(c.getsPerMillion)} | ${cell(c.commitsPerMillion)} |`,
    );
  }
  return lines.join("\n") + "\n";
}
