/**
 * An LRU of stored bytes, shared by an instance's reads, bounded by their size: whole segments
 * (one GET read them whole, or the batcher just wrote them) and byte ranges (a ranged GET of a
 * larger segment). The bytes are kept as stored and each range is decoded on its first read, into
 * records whose values are views of those bytes (so keeping the bytes beside them costs nothing
 * more): a receive answered in batches sends the bytes as they are, and a JSON one the records.
 *
 * A range of a cached segment is a view of it, never a copy: the segment is one entry, counted
 * whole and evicted whole, so no view can keep bytes alive that the bound does not count.
 */
import type { SegmentRecord } from "../segment/codec.ts";

/** How to decode a range's bytes (a reader checks their CRC; the batcher's own need not). */
export type Decode = (encoded: Uint8Array, byteOffset: number) => SegmentRecord[];

interface Entry {
  bytes: Uint8Array;
  decode: Decode;
  /** Decoded ranges, by rangeKey (a range entry has at most its own). */
  records?: Map<string, SegmentRecord[]>;
}

/** The key of a byte range of a segment, as index rows name it. */
export function rangeKey(segmentId: string, byteOffset: number, byteLength: number): string {
  return `${segmentId}:${byteOffset}:${byteLength}`;
}

export class BatchCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  /** GETs in flight, by what they fetch: concurrent readers of one segment share one. */
  private readonly loading = new Map<string, Promise<Uint8Array>>();

  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  /** A range's bytes as stored (not checked here), from its own entry or its whole segment's. */
  getEncoded(segmentId: string, byteOffset: number, byteLength: number): Uint8Array | undefined {
    return this.find(segmentId, byteOffset, byteLength)?.encoded;
  }

  /** A range's records, decoded now if this is their first read. */
  get(segmentId: string, byteOffset: number, byteLength: number): SegmentRecord[] | undefined {
    const found = this.find(segmentId, byteOffset, byteLength);
    if (!found) return undefined;
    const { entry, encoded } = found;
    const key = rangeKey(segmentId, byteOffset, byteLength);
    entry.records ??= new Map();
    let records = entry.records.get(key);
    if (!records) {
      records = entry.decode(encoded, byteOffset);
      entry.records.set(key, records);
    }
    return records;
  }

  /** Keeps a byte range of a segment (read by a ranged GET). */
  setRange(segmentId: string, byteOffset: number, encoded: Uint8Array, decode: Decode): void {
    this.set(rangeKey(segmentId, byteOffset, encoded.byteLength), { bytes: encoded, decode });
  }

  /** Keeps a whole segment: every range of it is then a view. */
  setSegment(segmentId: string, segment: Uint8Array, decode: Decode): void {
    this.set(segmentId, { bytes: segment, decode });
  }

  /**
   * `load()`, unless a load of `key` is in flight already: then its result. Receivers of a
   * group's partitions drained together miss the same segment at the same moment; without this
   * each made its own GET of it.
   */
  once(key: string, load: () => Promise<Uint8Array>): Promise<Uint8Array> {
    let pending = this.loading.get(key);
    if (!pending) {
      pending = load().finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private find(segmentId: string, byteOffset: number, byteLength: number): { entry: Entry; encoded: Uint8Array } | undefined {
    const range = this.touch(rangeKey(segmentId, byteOffset, byteLength));
    if (range) return { entry: range, encoded: range.bytes };
    const segment = this.touch(segmentId);
    if (!segment || byteOffset + byteLength > segment.bytes.byteLength) return undefined;
    return { entry: segment, encoded: segment.bytes.subarray(byteOffset, byteOffset + byteLength) };
  }

  private set(key: string, entry: Entry): void {
    const size = entry.bytes.byteLength;
    if (size > this.maxBytes) return;
    const old = this.entries.get(key);
    if (old?.bytes === entry.bytes) return void this.touch(key); // the same GET's bytes: keep what is decoded
    if (old) {
      this.bytes -= old.bytes.byteLength;
      this.entries.delete(key);
    }
    this.entries.set(key, entry);
    this.bytes += size;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.bytes.byteLength;
    }
  }

  private touch(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }
}
