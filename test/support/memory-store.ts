/**
 * An in-memory ObjectStore for unit tests of the batcher, where a PUT must be made to fail on
 * demand. Integration tests use the real stores (folder, s3rver).
 */
import { unavailable } from "../../storage/errors.ts";
import { ObjectExistsError, ObjectNotFoundError, type ByteRange, type ObjectStore } from "../../storage/objects/object-store.ts";

export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();
  failPuts = false;
  puts = 0;
  private held?: { started: () => void; released: Promise<void> };

  /**
   * Holds every PUT until release(): a flush can be kept "in its PUT" for as long as a test
   * needs. `started` resolves as soon as a held PUT has begun.
   */
  holdPuts(): { started: Promise<void>; release(): void } {
    let started!: () => void;
    let release!: () => void;
    const startedPromise = new Promise<void>((resolve) => (started = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.held = { started, released };
    return {
      started: startedPromise,
      release: () => {
        this.held = undefined;
        release();
      },
    };
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    this.puts++;
    if (this.held) {
      this.held.started();
      await this.held.released;
    }
    if (this.failPuts) throw unavailable("injected PUT failure");
    if (this.objects.has(key)) throw new ObjectExistsError(key);
    this.objects.set(key, body.slice());
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const body = this.objects.get(key);
    if (!body) throw new ObjectNotFoundError(key);
    return range ? body.slice(range.offset, range.offset + range.length) : body.slice();
  }

  async head(key: string) {
    const body = this.objects.get(key);
    if (!body) throw new ObjectNotFoundError(key);
    return { size: body.byteLength, lastModified: 0 };
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }

  async deleteMany(keys: string[]): Promise<void> {
    for (const key of keys) this.objects.delete(key);
  }

  async list(prefix: string, options: { startAfter?: string; limit?: number } = {}) {
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix) && (!options.startAfter || k > options.startAfter)).sort();
    const limit = options.limit ?? 1000;
    return { keys: keys.slice(0, limit), nextStartAfter: keys.length > limit ? keys[limit - 1] : undefined };
  }

  async check(): Promise<void> {}
}
