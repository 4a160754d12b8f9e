/**
 * The reliability campaign from the command line (docs/reliability.md):
 *   npm run reliability -- [--long] [--seed N] [--duration-s S] [--history FILE]
 *   npm run reliability -- --replay FILE      (the checker alone, over a recorded history)
 * Without --seed the short mode uses the fixed CI seed and the long mode a random one; either
 * way the seed is printed first, and `--seed N` reruns the same schedule of faults.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CI_SEED, LONG, runCampaign, SHORT } from "./campaign.ts";
import { check, type CheckResult } from "./checker.ts";
import { readHistory } from "./history.ts";

const { values } = parseArgs({
  options: {
    long: { type: "boolean", default: false },
    seed: { type: "string" },
    "duration-s": { type: "string" },
    history: { type: "string" },
    replay: { type: "string" },
  },
});

function report(result: CheckResult): number {
  console.log(`checked: ${JSON.stringify(result.stats)}`);
  if (result.anomalies.length === 0) {
    console.log("anomalies: none");
    return 0;
  }
  console.log(`anomalies: ${result.anomalies.length}`);
  for (const a of result.anomalies.slice(0, 50)) console.log(`  ${a.kind}: ${a.detail}`);
  return 1;
}

if (values.replay) {
  const events = readHistory(values.replay);
  const header = events.find((e) => e.type === "run");
  console.log(`replaying ${values.replay} (seed ${header?.type === "run" ? header.seed : "?"}, ${events.length} events)`);
  process.exitCode = report(check(events));
} else {
  const base = values.long ? LONG : SHORT;
  const seed = values.seed !== undefined ? Number(values.seed) : values.long ? Math.floor(Math.random() * 2 ** 31) : CI_SEED;
  console.log(`reliability campaign: seed ${seed} (rerun with --seed ${seed}${values.long ? " --long" : ""})`);
  const historyPath = values.history ?? join(tmpdir(), `reservoir-history-${seed}-${Date.now()}.jsonl`);
  const result = await runCampaign({
    ...base,
    ...(values["duration-s"] ? { durationMs: Number(values["duration-s"]) * 1000 } : {}),
    seed,
    historyPath,
    log: (l) => console.log(l),
  });
  writeFileSync(`${historyPath}.servers.log`, result.logs);
  console.log(`S3 faults injected: ${JSON.stringify(result.injected)}`);
  console.log(`history: ${historyPath} (replay: npm run reliability -- --replay ${historyPath})`);
  process.exitCode = report(result);
}
