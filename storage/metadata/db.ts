/**
 * The database handle the core works with: drizzle over any Postgres driver (postgres.js on a
 * server, PGlite embedded). Entry points create it; the core only sees this type.
 */
import type { SQL } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import type * as schema from "./schema.ts";

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
/** A database or an open transaction on it. */
export type Queryable = Pick<Database, "select" | "insert" | "update" | "delete" | "execute">;

/** Raw SQL rows; drivers disagree on the result shape (array vs `{ rows }`), this does not. */
export async function rows<T>(db: Queryable, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown;
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}
