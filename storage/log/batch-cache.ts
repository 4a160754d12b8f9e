/**
 * An LRU of decoded byte ranges, bounded by their encoded size, shared by an instance's reads.
 * The batcher adds what it has just committed, undecoded until first read: consumers and
 * webhooks that keep up then never GET the bytes they were sent.
 */
import type { SegmentRecord } from "../segment/codec.ts";

interface Entry {
  records?: SegmentRecord[];
  decode?: () => SegmentRecord[];
  bytes: number;
}

/** The key of a byte range of a segment, as index rows name it. */
export function rangeKey(segmentId: string, byteOffset: number, byteLength: number): string {
  return `${segmentId}:${byteOffset}:${byteLength}`;
}

export class BatchCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  get(key: string): SegmentRecord[] | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (!entry.records) {
      entry.records = entry.decode!();
      entry.decode = undefined;
    }
    return entry.records;
  }

  set(key: string, records: SegmentRecord[] | (() => SegmentRecord[]), bytes: number): void {
    if (bytes > this.maxBytes) return;
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= old.bytes;
      this.entries.delete(key);
    }
    this.entries.set(key, typeof records === "function" ? { decode: records, bytes } : { records, bytes });
    this.bytes += bytes;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.bytes;
    }
  }
}
