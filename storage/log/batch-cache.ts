/**
 * An LRU of stored bytes, shared by an instance's reads, bounded by an estimate of the memory
 * its entries hold (default 256 MiB, RESERVOIR_READ_CACHE_BYTES): GET /metrics shows the estimate
 * (`reservoir_read_cache_bytes`) against the bound (`reservoir_read_cache_max_bytes`).
 *
 * Entries are whole segments (one GET read them whole, or the batcher just wrote them) and byte
 * ranges (a ranged GET of a larger segment). The bytes are kept as stored and each range is
 * decoded on its first read, into records whose values are views of those bytes: a receive
 * answered in batches sends the bytes as they are, a JSON one the records. A range of a cached
 * segment is a view of it, never a copy: the segment is one entry, counted whole and evicted
 * whole, so no view keeps bytes alive that the bound does not count. The batcher adds what it
 * has just committed: consumers and webhooks that keep up then never GET the bytes they were sent.
 *
 * Scan-resistant: a consumer catching up on a backlog larger than the cache GETs segment after
 * segment, and under plain LRU each one it loads evicts the oldest of the segments the batcher
 * just wrote, so that by the time it reaches them the whole tail is gone and every segment is
 * read from the store (the max-rate bench: one GET per segment written, a 64 MiB cache and a
 * 200 MB backlog). Entries a GET loaded are therefore evicted first once they hold more than
 * READ_SHARE of the bound; the written tail stays for the consumer that reaches it, and for
 * those that keep up. Loaded entries still get that share, so one segment's partitions, read by
 * receivers a moment apart, share its GET.
 *
 * Segment arrays are reused. The batcher's segments come from its pool and go back to it when
 * they leave the cache, unless a view of them may still exist: a read inside a ReadScope (a
 * receive or a read by offset, which builds its whole answer before it closes the scope) pins the
 * entry until the scope closes; a read outside one (webhook deliveries, whose messages live
 * through retries) marks the entry viewed, never to be reused. Without reads in scopes, every
 * segment a consumer had read was lost to the pool, and each flush then allocated a new one: at
 * max-rate produce those arrays started most of V8's major collections (docs/benchmarks.md,
 * sessions 17 and 18).
 *
 * Why not the encoded size alone: a decoded range holds, per record, an object, a Uint8Array
 * view, a key string and the timestamp — about as much again for records of a few hundred
 * bytes. Counting encoded bytes only let the cache hold 2.2 times its bound in the Postgres soak
 * (docs/reliability.md, anomaly 6): about 140 MiB for "64 MiB", more than a Worker isolate's
 * 128 MB.
 */
import type { SegmentRecord } from "../segment/codec.ts";

/** How to decode a range's bytes (a reader checks their CRC; the batcher's own need not). */
export type Decode = (encoded: Uint8Array, byteOffset: number) => SegmentRecord[];

/** Where an entry came from: the batcher's own flush, or a read from the store. */
type Origin = "written" | "loaded";

/** The part of the bound loaded entries may hold before written ones are evicted for them. */
export const READ_SHARE = 0.25;

interface Entry {
  bytes: Uint8Array;
  origin: Origin;
  decode: Decode;
  /**
   * Called with `bytes` once the entry is dropped and no read holds a view of them (then nothing
   * but the cache held them): the batcher's segments go back to its pool for reuse.
   */
  recycle?: (bytes: Uint8Array) => void;
  /**
   * A read outside a ReadScope got a view of the bytes (a range, or records decoded from them):
   * nothing tells when that view ends, so they are never recycled.
   */
  viewed?: boolean;
  /** Views open scopes got (one per view): the bytes are recycled only once none is left. */
  pins: number;
  /** Left the cache: recycled when the last pin goes, unless viewed. */
  dropped?: boolean;
  /** Decoded ranges, by rangeKey (a range entry has at most its own). */
  records?: Map<string, SegmentRecord[]>;
  /** What the entry is counted for: its bytes, plus the estimate of each decoded range's records. */
  cost: number;
}

/**
 * Heap bytes of one decoded record beyond its encoded bytes: measured 344 B per record in a
 * heap snapshot of the Postgres soak (a short key, no headers; the record object, its Uint8Array
 * view, key string, timestamp and its slot in the batch's array), rounded up.
 */
