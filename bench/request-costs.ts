/**
 * CPU per request, by kind, at a paced rate: what one request costs the server (all its threads,
 * and its main thread alone), Postgres (the backends it talks to) and s3rver, and how many
 * statements it sends. At a steady 5,000 msgs/s the cores are shared by all of them, and a
 * request's latency is mostly its waits for a core (docs/benchmarks.md, session 14): this is
 * the figure that has to fall. Requests go one at a time at `--rate` a second, so each produce
 * is a flush of its own; variants (other trees, other settings) take turns, round by round.
 *
 *   node --import tsx bench/request-costs.ts [--stack postgres-s3|embedded] [--rate 150] [--count 1500] [--rounds 2]
 *        [--variant 'name={"root":"/path/to/tree","env":{"NAME":"value"}}']...
 *
 * Kinds: a GET of one topic (the key check and one read), a produce of 25 messages of 1 KiB,
 * a receive of up to 25 (answered in batches), and an ack of one receive's lease receipts.
 * Prints one JSON line per (variant, round, kind): µs per request per process, statements per request.
 */
import { Agent } from "node:http";
import { parseArgs } from "node:util";
import { BATCHES_TYPE, requestJson } from "./lib/http-json.ts";
import { cpuDelta, cpuSnapshot } from "./lib/proc-cpu.ts";
import { startStack, type Stack } from "./lib/stack.ts";
import { payloadFor } from "./compare/payload.ts";
import { produceBody } from "./compare/systems/reservoir-body.ts";

const { values: args } = parseArgs({
  options: {
    stack: { type: "string", default: "postgres-s3" },
    rate: { type: "string", default: "150" },
    count: { type: "string", default: "1500" },
    rounds: { type: "string", default: "2" },
    variant: { type: "string", multiple: true, default: [] },
  },
});
const rate = Number(args.rate);
const count = Number(args.count);
const MESSAGES_PER_REQUEST = 25;
const variants = (args.variant.length > 0 ? args.variant : ["this={}"]).map((v) => {
  const at = v.indexOf("=");
  return { name: v.slice(0, at), ...(JSON.parse(v.slice(at + 1)) as { root?: string; env?: Record<string, string> }) };
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A variant's server with a tenant, a topic of 16 partitions and a group on it. */
async function open(variant: (typeof variants)[number]) {
  const stack: Stack = await startStack(args.stack as "postgres-s3" | "embedded", variant.env ?? {}, [], variant.root);
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
    const res = await requestJson(agent, method, new URL(path, stack.server.baseUrl), headers, body);
    if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${JSON.stringify(res.body).slice(0, 200)}`);
    return res;
  };
  const admin = { authorization: `Bearer ${stack.server.adminToken}`, "content-type": "application/json" };
  const tenant = await call("POST", "/v1/admin/tenants", admin, { name: `costs-${variant.name}` });
  const auth = { authorization: `Bearer ${tenant.body.apiKey}`, "content-type": "application/json" };
  await call("PUT", "/v1/topics/costs", auth, { partitions: 16 });
  await call("PUT", "/v1/topics/costs/groups/g", auth, { startAt: "earliest" });
  const statements = async () => Number((await call("GET", "/v1/admin/metrics", admin)).body.db?.statements ?? Number.NaN);
  return { ...variant, stack, agent, call, auth, statements };
}
type Server = Awaited<ReturnType<typeof open>>;

const payload = payloadFor(1024);
let produced = 0;

/** `n` requests made by `one`, `rate` a second: CPU µs and statements per request. */
async function paced(server: Server, kind: string, n: number, one: (i: number) => Promise<unknown>) {
  const pid = server.stack.server.pid;
  const statementsBefore = await server.statements();
  const before = cpuSnapshot(pid);
  const started = performance.now();
  const inFlight: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const due = started + (i * 1000) / rate;
    const now = performance.now();
    if (due > now) await sleep(due - now);
    inFlight.push(one(i));
  }
  await Promise.all(inFlight);
  const used = cpuDelta(before, cpuSnapshot(pid));
  const statements = (await server.statements()) - statementsBefore - 1; // less the metrics read's own
  const perRequest = Object.fromEntries(Object.entries(used.seconds).map(([p, s]) => [p, Math.round((s * 1e6) / n)]));
  return { kind, requests: n, cpuMicrosPerRequest: perRequest, statementsPerRequest: Math.round((statements / n) * 100) / 100 };
}

/** One round of every kind on `server`. */
async function round(server: Server) {
  const { call, auth } = server;
  const accept = { ...auth, accept: BATCHES_TYPE };
  const receipts: string[][] = [];
  return [
    await paced(server, "GET /v1/topics/{topic}", count, () => call("GET", "/v1/topics/costs", auth)),
    await paced(server, `produce ${MESSAGES_PER_REQUEST} × 1 KiB`, count, () => {
      const first = produced;
      produced += MESSAGES_PER_REQUEST;
      return call("POST", "/v1/topics/costs/messages", auth, produceBody(payload, first, MESSAGES_PER_REQUEST));
    }),
    await paced(server, `receive ${MESSAGES_PER_REQUEST} (batches)`, count, async () => {
      const got = await call("POST", "/v1/topics/costs/groups/g/receive", accept, { max: MESSAGES_PER_REQUEST, waitMs: 0 });
      receipts.push((got.body.leases ?? []).map((l: { receipt: string }) => l.receipt));
    }),
    await paced(server, "ack (one receive's lease receipts)", receipts.length, (i) =>
      call("POST", "/v1/topics/costs/groups/g/ack", auth, { receipts: receipts[i] }),
    ),
  ];
}

const servers: Server[] = [];
try {
  for (const v of variants) servers.push(await open(v));
  // Warm-up: a round of each, unmeasured.
  for (const s of servers) await round(s);
  for (let r = 1; r <= Number(args.rounds); r++) {
    for (const s of servers) {
      for (const result of await round(s)) console.log(JSON.stringify({ variant: s.name, round: r, ...result }));
    }
  }
} finally {
  for (const s of servers) {
    s.agent.destroy();
    await s.stack.stop();
  }
}
