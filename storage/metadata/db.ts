/**
 * The database handle the core works with: drizzle over any Postgres driver (postgres.js on a
 * server, PGlite embedded). Entry points create it and pass it through `translateFailures`, so
 * that a failure of the database itself (connection lost, server shutting down, out of
 * resources, a conflict that outlived its retries) reaches the core as `unavailable(...)` — a
 * 503 the client may retry — while every other error (a constraint the code should have
 * prevented, a syntax error) stays what it is: a bug, answered 500.
 */
import type { SQL } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { ReservoirError, unavailable } from "../errors.ts";
import type * as schema from "./schema.ts";

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
/** A database or an open transaction on it. */
export type Queryable = Pick<Database, "select" | "insert" | "update" | "delete" | "execute">;

/** Raw SQL rows; drivers disagree on the result shape (array vs `{ rows }`), this does not. */
export async function rows<T>(db: Queryable, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown;
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

/** SQLSTATEs after which running the whole transaction again is safe and usually succeeds. */
const RETRYABLE = new Set(["40P01", "40001"]); // deadlock_detected, serialization_failure

/**
 * SQLSTATEs of the database failing rather than the statement being wrong: connection
 * exceptions (08), insufficient resources (53), operator intervention (57: shutdown, a
 * statement timeout), system errors (58), and the retryable conflicts once retries are spent.
 */
const UNAVAILABLE_CLASSES = new Set(["08", "53", "57", "58"]);
/** Connection failures of the drivers (postgres.js) and of the network, by their `code`. */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

export function sqlState(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** Whether `error` (or a cause) is the database or the way to it failing, not the statement. */
export function isDatabaseFailure(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    if (CONNECTION_CODES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code)) return UNAVAILABLE_CLASSES.has(code.slice(0, 2)) || RETRYABLE.has(code);
  }
  return false;
}

function translate(error: unknown): unknown {
  if (error instanceof ReservoirError || !isDatabaseFailure(error)) return error;
  return unavailable("the database failed; retry the request", error);
}

type Session = {
  prepareQuery(...args: unknown[]): Prepared;
  transaction(...args: unknown[]): Promise<unknown>;
};
type Prepared = Record<"execute" | "all" | "values", ((...args: unknown[]) => Promise<unknown>) | undefined>;

/**
 * The adapter's error boundary. Every statement drizzle runs outside a transaction is prepared
 * by the database's session, and every transaction is run by it (a statement failing inside one
 * rejects the transaction): wrapping those two methods of this one session object translates
 * every failure once, whatever module issued the query.
 */
export function translateFailures<D extends Database>(db: D): D {
  const session = (db as unknown as { session: Session }).session;
  const prepareQuery = session.prepareQuery.bind(session);
  const transaction = session.transaction.bind(session);
  session.prepareQuery = (...args) => {
    const prepared = prepareQuery(...args);
    for (const method of ["execute", "all", "values"] as const) {
      const run = prepared[method]?.bind(prepared);
      if (run) prepared[method] = (...a) => run(...a).catch((error: unknown) => Promise.reject(translate(error)));
    }
    return prepared;
  };
  session.transaction = (...args) => transaction(...args).catch((error: unknown) => Promise.reject(translate(error)));
  return db;
}

/**
 * Runs `work` (a whole transaction) again when Postgres aborted it to break a deadlock or a
 * serialization conflict with another instance's: the loser retries instead of failing.
 */
export async function retryConflicts<T>(work: () => Promise<T>, attempts = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const state = sqlState(error);
      if (attempt >= attempts || !state || !RETRYABLE.has(state)) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
    }
  }
}
