/**
 * Counts the statements an instance sends to Postgres (GET /v1/admin/metrics, `db.statements`):
 * drizzle's logger sees each statement the core runs, and each transaction adds two, its BEGIN
 * and its COMMIT or ROLLBACK. postgres.js's `debug` option counted them before, but with it set
 * postgres.js builds an Error (a captured stack trace) for every query: 3% of the Node server's
 * main thread at a steady 5,000 msgs/s (docs/benchmarks.md, session 11).
 */
import type { Database } from "../../storage/metadata/db.ts";

export interface StatementCounters {
  dbStatements: number;
}

/** drizzle's options for a client whose statements `counters` counts (pair with countTransactions). */
export function countingLogger(counters: StatementCounters) {
  return { logger: { logQuery: () => void counters.dbStatements++ } };
}

type Session = { transaction(...args: unknown[]): Promise<unknown> };

/** `db`, with each transaction it opens counted as its two statements (BEGIN, COMMIT or ROLLBACK). */
export function countTransactions<D extends Database>(db: D, counters: StatementCounters): D {
  const session = (db as unknown as { session: Session }).session;
  const transaction = session.transaction.bind(session);
  session.transaction = (...args) => {
    counters.dbStatements += 2;
    return transaction(...args);
  };
  return db;
}
