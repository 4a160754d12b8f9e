/** The Markdown report of a comparison run (bench/results/latest.md). */
import { formatRatio, ratios } from "./ratios.ts";
import type { RunResult } from "./result.ts";

interface Report {
  machine: Record<string, unknown>;
  runs: RunResult[];
}

const cell = (x: number | null | undefined) => (x === null || x === undefined ? "—" : x.toLocaleString("en-US"));

const e2e = (r: RunResult) => (r.endToEnd?.p50Ms == null ? "—" : `${cell(r.endToEnd.p50Ms)} / ${cell(r.endToEnd.p99Ms)}`);

/** A Markdown table; `align` has one letter per column: l (text) or r (a number). */
function table(columns: string[], align: string, rows: string[][]): string[] {
  return [
    `| ${columns.join(" | ")} |`,
    `|${[...align].map((a) => (a === "r" ? "---:" : "---")).join("|")}|`,
    ...rows.map((cells) => `| ${cells.join(" | ")} |`),
  ];
}

/** A titled section of the report; nothing when it has no rows. */
function section(title: string, intro: string, body: string[]): string[] {
  return body.length <= 2 ? [] : ["", `## ${title}`, "", intro, "", ...body];
}

/** The cells of a skipped run: its reason in the first measured column, the rest empty. */
const skippedCells = (r: RunResult, leading: string[], width: number) => [
  ...leading,
  `skipped: ${r.skipped!.replaceAll("|", "/")}`,
  ...Array(width - leading.length - 1).fill(""),
];

function mainTable(runs: RunResult[]): string[] {
  const columns = [
    "workload",
    "system",
    "mode",
    "publish msgs/s",
    "MiB/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "end-to-end p50 / p99 ms",
    "consume msgs/s",
    "PUTs/flush",
    "commits/flush",
    "PUTs/M msgs",
    "GETs/M msgs",
    "commits/M msgs",
    "CPU µs/msg",
  ];
  return table(
    columns,
    "lll" + "r".repeat(columns.length - 3),
    runs.map((r) => {
      const id = [r.workload, r.system, r.mode];
      if (r.skipped) return skippedCells(r, id, columns.length);
      const p = r.publish!;
      const c = r.cost!;
      return [
        ...id,
        cell(p.msgsPerSec),
        cell(p.mibPerSec),
        cell(p.p50Ms),
        cell(p.p99Ms),
        cell(p.p999Ms),
        e2e(r),
        cell(r.consume!.msgsPerSec),
        cell(c.putsPerFlush),
        cell(c.commitsPerFlush),
        cell(c.putsPerMillion),
        cell(c.getsPerMillion),
        cell(c.commitsPerMillion),
        cell(r.cpuMicrosPerMessage),
      ];
    }),
  );
}

function backlogTable(runs: RunResult[]): string[] {
  const columns = ["system", "backlog MiB", "messages", "filled at msgs/s", "drain s", "drain msgs/s", "drain MiB/s", "CPU µs/msg (drain)"];
  const rows = runs.map((r) => {
    if (r.skipped) return [r.system, "", cell(r.messages), `skipped: ${r.skipped.replaceAll("|", "/")}`, "", "", "", ""];
    const d = r.drain!;
    return [
      r.system,
      cell(d.backlogMiB),
      cell(d.messages),
      cell(r.publish!.msgsPerSec),
      cell(d.seconds),
      cell(d.msgsPerSec),
      cell(d.mibPerSec),
      cell(r.cpuMicrosPerMessage),
    ];
  });
  return section(
    "Backlog drain",
    "A backlog of 1 KiB messages on 16 partitions, published at max rate with no consumer, then consumed and acknowledged to the last message.",
    table(columns, "lrrrrrrr", rows),
  );
}

function overheadTable(runs: RunResult[]): string[] {
  const rows = runs
    .filter((r) => r.produceOverhead)
    .map((r) => {
      const o = r.produceOverhead!;
      return [
        r.workload,
        r.system,
        r.mode,
        cell(o.requestP99Ms),
        cell(o.putP99Ms),
        cell(o.commitP99Ms),
        cell(o.overheadP99Ms),
        cell(o.serverWaitP99Ms),
      ];
    });
  return section(
    "Reservoir: produce overhead (p99)",
    "A produce request's round trip as the client measured it, against the segment PUT and the commit it waited for (the server's histograms over the run). Target: overhead ≤ 10 ms.",
    table(
      ["workload", "system", "mode", "request p99 ms", "PUT p99 ms", "commit p99 ms", "overhead p99 ms", "server wait p99 ms"],
      "lllrrrrr",
      rows,
    ),
  );
}

/**
 * Issue 15's steady-rate targets: produce p50 ≤ PUT p50 + commit p50 + linger + 3 ms, where the
 * linger is the server's plus the client's (the harness gathers due messages for up to its
 * linger before sending, and latency counts from each message's scheduled time), and
 * end-to-end p50 ≤ 2 × produce p50.
 */
