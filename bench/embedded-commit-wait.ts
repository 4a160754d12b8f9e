/**
 * How long a single statement (a flush's commit is one) waits on the embedded database's one
 * connection while consumers run transactions on it, with and without statementsFirst
 * (functions/runtime/node/statements-first.ts). PGlite on its thread, reached with postgres.js
 * (max 1), as the Node server does; `--consumers` loops each run a transaction of `--statements`
 * statements back to back (a receive or an ack has about that many), while a statement is sent
 * every `--every` ms and timed.
 *
 *   node --import tsx bench/embedded-commit-wait.ts --consumers 8 --statements 6 --samples 300
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import postgres from "postgres";
import { statementsFirst } from "../functions/runtime/node/statements-first.ts";
import { percentile } from "./lib/load.ts";

const { values: args } = parseArgs({
  options: {
    consumers: { type: "string", default: "8" },
    statements: { type: "string", default: "6" },
    samples: { type: "string", default: "300" },
    every: { type: "string", default: "5" },
  },
});
const dir = mkdtempSync(join(tmpdir(), "reservoir-commit-wait-"));
const worker = new Worker(new URL("../functions/runtime/node/pglite-worker.mjs", import.meta.url), { workerData: { dir } });
const address = await new Promise<string>((resolve) => worker.once("message", (m: { ready: string }) => resolve(m.ready)));
const raw = postgres({
  host: address.slice(0, address.lastIndexOf(":")),
  port: Number(address.slice(address.lastIndexOf(":") + 1)),
  user: "postgres",
  database: "postgres",
  max: 1,
  fetch_types: false,
  onnotice: () => {},
});
await raw`CREATE TABLE probe (id int PRIMARY KEY, n bigint NOT NULL)`;
await raw`INSERT INTO probe SELECT g, 0 FROM generate_series(1, 64) g`;

const round = (x: number) => Math.round(x * 10) / 10;
for (const variant of ["arrival order (before)", "statements first (after)"]) {
  const sql = variant.startsWith("statements") ? statementsFirst(raw) : raw;
  let stop = false;
  let transactions = 0;
  const began = performance.now();
  const consumer = async (c: number) => {
    while (!stop) {
      await sql.begin(async (tx) => {
        for (let s = 0; s < Number(args.statements); s++) await tx`UPDATE probe SET n = n + 1 WHERE id = ${((c * 7 + s) % 64) + 1}`;
      });
      transactions++;
    }
  };
  const consumers = Array.from({ length: Number(args.consumers) }, (_, c) => consumer(c));
  const waits: number[] = [];
  for (let i = 0; i < Number(args.samples); i++) {
    await new Promise((resolve) => setTimeout(resolve, Number(args.every)));
    const started = performance.now();
    await sql`UPDATE probe SET n = n + 1 WHERE id = 64`;
    waits.push(performance.now() - started);
  }
  stop = true;
  const seconds = (performance.now() - began) / 1000;
  await Promise.all(consumers);
  waits.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      variant,
      consumers: Number(args.consumers),
      statementsPerTransaction: Number(args.statements),
      statementP50Ms: round(percentile(waits, 50)),
      statementP99Ms: round(percentile(waits, 99)),
      transactionsPerSec: Math.round(transactions / seconds),
    }),
  );
}
await raw.end();
worker.postMessage("stop");
await new Promise((resolve) => worker.once("message", resolve));
await worker.terminate();
rmSync(dir, { recursive: true, force: true });
