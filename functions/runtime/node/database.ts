/**
 * The Node server's database: Postgres through postgres.js when DATABASE_URL is set, else the
 * embedded PGlite under the data dir. Both come back as the core's Database, with failures
 * translated into the error family, and a LISTEN for the webhook dispatcher's wake-ups.
 */
import { mkdirSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { join } from "node:path";
import type { Config } from "../../config.ts";
import type { Listen } from "../../push/background.ts";
import { translateFailures, type Database } from "../../../storage/metadata/db.ts";
import { postgresJsTypes } from "../../../storage/metadata/pg-types.ts";
import { guardPostgresWrites } from "./postgres-write-guard.ts";
import { statementsFirst } from "./statements-first.ts";
import { countingStatements } from "../statement-count.ts";

export interface NodeDatabase {
  db: Database;
  close(): Promise<void>;
  /** What the start-up banner names. */
  kind: string;
  /** Absent: nothing but this instance commits (the embedded database). */
  listen?: Listen;
}

/** `counters.dbStatements` counts the statements sent to Postgres (GET /v1/admin/metrics). */
export async function openDatabase(config: Config, counters: { dbStatements: number }): Promise<NodeDatabase> {
  if (config.databaseUrl) {
    guardPostgresWrites(config.databaseCallTimeoutMs);
    const { default: postgres } = await import("postgres");
    const { drizzle } = await import("drizzle-orm/postgres-js");
    const urlMax = new URL(config.databaseUrl).searchParams.get("max");
    const sql = postgres(config.databaseUrl, {
      max: urlMax ? Number(urlMax) : (config.databasePoolMax ?? 20),
      types: postgresJsTypes,
      // As on Workers: the core passes arrays as literals (storage/metadata/sql-array.ts) and
      // needs no array types from pg_type. Reading them was also a crash: postgres.js 3.4.9 runs
      // that query first on every new connection and drops its promise, so a backend terminated
      // at that moment was an unhandled rejection that ended the process (porsager/postgres#1192,
      // #1223; test/reliability/postgres-connection-drop.test.ts).
      fetch_types: false,
      onnotice: () => {},
    });
    const listen: Listen = async (channel, onPayload) => {
      const { unlisten } = await sql.listen(channel, onPayload);
      return unlisten;
    };
    const db = countingStatements(counters, (options) => preparedStatements(drizzle(sql, options) as unknown as Database));
    return { db: translateFailures(db), close: () => sql.end(), kind: "postgres", listen };
  }
  return openEmbedded(config, counters);
}

type Session = { prepareQuery(...args: unknown[]): { prepare: boolean }; transaction(...args: unknown[]): Promise<unknown> };

/**
 * Every statement as a named prepared statement of its connection, parsed once per text, as
 * postgres.js does for its own tagged queries but drizzle's postgres-js driver does not (it runs
 * raw SQL unnamed). Unnamed, each statement cost a Parse and a Describe, a round trip to learn
 * the parameters' types, then a Bind that planned it again: about 60% of the Postgres CPU of a
 * receive + ack (docs/benchmarks.md, "Consume (issue 15)"). Prepared, it is one Bind + Execute,
 * and Postgres plans it once (a generic plan) where that costs no more than planning each time.
 * The core sends a bounded set of texts (array parameters are literals, not lists: sql-array.ts),
 * so the per-connection cache of statements stays small. Statements without parameters still go
 * by the simple protocol (migrations' DDL). Statements inside a transaction run on the
 * transaction's own session, so its sessions are switched too.
 *
 * The embedded database gains more: PGlite runs each protocol message as a call into its
 * WebAssembly backend, and an unnamed statement is eight of them (Parse, Describe, Flush, then
 * Parse again, Describe, Bind, Execute, Sync) where a prepared one is three. An indexed select
 * cost its thread 230–290 µs unnamed against 63–73 µs prepared (docs/benchmarks.md, "Embedded:
 * the regression after session 6"). Its one backend outlives a reconnect of the socket, and so
 * do its statements; postgres.js names a new connection's statements afresh, so none collide.
 */
function preparedStatements(db: Database): Database {
  const prepareAll = (session: Session) => {
    const prepareQuery = session.prepareQuery.bind(session);
    session.prepareQuery = (...args) => {
      const query = prepareQuery(...args);
      query.prepare = true;
      return query;
    };
  };
  const session = (db as unknown as { session: Session }).session;
  prepareAll(session);
  const transaction = session.transaction.bind(session);
  session.transaction = (work, ...rest) =>
    transaction(
      (tx: { session: Session }) => {
        prepareAll(tx.session);
        return (work as (tx: unknown) => unknown)(tx);
      },
      ...rest,
    );
  return db;
}

/**
 * The embedded default: PGlite on its own thread (pglite-worker.mjs), reached like a Postgres
 * server through postgres.js over one loopback connection. A database that stops answering
 * stops the server: its thread has failed, and nothing else could serve.
 */
async function openEmbedded(config: Config, counters: { dbStatements: number }): Promise<NodeDatabase> {
  guardPostgresWrites();
  const { default: postgres } = await import("postgres");
  const { drizzle } = await import("drizzle-orm/postgres-js");
  const dir = join(config.dataDir, "pg");
  mkdirSync(dir, { recursive: true });
  const worker = new Worker(new URL("./pglite-worker.mjs", import.meta.url), { workerData: { dir } });
  const address = await new Promise<string>((resolve, reject) => {
    worker.once("message", (m: { ready?: string }) => (m.ready ? resolve(m.ready) : reject(new Error("PGlite thread: no address"))));
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`PGlite thread exited with code ${code} before it was ready`)));
  });
  let closing = false;
  worker.on("error", (error) => {
    console.error(`reservoir: the embedded database's thread failed: ${error.stack ?? error}`);
    process.exit(1);
  });
  worker.on("exit", (code) => {
    if (closing) return;
    console.error(`reservoir: the embedded database's thread exited (code ${code})`);
    process.exit(1);
  });
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  const sql = postgres({
    host,
    port,
    user: "postgres",
    database: "postgres",
    max: 1,
    types: postgresJsTypes,
    fetch_types: false,
    onnotice: () => {},
  });
  const close = async () => {
    closing = true;
    await sql.end();
    const stopped = new Promise<void>((resolve) => worker.once("message", () => resolve()));
    worker.postMessage("stop");
    await stopped;
    await worker.terminate();
  };
  return {
    db: translateFailures(
      countingStatements(counters, (options) => preparedStatements(drizzle(statementsFirst(sql), options) as unknown as Database)),
    ),
    close,
    kind: `embedded PGlite (${dir}, on a thread of its own)`,
    // One connection: LISTEN would need a second. The dispatcher hears this instance's commits
    // directly, and there is no other instance to hear.
    listen: undefined,
  };
}
