// The `reservoir` CLI as a user runs it: the real bin (client/bin/reservoir.mjs) as a child
// process, against the real Node server (embedded), with its config dir isolated by
// XDG_CONFIG_HOME. What each command printed and its exit code are checked, and what it did is
// checked through the SDK.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Reservoir } from "../../client/src/index.ts";
import { freePort, type NodeServer, repoRoot, startNodeServer } from "../support/node-server.ts";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.ts";

const bin = join(repoRoot, "client", "bin", "reservoir.mjs");
let server: NodeServer;
let client: Reservoir;
let apiKey: string;
let home: string;
let sink: WebhookSink;

beforeAll(async () => {
  // The embedded server migrates a fresh PGlite first: past 30 s when the full suite loads the machine.
  [server, sink] = await Promise.all([
    startNodeServer({
      label: "cli",
      readyTimeoutMs: 90_000,
      env: { RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "127.0.0.1", RESERVOIR_DISPATCH_INTERVAL_MS: "200" },
    }),
    startWebhookSink(),
  ]);
  const operator = new Reservoir({ url: server.baseUrl, apiKey: server.adminToken });
  ({ apiKey } = await operator.admin.tenants.create({ name: "cli" }));
  client = new Reservoir({ url: server.baseUrl, apiKey });
  home = mkdtempSync(join(tmpdir(), "reservoir-cli-"));
});
afterAll(async () => {
  await Promise.all([server?.stop(), sink?.close()]);
  if (home) rmSync(home, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment of a run: the test's config dir, and none of the runner's RESERVOIR_* settings. */
function cliEnv(extra: Record<string, string>, config = join(home, "config")): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("RESERVOIR_") && k !== "NODE_OPTIONS") env[k] = v;
  return { ...env, XDG_CONFIG_HOME: config, RESERVOIR_DATA_DIR: join(home, "no-server-here"), ...extra };
}

/** Runs the bin to its end; `env` adds to the isolated environment (by default the server and the key). */
function run(args: string[], opts: { env?: Record<string, string>; stdin?: string; config?: string } = {}): Promise<Run> {
  const env = cliEnv(opts.env ?? { RESERVOIR_URL: server.baseUrl, RESERVOIR_API_KEY: apiKey }, opts.config);
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [bin, ...args], { env, cwd: home, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
    child.stdin!.end(opts.stdin ?? "");
  });
}

const lines = (s: string) => s.split("\n").filter((l) => l !== "");

