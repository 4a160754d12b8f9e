/**
 * Webhook push delivery: how fast the dispatcher drains a backlog into an endpoint that answers
 * at once, and how long a message takes from produce to its delivery at a steady rate. The
 * endpoint (the "sink") is a node:http server on 127.0.0.1 in this process; the server is
 * started with RESERVOIR_WEBHOOK_ALLOW_PRIVATE=127.0.0.1 so that it may deliver there. All
 * traffic stays on 127.0.0.1: the sink, the server, Postgres and s3rver.
 *
 *   npx tsx bench/webhooks.ts [--stack postgres-s3|embedded] [--messages 20000] [--size 1024]
 *                             [--partitions 16] [--concurrency 100] [--ordering none|key] [--keys K]
 *                             [--rate 200] [--seconds 10] [--warmup 1] [--timeout 300]
 *                             [--phases max,latency] [--produce-concurrency 4] [--cpu-prof DIR]
 *
 * Phase "max" (deliveries per second): preload --messages messages of --size bytes into a topic
 * of --partitions partitions (requests of 1,000, --produce-concurrency at once; keyless messages
 * spread round-robin over the partitions, or --keys distinct keys), then create a subscription
 * (startAt "earliest", maxConcurrency --concurrency, --ordering) and time from its PUT until
 * the sink has seen every message's webhook-id.
 * Phase "latency" (produce → delivery): a subscription (startAt "latest") on a fresh topic, then
 * one message per produce request at --rate messages/s (open loop: sends follow the clock, not
 * the answers) for --warmup + --seconds seconds; each value carries its send time
 * (performance.timeOrigin + performance.now(), the sink's clock too) and the sink takes arrival
 * − send. The warm-up's messages are checked like the others but not in the percentiles.
 *
 * Report (JSON on stdout), per phase:
 * - maxRate.deliveriesPerSec: distinct messages delivered / seconds from the subscription's PUT
 *   to the arrival of the last new webhook-id; steadyDeliveriesPerSec: the same between the 10th
 *   and the 90th percentile of arrivals (no start-up, no tail); timeToFirstDeliveryMs.
 *   allDelivered / delivered / missing: whether, how many and how many not, by the time limit.
 * - requests, duplicates (requests for a webhook-id seen before), laterAttempts (bodies with
 *   attempt > 1: the server saw a failure although the sink answered 200 at once), invalid
 *   (a body whose id, value, key, partition or offset is not the message's), badHeaders (a
 *   format check of every request's webhook headers and content type), signatures (checked /
 *   failed: the first 20 requests of a phase and one in 50 after, verified with the
 *   `standardwebhooks` package as they arrive, since it refuses timestamps over 5 minutes old),
 *   keyOutOfOrder (--ordering key: a key's message first delivered after a later one of the
 *   key), sinkConnections (TCP connections the server opened to the sink during the phase).
 * - dbStatements / dbStatementsPerDelivery: delta of the server's Postgres statement counter
 *   (GET /v1/admin/metrics, db.statements: postgres.js's debug hook) from just before the
 *   subscription's PUT until the counter settles after the last delivery (so it includes the
 *   PUT, the settles of the last deliveries and a sweep a second); null on the embedded stack
 *   (PGlite is not counted). In the latency phase it is per message and includes the produce.
 * - dispatcher: deltas of the server's dispatcher counters (GET /v1/admin/metrics, webhooks:
 *   attempts, succeeded, failed, claims, settles; claims include those that found nothing) and
 *   attemptsPerClaim / attemptsPerSettle (each claim and settle is one transaction).
 * - cpu: CPU seconds per process over the phase (server, its main thread alone, its Postgres
 *   backends, s3rver, "client" = this process: producer and sink; see bench/lib/proc-cpu.ts),
 *   and cpuMsPerDelivery (the same divided by the deliveries).
 * - latency.latencyMs: p50/p90/p99/max/mean of arrival − send over the measured messages;
 *   produceLatencyMs: the produce requests' round trips (a message cannot be delivered before
 *   its produce commits, so this is the part of the latency that is not the dispatcher's);
 *   afterProduceAnswerMs: arrival − the produce answer's arrival, per message (the dispatcher's
 *   share, give or take the answer's trip back; negative when the delivery won the race);
 *   latencyP50BySecondMs: the median latency of the messages sent in each second (a rising
 *   series means deliveries fall behind the rate); deliveriesBySecond: new webhook-ids at the
 *   sink in each second from the first send; scheduleLagMaxMs: how late this process sent
 *   compared to the schedule (a busy client).
 * - subscription: lag, inFlight and deadLettered once the phase settled (all must be 0);
 *   deliveryLog: the latest 1,000 attempts of its delivery log (GET .../deliveries): how many
 *   failed and why (errors), and durationMs, the server's own timing of each attempt.
 *
 * Exits 1 if the server misbehaved: not every message delivered within --timeout seconds (of
 * the PUT for "max", of the last send for "latency"), a signature or body that does not verify,
 * a duplicate or a retry (the sink never fails, so each message must arrive exactly once), a
 * produce that failed, key order violated, or lag / in-flight / dead letters left. Timings are
 * reported, never asserted.
 *
 * --cpu-prof DIR: the server writes a V8 CPU profile there on exit; it is summarised over each
 * phase's window and printed to stderr (see bench/lib/cpuprofile.ts; the windows are in the
 * report too, for `npx tsx bench/lib/cpuprofile.ts FILE --from US --to US`).
 */
