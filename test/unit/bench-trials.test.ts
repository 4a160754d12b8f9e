import { describe, expect, it } from "vitest";
import type { RunResult } from "../../bench/compare/result.ts";
import { fastest, fastestOf } from "../../bench/compare/trials.ts";

const run = (publish: number, consume: number): RunResult => ({
  system: "reservoir-s3",
  workload: "16p-1KiB",
  mode: "max-rate",
  messageBytes: 1024,
  partitions: 16,
  messages: 200_000,
  publish: { msgsPerSec: publish, mibPerSec: 0, p50Ms: 0, p99Ms: 0, p999Ms: 0 },
  consume: { msgsPerSec: consume },
});

describe("max-rate trials", () => {
  it("keep the trial of least publish + consume time, and list every trial in order", () => {
    // 200,000 / 100,000 + 200,000 / 400,000 = 2.5 s against 200,000 / 200,000 + 200,000 / 100,000 = 3 s.
    const kept = fastest([run(200_000, 100_000), run(100_000, 400_000)]);
    expect(kept.publish?.msgsPerSec).toBe(100_000);
    expect(kept.consume?.msgsPerSec).toBe(400_000);
    expect(kept.trials).toEqual([
      { publishMsgsPerSec: 200_000, consumeMsgsPerSec: 100_000 },
      { publishMsgsPerSec: 100_000, consumeMsgsPerSec: 400_000 },
    ]);
  });

  it("record no trials for a single run", () => {
    expect(fastest([run(1, 1)]).trials).toBeUndefined();
  });

  it("run each trial in turn and stop at a skipped one", async () => {
    const skipped: RunResult = { ...run(1, 1), publish: undefined, consume: undefined, skipped: "not reachable" };
    const given = [run(10, 10), skipped, run(20, 20)];
    let calls = 0;
    const r = await fastestOf(3, async () => given[calls++]);
    expect(calls).toBe(2);
    expect(r.skipped).toBe("not reachable");
    calls = 0;
    const all = [run(10, 10), run(30, 30), run(20, 20)];
    const best = await fastestOf(3, async () => all[calls++]);
    expect(calls).toBe(3);
    expect(best.publish?.msgsPerSec).toBe(30);
  });
});
