/**
 * Consume throughput of a consumer group: preload a backlog of N unique messages (requests of
 * 1,000, a few at once), create a group (startAt earliest), then C concurrent consumers loop
 * receive(max = batch, visibility 30 s) → ack(all receipts) until the backlog is drained (or the
 * time limit passes). Prints a JSON report; exits 1 if the server misbehaved (not drained,
 * duplicates, invalid messages, lag or messages in flight left, key order violated).
 *
 *   npx tsx bench/consume.ts [--consumers 4] [--batch 100] [--messages 20000] [--size 1024]
 *                            [--partitions 16] [--ordering none|key] [--keys K]
 *                            [--stack postgres-s3|embedded] [--seconds 300] [--cpu-prof DIR]
 *                            [--produce-concurrency 4] [--watch-group MS] [--ack leases|messages]
 *
 * --keys: number of distinct message keys (default 1000 with --ordering key, else no keys;
 *   keyless messages are spread over the partitions round-robin).
 * --seconds: time limit of the consume phase.
 * --node-args "...": extra options for the server's node (e.g. "--max-semi-space-size=32").
 * --format raw: receive with Accept: application/vnd.reservoir.messages (values as bytes after a
 *   JSON head) instead of JSON; --format batches: with Accept: application/vnd.reservoir.batches
 *   (the stored batches, decoded here by the SDK's decodeBatchesAnswer; lease receipts only).
 * --ack: ack each receive with its lease receipts (one per run of offsets; the default) or with
 *   one receipt per message (as clients before lease receipts did).
 * --watch-group MS: also read the group view every MS during the consume phase and report any
 *   partition whose committed offset moved backwards (its statements count in dbStatements).
 * BENCH_CONSUME_MARK=FILE (environment): the server's pid is written there when the consume phase
 *   starts, for a profiler outside (`perf record -a` with --node-args=--perf-basic-prof).
 * --root DIR: run the server from another source tree (e.g. an older commit's worktree, for a
 *   same-run before/after; give it a --format that tree knows).
 * --cpu-prof DIR: the server writes a V8 CPU profile there on exit; it is summarised over the
 *   consume phase only and printed to stderr (see bench/lib/cpuprofile.ts).
 *
 * Report: msgsPerSec/mibPerSec (distinct messages received and acked, over the time to drain),
 * receive/ack latency per call (receives that returned nothing are counted in emptyReceives,
 * not in the latencies), dbStatementsPerMessage (delta of the server's db.statements over the
 * consume phase / messages received), cpu (CPU seconds per process over the phase: server, its
 * main thread, its Postgres backends, s3rver, this client; see bench/lib/proc-cpu.ts), and the
 * final group view.
 *
 * Every value starts with its index, so each delivery is checked: a message delivered more than
 * once and acked is a duplicate (the first ones are listed in duplicateDetails); with --ordering
 * key, a key twice in one receive, or a key's messages first delivered out of offset order, is a
 * key-order violation.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadavg } from "node:os";
import { Agent } from "node:http";
import { parseArgs } from "node:util";
import { checkedCall, preload } from "./lib/preload.ts";
import { CallTimeout } from "./lib/timeout.ts";
import { BATCHES_TYPE, latencySummary, RAW_MESSAGES_TYPE, requestJson, type JsonResponse } from "./lib/http-json.ts";
import { analyzeProfileFile, formatSummary } from "./lib/cpuprofile.ts";
import { cpuDelta, cpuSnapshot, threadDelta, threadSeconds } from "./lib/proc-cpu.ts";
import { startStack } from "./lib/stack.ts";
import { markPhase } from "./lib/phase-mark.ts";

const { values: args } = parseArgs({
  options: {
    consumers: { type: "string", default: "4" },
    batch: { type: "string", default: "100" },
    messages: { type: "string", default: "20000" },
    size: { type: "string", default: "1024" },
    partitions: { type: "string", default: "16" },
    ordering: { type: "string", default: "none" },
    keys: { type: "string" },
    stack: { type: "string", default: "postgres-s3" },
    seconds: { type: "string", default: "300" },
    "produce-concurrency": { type: "string", default: "4" },
    "watch-group": { type: "string", default: "0" },
    ack: { type: "string", default: "leases" },
    format: { type: "string", default: "json" },
    "node-args": { type: "string", default: "" },
    "cpu-prof": { type: "string" },
    root: { type: "string" },
  },
});
const consumers = Number(args.consumers);
const batch = Number(args.batch);
const total = Number(args.messages);
const size = Number(args.size);
const partitions = Number(args.partitions);
const ordering = args.ordering as "none" | "key";
const keys = Number(args.keys ?? (ordering === "key" ? 1000 : 0));
const limitSeconds = Number(args.seconds);
const produceConcurrency = Number(args["produce-concurrency"]);
const VISIBILITY_S = 30;
const ID_DIGITS = 10;
const format = args.format;
if (!["json", "raw", "batches"].includes(format)) throw new Error(`--format must be json, raw or batches, not ${format}`);
const ackBy = args.ack;
if (!["leases", "messages"].includes(ackBy)) throw new Error(`--ack must be leases or messages, not ${ackBy}`);
if (!["none", "key"].includes(ordering)) throw new Error(`--ordering must be none or key, not ${ordering}`);
if (size < ID_DIGITS + 1) throw new Error(`--size must be at least ${ID_DIGITS + 1}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const count = (m: Map<string, number>, k: string | number) => m.set(String(k), (m.get(String(k)) ?? 0) + 1);
const messageValue = (i: number) => String(i).padStart(ID_DIGITS, "0") + "-" + "x".repeat(size - ID_DIGITS - 1);
const keyOf = (i: number) => (keys > 0 ? `k${i % keys}` : undefined);

// Which server code ran: HEAD plus a hash of uncommitted changes to it (others edit it meanwhile).
const code = codeVersion();
const profileDir = args["cpu-prof"];
const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
const profilesBefore = new Set(profileDir ? safeList(profileDir) : []);
const nodeArgs = [...profile, ...args["node-args"].split(" ").filter(Boolean)];
const stack = await startStack(args.stack as "postgres-s3" | "embedded", {}, nodeArgs, args.root);
let window: [number, number] | undefined;
let failed = false;
try {
  const base = stack.server.baseUrl;
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(consumers, produceConcurrency) + 2 });
  const admin = { authorization: `Bearer ${stack.server.adminToken}`, "content-type": "application/json" };
  const call = checkedCall(agent, base);
  const tenant = await call("POST", "/v1/admin/tenants", admin, { name: "bench" });
  const auth = { authorization: `Bearer ${tenant.apiKey}`, "content-type": "application/json" };
  await call("PUT", "/v1/topics/bench", auth, { partitions });
  const metrics = () => call("GET", "/v1/admin/metrics", admin);

  // Preload: requests of 1,000 messages, a few at once.
  const m0 = await metrics();
  const preloadSeconds = await preload(call, auth, "bench", {
    total,
    partitions,
    concurrency: produceConcurrency,
    valueOf: messageValue,
    keyOf,
  });
  const m1 = await metrics();

  await call("PUT", "/v1/topics/bench/groups/g", auth, { startAt: "earliest", ordering });

  // Consume.
  const deliveries = new Uint16Array(total);
  const acked = new Uint8Array(total);
  let ackedDistinct = 0;
  let received = 0;
  let receivedBytes = 0;
  let laterAttempts = 0;
  let invalid = 0;
  let emptyReceives = 0;
  let keyTwiceInOneReceive = 0;
  let keyOutOfOrder = 0;
  const lastOffsetOfKey = new Map<string, number>();
  // Every delivery of every message, to describe duplicates.
  type Delivery = { consumer: number; atMs: number; partition: number; offset: number; attempt: number; acked: boolean };
  const history = new Map<number, Delivery[]>();
  const receiveMs: number[] = [];
  const ackMs: number[] = [];
  const receiveStatuses = new Map<string, number>();
  const ackStatuses = new Map<string, number>();
  const ackFailures = new Map<string, number>();
  const errors: string[] = [];
  const receiveUrl = new URL("/v1/topics/bench/groups/g/receive", base);
  const ackUrl = new URL("/v1/topics/bench/groups/g/ack", base);
  const receiveBody = Buffer.from(JSON.stringify({ max: batch, visibilityTimeoutSeconds: VISIBILITY_S }));
  const accept = { raw: RAW_MESSAGES_TYPE, batches: BATCHES_TYPE }[format as "raw" | "batches"];
  const receiveHeaders = accept ? { ...auth, accept } : auth;

  const before = await metrics();
  const cpuBefore = cpuSnapshot(stack.server.pid);
  markPhase("BENCH_CONSUME_MARK", stack.server.pid);
  const threadsBefore = threadSeconds(stack.server.pid);
  const t0 = performance.now();
  const startUs = nowUs();
  const deadline = t0 + limitSeconds * 1000;
  let drainedAt = NaN;
  const note = (what: string) => {
    if (errors.length < 20) errors.push(what);
  };

  // Optional watcher: a committed offset must never move backwards.
  const watchMs = Number(args["watch-group"]);
  const backwards: { partition: number; from: number; to: number; atMs: number }[] = [];
  let watching = watchMs > 0;
  const watcher = (async () => {
    const last = new Map<number, number>();
    while (watching) {
      const v = await requestJson(agent, "GET", new URL("/v1/topics/bench/groups/g", base), auth);
      for (const p of (v.body?.partitions ?? []) as { partition: number; committedOffset: number }[]) {
        const prev = last.get(p.partition);
        if (prev !== undefined && p.committedOffset < prev)
          backwards.push({ partition: p.partition, from: prev, to: p.committedOffset, atMs: Math.round(performance.now() - t0) });
        last.set(p.partition, p.committedOffset);
      }
      await sleep(watchMs);
    }
  })();

  await Promise.all(
    Array.from({ length: consumers }, async (_, consumer) => {
      while (ackedDistinct < total && performance.now() < deadline) {
        let r: JsonResponse;
        try {
          r = await requestJson(agent, "POST", receiveUrl, receiveHeaders, receiveBody);
        } catch (err) {
          count(receiveStatuses, err instanceof CallTimeout ? "timeout" : "network");
          note(`receive: ${(err as Error).message}`);
          await sleep(50);
          continue;
        }
        count(receiveStatuses, r.status);
        if (r.status !== 200) {
          note(`receive ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
          await sleep(50);
          continue;
        }
        const messages: any[] = r.body.messages;
        if (messages.length === 0) {
          emptyReceives++;
          await sleep(5);
          continue;
        }
        receiveMs.push(r.ms);
        const ids: number[] = [];
        const entries: (Delivery | undefined)[] = [];
        const inThisBatch = new Set<string>();
        for (const m of messages) {
          // JSON: the value as text; raw: its bytes (valueBytes); in batches: its bytes (value).
          const bytes: Buffer | undefined =
            m.valueBytes ??
            (m.value instanceof Uint8Array ? Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength) : undefined);
          const head = bytes ? bytes.toString("latin1", 0, ID_DIGITS) : typeof m.value === "string" ? m.value.slice(0, ID_DIGITS) : "";
          const length = bytes ? bytes.length : typeof m.value === "string" ? m.value.length : -1;
          const id = head ? Number(head) : NaN;
          if (!Number.isInteger(id) || id < 0 || id >= total || length !== size || m.key !== keyOf(id)) {
            invalid++;
            ids.push(-1);
            entries.push(undefined);
            continue;
          }
          ids.push(id);
          received++;
          receivedBytes += size;
          deliveries[id]++;
          const entry: Delivery = {
            consumer,
            atMs: Math.round(performance.now() - t0),
            partition: m.partition,
            offset: m.offset,
            attempt: m.attempt,
            acked: false,
          };
          const seen = history.get(id);
          if (seen) seen.push(entry);
          else history.set(id, [entry]);
          entries.push(entry);
          if (m.attempt > 1) laterAttempts++;
          if (m.key !== undefined && ordering === "key") {
            // Certain violations only: a key twice in one response, or a key's first deliveries
            // out of offset order (the later offset was granted while the earlier was in flight).
            if (inThisBatch.has(m.key)) keyTwiceInOneReceive++;
            inThisBatch.add(m.key);
            const last = lastOffsetOfKey.get(m.key);
            if (deliveries[id] === 1) {
              if (last !== undefined && m.offset < last) keyOutOfOrder++;
              lastOffsetOfKey.set(m.key, Math.max(last ?? -1, m.offset));
            }
          }
        }
        // Lease receipts (one per run of offsets) unless --ack messages asks for one per message.
        const leases: { partition: number; receipt: string }[] = r.body.leases ?? [];
        const receipts = ackBy === "leases" && leases.length > 0 ? leases.map((l) => l.receipt) : messages.map((m) => m.receipt as string);
        let a: JsonResponse;
        try {
          a = await requestJson(agent, "POST", ackUrl, auth, { receipts });
        } catch (err) {
          count(ackStatuses, err instanceof CallTimeout ? "timeout" : "network");
          note(`ack: ${(err as Error).message}`);
          continue;
        }
        count(ackStatuses, a.status);
        if (a.status !== 200) {
          note(`ack ${a.status}: ${JSON.stringify(a.body).slice(0, 300)}`);
          continue;
        }
        ackMs.push(a.ms);
        // Failed messages by receipt, or (for a lease receipt) by partition and offset.
        const failedReceipts = new Set<string>();
        const leasePartition = new Map(leases.map((l) => [l.receipt, l.partition]));
        for (const f of a.body.failed as { receipt: string; code: string; offset?: number }[]) {
          failedReceipts.add(f.offset === undefined ? f.receipt : `${leasePartition.get(f.receipt)}:${f.offset}`);
          count(ackFailures, f.code);
        }
        const failed = (m: { receipt: string; partition: number; offset: number }) =>
          failedReceipts.has(m.receipt) || failedReceipts.has(`${m.partition}:${m.offset}`);
        messages.forEach((m, i) => {
          const id = ids[i];
          if (id >= 0 && !failed(m)) entries[i]!.acked = true;
          if (id < 0 || failed(m) || acked[id]) return;
          acked[id] = 1;
          ackedDistinct++;
        });
        if (ackedDistinct >= total && Number.isNaN(drainedAt)) drainedAt = performance.now();
      }
    }),
  );
  watching = false;
  await watcher;
  const endUs = nowUs();
  const cpu = cpuDelta(cpuBefore, cpuSnapshot(stack.server.pid));
  const threads = threadDelta(stack.server.pid, threadsBefore, threadSeconds(stack.server.pid));
  const after = await metrics();
  window = [startUs, endUs];
  const seconds = ((Number.isNaN(drainedAt) ? performance.now() : drainedAt) - t0) / 1000;

  const duplicateDetails = [...history]
    .filter(([, ds]) => ds.length > 1)
    .slice(0, 10)
    .map(([id, ds]) => ({ id, key: keyOf(id), deliveries: ds }));
  let duplicates = 0;
  let redeliveries = 0;
  let neverReceived = 0;
  for (let i = 0; i < total; i++) {
    if (deliveries[i] > 1) redeliveries += deliveries[i] - 1;
    if (deliveries[i] > 1 && acked[i]) duplicates += deliveries[i] - 1;
    if (deliveries[i] === 0) neverReceived++;
  }

  type PartitionView = { partition: number; committedOffset: number; highWatermark: number; lag: number; inFlight: number };
  const groupView = async () => {
    const view = await call("GET", "/v1/topics/bench/groups/g", auth);
    const parts = view.partitions as PartitionView[];
    return { view, parts, lag: parts.reduce((n, p) => n + p.lag, 0), inFlight: parts.reduce((n, p) => n + p.inFlight, 0) };
  };
  const { view, parts, lag, inFlight } = await groupView();
  // Lag left over once everything is acked: does it settle by itself? (Nothing is sent meanwhile.)
  const later = lag !== 0 ? await sleep(3000).then(() => groupView()) : undefined;
  // The counter is postgres.js's debug hook (on the embedded stack too: PGlite is reached through postgres.js).
  const statements = after.db.statements - before.db.statements;
  const counted = statements > 0 || received === 0;

  const report = {
    code: args.root ? `tree ${args.root}` : code,
    stack: args.stack,
    consumers,
    batch,
    messages: total,
    messageBytes: size,
    partitions,
    ordering,
    ack: ackBy,
    format,
    keys,
    preload: {
      seconds: Number(preloadSeconds.toFixed(2)),
      msgsPerSec: Math.round(total / preloadSeconds),
      dbStatements: counted ? m1.db.statements - m0.db.statements : null,
    },
    drained: ackedDistinct === total,
    seconds: Number(seconds.toFixed(2)),
    msgsPerSec: Math.round(ackedDistinct / seconds),
    mibPerSec: Number(((ackedDistinct * size) / seconds / 1024 / 1024).toFixed(2)),
    received,
    receivedMiB: Number((receivedBytes / 1024 / 1024).toFixed(2)),
    ackedDistinct,
    neverReceived,
    duplicates,
    redeliveries,
    laterAttempts,
    invalid,
    ...(ordering === "key" && { keyTwiceInOneReceive, keyOutOfOrder }),
    messagesPerReceive: Number((received / Math.max(1, receiveMs.length)).toFixed(1)),
    emptyReceives,
    receiveLatencyMs: latencySummary(receiveMs),
    ackLatencyMs: latencySummary(ackMs),
    receiveStatuses: Object.fromEntries(receiveStatuses),
    ackStatuses: Object.fromEntries(ackStatuses),
    ackFailures: Object.fromEntries(ackFailures),
    dbStatements: counted ? statements : null,
    dbStatementsPerMessage: counted ? Number((statements / Math.max(1, received)).toFixed(3)) : null,
    dbStatementsPerCall: counted ? Number((statements / Math.max(1, receiveMs.length + emptyReceives + ackMs.length)).toFixed(2)) : null,
    objectGets: after.store?.gets !== undefined ? after.store.gets - before.store.gets : null,
    // The segments the backlog was written in: each read once would be this many GETs.
    segmentsWritten: before.produce?.puts ?? null,
    // CPU seconds of each process over the consume phase (server, its Postgres backends, s3rver,
    // this client), and the machine's other load: what the phase competed with on this box.
    cpu,
    // The server's threads: on the embedded stack the busiest other thread is PGlite's.
    serverThreads: threads,
    // CPU µs per message received: the whole server, its main thread, its busiest other thread.
    serverMicrosPerMessage: {
      server: Number((((cpu.seconds.server ?? 0) * 1e6) / Math.max(1, received)).toFixed(1)),
      main: Number(((threads.main * 1e6) / Math.max(1, received)).toFixed(1)),
      busiestOther: Number(((threads.busiestOther * 1e6) / Math.max(1, received)).toFixed(1)),
    },
    loadAverage1m: Number(loadavg()[0].toFixed(2)),
    group: {
      lag,
      inFlight,
      deadLettered: view.deadLettered,
      committed: parts.reduce((n, p) => n + p.committedOffset, 0),
      highWatermark: parts.reduce((n, p) => n + p.highWatermark, 0),
      ...(later && { lagAfter3s: later.lag, inFlightAfter3s: later.inFlight }),
      lagPerPartition: parts.map((p) => p.lag),
      committedPerPartition: parts.map((p) => p.committedOffset),
      highWatermarkPerPartition: parts.map((p) => p.highWatermark),
    },
    ...(watchMs > 0 && { committedMovedBackwards: backwards.length, committedBackwardMoves: backwards.slice(0, 10) }),
    ...(duplicateDetails.length > 0 && { duplicateDetails }),
    ...(errors.length > 0 && { errors }),
  };
  // One line per array of numbers.
  console.log(JSON.stringify(report, null, 2).replace(/\[\s+([-\d.,\s]+?)\s+\]/g, (_, xs: string) => `[${xs.split(/,\s*/).join(", ")}]`));

  const problems = [
    !report.drained && `not drained: ${ackedDistinct}/${total} acked within ${limitSeconds} s`,
    duplicates > 0 && `${duplicates} duplicate deliveries of acked messages`,
    invalid > 0 && `${invalid} invalid messages`,
    backwards.length > 0 && `committed offset moved backwards ${backwards.length} times`,
    lag !== 0 && `group lag is ${lag}, not 0`,
    inFlight !== 0 && `${inFlight} messages still in flight`,
    keyTwiceInOneReceive + keyOutOfOrder > 0 &&
      `key order violated (${keyTwiceInOneReceive} twice in one receive, ${keyOutOfOrder} out of order)`,
  ].filter(Boolean);
  if (problems.length > 0) {
    failed = true;
    console.error("PROBLEMS: " + problems.join("; "));
  }
  if (errors.length > 0 || problems.length > 0) {
    const lines = stack.server
      .logs()
      .split("\n")
      .filter((l) => /error|fail|warn/i.test(l));
    if (lines.length > 0) console.error("server log (errors):\n" + lines.slice(-10).join("\n"));
  }
  agent.destroy();
} finally {
  await stack.stop();
}

if (profileDir && window) {
  const fresh = safeList(profileDir)
    .filter((f) => f.endsWith(".cpuprofile") && !profilesBefore.has(f))
    .map((f) => join(profileDir, f))
    // The server writes one profile per thread (tsx's loader runs in a worker): take the largest.
    .sort((a, b) => statSync(b).size - statSync(a).size);
  if (fresh.length === 0) console.error(`no new .cpuprofile in ${profileDir}`);
  else {
    console.error(`\nserver profile ${fresh[0]}, consume phase only (--from ${window[0]} --to ${window[1]}):\n`);
    console.error(formatSummary(analyzeProfileFile(fresh[0], { top: 20, fromUs: window[0], toUs: window[1] })));
  }
}
if (failed) process.exitCode = 1;

function codeVersion(): string {
  try {
    const git = (...a: string[]) => execFileSync("git", a, { cwd: new URL("..", import.meta.url), encoding: "utf8" });
    const head = git("rev-parse", "--short", "HEAD").trim();
    const diff = git("diff", "HEAD", "--", "functions", "storage", "infra");
    return diff ? `${head}+${createHash("sha256").update(diff).digest("hex").slice(0, 8)}` : head;
  } catch {
    return "unknown";
  }
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
