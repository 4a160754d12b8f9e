/**
 * A produce body in batches (`Content-Type: application/vnd.reservoir.batches`): record batches
 * of segment format v1, back to back, as a Kafka producer sends record batches (docs/batches.md,
 * "Producing in batches"). The records are checked here and then stored as they are, under
 * batch headers the server writes (its topic and its time): no message becomes an object and
 * nothing is encoded again.
 *
 * What a batch must be: version 1, flags 0, a CRC32C that matches, a topic id of length 0 (the
 * topic is the URL's), `recordCount` records filling it exactly. A record: attributes of bits 0
 * and 1 only, a timestamp delta of 0 (every message takes the server's time), canonical
 * varints, well-formed UTF-8 for its key, header names and values and, without the binary bit,
 * its value; no header named twice; at most 1 MiB of key, value and headers.
 */
import { ReservoirError } from "../../storage/errors.ts";
import { crc32c, crc32cCombine } from "../../storage/segment/crc32c.ts";
import { type StoredBatch, storedBatchEnds } from "../../storage/log/stored-batch.ts";
import { type Cursor, readVarint, readZigzag } from "../../storage/segment/varint.ts";
import { isWellFormedUtf8 } from "../../storage/segment/utf8.ts";
import type { StickyPartitioner } from "../../storage/log/partitioner.ts";
import type { Topic } from "../../storage/metadata/topics.ts";
import { limits } from "../schemas.ts";

/** The partition field that leaves the choice to the server (keyless records only). */
export const ANY_PARTITION = 0xffff_ffff;

const FIXED_BYTES = 26; // batchLength · crc · version · flags · partition · recordCount · firstTimestamp
const ATTR_BINARY = 1;
const ATTR_HAS_KEY = 2;

/** One batch of the body, checked: its records' bytes and where each starts. */
export interface ProducedBatch {
  /** The partition the batch names, or ANY_PARTITION. */
  partition: number;
  records: Uint8Array;
  /** Start of each record in `records`, then its end: count + 1 entries. */
  starts: number[];
  /** Per record: its metered bytes (key + value + header names and values). */
  usageBytes: number[];
  hasKeys: boolean;
  /** The stored batches the records make, as the server splits them, with their records' CRC32C. */
  stored: StoredBatch[];
}

// ignoreBOM: "\uFEFFa" and "a" are two names.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

const invalid = (batch: number, detail: string) => new ReservoirError("invalid_request", `batch ${batch}: ${detail}`, { batch });

/** The batches of a body, checked, or a 4xx ReservoirError naming the first fault. */
export function parseProduceBatches(body: Uint8Array): ProducedBatch[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const batches: ProducedBatch[] = [];
  let messages = 0;
  for (let at = 0; at < body.length; ) {
    const b = batches.length;
    if (body.length - at < FIXED_BYTES + 1)
      throw invalid(b, `${body.length - at} bytes left, fewer than a batch header's ${FIXED_BYTES + 1}`);
    const length = view.getUint32(at);
    const end = at + length;
    if (length < FIXED_BYTES + 1 || end > body.length) {
      throw invalid(b, `batchLength ${length} does not fit the ${body.length - at} bytes left`);
    }
    const crc = view.getUint32(at + 4);
    const corrupt = () => crc32c(body.subarray(at + 8, end)) !== crc;
    const first = at + FIXED_BYTES + 1;
    let batch: Omit<ProducedBatch, "partition" | "stored">;
    try {
      if (body[at + 8] !== 1 || body[at + 9] !== 0) {
        throw new Fault(`version ${body[at + 8]} and flags ${body[at + 9]}: only version 1 with flags 0 is known`);
      }
      const count = view.getUint32(at + 14);
      if (count === 0) throw new Fault("it holds no records");
      if (messages + count > limits.messagesPerRequest) {
        throw new ReservoirError("too_many_messages", `more than ${limits.messagesPerRequest} messages in one request`, {
          limit: limits.messagesPerRequest,
        });
      }
      if (body[at + FIXED_BYTES] !== 0) throw new Fault("its topic id must be empty (the topic is the URL's)");
      batch = records(body, first, end, count, messages);
      messages += count;
    } catch (error) {
      // A batch that does not match its CRC is reported as such, whatever else is wrong with it.
      if (corrupt()) throw invalid(b, "its CRC32C does not match its bytes");
      if (error instanceof Fault) throw invalid(b, error.message);
      throw error;
    }
    // One pass over the records for the CRC: per stored batch (the server's split), combined
    // behind the header's bytes into what the client computed.
    const stored = storedBatchEnds(batch.starts).map((end, k, ends) => {
      const from = batch.starts[k === 0 ? 0 : ends[k - 1]];
      return { end, crc: crc32c(body.subarray(first + from, first + batch.starts[end])) };
    });
    let whole = crc32c(body.subarray(at + 8, first));
    for (const [k, { end, crc: part }] of stored.entries()) {
      whole = crc32cCombine(whole, part, batch.starts[end] - batch.starts[k === 0 ? 0 : stored[k - 1].end]);
    }
    if (whole !== crc) throw invalid(b, "its CRC32C does not match its bytes");
    const partition = view.getUint32(at + 10);
    if (batch.hasKeys && partition === ANY_PARTITION) {
      throw invalid(
        b,
        "a batch of keyed records names its partition (for Kafka's placement, murmur2 of the key, as the server computes it for JSON)",
      );
    }
    batches.push({ partition, stored, ...batch });
    at = end;
  }
  if (batches.length === 0) throw new ReservoirError("invalid_request", "the body holds no batch: at least one message is required");
  return batches;
}

