/**
 * The Node entry: `npm start`. Embedded default (PGlite and a folder under the data dir), or
 * Postgres and S3 when DATABASE_URL and S3_* are set. Injects them into the shared app.
 */
import { serve } from "@hono/node-server";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createApp } from "./app.ts";
import { readConfig, type Config } from "./config.ts";
import { createSharedState } from "./instance.ts";
import type { Runtime } from "./runtime.ts";
import { newSecret } from "../storage/log/ids.ts";
import type { Database } from "../storage/metadata/db.ts";
import { migrate } from "../storage/metadata/migrate.ts";
import { receiptKey } from "../storage/metadata/settings.ts";
import { ReceiptSigner } from "../storage/groups/receipts.ts";
import { FolderObjectStore } from "../storage/objects/folder-store.ts";
import type { ObjectStore } from "../storage/objects/object-store.ts";
import { S3ObjectStore } from "../storage/objects/s3-store.ts";

const counters = { dbStatements: 0 };

async function openDatabase(config: Config): Promise<{ db: Database; close(): Promise<void>; kind: string }> {
  if (config.databaseUrl) {
    const { default: postgres } = await import("postgres");
    const { drizzle } = await import("drizzle-orm/postgres-js");
    const urlMax = new URL(config.databaseUrl).searchParams.get("max");
    const sql = postgres(config.databaseUrl, {
      max: urlMax ? Number(urlMax) : (config.databasePoolMax ?? 20),
      onnotice: () => {},
      debug: () => void counters.dbStatements++,
    });
    return { db: drizzle(sql) as unknown as Database, close: () => sql.end(), kind: "postgres" };
  }
  const { PGlite } = await import("@electric-sql/pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  const dir = join(config.dataDir, "pg");
  mkdirSync(dir, { recursive: true });
  const client = await PGlite.create(dir);
  return { db: drizzle(client) as unknown as Database, close: () => client.close(), kind: `embedded PGlite (${dir})` };
}

function openStore(config: Config): { store: ObjectStore; kind: string } {
  if (config.s3) return { store: new S3ObjectStore(config.s3), kind: `s3 (${config.s3.endpoint ?? "aws"}/${config.s3.bucket})` };
  const dir = join(config.dataDir, "segments");
  mkdirSync(dir, { recursive: true });
  return { store: new FolderObjectStore(dir), kind: `folder (${dir})` };
}

/** Without RESERVOIR_ADMIN_TOKEN: one generated token, kept (mode 600) so restarts keep it. */
function generatedAdminToken(dataDir: string): string {
  const file = join(dataDir, "operator-token");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(dataDir, { recursive: true });
  const token = newSecret("rsv_op_");
  writeFileSync(file, token + "\n", { mode: 0o600 });
  return token;
}

export async function main(env = process.env): Promise<void> {
  const config = readConfig(env);
  const database = await openDatabase(config);
  await migrate(database.db);
  const receipts = new ReceiptSigner(await receiptKey(database.db));
  const { store, kind: storeKind } = openStore(config);
  const adminToken = config.adminToken ?? generatedAdminToken(config.dataDir);
  const runtime: Runtime = {
    ...createSharedState({ lingerMs: config.lingerMs, maxBytes: config.maxBatchBytes }),
    db: database.db,
    store,
    clock: { now: () => Date.now() },
    adminToken,
    receipts,
    counters,
    pollIntervalMs: 100,
  };
  const app = createApp();
  const server = serve({ fetch: (request) => app.fetch(request, runtime), port: config.port, hostname: env.HOST ?? "0.0.0.0" }, (info) => {
    console.log(`Reservoir listening on http://localhost:${info.port}`);
    console.log(`  metadata: ${database.kind}`);
    console.log(`  segments: ${storeKind}`);
    if (!config.adminToken) {
      console.log(`  operator token (RESERVOIR_ADMIN_TOKEN was unset; kept in ${join(config.dataDir, "operator-token")}): ${adminToken}`);
    }
  });
  const shutdown = () => {
    server.close();
    void database.close().finally(() => process.exit(0));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

await main();
