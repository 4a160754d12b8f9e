/**
 * An LRU of decoded byte ranges, shared by an instance's reads, bounded by an estimate of the
 * memory its entries hold (default 64 MiB): GET /metrics shows the estimate
 * (`reservoir_read_cache_bytes`) against the bound (`reservoir_read_cache_max_bytes`).
 * The batcher adds what it has just committed, undecoded until first read: consumers and
 * webhooks that keep up then never GET the bytes they were sent.
 *
 * Why not the encoded size alone: a decoded entry holds its bytes (values are views of them)
 * and, per record, an object, a Uint8Array view, a key string and the timestamp — about as much
 * again for records of a few hundred bytes. Counting encoded bytes only let the cache hold
 * 2.2 times its bound in the Postgres soak (docs/reliability.md, anomaly 6): about 140 MiB for
 * "64 MiB", which is more than a Worker isolate's 128 MB, and took 30 minutes of the soak's
 * produce rate to fill.
 */
import type { SegmentRecord } from "../segment/codec.ts";

interface Entry {
  records?: SegmentRecord[];
  decode?: () => SegmentRecord[];
  /** Encoded bytes of the range (what the entry holds before it is decoded). */
  bytes: number;
  /** What the entry is counted for: `bytes`, plus the decoded records' estimate once decoded. */
  cost: number;
}

/** The key of a byte range of a segment, as index rows name it. */
export function rangeKey(segmentId: string, byteOffset: number, byteLength: number): string {
  return `${segmentId}:${byteOffset}:${byteLength}`;
}

/**
 * Heap bytes of one decoded record beyond its encoded bytes: measured 344 B per record in a
 * heap snapshot of the Postgres soak (a short key, no headers; the record object, its Uint8Array
 * view, key string, timestamp and its slot in the batch's array), rounded up.
 */
export const DECODED_RECORD_BYTES = 350;
/** Each header adds an entry in an object and two strings (an estimate, on top of its encoded bytes). */
export const DECODED_HEADER_BYTES = 80;

/** The estimated memory of a decoded range: its encoded bytes (which the values are views of) and its records. */
function decodedCost(records: SegmentRecord[], bytes: number): number {
  let cost = bytes + records.length * DECODED_RECORD_BYTES;
  for (const r of records) if (r.headers) cost += Object.keys(r.headers).length * DECODED_HEADER_BYTES;
  return cost;
}

export class BatchCache {
  private readonly entries = new Map<string, Entry>();
  private held = 0;

  constructor(readonly maxBytes = 64 * 1024 * 1024) {}

  /** The estimated bytes held now (never above maxBytes once a call returns). */
  get bytes(): number {
    return this.held;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): SegmentRecord[] | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (!entry.records) {
      entry.records = entry.decode!();
      entry.decode = undefined;
      // Decoded, the entry holds more than its bytes: count it, and make room (this entry last,
      // as the most recently used; alone above the bound, it goes too, after this read).
      const cost = decodedCost(entry.records, entry.bytes);
      this.held += cost - entry.cost;
      entry.cost = cost;
      this.evict();
    }
    return entry.records;
  }

  set(key: string, records: SegmentRecord[] | (() => SegmentRecord[]), bytes: number): void {
    const old = this.entries.get(key);
    if (old) {
      this.held -= old.cost;
      this.entries.delete(key);
    }
    const entry: Entry =
      typeof records === "function" ? { decode: records, bytes, cost: bytes } : { records, bytes, cost: decodedCost(records, bytes) };
    if (entry.cost > this.maxBytes) return;
    this.entries.set(key, entry);
    this.held += entry.cost;
    this.evict();
  }

  /** Drops least recently used entries until the estimate is within the bound. */
  private evict(): void {
    for (const [k, e] of this.entries) {
      if (this.held <= this.maxBytes) break;
      this.entries.delete(k);
      this.held -= e.cost;
    }
  }
}
