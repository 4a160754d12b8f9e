/**
 * Segment format v1. Integers are big-endian; "varint" is unsigned LEB128 and "zigzag" a
 * zigzag LEB128 (see varint.ts).
 *
 * Segment   = header(8) · batch*
 * header    = "RSVR" · u8 format version (1) · 3 reserved zero bytes
 * batch     = u32 batchLength (whole batch, this field included)
 *           · u32 crc32c (of every byte after this field)
 *           · u8 batch version (1) · u8 flags (bits 0-2 compression codec, 0 = none; others 0)
 *           · u32 partition · u32 recordCount · i64 firstTimestamp (ms; the first record's)
 *           · varint topicId byte length · topicId UTF-8
 *           · record * recordCount
 * record    = varint byte length of the rest of the record
 *           · u8 attributes (bit 0 value is binary, bit 1 has key; others 0)
 *           · zigzag timestamp - firstTimestamp
 *           · [varint key length · key UTF-8]   (only when attribute bit 1 is set)
 *           · varint value length · value bytes
 *           · varint header count · (varint name length · name UTF-8 · varint value length · value UTF-8)*
 *
 * A batch carries everything needed to decode it, so the index can point at its byte range and a
 * read fetches just that range. Strings that are not well-formed UTF-16 (lone surrogates) are
 * stored with U+FFFD in their place, as TextEncoder does. Timestamps must be safe integers and,
 * within one batch, differ from the first record's by at most Number.MAX_SAFE_INTEGER.
 */

import { crc32c, crc32cCombine } from "./crc32c.ts";
import { type Cursor, readVarint, readZigzag, varintSize, writeVarint, writeZigzag, zigzagSize } from "./varint.ts";

export interface SegmentRecord {
  /** UTF-8 on disk; absent = no key (distinct from ""). */
  key?: string;
  value: Uint8Array;
  /** True when the producer sent valueBase64 (so it is returned the same way). */
  binary: boolean;
  /** Absent or empty = no headers. */
  headers?: Record<string, string>;
  /** Milliseconds since the epoch, an integer. */
  timestamp: number;
}

export interface DecodedBatch {
  topicId: string;
  partition: number;
  records: SegmentRecord[];
}

export class SegmentCorruptError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SegmentCorruptError";
  }
}

const MAGIC = new Uint8Array([0x52, 0x53, 0x56, 0x52]); // "RSVR"
// A copy, so a caller mutating the export cannot change what the decoder accepts.
export const SEGMENT_MAGIC: Uint8Array = MAGIC.slice();
export const SEGMENT_HEADER_BYTES = 8;
const FORMAT_VERSION = 1;
const BATCH_VERSION = 1;
const BATCH_FIXED_BYTES = 26; // up to the topicId length varint
const MIN_RECORD_BYTES = 5; // length, attributes, delta, value length, header count: one byte each
const ATTR_BINARY = 1;
const ATTR_HAS_KEY = 2;
const TWO_32 = 0x1_0000_0000;
const CHANGED = "SegmentWriter: records changed between appendBatch and finish";

const encoder = new TextEncoder();
// ignoreBOM: a key that starts with U+FEFF must keep it. fatal: measured free, and makes a
// malformed string an error rather than silent U+FFFD.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true });

interface PendingBatch {
  topicId: string;
  partition: number;
  records: SegmentRecord[];
  /** Records already encoded (appendEncodedBatch), written as they are in place of `records`... */
  encoded?: Uint8Array;
  /** ...and their CRC32C, so that they are not read again for the batch's. */
  encodedCrc?: number;
  count: number;
  firstTimestamp: number;
  byteOffset: number;
  byteLength: number;
}

/**
 * Builds one segment object: a header then batches.
 *
 * appendBatch only measures; finish() writes every batch straight into one buffer of the exact
 * size. So the records' values (and keys and headers) must not change between appendBatch and
 * finish().
 */
