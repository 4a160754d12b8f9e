import { randomUUID } from "node:crypto";
import { constants, type Dirent } from "node:fs";
import { access, type FileHandle, link, mkdir, open, readdir, stat, unlink } from "node:fs/promises";
import { LRUCache } from "lru-cache";
import { dirname, join, resolve } from "node:path";
import { unavailable } from "../../../storage/errors.ts";
import {
  ObjectExistsError,
  ObjectNotFoundError,
  type ByteRange,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
} from "../../../storage/objects/object-store.ts";

/** Names of in-progress writes; never valid as a key segment and never listed. */
const TEMP_PREFIX = ".reservoir-tmp-";

/**
 * Objects as files under `rootDir` (key `a/b/c` is the file `rootDir/a/b/c`), for the embedded
 * single-node setup. A key cannot be both an object and a "directory" of other keys.
 * Filesystem failures (a full disk, permissions, I/O errors) leave as `unavailable(...)`.
 */
export class FolderObjectStore implements ObjectStore {
  private readonly root: string;
  /** Directories this store made or found: a PUT into one skips its mkdir (the store never removes one). */
  private readonly made = new Set<string>();
  private readonly dirSyncs = new DirectorySyncs();

  constructor(rootDir: string) {
    this.root = resolve(rootDir);
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const path = this.pathOf(key);
    await this.write(key, path, body).catch((error) => failed("write", key, error));
  }

  /**
   * Each step of a PUT is a turn of the event loop, which on the embedded default waits behind
   * PGlite's statements on the same thread: the steps a PUT waits for one after the other are the
   * fewest that keep it durable (open, write, fsync, link, the directory's fsync, with the
   * temporary name's removal beside it); the file is closed after it (docs/benchmarks.md, session 23).
   */
  private async write(key: string, path: string, body: Uint8Array, again = false): Promise<void> {
    const dir = dirname(path);
    const firstCreated = this.made.has(dir) ? undefined : await mkdir(dir, { recursive: true });
    this.made.add(dir);
    const temp = join(dir, TEMP_PREFIX + randomUUID());
    let file: FileHandle;
    try {
      file = await open(temp, "wx");
    } catch (err) {
      // Removed behind the store's back: make it again, once.
      if (errno(err) !== "ENOENT" || again) throw err;
      this.made.delete(dir);
      return this.write(key, path, body, true);
    }
    try {
      // The bytes are durable under a name no reader looks at before the key appears, so a crash
      // leaves either nothing or the whole object; link() fails instead of replacing a file.
      try {
        await file.writeFile(body);
        await file.sync();
      } finally {
        void file.close().catch(() => {});
      }
      await link(temp, path).catch((err) => {
        throw errno(err) === "EEXIST" ? new ObjectExistsError(key) : err;
      });
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err;
    }
    // The new directory entries (the key's, and any directories mkdir made) must be durable too.
    // The temporary name goes meanwhile (one left by a crash is never listed nor read).
    await Promise.all([unlink(temp).catch(() => {}), this.dirSyncs.sync(dir)]);
    if (firstCreated) {
      for (let d = dir; d !== dirname(firstCreated); d = dirname(d)) await syncDir(dirname(d));
    }
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    if (range) checkRange(range);
    const path = this.pathOf(key);
    try {
      const file = await open(path, "r");
      try {
        if (!range) return asUint8Array(await file.readFile());
        const out = new Uint8Array(range.length);
        let filled = 0;
        while (filled < out.length) {
          const { bytesRead } = await file.read(out, filled, out.length - filled, range.offset + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return out.subarray(0, filled);
      } finally {
        await file.close();
      }
    } catch (err) {
      // EISDIR: the key is only a prefix of other keys.
      if (ABSENT.includes(errno(err)!)) throw new ObjectNotFoundError(key);
      return failed("read", key, err);
    }
  }

  async head(key: string): Promise<ObjectInfo> {
    const path = this.pathOf(key);
    const info = await stat(path).catch((err) => (ABSENT.includes(errno(err)!) ? undefined : failed("stat", key, err)));
    if (!info?.isFile()) throw new ObjectNotFoundError(key);
    return { size: info.size, lastModified: info.mtimeMs };
  }

  async delete(key: string): Promise<void> {
    await unlink(this.pathOf(key)).catch((err) => {
      if (!ABSENT.includes(errno(err)!)) failed("delete", key, err);
    });
  }

  async deleteMany(keys: string[]): Promise<void> {
    for (const key of keys) this.pathOf(key); // every key valid before any is deleted
    for (const key of keys) await this.delete(key);
  }

  async list(prefix: string, options: { startAfter?: string; limit?: number } = {}): Promise<ListPage> {
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`invalid list limit: ${limit}`);
    // Start at the deepest directory the prefix names in full; the rest is matched per entry.
    const base = prefix.slice(0, prefix.lastIndexOf("/") + 1);
    if (base) this.pathOf(base.slice(0, -1));
    const keys: string[] = [];
    try {
      for await (const key of this.walk(base, prefix, options.startAfter ?? "")) {
        if (keys.length === limit) return { keys, nextStartAfter: keys[limit - 1] };
        keys.push(key);
      }
    } catch (err) {
      return failed("list", prefix, err);
    }
    return { keys };
  }

  async check(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
      await access(this.root, constants.R_OK | constants.W_OK);
    } catch (err) {
      failed("check", this.root, err);
    }
  }