import { Agent, createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { Webhook } from "standardwebhooks";
import { analyzeProfileFile, formatSummary } from "./lib/cpuprofile.ts";
import { checkedCall, preload } from "./lib/preload.ts";
import { CallTimeout } from "./lib/timeout.ts";
import { percentile, post } from "./lib/load.ts";
import { cpuDelta, cpuSnapshot, type CpuUse } from "./lib/proc-cpu.ts";
import { codeVersion, listDir, newProfiles } from "./lib/run-info.ts";
import { startStack } from "./lib/stack.ts";

const { values: args } = parseArgs({
  options: {
    stack: { type: "string", default: "postgres-s3" },
    messages: { type: "string", default: "20000" },
    size: { type: "string", default: "1024" },
    partitions: { type: "string", default: "16" },
    concurrency: { type: "string", default: "100" },
    ordering: { type: "string", default: "none" },
    keys: { type: "string" },
    rate: { type: "string", default: "200" },
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "1" },
    timeout: { type: "string", default: "300" },
    phases: { type: "string", default: "max,latency" },
    "produce-concurrency": { type: "string", default: "4" },
    "cpu-prof": { type: "string" },
  },
});
const stackKind = args.stack as "postgres-s3" | "embedded";
const total = Number(args.messages);
const size = Number(args.size);
const partitions = Number(args.partitions);
const concurrency = Number(args.concurrency);
const ordering = args.ordering as "none" | "key";
const keys = Number(args.keys ?? (ordering === "key" ? 1000 : 0));
const rate = Number(args.rate);
const seconds = Number(args.seconds);
const warmup = Number(args.warmup);
const timeoutS = Number(args.timeout);
const phases = new Set(args.phases!.split(",").map((s) => s.trim()));
const produceConcurrency = Number(args["produce-concurrency"]);
const ID_DIGITS = 10;
/** Verify the signature of the first this many requests of a phase, then one in SAMPLE_EVERY. */
const SAMPLE_FIRST = 20;
const SAMPLE_EVERY = 50;
/** The sink's host: the only address the server is allowed to deliver to. */
const SINK_HOST = "127.0.0.1";

