/**
 * Reservoir against each peer, figure by figure (issue 15): one ratio per (workload, figure,
 * Reservoir stack, peer), oriented so that above 1× Reservoir leads and below it trails,
 * whichever way the figure itself is better (msgs/s up, milliseconds down).
 */
import type { RunResult } from "./result.ts";
import type { SystemName } from "./system.ts";

const RESERVOIRS: SystemName[] = ["reservoir-s3", "reservoir-embedded"];

interface Figure {
  name: string;
  mode: RunResult["mode"];
  /** The figure of a run, or undefined when the run has none. */
  value(r: RunResult): number | null | undefined;
  better: "higher" | "lower";
}

const FIGURES: Figure[] = [
  { name: "max-rate publish msgs/s", mode: "max-rate", value: (r) => r.publish?.msgsPerSec, better: "higher" },
  { name: "max-rate consume msgs/s", mode: "max-rate", value: (r) => r.consume?.msgsPerSec, better: "higher" },
  { name: "backlog drain msgs/s", mode: "backlog-drain", value: (r) => r.drain?.msgsPerSec, better: "higher" },
  { name: "publish p50 ms at a fixed rate", mode: "fixed-rate", value: (r) => r.publish?.p50Ms, better: "lower" },
  { name: "end-to-end p50 ms at a fixed rate", mode: "fixed-rate", value: (r) => r.endToEnd?.p50Ms, better: "lower" },
  { name: "CPU µs/msg at max rate", mode: "max-rate", value: (r) => r.cpuMicrosPerMessage, better: "lower" },
];

export interface Ratio {
  workload: string;
  figure: string;
  reservoir: SystemName;
  /** Per peer: Reservoir's lead (> 1) or lag (< 1), or null when either side has no figure. */
  byPeer: Map<SystemName, number | null>;
}

/** Every ratio the runs allow, in workload, figure and stack order. */
export function ratios(runs: RunResult[]): { peers: SystemName[]; rows: Ratio[] } {
  const measured = runs.filter((r) => !r.skipped);
  const peers = [...new Set(runs.map((r) => r.system))].filter((s) => !RESERVOIRS.includes(s));
  const workloads = [...new Set(runs.map((r) => r.workload))];
  const find = (system: SystemName, workload: string, mode: RunResult["mode"]) =>
    measured.find((r) => r.system === system && r.workload === workload && r.mode === mode);
  const rows: Ratio[] = [];
  for (const workload of workloads) {
    for (const figure of FIGURES) {
      for (const reservoir of RESERVOIRS) {
        const mine = find(reservoir, workload, figure.mode);
        const own = mine && figure.value(mine);
        if (!own) continue;
        const byPeer = new Map<SystemName, number | null>();
        for (const peer of peers) {
          const theirs = find(peer, workload, figure.mode);
          const other = theirs && figure.value(theirs);
          byPeer.set(peer, other ? (figure.better === "higher" ? own / other : other / own) : null);
        }
        if ([...byPeer.values()].some((v) => v !== null)) rows.push({ workload, figure: figure.name, reservoir, byPeer });
      }
    }
  }
  return { peers, rows };
}

/** "1.52× ▲" when Reservoir leads, "0.41× ▼" when it trails, "—" when there is nothing to compare. */
export function formatRatio(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined) return "—";
  const digits = ratio >= 10 ? 0 : ratio >= 1 ? 2 : ratio >= 0.1 ? 2 : 3;
  return `${ratio.toFixed(digits)}× ${ratio >= 1 ? "▲" : "▼"}`;
}
