/**
 * The reliability campaign from the command line (docs/reliability.md):
 *   npm run reliability -- [--long] [--seed N] [--duration-s S] [--history FILE]   faults + checker
 *   npm run reliability -- --replay FILE                    the checker alone, over a recorded history
 *   npm run reliability -- --fuzz [--long] [--seed N]       the OpenAPI fuzz (long: >= 10,000 requests)
 *   npm run reliability -- --soak [--target embedded|postgres] [--minutes M] [--read-cache-mib N]
 *                                                           the soak (default 30 min, an 8 MiB read cache)
 * Without --seed the short modes use the fixed CI seed and the long modes a random one; either
 * way the seed is printed first, and `--seed N` reruns the same schedule of faults or requests.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CI_SEED, LONG, runCampaign, SHORT } from "./campaign.ts";
import { check, type CheckResult } from "./checker.ts";
import { readHistory } from "./history.ts";
import { runSoak } from "./soak.ts";

const { values } = parseArgs({
  options: {
    long: { type: "boolean", default: false },
    seed: { type: "string" },
    "duration-s": { type: "string" },
    history: { type: "string" },
    replay: { type: "string" },
    fuzz: { type: "boolean", default: false },
    soak: { type: "boolean", default: false },
    target: { type: "string", default: "embedded" },
    minutes: { type: "string", default: "30" },
    "read-cache-mib": { type: "string", default: "8" },
  },
});

const seed = values.seed !== undefined ? Number(values.seed) : values.long ? Math.floor(Math.random() * 2 ** 31) : CI_SEED;

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
} else if (values.fuzz) {
  // 41 routes x 250 runs: >= 10,000 generated requests in the long mode.
  const runs = values.long ? 250 : 12;
  console.log(`fuzz: seed ${seed}, ${runs} runs per route (rerun with --fuzz --seed ${seed}${values.long ? " --long" : ""})`);
  const run = spawnSync("npx", ["vitest", "run", "test/contract/node-embedded.test.ts", "-t", "fuzz of every route"], {
    stdio: "inherit",
    env: {
      ...process.env,
      RESERVOIR_FUZZ_SEED: String(seed),
      RESERVOIR_FUZZ_RUNS: String(runs),
      ...(values.long ? { RESERVOIR_FUZZ_MIN_REQUESTS: "10000" } : {}),
    },
  });
  process.exitCode = run.status ?? 1;
} else if (values.soak) {
  const target = values.target === "postgres" ? "postgres" : "embedded";
  const samplesPath = join(tmpdir(), `reservoir-soak-${target}-${Date.now()}.json`);
  const readCacheMiB = Number(values["read-cache-mib"]);
  console.log(`soak: ${target}, ${values.minutes} min, read cache ${readCacheMiB} MiB, seed ${seed}, samples ${samplesPath}`);
  const result = await runSoak({ target, minutes: Number(values.minutes), readCacheMiB, seed, samplesPath, log: (l) => console.log(l) });
  console.log(`soak: ${result.requests} requests, ${result.serverErrors} 5xx or failed, ${result.delivered} webhook deliveries`);
  for (const [what, v] of Object.entries(result.verdicts))
    console.log(
      `  ${what}: ${v.flat ? "flat" : "NOT FLAT"} (early median ${v.earlyMedian}, late median ${v.lateMedian}, early max ${v.earlyMax}, late max ${v.lateMax}: ${v.why})`,
    );
  process.exitCode = result.serverErrors === 0 && Object.values(result.verdicts).every((v) => v.flat) ? 0 : 1;
} else {
  const base = values.long ? LONG : SHORT;
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
