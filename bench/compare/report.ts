/** The Markdown report of a comparison run (bench/results/latest.md). */
import type { RunResult } from "./result.ts";

interface Report {
  machine: Record<string, unknown>;
  runs: RunResult[];
}

const cell = (x: number | null | undefined) => (x === null || x === undefined ? "—" : x.toLocaleString("en-US"));

const e2e = (r: RunResult) => (r.endToEnd?.p50Ms == null ? "—" : `${cell(r.endToEnd.p50Ms)} / ${cell(r.endToEnd.p99Ms)}`);

function mainTable(runs: RunResult[]): string[] {
  const lines = [
    "| workload | system | mode | publish msgs/s | MiB/s | p50 ms | p99 ms | p99.9 ms | end-to-end p50 / p99 ms | consume msgs/s | PUTs/flush | commits/flush | PUTs/M msgs | GETs/M msgs | commits/M msgs | CPU µs/msg |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of runs) {
    if (r.skipped) {
      lines.push(`| ${r.workload} | ${r.system} | ${r.mode} | skipped: ${r.skipped.replaceAll("|", "/")} | | | | | | | | | | | | |`);
      continue;
    }
    const p = r.publish!;
    const c = r.cost!;
    lines.push(
      `| ${r.workload} | ${r.system} | ${r.mode} | ${cell(p.msgsPerSec)} | ${cell(p.mibPerSec)} | ${cell(p.p50Ms)} | ${cell(p.p99Ms)} | ${cell(p.p999Ms)} | ${e2e(r)} | ${cell(r.consume!.msgsPerSec)} | ${cell(c.putsPerFlush)} | ${cell(c.commitsPerFlush)} | ${cell(c.putsPerMillion)} | ${cell(c.getsPerMillion)} | ${cell(c.commitsPerMillion)} | ${cell(r.cpuMicrosPerMessage)} |`,
    );
  }
  return lines;
}

function backlogTable(runs: RunResult[]): string[] {
  if (runs.length === 0) return [];
  const lines = [
    "",
    "## Backlog drain",
    "",
    "A backlog of 1 KiB messages on 16 partitions, published at max rate with no consumer, then consumed and acknowledged to the last message.",
    "",
    "| system | backlog MiB | messages | filled at msgs/s | drain s | drain msgs/s | drain MiB/s | CPU µs/msg (drain) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of runs) {
    if (r.skipped) {
      lines.push(`| ${r.system} | | ${cell(r.messages)} | skipped: ${r.skipped.replaceAll("|", "/")} | | | | |`);
      continue;
    }
    const d = r.drain!;
    lines.push(`| ${r.system} | ${cell(d.backlogMiB)} | ${cell(d.messages)} | ${cell(r.publish!.msgsPerSec)} | ${cell(d.seconds)} | ${cell(d.msgsPerSec)} | ${cell(d.mibPerSec)} | ${cell(r.cpuMicrosPerMessage)} |`);
  }
  return lines;
}

function overheadTable(runs: RunResult[]): string[] {
  const measured = runs.filter((r) => r.produceOverhead);
  if (measured.length === 0) return [];
  const lines = [
    "",
    "## Reservoir: produce overhead (p99)",
    "",
    "A produce request's round trip as the client measured it, against the segment PUT and the commit it waited for (the server's histograms over the run). Target: overhead ≤ 10 ms.",
    "",
    "| workload | system | mode | request p99 ms | PUT p99 ms | commit p99 ms | overhead p99 ms | server wait p99 ms |",
    "|---|---|---|---:|---:|---:|---:|---:|",
  ];
  for (const r of measured) {
    const o = r.produceOverhead!;
    lines.push(`| ${r.workload} | ${r.system} | ${r.mode} | ${cell(o.requestP99Ms)} | ${cell(o.putP99Ms)} | ${cell(o.commitP99Ms)} | ${cell(o.overheadP99Ms)} | ${cell(o.serverWaitP99Ms)} |`);
  }
  return lines;
}

function cpuTable(runs: RunResult[]): string[] {
  const measured = runs.filter((r) => r.cpu);
  if (measured.length === 0) return [];
  const lines = [
    "",
    "## CPU seconds per process",
    "",
    "Over the whole run (publish and consume; a backlog drain: the drain alone), for the client, the server and the processes at the other end of their connections.",
    "",
    "| workload | system | mode | wall s | CPU s per process | CPU s in all | µs/msg |",
    "|---|---|---|---:|---|---:|---:|",
  ];
  for (const r of measured) {
    const c = r.cpu!;
    const per = Object.entries(c.seconds)
      .sort((a, b) => b[1] - a[1])
      .map(([label, s]) => `${label} ${s}`)
      .join(", ");
    lines.push(`| ${r.workload} | ${r.system} | ${r.mode} | ${cell(c.wallSeconds)} | ${per} | ${cell(c.totalSeconds)} | ${cell(r.cpuMicrosPerMessage)} |`);
  }
  return lines;
}

export function markdownReport(report: Report): string {
  const m = report.machine;
  const drains = report.runs.filter((r) => r.mode === "backlog-drain");
  const lines = [
    "# Reservoir and its peers, side by side",
    "",
    `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}.`,
    `Run: ${m.startedAt}, ${m.messagesPerRun} messages per system and workload at max rate (after a warm-up of ${m.warmUpMessages}), ${m.fixedRateMessagesPerRun} at ${m.fixedRatePerSec} msgs/s${m.quick ? " (--quick)" : ""}; ${m.wallSeconds} s in all.`,
    "",
    ...mainTable(report.runs.filter((r) => r.mode !== "backlog-drain")),
    ...backlogTable(drains),
    ...overheadTable(report.runs),
    ...cpuTable(report.runs),
  ];
  return lines.join("\n") + "\n";
}