function steadyRateTable(runs: RunResult[]): string[] {
  const rows = runs
    .filter((r) => r.mode === "fixed-rate" && r.produceOverhead?.putP50Ms != null && r.produceOverhead.commitP50Ms != null)
    .map((r) => {
      const o = r.produceOverhead!;
      const lingerMs = (r.settings?.lingerMs as number | undefined) ?? 0;
      const clientLingerMs = (r.settings?.clientLingerMs as number | undefined) ?? 0;
      const bound = o.putP50Ms! + o.commitP50Ms! + lingerMs + clientLingerMs + 3;
      const produceP50 = r.publish?.p50Ms ?? null;
      const e2e = r.endToEnd?.p50Ms ?? null;
      return [
        r.workload,
        r.system,
        cell(produceP50),
        cell(o.putP50Ms),
        cell(o.commitP50Ms),
        `${lingerMs} + ${clientLingerMs}`,
        cell(Math.round(bound * 100) / 100),
        produceP50 !== null && produceP50 <= bound ? "met" : "not met",
        cell(e2e),
        e2e !== null && produceP50 !== null && e2e <= 2 * produceP50 ? "met" : "not met",
        cell(r.publish?.p99Ms ?? null),
        cell(r.endToEnd?.p99Ms ?? null),
      ];
    });
  return section(
    "Reservoir at a steady rate (issue 15's targets)",
    "produce p50 ≤ PUT p50 + commit p50 + linger (server + client) + 3 ms; end-to-end p50 ≤ 2 × produce p50.",
    table(
      [
        "workload",
        "system",
        "produce p50 ms",
        "PUT p50 ms",
        "commit p50 ms",
        "linger ms",
        "bound ms",
        "produce",
        "e2e p50 ms",
        "e2e",
        "produce p99 ms",
        "e2e p99 ms",
      ],
      "llrrrrrlrlrr",
      rows,
    ),
  );
}

function cpuTable(runs: RunResult[]): string[] {
  const rows = runs
    .filter((r) => r.cpu)
    .map((r) => {
      const c = r.cpu!;
      const per = Object.entries(c.seconds)
        .sort((a, b) => b[1] - a[1])
        .map(([label, s]) => `${label} ${s}`)
        .join(", ");
      return [r.workload, r.system, r.mode, cell(c.wallSeconds), per, cell(c.totalSeconds), cell(r.cpuMicrosPerMessage)];
    });
  return section(
    "CPU seconds per process",
    "Over the whole run (publish and consume; a backlog drain: the drain alone), for the client, the server and the processes at the other end of their connections.",
    table(["workload", "system", "mode", "wall s", "CPU s per process", "CPU s in all", "µs/msg"], "lllrlrr", rows),
  );
}

function ratioTable(runs: RunResult[]): string[] {
  const { peers, rows } = ratios(runs);
  return section(
    "Reservoir against each peer",
    "Each figure of Reservoir divided by the peer's in the same run, turned so that above 1× (▲) Reservoir leads and below it (▼) trails: msgs/s are Reservoir's over the peer's, milliseconds and CPU the peer's over Reservoir's.",
    table(
      ["workload", "figure", "Reservoir", ...peers.map((p) => `vs ${p}`)],
      "lll" + "r".repeat(peers.length),
      rows.map((r) => [r.workload, r.figure, r.reservoir, ...peers.map((p) => formatRatio(r.byPeer.get(p)))]),
    ),
  );
}

export function markdownReport(report: Report): string {
  const m = report.machine;
  const drains = report.runs.filter((r) => r.mode === "backlog-drain");
  const trials = Number(m.maxRateTrials ?? 1);
  const lines = [
    "# Reservoir and its peers, side by side",
    "",
    `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}.`,
    `Run: ${m.startedAt}, ${m.messagesPerRun} messages per system and workload at max rate${trials > 1 ? ` (the fastest of ${trials} trials)` : ""} (after a warm-up of ${m.warmUpMessages}${m.firstWarmUpMessages ? `, ${m.firstWarmUpMessages}${m.firstWarmUpAtRateMessages ? ` and ${m.firstWarmUpAtRateMessages} at ${m.fixedRatePerSec} msgs/s` : ""} before a system's first workload` : ""}), ${m.fixedRateMessagesPerRun} at ${m.fixedRatePerSec} msgs/s${m.quick ? " (--quick)" : ""}; ${m.wallSeconds} s in all.`,
    "",
    ...mainTable(report.runs.filter((r) => r.mode !== "backlog-drain")),
    ...ratioTable(report.runs),
    ...backlogTable(drains),
    ...overheadTable(report.runs),
    ...steadyRateTable(report.runs),
    ...cpuTable(report.runs),
    ...trialsTable(report.runs),
  ];
  return lines.join("\n") + "\n";
}

/** Every max-rate trial (trials.ts): how far one system's figure moved within the run. */
function trialsTable(runs: RunResult[]): string[] {
  const rows = runs
    .filter((r) => r.trials)
    .map((r) => [
      r.workload,
      r.system,
      r.trials!.map((t) => cell(t.publishMsgsPerSec)).join(" / "),
      r.trials!.map((t) => cell(t.consumeMsgsPerSec)).join(" / "),
    ]);
  return section(
    "Max-rate trials",
    "Each max-rate run above is the trial that published and consumed its messages in the least time; here are every trial's figures, in the order they ran.",
    table(["workload", "system", "publish msgs/s per trial", "consume msgs/s per trial"], "llll", rows),
  );
}