export class SegmentWriter {
  #batches: PendingBatch[] = [];
  // UTF-8 lengths and record body lengths, in the order finish() writes them, so that nothing
  // is measured twice.
  #lengths: number[] = [];
  #size = SEGMENT_HEADER_BYTES;
  #finished = false;
  #checksum: number | undefined;

  /** Append one batch of records for (topicId, partition); returns where its bytes sit in the final segment. */
  appendBatch(topicId: string, partition: number, records: SegmentRecord[]): { byteOffset: number; byteLength: number } {
    if (this.#finished) throw new Error("SegmentWriter: appendBatch after finish");
    if (!Number.isInteger(partition) || partition < 0 || partition >= TWO_32) {
      throw new RangeError(`partition ${partition} is not a u32`);
    }
    const lengths = this.#lengths;
    const mark = lengths.length;
    const firstTimestamp = records.length > 0 ? records[0].timestamp : 0;
    let byteLength: number;
    try {
      const topicLength = utf8Length(topicId);
      lengths.push(topicLength);
      byteLength = BATCH_FIXED_BYTES + varintSize(topicLength) + topicLength;
      for (const record of records) byteLength += measureRecord(record, firstTimestamp, lengths);
    } catch (error) {
      lengths.length = mark;
      throw error;
    }
    if (byteLength >= TWO_32) {
      lengths.length = mark;
      throw new RangeError(`batch of ${byteLength} bytes does not fit a u32 length`);
    }
    const byteOffset = this.#size;
    this.#batches.push({
      topicId,
      partition,
      records: records.slice(),
      count: records.length,
      firstTimestamp,
      byteOffset,
      byteLength,
    });
    this.#size += byteLength;
    return { byteOffset, byteLength };
  }

  /**
   * Append one batch whose `count` records are already encoded (a produce in batches,
   * functions/produce/batches.ts): `records` are written as they are, under a header of
   * (topicId, partition, firstTimestamp). The records' timestamp deltas are relative to it.
   * `recordsCrc` is the CRC32C of `records` (the caller checked them against it). Like
   * appendBatch's records, the bytes must not change before finish().
   */
  appendEncodedBatch(
    topicId: string,
    partition: number,
    firstTimestamp: number,
    records: Uint8Array,
    count: number,
    recordsCrc: number,
  ): { byteOffset: number; byteLength: number } {
    if (this.#finished) throw new Error("SegmentWriter: appendEncodedBatch after finish");
    if (!Number.isInteger(partition) || partition < 0 || partition >= TWO_32) {
      throw new RangeError(`partition ${partition} is not a u32`);
    }
    if (!Number.isSafeInteger(firstTimestamp)) throw new RangeError(`timestamp ${firstTimestamp} is not a safe integer`);
    const topicLength = utf8Length(topicId);
    const byteLength = BATCH_FIXED_BYTES + varintSize(topicLength) + topicLength + records.length;
    if (byteLength >= TWO_32) throw new RangeError(`batch of ${byteLength} bytes does not fit a u32 length`);
    this.#lengths.push(topicLength);
    const byteOffset = this.#size;
    this.#batches.push({
      topicId,
      partition,
      records: [],
      encoded: records,
      encodedCrc: recordsCrc,
      count,
      firstTimestamp,
      byteOffset,
      byteLength,
    });
    this.#size += byteLength;
    return { byteOffset, byteLength };
  }

  /** Bytes so far, the header included. */
  get byteLength(): number {
    return this.#size;
  }

  /**
   * The whole segment as one Uint8Array of the exact size (no further appends). `allocate` may
   * give an array that is not zeroed (a reused one, storage/buffer-pool.ts): every byte is written.
   */
  finish(allocate: (bytes: number) => Uint8Array = (bytes) => new Uint8Array(bytes)): Uint8Array {
    if (this.#finished) throw new Error("SegmentWriter: finish called twice");
    this.#finished = true;
    const buf = allocate(this.#size);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    buf.set(MAGIC, 0);
    buf[4] = FORMAT_VERSION;
    buf.fill(0, 5, SEGMENT_HEADER_BYTES); // reserved
    let whole = crc32c(buf.subarray(0, SEGMENT_HEADER_BYTES));
    const lengths = this.#lengths;
    let li = 0;
    for (const batch of this.#batches) {
      const start = batch.byteOffset;
      const end = start + batch.byteLength;
      view.setUint32(start, batch.byteLength);
      buf[start + 8] = BATCH_VERSION;
      buf[start + 9] = 0;
      view.setUint32(start + 10, batch.partition);
      view.setUint32(start + 14, batch.count);
      const hi = Math.floor(batch.firstTimestamp / TWO_32);
      view.setInt32(start + 18, hi);
      view.setUint32(start + 22, batch.firstTimestamp - hi * TWO_32);
      let pos = writeString(buf, start + BATCH_FIXED_BYTES, batch.topicId, lengths[li++]);
      let batchCrc: number | undefined;
      if (batch.encoded) {
        batchCrc = crc32cCombine(crc32c(buf.subarray(start + 8, pos)), batch.encodedCrc!, batch.encoded.length);
        buf.set(batch.encoded, pos);
        pos += batch.encoded.length;
      }
      for (const record of batch.records) {
        pos = writeVarint(buf, pos, lengths[li++]);
        const key = record.key;
        buf[pos++] = (record.binary ? ATTR_BINARY : 0) | (key != null ? ATTR_HAS_KEY : 0);
        pos = writeZigzag(buf, pos, record.timestamp - batch.firstTimestamp);
        if (key != null) pos = writeString(buf, pos, key, lengths[li++]);
        const value = record.value;
        pos = writeVarint(buf, pos, value.length);
        buf.set(value, pos);
        pos += value.length;
        const headers = record.headers;
        if (headers == null) {
          buf[pos++] = 0;
        } else {
          const names = Object.keys(headers);
          pos = writeVarint(buf, pos, names.length);
          for (const name of names) {
            pos = writeString(buf, pos, name, lengths[li++]);
            pos = writeString(buf, pos, headers[name], lengths[li++]);
          }
        }
      }
      if (pos !== end) {
        throw new Error(CHANGED);
      }
      batchCrc ??= crc32c(buf.subarray(start + 8, end));
      view.setUint32(start + 4, batchCrc);
      whole = crc32cCombine(crc32c(buf.subarray(start, start + 8), whole), batchCrc, end - start - 8);
    }
    this.#checksum = whole;
    this.#batches = [];
    this.#lengths = [];
    return buf;
  }

  /**
   * The CRC32C of the whole segment finish() returned, from its batches' checksums: what an
   * upload declares for the object store to verify (storage/objects/s3-store.ts) without
   * another pass over the bytes.
   */
  get checksum(): number {
    if (this.#checksum === undefined) throw new Error("SegmentWriter: checksum before finish");
    return this.#checksum;
  }
}

/**
 * Measure a record's encoded size without encoding (used to enforce limits and size flushes).
 * The timestamp delta's size depends on the batch's first timestamp; by default the record is
 * taken to be first (a one-byte delta).
 */
export function encodedRecordSize(record: SegmentRecord, firstTimestamp = record.timestamp): number {
  return measureRecord(record, firstTimestamp, undefined);
}

function measureRecord(record: SegmentRecord, firstTimestamp: number, lengths: number[] | undefined): number {
  const delta = record.timestamp - firstTimestamp;
  if (!Number.isSafeInteger(record.timestamp) || !Number.isSafeInteger(delta)) {
    throw new RangeError(`timestamp ${record.timestamp} is not a safe integer within 2^53 - 1 of the batch's first (${firstTimestamp})`);
  }
  const at = lengths ? lengths.push(0) - 1 : 0;
  const valueLength = record.value.length;
  let body = 1 + zigzagSize(delta) + varintSize(valueLength) + valueLength;
  if (record.key != null) {
    const n = utf8Length(record.key);
    lengths?.push(n);
    body += varintSize(n) + n;
  }
  const headers = record.headers;
  if (headers == null) {
    body += 1;
  } else {
    const names = Object.keys(headers);
    body += varintSize(names.length);
    for (const name of names) {
      const n = utf8Length(name);
      const v = utf8Length(headers[name]);
      lengths?.push(n, v);
      body += varintSize(n) + n + varintSize(v) + v;
    }
  }
  if (lengths) lengths[at] = body;
  return varintSize(body) + body;
}

/** Bytes TextEncoder would produce for `s` (a lone surrogate becomes the 3-byte U+FFFD). */
export function utf8Length(s: string): number {
  const units = s.length;
  let n = units;
  for (let i = 0; i < units; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      n += 1;
    } else if (c >= 0xd800 && c < 0xdc00 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a surrogate pair: two units, four bytes
      i++;
    } else {
      n += 2;
    }
  }
  return n;
}

/** Writes varint `length` then `s`, whose UTF-8 length is `length`. */
function writeString(buf: Uint8Array, pos: number, s: string, length: number): number {
  pos = writeVarint(buf, pos, length);
  // encodeInto's per-call cost dominates for the short ASCII strings keys and header names
  // usually are; a plain loop measured about three times faster there.
  if (length === s.length && length <= 64) {
    for (let i = 0; i < length; i++) buf[pos + i] = s.charCodeAt(i);
  } else {
    const { read, written } = encoder.encodeInto(s, buf.subarray(pos, pos + length));
    if (read !== s.length || written !== length) throw new Error(CHANGED);
  }
  return pos + length;
}

export interface DecodeOptions {
  /**
   * false only for bytes that never left this process (a flush's own segment, decoded for the
   * read cache): the CRC guards bytes that were stored or sent, and costs a pass over them.
   */
  verifyCrc?: boolean;
}

/**
 * Decode exactly one batch from its own byte range (length field must equal bytes.length; CRC checked).
 *
 * Zero copy: each record's `value` is a view into `bytes`' buffer, so it shares (and keeps alive)
 * that buffer; copy it if the buffer will be reused or must be freed sooner.
 */
export function decodeBatch(bytes: Uint8Array, options: DecodeOptions = {}): DecodedBatch {
  const n = bytes.length;
  const { partition, count, firstTimestamp } = checkBatchHeader(bytes, options);
  try {
    const cursor: Cursor = { pos: BATCH_FIXED_BYTES };
    const topicId = readString(bytes, cursor, n);
    checkCount(count, n - cursor.pos);
    const records: SegmentRecord[] = [];
    // The constructor makes a view about twice as fast as subarray().
    const { buffer, byteOffset } = bytes;
    for (let i = 0; i < count; i++) {
      const bodyLength = readVarint(bytes, cursor, n);
      const end = cursor.pos + bodyLength;
      if (end > n || bodyLength < MIN_RECORD_BYTES - 1) {
        throw new SegmentCorruptError(`record ${i} length ${bodyLength} is impossible`);
      }
      const attributes = bytes[cursor.pos++];
      if (attributes > 3) throw new SegmentCorruptError(`record ${i} has unknown attributes ${hex(attributes)}`);
      const timestamp = firstTimestamp + readZigzag(bytes, cursor, end);
      if (!Number.isSafeInteger(timestamp)) {
        throw new SegmentCorruptError(`record ${i} timestamp is not a safe integer`);
      }
      const key = attributes & ATTR_HAS_KEY ? readString(bytes, cursor, end) : undefined;
      const valueLength = readVarint(bytes, cursor, end);
      const valueStart = cursor.pos;
      if (valueLength > end - valueStart) throw new RangeError("value runs past the end of its record");
      cursor.pos = valueStart + valueLength;
      const headerCount = readVarint(bytes, cursor, end);
      let headers: Record<string, string> | undefined;
      if (headerCount > 0) {
        headers = {};
        for (let h = 0; h < headerCount; h++) {
          const name = readString(bytes, cursor, end);
          const value = readString(bytes, cursor, end);
          // Plain assignment to "__proto__" would set the prototype instead of a header.
          if (name === "__proto__") {
            Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
          } else {
            headers[name] = value;
          }
        }
      }
      if (cursor.pos !== end) {
        throw new SegmentCorruptError(`record ${i} has ${end - cursor.pos} unread bytes`);
      }
      // Same property order for every record keeps one object shape on the hot path.
      records.push({
        key,
        value: new Uint8Array(buffer, byteOffset + valueStart, valueLength),
        binary: (attributes & ATTR_BINARY) !== 0,
        headers,
        timestamp,
      });
    }
    if (cursor.pos !== n) {
      throw new SegmentCorruptError(`${n - cursor.pos} trailing bytes after ${count} records`);
    }
    return { topicId, partition, records };
  } catch (error) {
    if (error instanceof RangeError) throw new SegmentCorruptError(`batch: ${error.message}`, { cause: error });
    throw error;
  }
}

/** The fixed fields of one batch, after checking its length, CRC, version and flags. */
function checkBatchHeader(bytes: Uint8Array, options: DecodeOptions): { partition: number; count: number; firstTimestamp: number } {
  const n = bytes.length;
  if (n < BATCH_FIXED_BYTES + 1) {
    throw new SegmentCorruptError(`batch of ${n} bytes is shorter than a batch header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, n);
  const length = view.getUint32(0);
  if (length !== n) {
    throw new SegmentCorruptError(`batch length field says ${length} bytes but the range holds ${n}`);
  }
  if (options.verifyCrc !== false) {
    const stored = view.getUint32(4);
    const computed = crc32c(bytes.subarray(8));
    if (stored !== computed) {
      throw new SegmentCorruptError(`batch CRC32C mismatch: stored ${hex(stored)}, computed ${hex(computed)}`);
    }
  }
  if (bytes[8] !== BATCH_VERSION) throw new SegmentCorruptError(`unsupported batch version ${bytes[8]}`);
  const flags = bytes[9];
  if ((flags & 7) !== 0) throw new SegmentCorruptError(`unsupported compression codec ${flags & 7}`);
  if (flags !== 0) throw new SegmentCorruptError(`unknown batch flags ${hex(flags)}`);
  const firstTimestamp = view.getInt32(18) * TWO_32 + view.getUint32(22);
  if (!Number.isSafeInteger(firstTimestamp)) {
    throw new SegmentCorruptError("batch first timestamp is not a safe integer");
  }
  return { partition: view.getUint32(10), count: view.getUint32(14), firstTimestamp };
}

/** Guards against allocating for a huge count that the bytes cannot possibly hold. */
function checkCount(count: number, bytesLeft: number): void {
  if (count > bytesLeft / MIN_RECORD_BYTES) {
    throw new SegmentCorruptError(`record count ${count} cannot fit in ${bytesLeft} bytes`);
  }
}

/**
 * Per record of a byte range of whole batches (CRC checked unless `verifyCrc` is false), the
 * bytes of its key, value, header names and values: what a message weighs in usage, read from
 * the length fields without decoding a string or making a view.
 */
export function payloadSizes(bytes: Uint8Array, options: DecodeOptions = {}): number[] {
  const sizes: number[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let pos = 0; pos < bytes.length; ) {
    const length = bytes.length - pos >= 4 ? view.getUint32(pos) : 0;
    if (length < BATCH_FIXED_BYTES + 1 || length > bytes.length - pos) {
      throw new SegmentCorruptError(`batch at byte ${pos} claims ${length} bytes; ${bytes.length - pos} remain`);
    }
    const batch = bytes.subarray(pos, pos + length);
    const { count } = checkBatchHeader(batch, options);
    try {
      const cursor: Cursor = { pos: BATCH_FIXED_BYTES };
      skipBytes(batch, cursor, length);
      checkCount(count, length - cursor.pos);
      for (let i = 0; i < count; i++) {
        const bodyLength = readVarint(batch, cursor, length);
        const end = cursor.pos + bodyLength;
        if (end > length || bodyLength < MIN_RECORD_BYTES - 1)
          throw new SegmentCorruptError(`record ${i} length ${bodyLength} is impossible`);
        const attributes = batch[cursor.pos++];
        if (attributes > 3) throw new SegmentCorruptError(`record ${i} has unknown attributes ${hex(attributes)}`);
        readZigzag(batch, cursor, end);
        let size = attributes & ATTR_HAS_KEY ? skipBytes(batch, cursor, end) : 0;
        size += skipBytes(batch, cursor, end);
        const headerCount = readVarint(batch, cursor, end);
        for (let h = 0; h < headerCount; h++) size += skipBytes(batch, cursor, end) + skipBytes(batch, cursor, end);
        if (cursor.pos !== end) throw new SegmentCorruptError(`record ${i} has ${end - cursor.pos} unread bytes`);
        sizes.push(size);
      }
      if (cursor.pos !== length) throw new SegmentCorruptError(`${length - cursor.pos} trailing bytes after ${count} records`);
    } catch (error) {
      if (error instanceof RangeError) throw new SegmentCorruptError(`batch at byte ${pos}: ${error.message}`, { cause: error });
      throw error;
    }
    pos += length;
  }
  return sizes;
}

/** Steps over a length-prefixed field; returns its length. */
function skipBytes(bytes: Uint8Array, cursor: Cursor, end: number): number {
  const length = readVarint(bytes, cursor, end);
  if (length > end - cursor.pos) throw new RangeError("field runs past the end of its record");
  cursor.pos += length;
  return length;
}

function readString(bytes: Uint8Array, cursor: Cursor, end: number): string {
  const length = readVarint(bytes, cursor, end);
  const start = cursor.pos;
  if (length > end - start) throw new RangeError("string runs past the end of its record");
  cursor.pos = start + length;
  try {
    return decoder.decode(bytes.subarray(start, start + length));
  } catch (error) {
    throw new SegmentCorruptError("string is not valid UTF-8", { cause: error });
  }
}

/** Decode a byte range holding one or more consecutive whole batches. */
export function decodeBatches(bytes: Uint8Array, options: DecodeOptions = {}): DecodedBatch[] {
  return decodeBatchesFrom(bytes, 0, options);
}

/** Check the segment header (magic + version) and decode all batches of a whole segment. */
export function decodeSegment(bytes: Uint8Array): DecodedBatch[] {
  if (bytes.length < SEGMENT_HEADER_BYTES) {
    throw new SegmentCorruptError(`segment of ${bytes.length} bytes is shorter than its header`);
  }
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw new SegmentCorruptError("not a segment (bad magic)");
  }
  if (bytes[4] !== FORMAT_VERSION) throw new SegmentCorruptError(`unsupported segment format version ${bytes[4]}`);
  if (bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new SegmentCorruptError("segment header reserved bytes are not zero");
  }
  return decodeBatchesFrom(bytes, SEGMENT_HEADER_BYTES, {});
}

function decodeBatchesFrom(bytes: Uint8Array, pos: number, options: DecodeOptions): DecodedBatch[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const batches: DecodedBatch[] = [];
  while (pos < bytes.length) {
    const remaining = bytes.length - pos;
    const length = remaining >= 4 ? view.getUint32(pos) : 0;
    if (length < BATCH_FIXED_BYTES + 1 || length > remaining) {
      throw new SegmentCorruptError(
        remaining < 4 ? `${remaining} stray bytes at byte ${pos}` : `batch at byte ${pos} claims ${length} bytes; ${remaining} remain`,
      );
    }
    try {
      batches.push(decodeBatch(bytes.subarray(pos, pos + length), options));
    } catch (error) {
      if (error instanceof SegmentCorruptError) error.message = `batch at byte ${pos}: ${error.message}`;
      throw error;
    }
    pos += length;
  }
  return batches;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(2, "0")}`;
}
