/** A migrated in-memory PGlite database: the real Postgres engine, in process, for unit tests. */
import { PGlite } from "@electric-sql/pglite";
import { drizzle } from "drizzle-orm/pglite";
import type { Database } from "../../storage/metadata/db.ts";
import { migrate } from "../../storage/metadata/migrate.ts";
import { pgliteParsers } from "../../storage/metadata/pg-types.ts";

export async function embeddedDatabase(): Promise<{ db: Database; close(): Promise<void> }> {
  const client = await PGlite.create({ parsers: pgliteParsers });
  const db = drizzle(client) as unknown as Database;
  await migrate(db);
  return { db, close: () => client.close() };
}