export const DECODED_RECORD_BYTES = 350;
/** Each header adds an entry in an object and two strings (an estimate, on top of its encoded bytes). */
export const DECODED_HEADER_BYTES = 80;

/** The estimated memory decoded records add to the bytes they are views of. */
function decodedCost(records: SegmentRecord[]): number {
  let cost = records.length * DECODED_RECORD_BYTES;
  for (const r of records) if (r.headers) cost += Object.keys(r.headers).length * DECODED_HEADER_BYTES;
  return cost;
}

/** The key of a byte range of a segment, as index rows name it. */
export function rangeKey(segmentId: string, byteOffset: number, byteLength: number): string {
  return `${segmentId}:${byteOffset}:${byteLength}`;
}

/**
 * Reads whose views of cached bytes all end when it is closed (`BatchCache.scoped`): read through
 * it (`ReadIo.readScope`), build the answer (copying out what it sends), then close it. Until
 * then, the entries it read are not recycled, even if they leave the cache.
 */
export class ReadScope {
  /** The entries it pinned, one per view. */
  private readonly held: Entry[] = [];
  private closed = false;

  /** Pins `entry` for this scope; false once closed (the view is then unscoped). */
  pin(entry: Entry): boolean {
    if (this.closed) return false;
    entry.pins++;
    this.held.push(entry);
    return true;
  }

  /** Ends every view this scope got: entries that left the cache meanwhile are recycled. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.held) if (--entry.pins === 0 && entry.dropped) recycleUnviewed(entry);
    this.held.length = 0;
  }
}

function recycleUnviewed(entry: Entry): void {
  if (!entry.viewed && entry.pins === 0) entry.recycle?.(entry.bytes);
}

export class BatchCache {
  /** All entries, least recently used first (a Map keeps insertion order; a touch re-inserts). */
  private readonly entries = new Map<string, Entry>();
  /** The loaded ones alone, in the same order: the first to evict while they exceed their share. */
  private readonly loaded = new Map<string, Entry>();
  private held = 0;
  private loadedHeld = 0;
  /** GETs in flight, by what they fetch: concurrent readers of one segment share one. */
  private readonly loading = new Map<string, Promise<Uint8Array>>();

  /**
   * `shareLoads`: concurrent reads of one segment share one GET (`once`). Off where one request
   * must not wait on I/O another started (Workers: the fetch belongs to the request that made it).
   */
  private readonly sharesLoads: boolean;

  constructor(
    readonly maxBytes = 256 * 1024 * 1024,
    { shareLoads = true }: { shareLoads?: boolean } = {},
  ) {
    this.sharesLoads = shareLoads;
  }

