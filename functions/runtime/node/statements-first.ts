/**
 * The embedded database's one connection, shared so that single statements do not queue behind
 * transactions. postgres.js runs what waits for its one connection in arrival order, and a
 * transaction holds the connection for all its round trips: at a steady rate a flush's commit
 * (one statement, storage/log/commit.ts) waited behind every receive and ack transaction queued
 * before it, its p50 21–32 ms against a few for the statement itself (issue 15).
 *
 * Here transactions go to postgres.js one at a time, and single statements at once: a statement
 * waits for at most the one transaction running, never for a queue of them. A transaction waits
 * for the one before it (as it did) and for the statements sent before it is let through; it
 * cannot be starved, as it is let through as soon as the transaction before it ends. Nothing
 * else changes: the same connection, the same statements, the same transaction boundaries.
 */
import type { Sql } from "postgres";

export function statementsFirst(sql: Sql): Sql {
  const waiting: (() => void)[] = [];
  let running = false;
  const next = () => {
    running = false;
    const go = waiting.shift();
    if (go) {
      running = true;
      go();
    }
  };
  const begin = (...args: unknown[]) =>
    new Promise<void>((go) => {
      if (running) waiting.push(go);
      else {
        running = true;
        go();
      }
    }).then(() => {
      const done = (sql.begin as (...a: unknown[]) => Promise<unknown>).apply(sql, args);
      done.then(next, next);
      return done;
    });
  return new Proxy(sql, {
    get(target, property, receiver) {
      if (property === "begin") return begin;
      return Reflect.get(target, property, receiver);
    },
  });
}
