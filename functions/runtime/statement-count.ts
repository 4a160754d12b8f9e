/**
 * Counts the statements an instance sends to Postgres (GET /v1/admin/metrics, `db.statements`):
 * drizzle's logger sees each statement the core runs (inside transactions too), and each
 * transaction adds two, its BEGIN and its COMMIT or ROLLBACK. postgres.js's `debug` option
 * counted them before, but with it set postgres.js builds an Error (a captured stack trace) for
 * every query: 3% of the Node server's main thread at a steady 5,000 msgs/s (docs/benchmarks.md,
 * session 11).
 */
import type { Database } from "../../storage/metadata/db.ts";

export interface StatementCounters {
  dbStatements: number;
}

type Session = { transaction(...args: unknown[]): Promise<unknown> };

/** The database `open` makes with the drizzle options given, its statements counted in `counters`. */
export function countingStatements<D extends Database>(
  counters: StatementCounters,
  open: (options: { logger: { logQuery(): void } }) => D,
): D {
  const db = open({ logger: { logQuery: () => void counters.dbStatements++ } });
  const session = (db as unknown as { session: Session }).session;
  const transaction = session.transaction.bind(session);
  session.transaction = (...args) => {
    counters.dbStatements += 2;
    return transaction(...args);
  };
  return db;
}