if (!["postgres-s3", "embedded"].includes(stackKind)) throw new Error(`--stack must be postgres-s3 or embedded, not ${stackKind}`);
if (!["none", "key"].includes(ordering)) throw new Error(`--ordering must be none or key, not ${ordering}`);
if (!(concurrency >= 1 && concurrency <= 100)) throw new Error("--concurrency must be 1..100 (the API's bound)");
if (size < 48) throw new Error("--size must be at least 48 (the value carries an index and a send time)");
for (const p of phases) if (p !== "max" && p !== "latency") throw new Error(`--phases: unknown phase ${p}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
/** Milliseconds since the epoch, sub-millisecond, on the same clock in the producer and the sink. */
const wallMs = () => performance.timeOrigin + performance.now();
/** Progress on stderr (the report goes to stdout). */
const progress = (what: string) => console.error(`[webhooks ${new Date().toISOString().slice(11, 23)}] ${what}`);
const r2 = (x: number) => Number(x.toFixed(2));
const keyOf = (i: number) => (keys > 0 ? `k${i % keys}` : undefined);

// ---------------------------------------------------------------------------------------------
// The sink.

interface Delivered {
  /** The parsed body. */
  body: any;
  /** performance.now() when the request's headers arrived. */
  arrivedAt: number;
  /** First time this webhook-id arrived. */
  first: boolean;
}

interface Route {
  /** The subscription's verifier, once its PUT answered (deliveries may arrive before). */
  webhook?: Webhook;
  requests: number;
  /** Deliveries per webhook-id. */
  ids: Map<string, number>;
  /** performance.now() of the arrival of each new webhook-id, in arrival order. */
  newIdAt: number[];
  duplicates: number;
  laterAttempts: number;
  invalid: number;
  badHeaders: number;
  /** Sampled requests not verified yet (they came before the secret was known). */
  samples: { body: string; headers: Record<string, string> }[];
  signatures: { checked: number; failed: number };
  problems: string[];
  /** Phase-specific checks of a delivery; returns a problem, or null. */
  check: (d: Delivered) => string | null;
}

function startSink() {
  const routes = new Map<string, Route>();
  let connections = 0;
  const note = (route: Route, what: string) => {
    if (route.problems.length < 10) route.problems.push(what);
  };
  const verifySamples = (route: Route) => {
    for (const { body, headers } of route.samples.splice(0)) {
      route.signatures.checked++;
      try {
        route.webhook!.verify(body, headers);
      } catch (err) {
        route.signatures.failed++;
        note(route, `signature of ${headers["webhook-id"]} does not verify: ${(err as Error).message}`);
      }
    }
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const arrivedAt = performance.now();
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      // Answer first: the endpoint costs the dispatcher as little as it can.
      res.writeHead(200, { "content-length": "0" });
      res.end();
      const route = routes.get(req.url ?? "");
      if (!route) return;
      route.requests++;
      const body = Buffer.concat(chunks).toString("utf8");
      const h = req.headers as Record<string, string>;
      const id = h["webhook-id"] ?? "";
      const seen = route.ids.get(id) ?? 0;
      route.ids.set(id, seen + 1);
      if (seen === 0) route.newIdAt.push(arrivedAt);
      else route.duplicates++;
      // Every request: the headers are well formed (the sample below verifies the HMAC).
      const ts = Number(h["webhook-timestamp"]);
      if (
        req.method !== "POST" ||
        !/^msg_\d+_\d+_\d+$/.test(id) ||
        !/^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$/.test(h["webhook-signature"] ?? "") ||
        !Number.isInteger(ts) ||
        Math.abs(ts - Date.now() / 1000) > 300 ||
        !(h["content-type"] ?? "").startsWith("application/json")
      ) {
        route.badHeaders++;
        note(
          route,
          `bad request: ${req.method} id=${id} ts=${h["webhook-timestamp"]} sig=${h["webhook-signature"]} ct=${h["content-type"]}`,
        );
      }
      let parsed: any;
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
      }
      if (parsed?.attempt !== 1) route.laterAttempts++;
      const [, , p, o] = id.split("_");
      const problem =
        parsed === undefined
          ? "body is not JSON"
          : parsed.id !== id
            ? `body id ${parsed.id} is not the webhook-id ${id}`
            : parsed.partition !== Number(p) || parsed.offset !== Number(o)
              ? `body partition/offset ${parsed.partition}/${parsed.offset} do not match ${id}`
              : route.check({ body: parsed, arrivedAt, first: seen === 0 });
      if (problem) {
        route.invalid++;
        note(route, problem);
      }
      const n = route.requests - 1;
      if (n < SAMPLE_FIRST || n % SAMPLE_EVERY === 0 || parsed?.attempt !== 1 || problem) {
        // At once: the verifier refuses a webhook-timestamp more than 5 minutes old.
        route.samples.push({ body, headers: h });
        if (route.webhook) verifySamples(route);
      }
    });
  };
  const server = createServer(handle);
  server.on("connection", () => connections++);
  server.keepAliveTimeout = 30_000;
  const listening = new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, SINK_HOST, () => resolve((server.address() as AddressInfo).port));
  });
  return {
    async url(path: string) {
      return `http://${SINK_HOST}:${await listening}${path}`;
    },
    route(path: string, check: Route["check"]): Route {
      const route: Route = {
        requests: 0,
        ids: new Map(),
        newIdAt: [],
        duplicates: 0,
        laterAttempts: 0,
        invalid: 0,
        badHeaders: 0,
        samples: [],
        signatures: { checked: 0, failed: 0 },
        problems: [],
        check,
      };
      routes.set(path, route);
      return route;
    },
    get connections() {
      return connections;
    },
    /** Waits until the route has seen `n` distinct webhook-ids, or until `deadline` (performance.now()). */
    async waitDistinct(route: Route, n: number, deadline: number): Promise<boolean> {
      while (route.ids.size < n) {
        if (performance.now() > deadline) return false;
        await sleep(10);
      }
      return true;
    },
    /** From now on, verifies sampled requests with `standardwebhooks` as they come (and those that came). */
    secret(route: Route, secret: string): void {
      route.webhook = new Webhook(secret);
      verifySamples(route);
    },
    /** The signatures checked and failed so far. */
    verify(route: Route): { checked: number; failed: number } {
      return { ...route.signatures };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------

function summary(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const mean = s.length === 0 ? NaN : s.reduce((a, b) => a + b, 0) / s.length;
  return {
    count: s.length,
    p50: r2(percentile(s, 50)),
    p90: r2(percentile(s, 90)),
    p99: r2(percentile(s, 99)),
    max: r2(s.at(-1) ?? NaN),
    mean: r2(mean),
  };
}

function perDelivery(cpu: CpuUse, n: number): Record<string, number> {
  return Object.fromEntries(Object.entries(cpu.seconds).map(([k, v]) => [k, r2((v * 1000) / Math.max(1, n))]));
}

const code = codeVersion();
const profileDir = args["cpu-prof"];
const profilesBefore = new Set(profileDir ? listDir(profileDir) : []);
const profileArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
const sink = startSink();
await sink.url("/");
const stack = await startStack(stackKind, { RESERVOIR_WEBHOOK_ALLOW_PRIVATE: SINK_HOST }, profileArgs).catch(async (error: unknown) => {
  await sink.close();
  throw error;
});
const windows: Record<string, [number, number]> = {};
const problems: string[] = [];
const report: Record<string, unknown> = {
  code,
  stack: stackKind,
  messageBytes: size,
  partitions,
  ordering,
  keys,
  concurrency,
};
try {
  const base = stack.server.baseUrl;
  const agent = new Agent({ keepAlive: true, maxSockets: 1000 });
  const admin = { authorization: `Bearer ${stack.server.adminToken}`, "content-type": "application/json" };
  const call = checkedCall(agent, base);
  progress(`server up (${stackKind}, pid ${stack.server.pid})`);
  const tenant = await call("POST", "/v1/admin/tenants", admin, { name: "bench" });
  const auth = { authorization: `Bearer ${tenant.apiKey}`, "content-type": "application/json" };
  const metrics = () => call("GET", "/v1/admin/metrics", admin);
  const statements = async (): Promise<number> => (await metrics()).db.statements;
  /** The dispatcher's counters (attempts, succeeded, failed, claims, settles), when the server reports them. */
  const dispatcherStats = async (): Promise<Record<string, number>> => (await metrics()).webhooks ?? {};
  /** Deltas of the dispatcher's counters, and deliveries per claim and per settle. */
  const dispatcherDelta = (a: Record<string, number>, b: Record<string, number>) => {
    const d = Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]));
    if (d.claims === undefined) return null;
    return {
      ...d,
      attemptsPerClaim: r2(d.attempts / Math.max(1, d.claims)),
      attemptsPerSettle: r2(d.attempts / Math.max(1, d.settles)),
    };
  };
  /** The statement counter once it stopped moving for 300 ms (at most 5 s). */
  const settledStatements = async (): Promise<number> => {
    let last = await statements();
    let still = 0;
    for (const end = performance.now() + 5000; still < 3 && performance.now() < end; ) {
      await sleep(100);
      const now = await statements();
      still = now === last ? still + 1 : 0;
      last = now;
    }
    return last;
  };
  /** The subscription's view once nothing is in flight and nothing lags (at most 5 s). */
  const settledView = async (topic: string, name: string) => {
    let view: any;
    for (const end = performance.now() + 5000; ; await sleep(100)) {
      view = await call("GET", `/v1/topics/${topic}/subscriptions/${name}`, auth);
      if ((view.lag === 0 && view.inFlight === 0) || performance.now() > end) break;
    }
    return { state: view.state, lag: view.lag, inFlight: view.inFlight, deadLettered: view.deadLettered };
  };
  const subscribe = async (topic: string, name: string, url: string, startAt: "earliest" | "latest") =>
    call("PUT", `/v1/topics/${topic}/subscriptions/${name}`, auth, { url, startAt, ordering, maxConcurrency: concurrency });
  /** The latest (≤ 1,000) attempts of the delivery log: how long each took, as the server timed it. */
  const attemptLog = async (topic: string, name: string) => {
    const { deliveries } = await call("GET", `/v1/topics/${topic}/subscriptions/${name}/deliveries?limit=1000`, auth);
    const errors: Record<string, number> = {};
    for (const d of deliveries) {
      if (d.status === "succeeded") continue;
      const why = d.error ?? `HTTP ${d.httpStatus}`;
      errors[why] = (errors[why] ?? 0) + 1;
    }
    return {
      attempts: deliveries.length,
      failed: deliveries.filter((d: any) => d.status !== "succeeded").length,
      ...(Object.keys(errors).length > 0 && { errors }),
      durationMs: summary(deliveries.map((d: any) => d.durationMs)),
    };
  };
  // The postgres.js counter: an embedded (PGlite) server counts nothing.
  const counted = (n: number, work: number) => (n > 0 || work === 0 ? n : null);
  const phaseProblems = (
    phase: string,
    route: Route,
    signatures: { failed: number },
    sub: { lag: number; inFlight: number; deadLettered: number },
  ) => {
    const out = [
      route.duplicates > 0 && `${route.duplicates} duplicate deliveries`,
      route.laterAttempts > 0 && `${route.laterAttempts} deliveries with attempt > 1 (the sink never failed)`,
      route.invalid > 0 && `${route.invalid} invalid bodies`,
      route.badHeaders > 0 && `${route.badHeaders} requests with malformed webhook headers`,
      signatures.failed > 0 && `${signatures.failed} signatures do not verify`,
      sub.lag !== 0 && `subscription lag ${sub.lag}`,
      sub.inFlight !== 0 && `${sub.inFlight} deliveries still in flight`,
      sub.deadLettered !== 0 && `${sub.deadLettered} dead-lettered`,
    ].filter((x): x is string => typeof x === "string");
    problems.push(...out.map((p) => `${phase}: ${p}`), ...route.problems.map((p) => `${phase}: ${p}`));
  };

  // -------------------------------------------------------------------------------------------
  // Phase 1: deliveries per second, from a preloaded backlog.
  if (phases.has("max")) {
    await call("PUT", "/v1/topics/backlog", auth, { partitions });
    const messageValue = (i: number) => String(i).padStart(ID_DIGITS, "0") + "-" + "x".repeat(size - ID_DIGITS - 1);
    const preloadSeconds = await preload(call, auth, "backlog", {
      total,
      partitions,
      concurrency: produceConcurrency,
      valueOf: messageValue,
      keyOf,
    });
    progress(`preloaded ${total} messages in ${preloadSeconds.toFixed(1)} s; subscribing (startAt earliest)`);

    const seen = new Uint8Array(total);
    const lastOffsetOfKey = new Map<string, number>();
    let keyOutOfOrder = 0;
    const route = sink.route("/max", ({ body, first }) => {
      const i = typeof body.value === "string" ? Number(body.value.slice(0, ID_DIGITS)) : NaN;
      if (!Number.isInteger(i) || i < 0 || i >= total || body.value !== messageValue(i))
        return `unexpected value ${String(body.value).slice(0, 40)}`;
      if (body.key !== keyOf(i)) return `message ${i}: key ${body.key}, expected ${keyOf(i)}`;
      if (body.topic !== "backlog") return `message ${i}: topic ${body.topic}`;
      if (first) {
        seen[i] = 1;
        if (ordering === "key" && body.key !== undefined) {
          const last = lastOffsetOfKey.get(body.key);
          if (last !== undefined && body.offset < last) keyOutOfOrder++;
          lastOffsetOfKey.set(body.key, Math.max(last ?? -1, body.offset));
        }
      }
      return null;
    });

    const connectionsBefore = sink.connections;
    const ds0 = await dispatcherStats();
    const st0 = await statements();
    const cpu0 = cpuSnapshot(stack.server.pid);
    const startUs = nowUs();
    const t0 = performance.now();
    const created = await subscribe("backlog", "max", await sink.url("/max"), "earliest");
    sink.secret(route, created.secret);
    const all = await sink.waitDistinct(route, total, t0 + timeoutS * 1000);
    // What arrived by the deadline (more may arrive while the phase settles).
    const arrivals = route.newIdAt.slice();
    const delivered = arrivals.length;
    progress(`max: ${delivered}/${total} delivered in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const endUs = nowUs();
    const cpu = cpuDelta(cpu0, cpuSnapshot(stack.server.pid));
    const st1 = await settledStatements();
    const ds1 = await dispatcherStats();
    windows.max = [startUs, endUs];
    const sub = await settledView("backlog", "max");
    const log = await attemptLog("backlog", "max");
    const signatures = sink.verify(route);

    const lastAt = arrivals.at(-1) ?? performance.now();
    const secs = (lastAt - t0) / 1000;
    const at = (q: number) => arrivals[Math.min(arrivals.length - 1, Math.floor(q * arrivals.length))];
    const steady = arrivals.length >= 10 ? (0.8 * arrivals.length) / ((at(0.9) - at(0.1)) / 1000) : NaN;
    const missing = total - delivered;
    const dbStatements = counted(st1 - st0, delivered);
    report.maxRate = {
      messages: total,
      preload: { seconds: r2(preloadSeconds), msgsPerSec: Math.round(total / preloadSeconds) },
      allDelivered: all,
      delivered,
      missing,
      seconds: r2(secs),
      deliveriesPerSec: Math.round(delivered / secs),
      steadyDeliveriesPerSec: Math.round(steady),
      timeToFirstDeliveryMs: arrivals.length > 0 ? r2(arrivals[0] - t0) : null,
      requests: route.requests,
      duplicates: route.duplicates,
      laterAttempts: route.laterAttempts,
      invalid: route.invalid,
      badHeaders: route.badHeaders,
      signatures,
      ...(ordering === "key" && { keyOutOfOrder }),
      sinkConnections: sink.connections - connectionsBefore,
      dbStatements,
      dbStatementsPerDelivery: dbStatements === null ? null : Number((dbStatements / Math.max(1, delivered)).toFixed(3)),
      dispatcher: dispatcherDelta(ds0, ds1),
      cpu,
      cpuMsPerDelivery: perDelivery(cpu, delivered),
      subscription: sub,
      deliveryLog: log,
      profileWindowUs: windows.max,
    };
    let neverSeen = 0;
    for (let i = 0; i < total; i++) if (!seen[i]) neverSeen++;
    if (!all) problems.push(`max: ${delivered}/${total} delivered within ${timeoutS} s`);
    if (neverSeen > total - route.ids.size)
      problems.push(`max: ${neverSeen} messages' values never arrived, though ${route.ids.size} distinct ids did`);
    if (keyOutOfOrder > 0) problems.push(`max: ${keyOutOfOrder} key-order violations`);
    phaseProblems("max", route, signatures, sub);
  }

  // -------------------------------------------------------------------------------------------
  // Phase 2: produce → delivery latency at a fixed rate.
  if (phases.has("latency")) {
    await call("PUT", "/v1/topics/live", auth, { partitions });
    const count = Math.round(rate * (warmup + seconds));
    const measuredFrom = Math.round(rate * warmup);
    const latencies: number[] = [];
    const arrivedIdx = new Uint8Array(count);
    // Wall-clock ms of each message's send, produce answer and first arrival at the sink.
    const sentWall = new Float64Array(count);
    const ackedWall = new Float64Array(count);
    const arrivedWall = new Float64Array(count);
    const lastOffsetOfKey = new Map<string, number>();
    let keyOutOfOrder = 0;
    const route = sink.route("/latency", ({ body, arrivedAt, first }) => {
      const [idx, sent] = typeof body.value === "string" ? body.value.split(":", 2).map(Number) : [NaN, NaN];
      if (!Number.isInteger(idx) || idx < 0 || idx >= count || !Number.isFinite(sent))
        return `unexpected value ${String(body.value).slice(0, 40)}`;
      if (body.key !== keyOf(idx)) return `message ${idx}: key ${body.key}, expected ${keyOf(idx)}`;
      if (body.topic !== "live") return `message ${idx}: topic ${body.topic}`;
      if (!first) return null;
      arrivedIdx[idx] = 1;
      arrivedWall[idx] = performance.timeOrigin + arrivedAt;
      if (idx >= measuredFrom) latencies.push(arrivedWall[idx] - sent);
      if (ordering === "key" && body.key !== undefined) {
        const last = lastOffsetOfKey.get(body.key);
        if (last !== undefined && body.offset < last) keyOutOfOrder++;
        lastOffsetOfKey.set(body.key, Math.max(last ?? -1, body.offset));
      }
      return null;
    });
    const created = await subscribe("live", "latency", await sink.url("/latency"), "latest");
    sink.secret(route, created.secret);
    await sleep(500); // the pump that the PUT woke finds nothing and goes idle

    progress(`latency: producing ${rate}/s for ${warmup} + ${seconds} s`);
    const url = new URL("/v1/topics/live/messages", base);
    const produceMs: number[] = [];
    const statuses = new Map<string, number>();
    let produced = 0;
    let scheduleLagMax = 0;
    const pending: Promise<void>[] = [];
    const connectionsBefore = sink.connections;
    const ds0 = await dispatcherStats();
    const st0 = await statements();
    const cpu0 = cpuSnapshot(stack.server.pid);
    const startUs = nowUs();
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      scheduleLagMax = Math.max(scheduleLagMax, performance.now() - due);
      const sent = wallMs();
      sentWall[i] = sent;
      const head = `${i}:${sent.toFixed(3)}:`;
      const key = keyOf(i);
      const value = head + "x".repeat(size - head.length);
      const body = Buffer.from(JSON.stringify({ messages: [key === undefined ? { value } : { key, value }] }));
      const s0 = performance.now();
      pending.push(
        post(agent, url, auth, body).then(
          (status) => {
            produceMs.push(performance.now() - s0);
            ackedWall[i] = wallMs();
            statuses.set(String(status), (statuses.get(String(status)) ?? 0) + 1);
            if (status === 200) produced++;
          },
          (error: unknown) => {
            const kind = error instanceof CallTimeout ? "timeout" : "network";
            statuses.set(kind, (statuses.get(kind) ?? 0) + 1);
          },
        ),
      );
    }
    const sendSeconds = (performance.now() - t0) / 1000;
    await Promise.all(pending);
    const all = await sink.waitDistinct(route, produced, performance.now() + timeoutS * 1000);
    const delivered = route.ids.size;
    progress(`latency: ${delivered}/${produced} delivered`);
    // Late duplicates would come now, if at all.
    await sleep(1000);
    const endUs = nowUs();
    const cpu = cpuDelta(cpu0, cpuSnapshot(stack.server.pid));
    const st1 = await settledStatements();
    const ds1 = await dispatcherStats();
    windows.latency = [startUs, endUs];
    const sub = await settledView("live", "latency");
    const log = await attemptLog("live", "latency");
    const signatures = sink.verify(route);
    let missing = 0;
    for (let i = 0; i < count; i++) if (!arrivedIdx[i]) missing++;
    const dbStatements = counted(st1 - st0, produced);
    // Arrival − produce answer (negative: delivered before the producer heard its offset), and
    // the latency's median per second of sending (does a backlog build up?).
    const afterAck: number[] = [];
    const bySecond: number[][] = [];
    const arrivalsBySecond: number[] = [];
    for (const at of route.newIdAt) {
      const sec = Math.floor((at - t0) / 1000);
      if (sec >= 0) arrivalsBySecond[sec] = (arrivalsBySecond[sec] ?? 0) + 1;
    }
    for (let i = measuredFrom; i < count; i++) {
      if (!arrivedIdx[i]) continue;
      if (ackedWall[i] > 0) afterAck.push(arrivedWall[i] - ackedWall[i]);
      const sec = Math.floor((i - measuredFrom) / rate);
      bySecond[sec] ??= [];
      bySecond[sec].push(arrivedWall[i] - sentWall[i]);
    }
    report.latency = {
      rate,
      seconds,
      warmupSeconds: warmup,
      sendSeconds: r2(sendSeconds),
      scheduleLagMaxMs: r2(scheduleLagMax),
      sent: count,
      produced,
      produceStatuses: Object.fromEntries(statuses),
      delivered,
      missing,
      duplicates: route.duplicates,
      exactlyOnce: delivered === count && missing === 0 && route.duplicates === 0,
      latencyMs: summary(latencies),
      produceLatencyMs: summary(produceMs),
      afterProduceAnswerMs: summary(afterAck),
      latencyP50BySecondMs: bySecond.map((xs) => Math.round(summary(xs).p50)),
      deliveriesBySecond: Array.from(arrivalsBySecond, (n) => n ?? 0),
      laterAttempts: route.laterAttempts,
      invalid: route.invalid,
      badHeaders: route.badHeaders,
      signatures,
      ...(ordering === "key" && { keyOutOfOrder }),
      sinkConnections: sink.connections - connectionsBefore,
      dbStatements,
      dbStatementsPerMessage: dbStatements === null ? null : Number((dbStatements / Math.max(1, produced)).toFixed(3)),
      dispatcher: dispatcherDelta(ds0, ds1),
      cpu,
      cpuMsPerMessage: perDelivery(cpu, delivered),
      subscription: sub,
      deliveryLog: log,
      profileWindowUs: windows.latency,
    };
    if (produced !== count)
      problems.push(`latency: ${count - produced} of ${count} produce requests failed (${JSON.stringify(Object.fromEntries(statuses))})`);
    if (!all || missing > 0)
      problems.push(`latency: ${delivered}/${count} delivered within ${timeoutS} s of the last send (${missing} not at all)`);
    if (keyOutOfOrder > 0) problems.push(`latency: ${keyOutOfOrder} key-order violations`);
    phaseProblems("latency", route, signatures, sub);
  }

  report.loadAverage1m = r2(loadavg()[0]);
  if (problems.length > 0) report.problems = problems;
  console.log(JSON.stringify(report, null, 2).replace(/\[\s+([-\d.,\s]+?)\s+\]/g, (_, xs: string) => `[${xs.split(/,\s*/).join(", ")}]`));
  if (problems.length > 0) {
    console.error("PROBLEMS:\n  " + problems.join("\n  "));
    const lines = stack.server
      .logs()
      .split("\n")
      .filter((l) => /error|fail|warn/i.test(l) && !/NodeVersionSupportWarning|trace-warnings/.test(l));
    if (lines.length > 0) console.error("server log (errors):\n" + lines.slice(-10).join("\n"));
  }
  agent.destroy();
} finally {
  await stack.stop();
  await sink.close();
}

if (profileDir && Object.keys(windows).length > 0) {
  const [file] = newProfiles(profileDir, profilesBefore);
  if (!file) console.error(`no new .cpuprofile in ${profileDir}`);
  else {
    for (const [phase, [from, to]] of Object.entries(windows)) {
      console.error(`\nserver profile ${file}, phase "${phase}" only (--from ${from} --to ${to}):\n`);
      console.error(formatSummary(analyzeProfileFile(file, { top: 25, fromUs: from, toUs: to })));
    }
  }
}
if (problems.length > 0) process.exitCode = 1;
