// The side-by-side benchmark harness (`npm run bench`) on a tiny workload, for the systems it
// starts itself (Reservoir embedded and the raw S3 PUT baseline on s3rver): it runs, and writes
// results shaped as issue 5 asks. Nothing about speed is asserted.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../support/node-server.ts";

describe("npm run bench on a tiny workload", () => {
  const out = mkdtempSync(join(tmpdir(), "reservoir-bench-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("measures each system and writes latest.json, a dated copy, latest.md and latest.png", () => {
    const run = spawnSync(
      process.execPath,
      ["--import", "tsx", "bench/compare/run.ts", "--systems", "reservoir-embedded,s3-put-baseline", "--workloads", "16p-1KiB", "--messages", "300", "--rate", "1000", "--out", out],
      { cwd: repoRoot, encoding: "utf8", timeout: 150_000, env: { ...process.env, NODE_OPTIONS: "" } },
    );
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stderr).toMatch(/\[#+\] 4\/4/);
    const report = JSON.parse(readFileSync(join(out, "latest.json"), "utf8"));
    expect(report.machine.cpus).toBeGreaterThan(0);
    expect(report.runs.map((r: { system: string; mode: string }) => `${r.system} ${r.mode}`)).toEqual([
      "reservoir-embedded max-rate",
      "reservoir-embedded fixed-rate",
      "s3-put-baseline max-rate",
      "s3-put-baseline fixed-rate",
    ]);
    for (const r of report.runs) {
      expect(r.skipped, JSON.stringify(r)).toBeUndefined();
      expect(r).toMatchObject({ workload: "16p-1KiB", messageBytes: 1024, messages: r.mode === "max-rate" ? 300 : 150 });
      if (r.mode === "fixed-rate") {
        expect(r.ratePerSec).toBe(1000);
        expect(r.endToEnd.p99Ms).toBeGreaterThanOrEqual(r.endToEnd.p50Ms);
        expect(r.endToEnd.p50Ms).toBeGreaterThan(0);
      } else {
        expect(r.endToEnd).toEqual({ p50Ms: null, p99Ms: null });
      }
      expect(r.publish.msgsPerSec).toBeGreaterThan(0);
      expect(r.publish.p99Ms).toBeGreaterThanOrEqual(r.publish.p50Ms);
      expect(r.publish.p999Ms).toBeGreaterThanOrEqual(r.publish.p99Ms);
      expect(r.consume.msgsPerSec).toBeGreaterThan(0);
      expect(Object.keys(r.cost).sort()).toEqual(["commitsPerFlush", "commitsPerMillion", "getsPerMillion", "putsPerFlush", "putsPerMillion"]);
    }
    const reservoirRun = report.runs[0];
    expect(reservoirRun.cost.putsPerFlush).toBe(1);
    expect(reservoirRun.cost.commitsPerFlush).toBe(1);
    expect(reservoirRun.cost.getsPerMillion).toBeGreaterThanOrEqual(0);
    expect(report.runs[2].cost.putsPerMillion).toBeGreaterThan(0);
    expect(readFileSync(join(out, "latest.md"), "utf8")).toMatch(/\| 16p-1KiB \| reservoir-embedded \| max-rate \| [\d,]+ \|/);
    // A PNG (its signature), not an empty file.
    const png = readFileSync(join(out, "latest.png"));
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(png.length).toBeGreaterThan(1000);
    const dated = report.machine.startedAt.replaceAll(":", "-").slice(0, 19);
    expect(existsSync(join(out, `${dated}.json`))).toBe(true);
  }, 180_000);
});
