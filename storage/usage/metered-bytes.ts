/** What a message weighs in usage (API.md): the UTF-8 key, the value bytes, the UTF-8 header names and values. */
import { ReservoirError } from "../errors.ts";
import type { StoredChunk } from "../log/reader.ts";
import { decodeBatches, payloadSizes, type SegmentRecord, utf8Length } from "../segment/codec.ts";

/** What returning `records` to a reader or receiver adds to its tenant's usage. */
export function outgoing(records: Pick<SegmentRecord, "key" | "value" | "headers">[]): { messagesOut: number; bytesOut: number } {
  return { messagesOut: records.length, bytesOut: records.reduce((n, r) => n + meteredBytes(r), 0) };
}

export function meteredBytes(record: Pick<SegmentRecord, "key" | "value" | "headers">): number {
  let bytes = record.value.byteLength;
  if (record.key !== undefined) bytes += utf8Length(record.key);
  if (record.headers) for (const name in record.headers) bytes += utf8Length(name) + utf8Length(record.headers[name]);
  return bytes;
}

/**
 * What returning the messages at `runs`' offsets that `chunks` hold (an answer in batches) adds
 * to usage: the same weights as `outgoing`, read from the stored length fields.
 */
export function outgoingChunks(
  chunks: StoredChunk[],
  runs: { partition: number; from: number; to: number }[],
): { messagesOut: number; bytesOut: number } {
  let messagesOut = 0;
  let bytesOut = 0;
  for (const chunk of chunks) {
    const last = chunk.baseOffset + chunk.count - 1;
    // Every chunk, whether a run takes from it or not: reading its records here is also what
    // checks the CRC of a chunk from the store before it goes out.
    const weights = chunkWeights(chunk);
    for (const run of runs) {
      if (run.partition !== chunk.partition) continue;
      const from = Math.max(run.from, chunk.baseOffset);
      const to = Math.min(run.to, last);
      if (from > to) continue;
      // Record indexes within the stored batches: the chunk's first `skip` records precede its base offset.
      const end = chunk.skip + to - chunk.baseOffset;
      if (end >= weights.length) {
        throw new ReservoirError("internal_error", `index row at offset ${chunk.baseOffset} names records its batch lacks`);
      }
      for (let i = chunk.skip + from - chunk.baseOffset; i <= end; i++) bytesOut += weights[i];
      messagesOut += to - from + 1;
    }
  }
  return { messagesOut, bytesOut };
}

/** The weight of each record of a chunk, by its index; the index's own headers need the records decoded. */
function chunkWeights(chunk: StoredChunk): ArrayLike<number> {
  try {
    // Bytes from the store are checked against their CRC before they go out; the batcher's own are not.
    if (!chunk.headers) return payloadSizes(chunk.bytes, { verifyCrc: !chunk.written });
    const extra = chunk.headers;
    return decodeBatches(chunk.bytes)
      .flatMap((b) => b.records)
      .map((r) => meteredBytes({ ...r, headers: { ...r.headers, ...extra } }));
  } catch (error) {
    throw new ReservoirError("internal_error", `a stored batch at offset ${chunk.baseOffset} is corrupt`, {}, { cause: error });
  }
}