/** A fault of the batch being read; the caller names the batch. */
class Fault extends Error {}

function records(body: Uint8Array, first: number, end: number, count: number, before: number) {
  const cursor: Cursor = { pos: first };
  const starts = new Array<number>(count + 1);
  const usageBytes = new Array<number>(count);
  let hasKeys = false;
  let r = 0;
  try {
    for (; r < count; r++) {
      starts[r] = cursor.pos - first;
      const length = readVarint(body, cursor, end);
      const recordEnd = cursor.pos + length;
      if (recordEnd > end) throw new Fault("its length runs past the batch");
      const attributes = body[cursor.pos++];
      if (attributes > (ATTR_BINARY | ATTR_HAS_KEY))
        throw new Fault(`attributes ${attributes}: only bits 0 (binary) and 1 (key) are known`);
      if (readZigzag(body, cursor, recordEnd) !== 0) throw new Fault("its timestamp delta must be 0: messages take the server's time");
      let usage = 0;
      if (attributes & ATTR_HAS_KEY) {
        hasKeys = true;
        usage += text(body, cursor, recordEnd, "its key");
      }
      const valueLength = readVarint(body, cursor, recordEnd);
      if (cursor.pos + valueLength > recordEnd) throw new Fault("its value runs past the record");
      if (!(attributes & ATTR_BINARY) && !isWellFormedUtf8(body.subarray(cursor.pos, cursor.pos + valueLength))) {
        throw new Fault("its value is not well-formed UTF-8 (send bytes with the binary attribute)");
      }
      cursor.pos += valueLength;
      usage += valueLength;
      const headers = readVarint(body, cursor, recordEnd);
      const names = headers > 1 ? new Set<string>() : undefined;
      for (let h = 0; h < headers; h++) {
        const nameLength = text(body, cursor, recordEnd, "a header's name");
        usage += nameLength;
        if (names) {
          // Only a record of two headers or more makes strings, to find a repeated name.
          const name = utf8.decode(body.subarray(cursor.pos - nameLength, cursor.pos));
          if (names.has(name)) throw new Fault(`header ${h} repeats a name`);
          names.add(name);
        }
        usage += text(body, cursor, recordEnd, "a header's value");
      }
      if (cursor.pos !== recordEnd) throw new Fault(`its fields end ${recordEnd - cursor.pos} bytes before its length says`);
      if (usage > limits.messageBytes) {
        throw new ReservoirError(
          "message_too_large",
          `message ${before + r} has ${usage} bytes of key, value and headers; the limit is ${limits.messageBytes} (1 MiB)`,
          { limit: limits.messageBytes, index: before + r },
        );
      }
      usageBytes[r] = usage;
    }
  } catch (error) {
    if (error instanceof Fault || error instanceof RangeError) throw new Fault(`record ${r}: ${error.message}`);
    throw error;
  }
  if (cursor.pos !== end) throw new Fault(`${end - cursor.pos} bytes follow its last record`);
  starts[count] = end - first;
  return { records: body.subarray(first, end), starts, usageBytes, hasKeys };
}

/** A length-prefixed UTF-8 string: checked, skipped; its byte length. */
function text(body: Uint8Array, cursor: Cursor, end: number, what: string): number {
  const n = readVarint(body, cursor, end);
  if (cursor.pos + n > end) throw new Fault(`${what} runs past the record`);
  if (!isWellFormedUtf8(body.subarray(cursor.pos, cursor.pos + n))) throw new Fault(`${what} is not well-formed UTF-8`);
  cursor.pos += n;
  return n;
}

/** The partition each batch goes to: its own (checked against the topic), or the request's sticky one. */
export function placeBatches(batches: ProducedBatch[], topic: Topic, partitioner: StickyPartitioner): number[] {
  let sticky: number | undefined;
  return batches.map((batch, b) => {
    if (batch.partition === ANY_PARTITION) {
      sticky ??= partitioner.forRequest(String(topic.id), topic.partitions);
      return sticky;
    }
    if (batch.partition >= topic.partitions) {
      throw new ReservoirError(
        "partition_out_of_range",
        `batch ${b} names partition ${batch.partition}; topic '${topic.name}' has ${topic.partitions} partitions`,
      );
    }
    return batch.partition;
  });
}
