// The soak's short mode (docs/reliability.md, section 4): one minute of the soak's mixed load on
// the embedded default, sampled from outside every 2 s. A minute says nothing of flatness (that
// takes the long mode's 30 minutes; the verdict rule itself is flatness.test.ts): this runs the
// whole soak (producers, consumers, reader, transactor, webhook sink, topic churn, sampling) on
// every submission and holds it to what any minute of it must show.
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CI_SEED } from "./campaign.ts";
import { runSoak } from "./soak.ts";

describe(`soak, short mode (embedded, 1 minute, seed ${CI_SEED})`, () => {
  it("serves the mixed load with no failed request and no 5xx, delivers webhooks, and is sampled throughout", async () => {
    const lines: string[] = [];
    const result = await runSoak({
      target: "embedded",
      minutes: 1,
      readCacheMiB: 8,
      seed: CI_SEED,
      samplesPath: join(tmpdir(), `reservoir-soak-ci-${process.pid}.json`),
      log: (line) => lines.push(line),
    });
    expect(result.serverErrors, lines.join("\n")).toBe(0);
    expect(result.requests).toBeGreaterThan(100);
    expect(result.delivered).toBeGreaterThan(0);
    // Every 2 s for a minute, each sample a live process's figures.
    expect(result.samples.length).toBeGreaterThanOrEqual(25);
    for (const s of result.samples) {
      expect(s.rssMiB).toBeGreaterThan(0);
      expect(s.fds).toBeGreaterThan(0);
      expect(s.threads).toBeGreaterThan(0);
    }
    expect(result.samples.at(-1)!.requests).toBeGreaterThan(result.samples[0]!.requests);
    expect(Object.keys(result.verdicts).sort()).toEqual(["dataMiB", "fds", "rssMiB", "threads"]);
  }, 180_000);
});
