/**
 * The embedded database's one connection: a single statement (a flush's commit is one) runs
 * after the transaction in progress, not after every transaction queued behind it (issue 15:
 * commits waited behind receive and ack transactions).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readConfig } from "../../functions/config.ts";
import { openDatabase, type NodeDatabase } from "../../functions/runtime/node/database.ts";
import { rows } from "../../storage/metadata/db.ts";

describe("the embedded database's connection", () => {
  let dir: string;
  let opened: NodeDatabase;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "reservoir-statements-first-"));
    opened = await openDatabase(readConfig({ RESERVOIR_DATA_DIR: dir }), { dbStatements: 0 });
  });
  afterAll(async () => {
    await opened?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs a single statement before the transactions queued ahead of it", async () => {
    const { db } = opened;
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let holding!: () => void;
    const started = new Promise<void>((resolve) => (holding = resolve));
    const first = db.transaction(async (tx) => {
      await tx.execute(sql`SELECT 1`);
      order.push("first transaction");
      holding();
      await held;
      await tx.execute(sql`SELECT 2`);
    });
    await started;
    // Queued while the first holds the connection: two transactions, then one statement.
    const queued = ["second transaction", "third transaction"].map((name) =>
      db.transaction(async (tx) => {
        await tx.execute(sql`SELECT 3`);
        order.push(name);
        await tx.execute(sql`SELECT 4`);
      }),
    );
    const statement = rows<{ n: number }>(db, sql`SELECT 5 AS n`).then((r) => order.push(`statement ${r[0].n}`));
    release();
    await Promise.all([first, ...queued, statement]);
    expect(order).toEqual(["first transaction", "statement 5", "second transaction", "third transaction"]);
  });

  it("still runs transactions one at a time, each to its end, and rolls back a failed one", async () => {
    const { db } = opened;
    await db.execute(sql`CREATE TABLE IF NOT EXISTS statements_first_probe (n int)`);
    const log: string[] = [];
    const run = (n: number, fail: boolean) =>
      db.transaction(async (tx) => {
        log.push(`begin ${n}`);
        await tx.execute(sql`INSERT INTO statements_first_probe VALUES (${n})`);
        await tx.execute(sql`SELECT pg_sleep(0)`);
        log.push(`end ${n}`);
        if (fail) throw new Error(`transaction ${n} fails`);
      });
    const results = await Promise.allSettled([run(1, false), run(2, true), run(3, false)]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(log).toEqual(["begin 1", "end 1", "begin 2", "end 2", "begin 3", "end 3"]);
    const stored = await rows<{ n: number }>(db, sql`SELECT n FROM statements_first_probe ORDER BY n`);
    expect(stored.map((r) => r.n)).toEqual([1, 3]);
  });
});
