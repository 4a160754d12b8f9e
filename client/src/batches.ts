/**
 * Decoding a receive's answer in batches (`Accept: application/vnd.reservoir.batches`): a JSON
 * line with the leases and the chunks, then the chunks' bytes, each whole batches of segment
 * format v1 as the server stored them (docs/batches.md). Written from that description, with no
 * server code. The server checked each batch's CRC32C when it read it from the store, and TCP
 * (and TLS) guard the way here, so by default the CRCs are not computed again: a pass of
 * CRC32C in JavaScript over every byte received. `verifyChecksums` computes them, end to end
 * (as a Kafka consumer's check.crcs does), for answers that cross proxies or other hands.
 */
import { crc32c } from "@aws-crypto/crc32c";

export const BATCHES_TYPE = "application/vnd.reservoir.batches";

export interface BatchLease {
  partition: number;
  firstOffset: number;
  lastOffset: number;
  receipt: string;
  attempt: number;
}

export interface BatchMessage {
  partition: number;
  offset: number;
  attempt: number;
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  /** The value's bytes (a view of the answer's buffer). */
  value: Uint8Array;
  /** True when it was produced with valueBase64. */
  binary: boolean;
}

/** The outcome of the receipts a receive's `ack` field acknowledged (as POST .../ack answers). */
export interface BatchAcked {
  acked: number;
  failed: { receipt: string; code: "receipt_expired" | "receipt_unknown"; offset?: number }[];
}

interface Chunk {
  partition: number;
  baseOffset: number;
  skip: number;
  count: number;
  byteLength: number;
  headers?: Record<string, string>;
}

interface ChunkRecord {
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  value: Uint8Array;
  binary: boolean;
}

const BATCH_FIXED_BYTES = 26;
const TWO_32 = 0x1_0000_0000;
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

export interface DecodeOptions {
  /** Check each batch's CRC32C (default false: see above); a batch that fails it fails the whole answer. */
  verifyChecksums?: boolean;
}

/** The leases and the leased messages (in lease order, then offset order) of an answer in batches. */
export function decodeBatchesAnswer(
  body: Uint8Array,
  options: DecodeOptions = {},
): { leases: BatchLease[]; messages: BatchMessage[]; ack?: BatchAcked } {
  const newline = body.indexOf(10);
  if (newline < 0) throw new Error("an answer in batches has no head line");
  const head = JSON.parse(decoder.decode(body.subarray(0, newline))) as { leases: BatchLease[]; chunks: Chunk[]; ack?: BatchAcked };
  const placed: { chunk: Chunk; records: ChunkRecord[] }[] = [];
  let at = newline + 1;
  for (const chunk of head.chunks) {
    placed.push({ chunk, records: decodeRecords(body.subarray(at, at + chunk.byteLength), options.verifyChecksums === true) });
    at += chunk.byteLength;
  }
  if (at !== body.length) throw new Error(`an answer in batches has ${body.length - at} bytes its chunks do not account for`);
  const messages: BatchMessage[] = [];
  for (const lease of head.leases) {
    for (const { chunk, records } of placed) {
      if (chunk.partition !== lease.partition) continue;
      const from = Math.max(lease.firstOffset, chunk.baseOffset);
      const to = Math.min(lease.lastOffset, chunk.baseOffset + chunk.count - 1);
      for (let offset = from; offset <= to; offset++) {
        const r = records[chunk.skip + offset - chunk.baseOffset];
        if (!r) throw new Error(`chunk at offset ${chunk.baseOffset} lacks the record of offset ${offset}`);
        const headers = chunk.headers ? { ...r.headers, ...chunk.headers } : r.headers;
        const m: BatchMessage = {
          partition: lease.partition,
          offset,
          attempt: lease.attempt,
          timestamp: r.timestamp,
          value: r.value,
          binary: r.binary,
        };
        if (r.key !== undefined) m.key = r.key;
        if (headers) m.headers = headers;
        messages.push(m);
      }
    }
  }
  return head.ack ? { leases: head.leases, messages, ack: head.ack } : { leases: head.leases, messages };
}

/** The records of consecutive whole batches; with `verify`, each batch's CRC32C checked first. */
function decodeRecords(bytes: Uint8Array, verify: boolean): ChunkRecord[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: ChunkRecord[] = [];
  for (let pos = 0; pos < bytes.length; ) {
    const length = view.getUint32(pos);
    if (length < BATCH_FIXED_BYTES || pos + length > bytes.length) throw new Error(`a batch at byte ${pos} claims ${length} bytes`);
    if (bytes[pos + 8] !== 1 || bytes[pos + 9] !== 0)
      throw new Error(`a batch at byte ${pos} has a version or flags this client does not know`);
    if (verify) {
      // The CRC covers every byte after its own field, to the batch's end.
      const stored = view.getUint32(pos + 4);
      const computed = crc32c(bytes.subarray(pos + 8, pos + length));
      if (computed !== stored)
        throw new Error(`a batch at byte ${pos} fails its CRC32C check (it says ${hex(stored)}, its bytes give ${hex(computed)})`);
    }
    const count = view.getUint32(pos + 14);
    const firstTimestamp = view.getInt32(pos + 18) * TWO_32 + view.getUint32(pos + 22);
    const cursor = { pos: pos + BATCH_FIXED_BYTES };
    const topicIdLength = readVarint(bytes, cursor);
    cursor.pos += topicIdLength; // the topic id: the chunk's partition and the request's topic say where it belongs
    for (let i = 0; i < count; i++) {
      readVarint(bytes, cursor); // the record's length
      const attributes = bytes[cursor.pos++] ?? 0;
      const timestamp = firstTimestamp + readZigzag(bytes, cursor);
      const key = attributes & 2 ? readString(bytes, cursor) : undefined;
      const valueLength = readVarint(bytes, cursor);
      const value = bytes.subarray(cursor.pos, cursor.pos + valueLength);
      cursor.pos += valueLength;
      const headerCount = readVarint(bytes, cursor);
      let headers: Record<string, string> | undefined;
      for (let h = 0; h < headerCount; h++) {
        headers ??= {};
        const name = readString(bytes, cursor);
        Object.defineProperty(headers, name, { value: readString(bytes, cursor), enumerable: true, writable: true, configurable: true });
      }
      records.push({ timestamp, key, headers, value, binary: (attributes & 1) !== 0 });
    }
    if (cursor.pos !== pos + length) throw new Error(`a batch at byte ${pos} does not end where its length says`);
    pos += length;
  }
  return records;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

function readVarint(bytes: Uint8Array, cursor: { pos: number }): number {
  let n = 0;
  let scale = 1;
  for (;;) {
    const b = bytes[cursor.pos++];
    if (b === undefined) throw new Error("a varint runs past the end of its batch");
    n += (b & 0x7f) * scale;
    if (b < 0x80) return n;
    scale *= 128;
  }
}

/** Format v1's signed varint: the first byte holds the sign (bit 0) and the magnitude's low 6 bits, the rest is a varint. */
function readZigzag(bytes: Uint8Array, cursor: { pos: number }): number {
  const b = bytes[cursor.pos++];
  if (b === undefined) throw new Error("a varint runs past the end of its batch");
  let m = (b >>> 1) & 0x3f;
  if (b & 0x80) m += readVarint(bytes, cursor) * 0x40;
  return b & 1 ? -m - 1 : m;
}

function readString(bytes: Uint8Array, cursor: { pos: number }): string {
  const length = readVarint(bytes, cursor);
  const text = decoder.decode(bytes.subarray(cursor.pos, cursor.pos + length));
  cursor.pos += length;
  return text;
}
