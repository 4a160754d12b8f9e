/**
 * A configuration value that does not parse stops the Node server before it starts anything,
 * with a message naming the variable; the Worker answers every request 503 naming it.
 * functions/config.ts holds the one schema both read.
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { configVariables } from "../../functions/config.ts";
import { repoRoot, startNodeServer } from "../support/node-server.ts";
import { startWorker, type WorkerTarget } from "../support/wrangler.ts";

/** Starts the server on a fresh data dir; the error startNodeServer throws says how it ended and what it printed. */
async function refusedStart(env: Record<string, string>): Promise<{ message: string; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "reservoir-config-"));
  const started = startNodeServer({ env, dataDir, readyTimeoutMs: 60_000 });
  const error = await started.then(
    async (server) => {
      await server.stop();
      throw new Error(`the server started with ${JSON.stringify(env)}`);
    },
    (e: Error) => e,
  );
  return { message: error.message, dataDir };
}

describe("the Node server with a bad configuration value", () => {
  it.each([
    ["RESERVOIR_MAX_BATCH_BYTES", "abc", /RESERVOIR_MAX_BATCH_BYTES="abc": must be a whole number/],
    ["RESERVOIR_LINGER_MS", "-5", /RESERVOIR_LINGER_MS="-5": must be a number from 0/],
    ["S3_FORCE_PATH_STYLE", "maybe", /S3_FORCE_PATH_STYLE="maybe": must be true or false/],
    ["PORT", "eighty", /PORT="eighty": must be a whole number from 0 to 65535/],
    ["DATABASE_POOL_MAX", "0", /DATABASE_POOL_MAX="0": must be a whole number from 1/],
    ["RESERVOIR_WEBHOOK_ALLOW_PRIVATE", "10.0.0.0/99", /RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "10.0.0.0\/99" is not a host name/],
  ])("%s=%s: exits 1 before opening anything, naming the variable", async (name, value, expected) => {
    const { message, dataDir } = await refusedStart({ [name]: value });
    expect(message).toContain("exited before it was ready (code 1)");
    expect(message).toContain("not starting, the configuration is invalid");
    expect(message).toMatch(expected);
    // Refused before the database or the segment folder was opened.
    expect(readdirSync(dataDir)).toEqual([]);
  });

  it("names every bad variable at once, and echoes no secret", async () => {
    const { message } = await refusedStart({ RESERVOIR_LINGER_MS: "soon", DATABASE_URL: "mysql://user:hunter2@db/x" });
    expect(message).toMatch(/RESERVOIR_LINGER_MS="soon"/);
    expect(message).toMatch(/DATABASE_URL: must be a URL starting with postgres:\/\//);
    expect(message).not.toContain("hunter2");
  });

  it("DATABASE_URL with a max parameter that is not a count: exits 1 naming it", async () => {
    const { message } = await refusedStart({ DATABASE_URL: "postgres://user:hunter2@127.0.0.1:1/x?max=lots" });
    expect(message).toMatch(/DATABASE_URL: its max parameter must be a whole number/);
    expect(message).not.toContain("hunter2");
  });
});

describe("the configuration schema", () => {
  it("reads every variable of the README's configuration table, and no other", () => {
    const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
    const table = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("\n## ", readme.indexOf("## Configuration") + 1));
    const documented = [...table.matchAll(/^\| ([^|]+) \|/gm)].flatMap((row) => [...row[1].matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1]));
    expect(documented.length).toBeGreaterThan(10);
    expect([...configVariables].sort()).toEqual([...new Set(documented)].sort());
  });
});

describe("the Worker with a bad configuration value", () => {
  let worker: WorkerTarget | undefined;
  afterAll(async () => {
    await worker?.stop();
  }, 60_000);

  it("answers every request with a problem+json 503 naming the variable", async () => {
    worker = await startWorker({ env: { RESERVOIR_MAX_BATCH_BYTES: "abc", S3_FORCE_PATH_STYLE: "maybe" }, ready: "listening" });
    for (const path of ["/healthz", "/v1/topics"]) {
      const res = await fetch(`${worker.baseUrl}${path}`);
      expect(res.status).toBe(503);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      const problem = (await res.json()) as { code: string; detail: string };
      expect(problem.code).toBe("service_unavailable");
      expect(problem.detail).toContain('RESERVOIR_MAX_BATCH_BYTES="abc": must be a whole number');
      expect(problem.detail).toContain('S3_FORCE_PATH_STYLE="maybe": must be true or false');
    }
  }, 180_000);
});
