// Regression (the long campaign, session 7: docs/reliability.md, anomalies 8 and 9). After a cut
// Postgres connection, postgres.js 3.4.9 kept a statement of the closed session (begin()'s
// ROLLBACK, sent after the cut and dropped by the write guard) queued on the same Connection
// object. Its next session took that statement for the one being answered, so every answer went
// to the statement before it: answers with no row and no error (a valid key answered 401), and a
// statement whose Parse and Describe were answered to another query, never followed by its Bind
// (a session `active` in ClientRead for good, a call that never returns). The write guard now
// makes a close fail and forget every statement of its session, and keeps a transaction's
// statements on its own session (functions/runtime/node/postgres-write-guard-hook.mjs).
// Besides, a database call that gets no answer for DATABASE_CALL_TIMEOUT_MS fails with
// service_unavailable and its connection is destroyed.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Api } from "../support/http.ts";
import { repoRoot } from "../support/node-server.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";
import type { ProbeReport } from "./faults/pg-session-probe.ts";
import { startServerBehindPgProxy, type ServerBehindPgProxy } from "./faults/server-behind-pg-proxy.ts";

const SEED = 20261204;

describe("a cut Postgres connection leaves nothing of its session to the next one", () => {
  let db: FreshDatabase | undefined;
  afterAll(async () => {
    await db?.drop().catch(() => {});
  }, 60_000);

  it("answers every statement after the cut with its own result, and none hangs", async () => {
    db = await freshDatabase({ migrated: false });
    console.log(`pg-session-probe: seed ${SEED}, 8 s of cuts`);
    // The probe runs in a process of its own: the guard is a module hook, in place before the
    // driver loads (the test runner has loaded it already).
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", join(repoRoot, "test/reliability/faults/pg-session-probe.ts"), db.url, "8", String(SEED)],
      { cwd: repoRoot, timeout: 50_000 },
    );
    const report = JSON.parse(stdout.trim().split("\n").at(-1)!) as ProbeReport;
    console.log(JSON.stringify(report));
    // Before the fix: the next transaction and query hung, their sessions waiting for a Bind.
    expect(report.cut.firstTransaction).toBe("rejected CONNECTION_CLOSED");
    expect(report.cut.nextTransaction).toBe(JSON.stringify([{ n: 42 }]));
    expect(report.cut.nextQuery).toBe(JSON.stringify([{ n: 7 }]));
    // Before the fix: about 20 wrong answers and a hang or two a second.
    expect(report.loop.drops).toBeGreaterThan(5);
    expect(report.loop.ok).toBeGreaterThan(100);
    expect({ wrong: report.loop.wrong, hung: report.loop.hung, wrongs: report.loop.wrongs }).toEqual({ wrong: 0, hung: 0, wrongs: [] });
    expect(report.afterFaults).toBe(JSON.stringify([{ n: 5 }]));
    expect(report.stuckSessions).toEqual([]);
  }, 60_000);
});

describe("a database call that gets no answer is bounded", () => {
  let fx: ServerBehindPgProxy | undefined;
  let client: Api;

  beforeAll(async () => {
    fx = await startServerBehindPgProxy({ label: "pg-call-bound", env: { DATABASE_CALL_TIMEOUT_MS: "1500" } });
    client = fx.client;
  }, 180_000);

  afterAll(async () => {
    await fx?.close();
  }, 60_000);

  it("fails with service_unavailable after DATABASE_CALL_TIMEOUT_MS, and the pool serves again", async () => {
    // Nothing comes back from Postgres for 40 s: without the bound the produce waits that long
    // (the request deadline is 65 s), and the client gives up after 10 s.
    fx!.proxy.stall(40_000);
    const started = Date.now();
    const res = await client.post("/v1/topics/t/messages", { messages: [{ value: "held" }] }, { allow5xx: true, timeoutMs: 10_000 });
    const tookMs = Date.now() - started;
    expect(res.status, res.text).toBe(503);
    expect(res.body.code).toBe("service_unavailable");
    expect(tookMs).toBeGreaterThanOrEqual(1_500);
    fx!.proxy.stall(0);
    // The connections the bound destroyed are opened afresh.
    for (let attempt = 0; ; attempt++) {
      const next = await client.post("/v1/topics/t/messages", { messages: [{ value: "after" }] }, { allow5xx: true, timeoutMs: 10_000 });
      if (next.status === 200) break;
      expect(next.status, next.text).toBe(503);
      expect(attempt).toBeLessThan(10);
    }
    expect(fx!.server.logs()).toMatch(/no answer from the database for 1500 ms/);
  }, 60_000);
});
