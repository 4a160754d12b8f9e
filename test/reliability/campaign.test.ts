// The reliability campaign's short mode (docs/reliability.md): two Node servers on Postgres and
// s3rver behind fault proxies, the fixed CI seed's schedule of S3 faults, Postgres cuts, stalls
// and terminated backends and kill -9s, under mixed load; then the checker over the whole history.
// The long mode is `npm run reliability -- --long [--seed N]`.
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CI_SEED, runCampaign, SHORT, type CampaignResult } from "./campaign.ts";
import { readHistory } from "./history.ts";

describe(`reliability campaign, short mode (seed ${CI_SEED})`, () => {
  it("loses, duplicates, reorders, tears and leaks nothing under S3 faults, Postgres faults and kill -9", async ({ onTestFailed }) => {
    let result: CampaignResult | undefined;
    onTestFailed(() => {
      if (result) console.error(`history: ${result.historyPath}\n${result.logs}`);
    });
    result = await runCampaign({
      ...SHORT,
      seed: CI_SEED,
      historyPath: join(tmpdir(), `reservoir-history-ci-${CI_SEED}-${process.pid}.jsonl`),
      log: (line) => console.log(line),
    });
    console.log(`campaign: ${JSON.stringify(result.stats)}; S3 faults ${JSON.stringify(result.injected)}; history ${result.historyPath}`);
    expect(result.anomalies).toEqual([]);

    // The run exercised what it claims to: faults of every family, and every kind of work.
    const events = readHistory(result.historyPath);
    const faults = events.flatMap((e) => (e.type === "fault" ? [String(e.fault.kind)] : []));
    expect(faults).toContain("kill");
    expect(faults.some((k) => k.startsWith("pg-"))).toBe(true);
    expect(Object.values(result.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(10);
    expect(result.stats.acked).toBeGreaterThan(100);
    expect(result.stats.received).toBeGreaterThan(100);
    expect(result.stats.deliveries).toBeGreaterThan(100);
    const outcomes = new Set(events.flatMap((e) => (e.type === "txn" ? [e.outcome] : [])));
    expect([...outcomes].sort()).toEqual(expect.arrayContaining(["committed", "rolled_back"]));
  }, 420_000);
});