  /** Keys under the directory `base` (a key prefix ending in "/", or ""), in lexicographic order. */
  private async *walk(base: string, prefix: string, startAfter: string): AsyncGenerator<string> {
    let entries: Dirent[];
    try {
      entries = await readdir(join(this.root, base), { withFileTypes: true });
    } catch (err) {
      if (["ENOENT", "ENOTDIR"].includes(errno(err)!)) return;
      throw err;
    }
    // A directory sorts as its name plus "/", so every key beneath it lands in the right place.
    const named = entries
      .filter((e) => !e.name.startsWith(TEMP_PREFIX) && (e.isFile() || e.isDirectory()))
      .map((e) => ({ name: base + e.name + (e.isDirectory() ? "/" : ""), dir: e.isDirectory() }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const { name, dir } of named) {
      if (!dir) {
        if (name.startsWith(prefix) && name > startAfter) yield name;
      } else if ((name.startsWith(prefix) || prefix.startsWith(name)) && (name >= startAfter || startAfter.startsWith(name))) {
        yield* this.walk(name, prefix, startAfter);
      }
    }
  }

  private pathOf(key: string): string {
    const segments = key.split("/");
    if (segments.some((s) => s === "" || s === "." || s === ".." || s.startsWith(TEMP_PREFIX) || s.includes("\0"))) {
      throw new RangeError(`invalid object key: ${JSON.stringify(key)}`);
    }
    return join(this.root, ...segments);
  }
}

/** Errors meaning "no such key": the path, or a directory on it, is missing, or is a directory. */
const ABSENT = ["ENOENT", "ENOTDIR", "EISDIR"];

/** A filesystem failure as the project's error: the store is unavailable (the caller may retry). */
function failed(operation: string, key: string, error: unknown): never {
  if (error instanceof ObjectExistsError || error instanceof ObjectNotFoundError || error instanceof RangeError) throw error;
  throw unavailable(`folder store: could not ${operation} ${key}: ${(error as Error)?.message ?? String(error)}`, error);
}

/**
 * fsyncs of directories, shared: a PUT's fsync must start after its link, so a PUT arriving while
 * one runs waits for the next, which every PUT arriving meanwhile joins (a group commit). The
 * handles of the most recent directories stay open, so an fsync is one step, not three.
 */
class DirectorySyncs {
  private readonly dirs = new LRUCache<string, DirectoryState>({
    max: 64,
    // Closed once its last fsync has ended; a later PUT into it opens it again.
    dispose: (state) => void state.tail.finally(() => state.handle?.then((h) => h.close())).catch(() => {}),
  });

  sync(dir: string): Promise<void> {
    let state = this.dirs.get(dir);
    if (!state) {
      state = { tail: Promise.resolve(), next: null };
      this.dirs.set(dir, state);
    }
    if (state.next) return state.next;
    const own = state;
    const next: Promise<void> = own.tail
      .catch(() => {})
      .then(async () => {
        own.next = null;
        own.handle ??= open(dir, "r");
        const opening = own.handle;
        const handle = await opening.catch((err) => {
          if (own.handle === opening) own.handle = undefined;
          throw err;
        });
        await handle.sync();
      });
    own.next = next;
    own.tail = next;
    return next;
  }
}

interface DirectoryState {
  handle?: Promise<FileHandle>;
  /** The last fsync started or queued. */
  tail: Promise<void>;
  /** The fsync queued behind the running one, not started yet: PUTs arriving now join it. */
  next: Promise<void> | null;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function checkRange(range: ByteRange): void {
  if (!Number.isSafeInteger(range.offset) || range.offset < 0 || !Number.isSafeInteger(range.length) || range.length < 0) {
    throw new RangeError(`invalid byte range: offset ${range.offset}, length ${range.length}`);
  }
}

function asUint8Array(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
