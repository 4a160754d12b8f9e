// The side-by-side benchmark harness (`npm run bench`) on a tiny workload and a 1 MiB backlog,
// for the systems it starts itself (Reservoir embedded and the raw S3 PUT baseline on s3rver):
// it runs, and writes results shaped as issue 5 asks. Nothing about speed is asserted.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../support/node-server.ts";

describe("npm run bench on a tiny workload", () => {
  const out = mkdtempSync(join(tmpdir(), "reservoir-bench-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("measures each system, drains a backlog, and writes latest.json, a dated copy, latest.md and latest.png", () => {
    const run = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "bench/compare/run.ts",
        "--systems",
        "reservoir-embedded,s3-put-baseline",
        "--workloads",
        "16p-1KiB",
        "--messages",
        "300",
        "--rate",
        "1000",
        "--backlog-mib",
        "1",
        "--out",
        out,
      ],
      { cwd: repoRoot, encoding: "utf8", timeout: 150_000, env: { ...process.env, NODE_OPTIONS: "" } },
    );
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stderr).toMatch(/\[#+\] 6\/6/);
    // A system's first workload warms up 5× the usual tenth of the run, then at the fixed rate for
    // as many messages as the fixed-rate run (at most 5 s of them; bench/compare/warm-up.ts).
    expect(run.stderr).toMatch(/warm-up reservoir-embedded 16p-1KiB: 150 messages and 150 at 1000 msgs\/s/);
    const report = JSON.parse(readFileSync(join(out, "latest.json"), "utf8"));
    expect(report.machine.cpus).toBeGreaterThan(0);
    expect(report.runs.map((r: { system: string; mode: string }) => `${r.system} ${r.mode}`)).toEqual([
      "reservoir-embedded max-rate",
      "reservoir-embedded fixed-rate",
      "reservoir-embedded backlog-drain",
      "s3-put-baseline max-rate",
      "s3-put-baseline fixed-rate",
      "s3-put-baseline backlog-drain",
    ]);
    const messagesOf: Record<string, number> = { "max-rate": 300, "fixed-rate": 150, "backlog-drain": 1024 };
    for (const r of report.runs) {
      expect(r.skipped, JSON.stringify(r)).toBeUndefined();
      expect(r).toMatchObject({ workload: "16p-1KiB", messageBytes: 1024, messages: messagesOf[r.mode] });
      if (r.mode === "fixed-rate") {
        expect(r.ratePerSec).toBe(1000);
        expect(r.endToEnd.p99Ms).toBeGreaterThanOrEqual(r.endToEnd.p50Ms);
        expect(r.endToEnd.p50Ms).toBeGreaterThan(0);
      } else {
        expect(r.endToEnd).toEqual({ p50Ms: null, p99Ms: null });
      }
      if (r.mode === "backlog-drain") {
        expect(r.drain).toMatchObject({ backlogMiB: 1, messages: 1024 });
        expect(r.drain.seconds).toBeGreaterThan(0);
        expect(r.drain.msgsPerSec).toBe(r.consume.msgsPerSec);
        expect(r.drain.mibPerSec).toBeGreaterThan(0);
      } else {
        expect(r.drain).toBeUndefined();
      }
      expect(r.publish.msgsPerSec).toBeGreaterThan(0);
      expect(r.publish.p99Ms).toBeGreaterThanOrEqual(r.publish.p50Ms);
      expect(r.publish.p999Ms).toBeGreaterThanOrEqual(r.publish.p99Ms);
      expect(r.consume.msgsPerSec).toBeGreaterThan(0);
      expect(Object.keys(r.cost).sort()).toEqual([
        "commitsPerFlush",
        "commitsPerMillion",
        "getsPerMillion",
        "putsPerFlush",
        "putsPerMillion",
        // Reservoir's server counts its database statements.
        ...(r.system.startsWith("reservoir") ? ["statementsPerMessage"] : []),
      ]);
      expect(r.cpu.wallSeconds).toBeGreaterThanOrEqual(0);
      for (const s of Object.values(r.cpu.seconds)) expect(s).toBeGreaterThanOrEqual(0);
      expect(r.cpu.totalSeconds).toBeGreaterThanOrEqual(0);
      expect(r.cpuMicrosPerMessage).toBeGreaterThanOrEqual(0);
    }
    // Reservoir's produce overhead, from its request round trips and its server's histograms.
    for (const r of report.runs.slice(0, 2)) {
      expect(Object.keys(r.produceOverhead).sort()).toEqual([
        "commitP50Ms",
        "commitP99Ms",
        "overheadP99Ms",
        "putP50Ms",
        "putP99Ms",
        "requestP50Ms",
        "requestP99Ms",
        "serverWaitP50Ms",
        "serverWaitP99Ms",
      ]);
      const o = r.produceOverhead;
      expect(o.requestP99Ms).toBeGreaterThan(0);
      expect(o.putP99Ms).toBeGreaterThan(0);
      expect(o.commitP99Ms).toBeGreaterThan(0);
      expect(o.putP50Ms).toBeGreaterThan(0);
      expect(o.putP50Ms).toBeLessThanOrEqual(o.putP99Ms);
      expect(o.commitP50Ms).toBeLessThanOrEqual(o.commitP99Ms);
      expect(o.requestP50Ms).toBeGreaterThan(0);
      expect(o.requestP50Ms).toBeLessThanOrEqual(o.requestP99Ms);
      expect(o.serverWaitP50Ms).toBeGreaterThan(0);
      expect(o.serverWaitP50Ms).toBeLessThanOrEqual(o.serverWaitP99Ms);
      expect(o.overheadP99Ms).toBeCloseTo(o.requestP99Ms - (o.putP99Ms + o.commitP99Ms), 1);
      expect(Object.keys(r.cpu.seconds)).toContain("server");
    }
    expect(report.runs.slice(3).every((r: { produceOverhead?: unknown }) => r.produceOverhead === undefined)).toBe(true);
    const reservoirRun = report.runs[0];
    expect(reservoirRun.cost.putsPerFlush).toBe(1);
    expect(reservoirRun.cost.commitsPerFlush).toBe(1);
    expect(reservoirRun.cost.getsPerMillion).toBeGreaterThanOrEqual(0);
    expect(report.runs[3].cost.putsPerMillion).toBeGreaterThan(0);
    expect(report.runs[5].cost.getsPerMillion).toBeGreaterThan(0); // the baseline drains by GETting its objects back
    const markdown = readFileSync(join(out, "latest.md"), "utf8");
    expect(markdown).toMatch(/\| 16p-1KiB \| reservoir-embedded \| max-rate \| [\d,]+ \|/);
    expect(markdown).toMatch(/## Backlog drain[\s\S]*\| reservoir-embedded \| 1 \| 1,024 \| [\d,]+ \|/);
    expect(markdown).toMatch(/## Reservoir: produce overhead[\s\S]*\| 16p-1KiB \| reservoir-embedded \| fixed-rate \| [\d.,]+ \|/);
    // A PNG (its signature), not an empty file.
    const png = readFileSync(join(out, "latest.png"));
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(png.length).toBeGreaterThan(1000);
    const dated = report.machine.startedAt.replaceAll(":", "-").slice(0, 19);
    expect(existsSync(join(out, `${dated}.json`))).toBe(true);
  }, 180_000);
});
