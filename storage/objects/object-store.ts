/**
 * The one small interface every object store implements (S3-compatible services and a local
 * folder). Keys are never overwritten: `put` is create-only.
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

export interface ObjectStore {
  /** Create `key` with `body`. Rejects with ObjectExistsError if the key already exists. */
  put(key: string, body: Uint8Array): Promise<void>;
  /** The whole object, or only `range`. Rejects with ObjectNotFoundError if absent. */
  get(key: string, range?: ByteRange): Promise<Uint8Array>;
  /** Idempotent: deleting an absent key succeeds. */
  delete(key: string): Promise<void>;
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
