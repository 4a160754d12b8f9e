/**
 * Keeps a dropped Postgres connection from killing the Node server.
 *
 * postgres.js 3.4.9 (the current 3.x; 4.x is a rewrite) defers small writes to a setImmediate.
 * When a connection dies under an open transaction, the failed statement rejects with
 * CONNECTION_CLOSED, `begin()` then writes its ROLLBACK on the closed connection, and the deferred
 * write dereferences the socket the close has nulled: a TypeError thrown from an Immediate, which
 * no caller can catch, so the process exits (porsager/postgres#1066, #1154, #1208; the fix,
 * porsager/postgres#1168 and #1176, is not released). The close also cancels a deferred write
 * without forgetting it, so a reused connection would never send its next small write (its
 * start-up message) and hang. The reliability campaign hit the crash within seconds of its first
 * cut connection (docs/reliability.md; test/reliability/postgres-connection-drop.test.ts).
 *
 * The fix is the upstream one, applied as the driver's module loads: a write to a closed
 * connection is dropped (its query has already failed), and a close forgets the deferred write.
 * The hook checks the exact source it patches and leaves any other version untouched.
 *
 * Dropping that write left its statement queued on the connection, and the driver's next session
 * on the same Connection object took it for the statement being answered: answers paired with the
 * wrong statements, and statements never sent in full (docs/reliability.md, anomalies 8 and 9;
 * test/reliability/postgres-stale-session.test.ts). So a close also fails and forgets every
 * statement of its session, a transaction's statements go to its own session only, and a
 * statement that gets no answer for `silenceMs` fails and destroys its connection.
 */
import { register } from "node:module";

let registered = false;

/**
 * Call before the first import of "postgres". `silenceMs` bounds a database call: a statement
 * that gets no byte back for that long fails (CONNECTION_DESTROYED, so `service_unavailable`)
 * and its connection is destroyed, to be opened afresh by the pool. 0 or absent: no bound. The
 * first call's value holds for the process (the driver's module loads once).
 */
export function guardPostgresWrites(silenceMs = 0): void {
  if (registered) return;
  registered = true;
  register("./postgres-write-guard-hook.mjs", { parentURL: import.meta.url, data: { silenceMs } });
}
