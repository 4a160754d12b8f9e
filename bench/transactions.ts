/**
 * Transactional produce against plain produce, in the same run on the same server: P producers
 * (default 50) each loop for S seconds per phase over 1 KiB messages, 10 messages per unit:
 *   plain:         POST messages (10 messages)                                  → 200 offsets
 *   transactional: POST /v1/transactions → POST messages with transactionId (10) → POST commit
 * Prints a JSON report: messages per second of each phase and their ratio, latency per call
 * (begin, produce, commit; plain produce), Postgres statements per unit (delta of the server's
 * db.statements over the phase / units), and a check that the high watermarks add up to what
 * was acknowledged (exits 1 otherwise, or on any failed call).
 *
 *   npx tsx bench/transactions.ts [--producers 50] [--seconds 20] [--messages 10] [--size 1024]
 *                                 [--partitions 8] [--stack postgres-s3|embedded]
 */
import { Agent } from "node:http";
import { parseArgs } from "node:util";
import { checkedCall } from "./lib/preload.ts";
import { latencySummary } from "./lib/http-json.ts";
import { startStack } from "./lib/stack.ts";

const { values: args } = parseArgs({
  options: {
    producers: { type: "string", default: "50" },
    seconds: { type: "string", default: "20" },
    messages: { type: "string", default: "10" },
    size: { type: "string", default: "1024" },
    partitions: { type: "string", default: "8" },
    stack: { type: "string", default: "postgres-s3" },
  },
});
const producers = Number(args.producers);
const seconds = Number(args.seconds);
const perUnit = Number(args.messages);
const size = Number(args.size);
const partitions = Number(args.partitions);

const stack = await startStack(args.stack as "postgres-s3" | "embedded");
let failed = false;
try {
  const base = stack.server.baseUrl;
  const agent = new Agent({ keepAlive: true, maxSockets: producers + 2 });
  const call = checkedCall(agent, base);
  const admin = { authorization: `Bearer ${stack.server.adminToken}`, "content-type": "application/json" };
  const tenant = await call("POST", "/v1/admin/tenants", admin, { name: "bench-tx" });
  const auth = { authorization: `Bearer ${tenant.apiKey}`, "content-type": "application/json" };
  await call("PUT", "/v1/topics/bench", auth, { partitions });
  const statements = async () => (await call("GET", "/v1/admin/metrics", admin)).db.statements as number;
  const value = "x".repeat(size);
  const unit = () => Array.from({ length: perUnit }, () => ({ value }));

  async function phase(name: string, work: (latencies: Record<string, number[]>) => Promise<void>) {
    const latencies: Record<string, number[]> = {};
    const s0 = await statements();
    const started = performance.now();
    const until = started + seconds * 1000;
    let units = 0;
    const errors: string[] = [];
    await Promise.all(
      Array.from({ length: producers }, async () => {
        while (performance.now() < until) {
          try {
            await work(latencies);
            units++;
          } catch (error) {
            errors.push((error as Error).message);
            if (errors.length > 20) return;
          }
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const s1 = await statements();
    if (errors.length > 0) failed = true;
    return {
      name,
      units,
      messages: units * perUnit,
      seconds: Number(elapsed.toFixed(2)),
      msgsPerSec: Math.round((units * perUnit) / elapsed),
      unitsPerSec: Math.round(units / elapsed),
      dbStatementsPerUnit: Number(((s1 - s0) / Math.max(1, units)).toFixed(2)),
      latencyMs: Object.fromEntries(Object.entries(latencies).map(([k, v]) => [k, latencySummary(v)])),
      errors: errors.slice(0, 5),
    };
  }

  const timed = async <T>(latencies: Record<string, number[]>, name: string, work: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const result = await work();
    const list = latencies[name] ?? [];
    list.push(performance.now() - t0);
    latencies[name] = list;
    return result;
  };

  const plain = await phase("plain", async (l) => {
    await timed(l, "produce", () => call("POST", "/v1/topics/bench/messages", auth, { messages: unit() }));
  });
  const transactional = await phase("transactional", async (l) => {
    const tx = await timed(l, "begin", () => call("POST", "/v1/transactions", auth, { timeoutSeconds: 120 }));
    await timed(l, "produce", () =>
      call("POST", "/v1/topics/bench/messages", auth, { messages: unit(), transactionId: tx.transactionId }, [202]),
    );
    const committed = await timed(l, "commit", () => call("POST", `/v1/transactions/${tx.transactionId}/commit`, auth, {}));
    if (committed.offsets.length !== perUnit) throw new Error(`commit answered ${committed.offsets.length} offsets`);
  });

  const topic = await call("GET", "/v1/topics/bench", auth);
  const stored = (topic.highWatermarks as number[]).reduce((a, b) => a + b, 0);
  const expected = plain.messages + transactional.messages;
  if (stored !== expected) failed = true;
  console.log(
    JSON.stringify(
      {
        stack: args.stack,
        producers,
        messagesPerUnit: perUnit,
        messageBytes: size,
        partitions,
        secondsPerPhase: seconds,
        plain,
        transactional,
        throughputRatio: Number((transactional.msgsPerSec / plain.msgsPerSec).toFixed(3)),
        highWatermarksAddUp: { stored, acknowledged: expected, ok: stored === expected },
      },
      null,
      2,
    ),
  );
} finally {
  await stack.stop();
}
process.exit(failed ? 1 : 0);
