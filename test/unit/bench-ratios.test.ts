import { describe, expect, it } from "vitest";
import { formatRatio, ratios } from "../../bench/compare/ratios.ts";
import type { RunResult } from "../../bench/compare/result.ts";

const run = (system: RunResult["system"], mode: RunResult["mode"], figures: Partial<RunResult>): RunResult => ({
  system,
  workload: "16p-1KiB",
  mode,
  messageBytes: 1024,
  partitions: 16,
  messages: 1000,
  ...figures,
});
const publish = (msgsPerSec: number, p50Ms = 1) => ({ msgsPerSec, mibPerSec: 0, p50Ms, p99Ms: 0, p999Ms: 0 });

describe("the report's ratios against each peer", () => {
  const runs = [
    run("reservoir-s3", "max-rate", { publish: publish(80_000), consume: { msgsPerSec: 30_000 } }),
    run("nats-jetstream", "max-rate", { publish: publish(100_000), consume: { msgsPerSec: 120_000 } }),
    run("rabbitmq", "max-rate", { publish: publish(40_000), consume: { msgsPerSec: 60_000 } }),
    run("reservoir-s3", "fixed-rate", { publish: publish(5_000, 40), endToEnd: { p50Ms: 80, p99Ms: 100 } }),
    run("nats-jetstream", "fixed-rate", { publish: publish(5_000, 1), endToEnd: { p50Ms: 2, p99Ms: 5 } }),
    run("rabbitmq", "fixed-rate", { skipped: "not reachable" }),
  ];
  const { peers, rows } = ratios(runs);
  const ratio = (figure: string, peer: RunResult["system"]) => rows.find((r) => r.figure === figure)!.byPeer.get(peer);

  it("divides msgs/s as Reservoir over the peer and milliseconds as the peer over Reservoir, so above 1 always means Reservoir leads", () => {
    expect(peers).toEqual(["nats-jetstream", "rabbitmq"]);
    expect(ratio("max-rate publish msgs/s", "nats-jetstream")).toBeCloseTo(0.8);
    expect(ratio("max-rate publish msgs/s", "rabbitmq")).toBeCloseTo(2);
    expect(ratio("max-rate consume msgs/s", "rabbitmq")).toBeCloseTo(0.5);
    expect(ratio("end-to-end p50 ms at a fixed rate", "nats-jetstream")).toBeCloseTo(0.025);
  });

  it("leaves a skipped or absent peer out of a figure, and a figure Reservoir lacks out of the table", () => {
    expect(ratio("end-to-end p50 ms at a fixed rate", "rabbitmq")).toBeNull();
    expect(rows.some((r) => r.figure === "backlog drain msgs/s")).toBe(false);
    expect(rows.some((r) => r.reservoir === "reservoir-embedded")).toBe(false);
  });

  it("marks leads and trails", () => {
    expect(formatRatio(2)).toBe("2.00× ▲");
    expect(formatRatio(0.8)).toBe("0.80× ▼");
    expect(formatRatio(0.025)).toBe("0.025× ▼");
    expect(formatRatio(16.2)).toBe("16× ▲");
    expect(formatRatio(null)).toBe("—");
  });
});
