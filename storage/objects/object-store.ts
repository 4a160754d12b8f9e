/**
 * The one small interface every object store implements (S3-compatible services and a local
 * folder). Keys are never overwritten: `put` is create-only.
 *
 * Failures: the outcomes the contract names reject with ObjectExistsError or
 * ObjectNotFoundError, a bad argument (key, range, limit) with RangeError, and a failure of the
 * store itself (network, server, disk, refused credentials) with `unavailable(...)` from
 * storage/errors.ts, which the HTTP layer answers with a 503.
 */
export interface ByteRange {
  offset: number;
  length: number;
}

export interface ListPage {
  keys: string[];
  /** Pass as `startAfter` to continue; absent when the listing is complete. */
  nextStartAfter?: string;
}

export interface ObjectInfo {
  size: number;
  /** When the object was written, ms since the epoch (e.g. for an orphan's grace period). */
  lastModified: number;
}

export interface ObjectStore {
  /**
   * Create `key` with `body`. Rejects with ObjectExistsError if the key already exists. `crc32c`
   * is the body's CRC32C when the caller already has it (a segment's, from its batches'); a store
   * that sends one computes it otherwise.
   */
  put(key: string, body: Uint8Array, crc32c?: number): Promise<void>;
  /** The whole object, or only `range`. Rejects with ObjectNotFoundError if absent. */
  get(key: string, range?: ByteRange): Promise<Uint8Array>;
  /** Size and age of `key`. Rejects with ObjectNotFoundError if absent. */
  head(key: string): Promise<ObjectInfo>;
  /** Idempotent: deleting an absent key succeeds. */
  delete(key: string): Promise<void>;
  /** `delete` for many keys (S3: one request per 1000); absent keys succeed. */
  deleteMany(keys: string[]): Promise<void>;
  /** Keys under `prefix` in lexicographic order, after `startAfter`, at most `limit` (default 1000). */
  list(prefix: string, options?: { startAfter?: string; limit?: number }): Promise<ListPage>;
  /** Resolves when the store answers (used by /healthz); rejects otherwise. */
  check(): Promise<void>;
}

export class ObjectExistsError extends Error {
  constructor(readonly key: string) {
    super(`object already exists: ${key}`);
    this.name = "ObjectExistsError";
  }
}

export class ObjectNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
    this.name = "ObjectNotFoundError";
  }
}

/** Requests an instance made to its object store, for the metrics endpoint and cost figures. */
export interface StoreCounters {
  puts: number;
  gets: number;
}

/** `store`, counting its PUTs and GETs into `counters`. */
export function countingStore(store: ObjectStore, counters: StoreCounters): ObjectStore {
  return {
    put: (key, body, crc32c) => {
      counters.puts++;
      return store.put(key, body, crc32c);
    },
    get: (key, range) => {
      counters.gets++;
      return store.get(key, range);
    },
    head: (key) => store.head(key),
    delete: (key) => store.delete(key),
    deleteMany: (keys) => store.deleteMany(keys),
    list: (prefix, options) => store.list(prefix, options),
    check: () => store.check(),
  };
}
