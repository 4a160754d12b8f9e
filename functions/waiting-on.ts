/**
 * Where a request is waiting. The shared parts a request can wait on for long — the database
 * (a connection, PGlite's transaction mutex, a transaction), the object store, the produce
 * batcher, a long-poll — mark each request's waits on them with a label, so that a request that
 * overruns its deadline (deadline.ts) is logged with what it was waiting on.
 *
 * Which request's code runs now comes from the runtime's async context (AsyncLocalStorage on
 * Node and on Workers), injected by the entry point as a RequestScope: the core imports no
 * runtime module. Without a scope nothing is labelled and nothing else changes.
 */
import type { BatchCache } from "../storage/log/batch-cache.ts";
import type { Batcher } from "../storage/log/batcher.ts";
import type { LeaseTurns } from "../storage/groups/lease-turns.ts";
import type { CommitSignal } from "../storage/log/commit-signal.ts";
import type { Database } from "../storage/metadata/db.ts";
import type { ObjectStore } from "../storage/objects/object-store.ts";

/** The waits of one request in progress: labels, each with when it began. */
export class Waits {
  private readonly open = new Map<number, { label: string; since: number }>();
  private next = 0;

  /** Marks the start of a wait; call the returned function when it ends. */
  enter(label: string): () => void {
    const id = this.next++;
    this.open.set(id, { label, since: Date.now() });
    return () => void this.open.delete(id);
  }

  /** e.g. "database: in a transaction (12.3 s); object store: GET tenants/t/segments/s (12.2 s)". */
  describe(now = Date.now()): string {
    if (this.open.size === 0) return "nothing tracked (request code between waits)";
    return [...this.open.values()].map((w) => `${w.label} (${((now - w.since) / 1000).toFixed(1)} s)`).join("; ");
  }
}

/** The request whose code runs now: AsyncLocalStorage (or anything alike) behind a small interface. */
export interface RequestScope {
  run<T>(waits: Waits, work: () => T): T;
  current(): Waits | undefined;
}

/** `work`, labelled as a wait of the current request (if any) until it settles. */
export function waitingOn<T>(scope: RequestScope, label: string, work: Promise<T>): Promise<T> {
  const waits = scope.current();
  if (!waits) return work;
  const leave = waits.enter(label);
  return work.finally(leave);
}

type Method = (...args: never[]) => unknown;

/** Replaces `name` on `target` (the instance, shadowing its prototype) by `wrap(original)`. */
function around<T extends object>(target: T, name: keyof T & string, wrap: (original: Method) => Method): void {
  const original = (target[name] as Method).bind(target);
  Object.defineProperty(target, name, { value: wrap(original), configurable: true, writable: true });
}

interface TrackedSession {
  prepareQuery(...args: unknown[]): object;
  transaction<T>(work: (tx: unknown) => Promise<T>, config?: unknown): Promise<T>;
}

/**
 * Labels the database's waits: every query (outside a transaction it includes waiting for a
 * connection, on PGlite its mutex), and every transaction, first while it waits to begin, then
 * while it runs. All of drizzle's queries go through the session's prepareQuery, so labelling
 * the session covers them; queries inside a transaction count as that transaction.
 */
export function trackDatabase(db: Database, scope: RequestScope): Database {
  const session = (db as unknown as { session: TrackedSession }).session;
  around(session, "prepareQuery", (prepare) => (...args) => {
    const prepared = prepare(...args) as Record<string, unknown>;
    for (const name of ["execute", "all", "values"] as const) {
      if (typeof prepared[name] !== "function") continue;
      around(
        prepared,
        name,
        (run) =>
          (...a) =>
            waitingOn(scope, "database: query", run(...a) as Promise<unknown>),
      );
    }
    return prepared;
  });
  around(session, "transaction", (transaction) => (...args) => {
    const [work, config] = args as unknown as [(tx: unknown) => Promise<unknown>, unknown];
    const waits = scope.current();
    if (!waits) return (transaction as TrackedSession["transaction"])(work, config);
    let leave = waits.enter("database: waiting for a connection to begin a transaction (PGlite: its transaction mutex)");
    const inTransaction = (tx: unknown) => {
      leave();
      leave = waits.enter("database: in a transaction");
      return work(tx);
    };
    return (transaction as TrackedSession["transaction"])(inTransaction, config).finally(() => leave());
  });
  return db;
}

/** Labels the object store's requests with the operation and key. */
export function trackStore(store: ObjectStore, scope: RequestScope): ObjectStore {
  return {
    put: (key, body, crc32c) => waitingOn(scope, `object store: PUT ${key}`, store.put(key, body, crc32c)),
    get: (key, range) =>
      waitingOn(scope, `object store: GET ${key}${range ? ` bytes ${range.offset}+${range.length}` : ""}`, store.get(key, range)),
    head: (key) => waitingOn(scope, `object store: HEAD ${key}`, store.head(key)),
    delete: (key) => waitingOn(scope, `object store: DELETE ${key}`, store.delete(key)),
    deleteMany: (keys) => waitingOn(scope, `object store: DELETE ${keys.length} objects`, store.deleteMany(keys)),
    list: (prefix, options) => waitingOn(scope, `object store: LIST ${prefix}`, store.list(prefix, options)),
    check: () => waitingOn(scope, "object store: check", store.check()),
  };
}

/**
 * Labels a produce's wait for its flush (coalescing, PUT and commit), long-poll waits, a
 * receive's wait for its group's lease turn, and a read's wait for a segment another read (or a
 * read-ahead) is loading: without the last two, a request stuck there was logged as waiting on
 * nothing.
 */
export function trackShared(
  shared: { batcher: Batcher; commits: CommitSignal; cache: BatchCache; leaseTurns: LeaseTurns },
  scope: RequestScope,
): void {
  /** `target[name]`'s promise, labelled as a wait of the calling request. */
  const label = <T extends object>(target: T, name: keyof T & string, describe: (args: unknown[]) => string) =>
    around(
      target,
      name,
      (original) =>
        (...args) =>
          waitingOn(scope, describe(args), original(...args) as Promise<unknown>),
    );
  label(shared.cache, "once", ([key]) => `read cache: loading ${String(key)}`);
  label(shared.leaseTurns, "take", () => "lease turns: waiting for a turn among this instance's receives of the group");
  label(shared.batcher, "submit", () => "batcher: waiting for the flush of this produce (segment PUT, then commit)");
  label(shared.commits, "wait", () => "long-poll: waiting for new messages");
}
