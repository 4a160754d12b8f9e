/**
 * The model test's long mode: `npm run test:model -- --runs 5000` runs that many random walks
 * of test/integration/groups-model.test.ts, on random seeds, each printed before its walks (and
 * again if it fails). `npm test` runs the same test on its fixed seeds only.
 */
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { runs: { type: "string", default: "5000" } } });
const runs = Number(values.runs);
if (!Number.isSafeInteger(runs) || runs < 1) {
  console.error(`--runs must be a positive integer, not ${values.runs}`);
  process.exit(2);
}
const vitest = spawnSync("npx", ["vitest", "run", "test/integration/groups-model.test.ts", "-t", "random walks"], {
  stdio: "inherit",
  env: { ...process.env, GROUPS_MODEL_LONG_RUNS: String(runs) },
});
process.exit(vitest.status ?? 1);
