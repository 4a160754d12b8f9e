/**
 * The Node server's database: Postgres through postgres.js when DATABASE_URL is set, else the
 * embedded PGlite under the data dir. Both come back as the core's Database, with failures
 * translated into the error family, and a LISTEN for the webhook dispatcher's wake-ups.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../../config.ts";
import type { Listen } from "../../push/background.ts";
import { translateFailures, type Database } from "../../../storage/metadata/db.ts";
import { pgliteParsers, postgresJsTypes } from "../../../storage/metadata/pg-types.ts";
import { guardPostgresWrites } from "./postgres-write-guard.ts";

export interface NodeDatabase {
  db: Database;
  close(): Promise<void>;
  /** What the start-up banner names. */
  kind: string;
  listen: Listen;
}

/** `counters.dbStatements` counts the statements sent to Postgres (GET /v1/admin/metrics). */
export async function openDatabase(config: Config, counters: { dbStatements: number }): Promise<NodeDatabase> {
  if (config.databaseUrl) {
    guardPostgresWrites();
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
      debug: () => void counters.dbStatements++,
    });
    const listen: Listen = async (channel, onPayload) => {
      const { unlisten } = await sql.listen(channel, onPayload);
      return unlisten;
    };
    return { db: translateFailures(drizzle(sql) as unknown as Database), close: () => sql.end(), kind: "postgres", listen };
  }
  const { PGlite } = await import("@electric-sql/pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  const dir = join(config.dataDir, "pg");
  mkdirSync(dir, { recursive: true });
  const client = await PGlite.create(dir, { parsers: pgliteParsers });
  const listen: Listen = async (channel, onPayload) => {
    const unlisten = await client.listen(channel, onPayload);
    return () => unlisten();
  };
  return {
    db: translateFailures(drizzle(client) as unknown as Database),
    close: () => client.close(),
    kind: `embedded PGlite (${dir})`,
    listen,
  };
}
