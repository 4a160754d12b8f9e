/**
 * A small analyzer for V8 .cpuprofile files (node --cpu-prof): self time per function and per
 * package (node_modules package, repo folder, node: internals, V8/GC), and inclusive time per
 * function, optionally restricted to a time window.
 *
 *   npx tsx bench/lib/cpuprofile.ts FILE.cpuprofile [--top 25] [--from US] [--to US] [--match RE] [--json]
 *
 * --match RE: only functions whose "name file:line" matches RE in the by-function lists.
 *
 * --from/--to are timestamps in the profile's clock: microseconds of the monotonic clock, the same
 * as process.hrtime.bigint() / 1000n in any process on the same machine (so a benchmark can
 * record the window of one phase and pass it here).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { repoRoot } from "../../test/support/node-server.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Entry {
  name: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  /** Wall time of the window the samples cover. */
  windowMs: number;
  /** Time in samples that are not idle: (the process was busy). */
  busyMs: number;
  /** busyMs / windowMs: the share of one core the process used. */
  busyShare: number;
  /** Self time by category/package; pct is of busy time. */
  selfByPackage: Entry[];
  /** Self time by function (name file:line); pct is of busy time. */
  selfByFunction: Entry[];
  /** Inclusive time by function (each sample counted once per function on its stack). */
  inclusiveByFunction: Entry[];
}

const root = repoRoot.endsWith("/") ? repoRoot : repoRoot + "/";

/** Where a frame's code lives: a package, a repo folder, a node: module, or a V8 pseudo-frame. */
export function packageOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith("(") ? functionName : "(native/V8 builtins)";
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const parts = url.slice(nm + "/node_modules/".length).split("/");
    return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  if (url.startsWith("node:")) {
    const path = url.slice(5).split("/");
    // node:internal/streams/readable -> node:internal/streams; node:net -> node:net
    return "node:" + (path.length > 2 ? path.slice(0, 2).join("/") : path.join("/"));
  }
  let path = url;
  try {
    if (url.startsWith("file:")) path = fileURLToPath(url);
  } catch {
    /* keep the url */
  }
  if (path.startsWith(root)) {
    const rel = path.slice(root.length).split("/");
    return "repo:" + (rel.length > 1 ? rel.slice(0, -1).join("/") : rel[0]);
  }
  return path;
}

function functionOf(frame: CallFrame): string {
  const name = frame.functionName || "(anonymous)";
  if (!frame.url) return name;
  let file = frame.url;
  const nm = file.lastIndexOf("/node_modules/");
  if (nm >= 0) file = file.slice(nm + "/node_modules/".length);
  else if (file.startsWith("file://" + root)) file = file.slice(("file://" + root).length);
  return `${name} ${file}:${frame.lineNumber + 1}`;
}

export interface AnalyzeOptions {
  top?: number;
  fromUs?: number;
  toUs?: number;
  /** Keep only functions matching this in the by-function lists. */
  match?: RegExp;
}

export function analyzeProfile(profile: CpuProfile, options: AnalyzeOptions = {}): ProfileSummary {
  const top = options.top ?? 25;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) byId.set(n.id, n);
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const self = new Map<string, number>();
  const pkg = new Map<string, number>();
  const incl = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);

  const from = options.fromUs ?? -Infinity;
  const to = options.toUs ?? Infinity;
  let t = profile.startTime;
  let busyUs = 0;
  let first = Infinity;
  let last = -Infinity;
  const seen = new Set<string>();
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    // A sample stands for the time until the next one.
    const dur = i + 1 < profile.timeDeltas.length ? profile.timeDeltas[i + 1] : Math.max(0, profile.endTime - t);
    if (t < from || t > to || dur <= 0) continue;
    first = Math.min(first, t);
    last = Math.max(last, t + dur);
    const node = byId.get(profile.samples[i])!;
    const frame = node.callFrame;
    if (frame.functionName === "(idle)") continue;
    busyUs += dur;
    add(self, functionOf(frame), dur);
    add(pkg, packageOf(frame), dur);
    seen.clear();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (f.functionName === "(root)") break;
      const k = functionOf(f);
      if (seen.has(k)) continue;
      seen.add(k);
      add(incl, k, dur);
    }
  }
  const windowUs = Number.isFinite(first) ? last - first : 0;
  const list = (m: Map<string, number>, filter = false) =>
    [...m]
      .filter(([name]) => !filter || !options.match || options.match.test(name))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000), pct: Number(((100 * us) / Math.max(1, busyUs)).toFixed(1)) }));
  return {
    windowMs: Math.round(windowUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    busyShare: Number((busyUs / Math.max(1, windowUs)).toFixed(3)),
    selfByPackage: list(pkg),
    selfByFunction: list(self, true),
    inclusiveByFunction: list(incl, true),
  };
}

export function analyzeProfileFile(path: string, options: AnalyzeOptions = {}): ProfileSummary {
  return analyzeProfile(JSON.parse(readFileSync(path, "utf8")) as CpuProfile, options);
}

/** A plain-text rendering of a summary. */
export function formatSummary(s: ProfileSummary): string {
  const table = (title: string, entries: Entry[]) =>
    [`${title}`, ...entries.map((e) => `  ${String(e.ms).padStart(7)} ms ${e.pct.toFixed(1).padStart(5)}%  ${e.name}`)].join("\n");
  return [
    `window ${s.windowMs} ms, busy ${s.busyMs} ms (${(100 * s.busyShare).toFixed(1)}% of one core)`,
    table("self time by package:", s.selfByPackage),
    table("self time by function:", s.selfByFunction),
    table("inclusive time by function:", s.inclusiveByFunction),
  ].join("\n\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: "string", default: "25" },
      from: { type: "string" },
      to: { type: "string" },
      match: { type: "string" },
      json: { type: "boolean" },
    },
  });
  if (positionals.length !== 1) {
    console.error("usage: npx tsx bench/lib/cpuprofile.ts FILE.cpuprofile [--top 25] [--from US] [--to US] [--match RE] [--json]");
    process.exit(2);
  }
  const summary = analyzeProfileFile(positionals[0], {
    top: Number(values.top),
    fromUs: values.from === undefined ? undefined : Number(values.from),
    toUs: values.to === undefined ? undefined : Number(values.to),
    match: values.match === undefined ? undefined : new RegExp(values.match),
  });
  console.log(values.json ? JSON.stringify(summary, null, 2) : formatSummary(summary));
}
