/**
 * An LRU of byte ranges of segments, as stored and decoded on first read, bounded by their
 * encoded size, shared by an instance's reads. The batcher adds what it has just committed:
 * consumers and webhooks that keep up then never GET the bytes they were sent. The encoded bytes
 * are kept beside the records (whose values are views of them, so it costs nothing more): a
 * receive answered in batches sends them as they are.
 */
import type { SegmentRecord } from "../segment/codec.ts";

interface Entry {
  encoded: Uint8Array;
  records?: SegmentRecord[];
  decode?: (encoded: Uint8Array) => SegmentRecord[];
}

/** The key of a byte range of a segment, as index rows name it. */
export function rangeKey(segmentId: string, byteOffset: number, byteLength: number): string {
  return `${segmentId}:${byteOffset}:${byteLength}`;
}

export class BatchCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  /** The range's records, decoded now if this is their first read. */
  get(key: string): SegmentRecord[] | undefined {
    const entry = this.touch(key);
    if (!entry) return undefined;
    if (!entry.records) {
      entry.records = entry.decode!(entry.encoded);
      entry.decode = undefined;
    }
    return entry.records;
  }

  /** The range's bytes as stored (not decoded, not checked here). */
  getEncoded(key: string): Uint8Array | undefined {
    return this.touch(key)?.encoded;
  }

  /** `records`: decoded already, or how to decode `encoded` when first read. */
  set(key: string, encoded: Uint8Array, records: SegmentRecord[] | ((encoded: Uint8Array) => SegmentRecord[])): void {
    const bytes = encoded.byteLength;
    if (bytes > this.maxBytes) return;
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= old.encoded.byteLength;
      this.entries.delete(key);
    }
    this.entries.set(key, typeof records === "function" ? { encoded, decode: records } : { encoded, records });
    this.bytes += bytes;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.encoded.byteLength;
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