describe("reservoir CLI", () => {
  test("login checks the key and writes it with the URL to $XDG_CONFIG_HOME/reservoir/config.json, mode 0600; later commands use it", async () => {
    const config = join(home, "login-config");
    const bad = await run(["login", "--api-key", "rsv_wrong"], { env: { RESERVOIR_URL: server.baseUrl }, config });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: \w+ \(401\)/);
    expect(() => statSync(join(config, "reservoir", "config.json"))).toThrow();

    // The key on stdin, as `echo $KEY | reservoir login` gives it.
    const ok = await run(["login", "--url", server.baseUrl], { env: {}, stdin: `${apiKey}\n`, config });
    expect(ok.code, ok.stderr).toBe(0);
    const file = join(config, "reservoir", "config.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: server.baseUrl, apiKey });

    await client.topics.create("cli.login");
    const list = await run(["topics", "list", "--json"], { env: {}, config });
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).map((t: { name: string }) => t.name)).toContain("cli.login");
  });

  test("topics create, list, describe", async () => {
    const created = await run(["topics", "create", "cli.orders", "--partitions", "3", "--json"]);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ name: "cli.orders", partitions: 3 });
    const table = await run(["topics", "list"]);
    expect(table.stdout).toMatch(/│ cli\.orders\s+│ 3\s+│ 168 h/);
    const described = await run(["topics", "describe", "cli.orders", "--json"]);
    expect(JSON.parse(described.stdout)).toMatchObject({ name: "cli.orders", highWatermarks: [0, 0, 0] });
  });

  test("produce --ndjson from a file, then tail a partition and a group's backlog; consume acks", async () => {
    await client.topics.create("cli.nd", { partitions: 2 });
    const file = join(home, "messages.ndjson");
    const messages = [
      ...Array.from({ length: 50 }, (_, i) => ({ value: `v${i}`, partition: 0 })),
      { value: "with-headers", headers: { source: "cli" }, partition: 1 },
      { valueBase64: "AAEC", partition: 1 },
    ];
    writeFileSync(file, messages.map((m) => JSON.stringify(m)).join("\n") + "\n\n");
    const produced = await run(["produce", "cli.nd", file, "--ndjson", "--json"]);
    expect(produced.code, produced.stderr).toBe(0);
    expect(JSON.parse(produced.stdout)).toMatchObject({
      topic: "cli.nd",
      messages: 52,
      partitions: { 0: { first: 0, last: 49 }, 1: { first: 0, last: 1 } },
    });
    expect((await client.topics.get("cli.nd")).highWatermarks).toEqual([50, 2]);

    const tail = await run(["tail", "cli.nd", "--partition", "1", "--json"]);
    expect(tail.code, tail.stderr).toBe(0);
    expect(lines(tail.stdout).map((l) => JSON.parse(l))).toMatchObject([
      { partition: 1, offset: 0, value: "with-headers", headers: { source: "cli" } },
      { partition: 1, offset: 1, valueBase64: "AAEC" },
    ]);
    const text = await run(["tail", "cli.nd", "-p", "0", "--from", "48"]);
    expect(lines(text.stdout)).toEqual(["0@48 v48", "0@49 v49"]);

    // consume through a new group from the earliest: 30 printed and acked.
    const consumed = await run(["consume", "cli.nd", "--group", "g", "--start-at", "earliest", "--max", "30", "--json"]);
    expect(consumed.code, consumed.stderr).toBe(0);
    expect(lines(consumed.stdout)).toHaveLength(30);
    expect(consumed.stderr).toContain("consumed and acked 30 message(s)");
    const view = await client.groups.get("cli.nd", "g");
    expect(view.partitions.reduce((a, p) => a + p.lag, 0)).toBe(22);
    expect(view.partitions.reduce((a, p) => a + p.inFlight, 0)).toBe(0);

    // tail --group: what the group has not consumed yet, nothing leased.
    const backlog = await run(["tail", "cli.nd", "--group", "g", "--json"]);
    expect(lines(backlog.stdout)).toHaveLength(22);
    expect((await client.groups.get("cli.nd", "g")).partitions.reduce((a, p) => a + p.inFlight, 0)).toBe(0);

    // The rest, until a receive finds nothing.
    const rest = await run(["consume", "cli.nd", "--group", "g", "--wait-ms", "0"]);
    expect(rest.stderr).toContain("consumed and acked 22 message(s)");
    const group = await run(["group", "cli.nd", "g", "--json"]);
    expect(JSON.parse(group.stdout).partitions.map((p: { lag: number }) => p.lag)).toEqual([0, 0]);
  });

  test("produce plain lines from stdin with a key; seek; dead letters list and redrive", async () => {
    await client.topics.create("cli.lines", { partitions: 4 });
    const produced = await run(["produce", "cli.lines", "--key", "customer-7", "--json"], { stdin: "one\ntwo\nthree\n" });
    expect(produced.code, produced.stderr).toBe(0);
    const summary = JSON.parse(produced.stdout);
    // One key: one partition, offsets 0..2.
    expect(Object.values(summary.partitions)).toEqual([{ first: 0, last: 2 }]);

    await client.groups.put("cli.lines", "dl", { startAt: "earliest", maxAttempts: 1 });
    const seek = await run(["seek", "cli.lines", "dl", "--to", "latest", "--json"]);
    expect(JSON.parse(seek.stdout).partitions.reduce((a: number, p: { lag: number }) => a + p.lag, 0)).toBe(0);
    await run(["seek", "cli.lines", "dl", "--to", "earliest"]);
    // One attempt allowed: a nack dead-letters all three.
    const received = await client.groups.receive("cli.lines", "dl", { max: 10, waitMs: 1000 });
    await client.groups.nack(
      "cli.lines",
      "dl",
      received.map((m) => m.receipt),
    );
    // The next receive finds their attempts spent and moves them to cli.lines.dlq.
    expect(await client.groups.receive("cli.lines", "dl", { max: 10 })).toEqual([]);
    const dead = await run(["dlq", "list", "cli.lines", "dl", "--json"]);
    expect(dead.code, dead.stderr).toBe(0);
    expect(lines(dead.stdout).map((l) => JSON.parse(l).value)).toEqual(["one", "two", "three"]);
    const redriven = await run(["dead-letters", "redrive", "cli.lines", "dl"]);
    expect(redriven.stderr).toContain("redrove 3 message(s)");
  });

  test("tail --follow prints new messages as they come and ends on SIGINT with exit 0", async () => {
    await client.topics.create("cli.follow");
    await client.produce("cli.follow", ["before"]);
    const child: ChildProcess = spawn(process.execPath, [bin, "tail", "cli.follow", "--follow", "--from", "latest"], {
      env: cliEnv({ RESERVOIR_URL: server.baseUrl, RESERVOIR_API_KEY: apiKey }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    let changed: (() => void) | undefined;
    child.stdout!.on("data", (d) => {
      out += d;
      changed?.();
    });
    child.stderr!.on("data", (d) => {
      err += d;
      changed?.();
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    /** Resolves once the output matches, on the output itself (fails after 20 s). */
    const until = async (stream: () => string, what: RegExp) => {
      const deadline = setTimeout(() => changed?.(), 20_000);
      while (!what.test(stream())) {
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${out} / ${err}`);
        const before = Date.now();
        await new Promise<void>((r) => {
          changed = r;
        });
        if (Date.now() - before >= 20_000) throw new Error(`no ${what} in ${JSON.stringify(out)} / ${JSON.stringify(err)}`);
      }
      clearTimeout(deadline);
    };
    // It says where it starts once it has resolved "latest": what is produced after that is printed.
    await until(() => err, /following cli\.follow from 0@1/);
    await client.produce("cli.follow", ["after"]);
    await until(() => out, /0@1 after/);
    expect(out).not.toContain("before");
    child.kill("SIGINT");
    expect(await exited, err).toBe(0);
  });

  test("replay a subscription, its deliveries, usage", async () => {
    await client.topics.create("cli.hooks");
    await client.subscriptions.put("cli.hooks", "s", { url: sink.url("/cli-hook"), startAt: "earliest" });
    await client.produce("cli.hooks", ["hook"]);
    await sink.waitForCount("/cli-hook", 1);
    const replay = await run(["replay", "cli.hooks", "s", "--earliest"]);
    expect(replay.code, replay.stderr).toBe(0);
    const again = await sink.waitForCount("/cli-hook", 2);
    expect(again.map((r) => r.json.value)).toEqual(["hook", "hook"]);
    const deliveries = await run(["deliveries", "cli.hooks", "s", "--json"]);
    expect(JSON.parse(deliveries.stdout)[0]).toMatchObject({ offset: 0, status: "succeeded" });
    const badReplay = await run(["replay", "cli.hooks", "s"]);
    expect([badReplay.code, badReplay.stderr.trim()]).toEqual([2, "error: replay takes exactly one of --offset, --time and --earliest"]);
    const usage = await run(["usage", "--json"]);
    expect(usage.code, usage.stderr).toBe(0);
    expect(JSON.parse(usage.stdout).reduce((a: number, r: { messagesIn: number }) => a + r.messagesIn, 0)).toBeGreaterThan(0);
  });

  test("bench prints throughput and latency percentiles", async () => {
    const bench = await run(["bench", "cli.bench", "--messages", "300", "--size", "64", "--consume", "--json"]);
    expect(bench.code, bench.stderr).toBe(0);
    const [produce, consume] = JSON.parse(bench.stdout);
    expect(produce).toMatchObject({ phase: "produce", messages: 300 });
    expect(consume).toMatchObject({ phase: "receive+ack", messages: 300 });
    for (const phase of [produce, consume]) {
      expect(phase.messagesPerSecond).toBeGreaterThan(0);
      expect(phase.latencyMs.p50).toBeLessThanOrEqual(phase.latencyMs.p99);
      expect(phase.latencyMs.p99).toBeLessThanOrEqual(phase.latencyMs.max);
    }
    expect((await client.topics.get("cli.bench")).highWatermarks).toEqual([300]);
  });

  test("bad input: exit 2 with a message, nothing sent; refusals exit 1 with the problem code; no server exits 3", async () => {
    await client.topics.create("cli.bad");
    const badLine = join(home, "bad.ndjson");
    writeFileSync(badLine, '{"value":"ok"}\n{"value":"x","valueBase64":"eA=="}\n{"value":"never"}\n');
    const nd = await run(["produce", "cli.bad", badLine, "--ndjson"]);
    expect(nd.code).toBe(2);
    expect(nd.stderr).toContain(
      `${badLine}:2: a message has exactly one of value and valueBase64; the 1 message(s) before it were produced`,
    );
    expect((await client.topics.get("cli.bad")).highWatermarks).toEqual([1]);

    const notJson = await run(["produce", "cli.bad", "--ndjson"], { stdin: "hello\n" });
    expect([notJson.code, notJson.stderr]).toEqual([2, expect.stringMatching(/^error: stdin:1: not JSON/)]);
    const noFile = await run(["produce", "cli.bad", join(home, "missing.txt")]);
    expect([noFile.code, noFile.stderr.trim()]).toEqual([2, `error: no such file: ${join(home, "missing.txt")}`]);
    const badFlag = await run(["topics", "create", "cli.x", "--partitions", "many"]);
    expect([badFlag.code, badFlag.stderr.trim()]).toEqual([2, 'error: --partitions must be a whole number from 1 to 256, not "many"']);
    const unknownOption = await run(["tail", "cli.bad", "--frm", "0"]);
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toContain("unknown option '--frm'");
    const seek = await run(["seek", "cli.bad", "g", "--to", "latest", "--offset", "3"]);
    expect([seek.code, seek.stderr.trim()]).toEqual([2, "error: seek takes exactly one of --offset, --time and --to"]);
    expect((await client.topics.list()).map((t) => t.name)).not.toContain("cli.x");

    const missing = await run(["tail", "cli.missing"]);
    expect([missing.code, missing.stderr.trim()]).toEqual([1, "error: topic_not_found (404): topic 'cli.missing' does not exist"]);
    const noKey = await run(["topics", "list"], { env: { RESERVOIR_URL: server.baseUrl } });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("no API key");
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await run(["produce", "cli.bad"], { env: { RESERVOIR_URL: nowhere, RESERVOIR_API_KEY: apiKey }, stdin: "x\n" });
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain(`no answer from ${nowhere}`);
  });

  test("`npx reservoir` runs the bin in a checkout", async () => {
    const npx = await new Promise<Run>((resolve) => {
      execFile(
        "npx",
        ["--no-install", "reservoir", "--version"],
        { cwd: repoRoot, env: cliEnv({}), timeout: 30_000 },
        (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, stdout, stderr }),
      );
    });
    expect(npx.code, npx.stderr).toBe(0);
    expect(npx.stdout.trim()).toBe("0.1.0");
  });
});