  /** The estimated bytes held now (never above maxBytes once a call returns). */
  get bytes(): number {
    return this.held;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * A range's bytes as stored (not checked here), from its own entry or its whole segment's: a
   * view, which ends when `scope` closes (without one, the entry is never recycled).
   */
  getEncoded(segmentId: string, byteOffset: number, byteLength: number, scope?: ReadScope): Uint8Array | undefined {
    return this.find(segmentId, byteOffset, byteLength, scope)?.encoded;
  }

  /**
   * `work` with a scope of its own, closed when it settles: it reads through the scope and
   * returns its answer built, holding no view of cached bytes (see ReadScope).
   */
  async scoped<T>(work: (scope: ReadScope) => Promise<T>): Promise<T> {
    const scope = new ReadScope();
    try {
      return await work(scope);
    } finally {
      scope.close();
    }
  }

  /** Whether the segment is cached as this instance wrote it (its bytes never left the process). */
  wrote(segmentId: string): boolean {
    return this.entries.get(segmentId)?.origin === "written";
  }

  /**
   * A range's records, decoded now if this is their first read (then counted, which may evict
   * other entries, or this one after the read if it alone exceeds the bound). Their values are
   * views of the cached bytes (see getEncoded about `scope`).
   */
  get(segmentId: string, byteOffset: number, byteLength: number, scope?: ReadScope): SegmentRecord[] | undefined {
    const found = this.find(segmentId, byteOffset, byteLength, scope);
    if (!found) return undefined;
    const { entry, encoded } = found;
    const key = rangeKey(segmentId, byteOffset, byteLength);
    entry.records ??= new Map();
    let records = entry.records.get(key);
    if (!records) {
      records = entry.decode(encoded, byteOffset);
      entry.records.set(key, records);
      const cost = decodedCost(records);
      entry.cost += cost;
      this.held += cost;
      if (entry.origin === "loaded") this.loadedHeld += cost;
      this.evict();
    }
    return records;
  }

  /** Keeps a byte range of a segment (read by a ranged GET). */
  setRange(segmentId: string, byteOffset: number, encoded: Uint8Array, decode: Decode): void {
    this.set(rangeKey(segmentId, byteOffset, encoded.byteLength), {
      bytes: encoded,
      decode,
      cost: encoded.byteLength,
      origin: "loaded",
      pins: 0,
    });
  }

  /**
   * Keeps a whole segment: every range of it is then a view. `written`: the batcher's own flush
   * (the tail consumers will read next), kept over segments a GET loaded (see above).
   * `recycle`: given the segment back once it left the cache and no read holds a view of it, or
   * at once if the cache does not keep it (see Entry).
   */
  setSegment(
    segmentId: string,
    segment: Uint8Array,
    decode: Decode,
    origin: Origin = "loaded",
    recycle?: (bytes: Uint8Array) => void,
  ): void {
    this.set(segmentId, { bytes: segment, decode, cost: segment.byteLength, origin, recycle, pins: 0 });
  }

  /**
   * `load()`, unless a load of `key` is in flight already: then its result. Receivers of a
   * group's partitions drained together miss the same segment at the same moment; without this
   * each made its own GET of it.
   */
  once(key: string, load: () => Promise<Uint8Array>): Promise<Uint8Array> {
    if (!this.sharesLoads) return load();
    let pending = this.loading.get(key);
    if (!pending) {
      pending = load().finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  /**
   * Loads a whole segment into the cache in the background, unless it is cached or being loaded
   * already (a read that wants it meanwhile shares the load: `once`). Never fails: a segment that
   * could not be loaded is simply not cached. Only where loads are shared (not on Workers, where
   * I/O belongs to the request that started it).
   */
  prefetch(segmentId: string, load: () => Promise<Uint8Array>, decode: Decode): void {
    if (!this.sharesLoads || this.entries.has(segmentId) || this.loading.has(segmentId)) return;
    this.once(segmentId, load).then(
      (bytes) => this.setSegment(segmentId, bytes, decode),
      () => {},
    );
  }

  private find(
    segmentId: string,
    byteOffset: number,
    byteLength: number,
    scope: ReadScope | undefined,
  ): { entry: Entry; encoded: Uint8Array } | undefined {
    const range = this.touch(rangeKey(segmentId, byteOffset, byteLength));
    if (range) {
      if (!scope?.pin(range)) range.viewed = true;
      return { entry: range, encoded: range.bytes };
    }
    const segment = this.touch(segmentId);
    if (!segment || byteOffset + byteLength > segment.bytes.byteLength) return undefined;
    if (!scope?.pin(segment)) segment.viewed = true;
    return { entry: segment, encoded: segment.bytes.subarray(byteOffset, byteOffset + byteLength) };
  }

  private set(key: string, entry: Entry): void {
    const old = this.entries.get(key);
    if (old?.bytes === entry.bytes) return void this.touch(key); // the same GET's bytes: keep what is decoded
    if (old) this.drop(key, old);
    if (entry.cost > this.maxBytes) {
      entry.recycle?.(entry.bytes); // never kept, never viewed
      return;
    }
    this.entries.set(key, entry);
    this.held += entry.cost;
    if (entry.origin === "loaded") {
      this.loaded.set(key, entry);
      this.loadedHeld += entry.cost;
    }
    this.evict();
  }

  /**
   * Drops entries until the estimate is within the bound: the least recently used loaded one
   * while loaded entries hold more than their share, else the least recently used of all.
   */
  private evict(): void {
    while (this.held > this.maxBytes) {
      const pick = this.loadedHeld > this.maxBytes * READ_SHARE ? this.loaded : this.entries;
      const first = pick.entries().next();
      if (first.done) return;
      this.drop(first.value[0], first.value[1]);
    }
  }

  private drop(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.held -= entry.cost;
    if (entry.origin === "loaded") {
      this.loaded.delete(key);
      this.loadedHeld -= entry.cost;
    }
    entry.dropped = true;
    recycleUnviewed(entry);
  }

  private touch(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (entry.origin === "loaded") {
      this.loaded.delete(key);
      this.loaded.set(key, entry);
    }
    return entry;
  }
}
