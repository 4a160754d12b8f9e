/**
 * Records a client encoded (a produce in batches, functions/produce/batches.ts) into a flush:
 * written as they are under batch headers of the flush's, each stored batch a run of the
 * commit; and the range of offsets they got.
 */
import type { SegmentWriter } from "../segment/codec.ts";
import type { AssignedOffset, CommitRun } from "./commit.ts";
import type { StoredBatch } from "./stored-batch.ts";

/**
 * Records a client encoded (a produce in batches, functions/produce/batches.ts), for one
 * partition: stored as they are, in batches the flush heads with the topic and `timestamp`.
 */
export interface EncodedRecords {
  topicId: number;
  partition: number;
  /** Every record's timestamp (their deltas are 0). */
  timestamp: number;
  /** The records' bytes, back to back (segment format v1). */
  records: Uint8Array;
  /** Where each record starts in `records`, then its end: one more than the records. */
  starts: number[];
  /** Per record: its metered bytes. */
  usageBytes: number[];
  /** How the records split into stored batches (storedBatchEnds), with their CRC32Cs. */
  stored: StoredBatch[];
}

/** Where encoded records went: offsets baseOffset .. baseOffset + count − 1 of the partition. */
export interface AssignedRange {
  partition: number;
  baseOffset: number;
  count: number;
}

/** Where one part of encoded records went: runs first .. first + count − 1. */
export interface PartRuns {
  partition: number;
  firstRun: number;
  runCount: number;
  records: number;
}

/** A part's records as batches of the segment, as its `stored` batches say. */
export function encodeParts(writer: SegmentWriter, part: EncodedRecords, runs: CommitRun[]): PartRuns {
  const { starts, records } = part;
  const firstRun = runs.length;
  let s = 0;
  for (const { end: e, crc } of part.stored) {
    const n = e - s;
    const { byteOffset, byteLength } = writer.appendEncodedBatch(
      String(part.topicId),
      part.partition,
      part.timestamp,
      records.subarray(starts[s], starts[e]),
      n,
      crc,
    );
    runs.push({
      topicId: part.topicId,
      partition: part.partition,
      byteOffset,
      byteLength,
      timestamps: new Array<number>(n).fill(part.timestamp),
      idempotencyKeys: new Array<string | undefined>(n).fill(undefined),
      usageBytes: part.usageBytes.slice(s, e),
    });
    s = e;
  }
  return { partition: part.partition, firstRun, runCount: runs.length - firstRun, records: starts.length - 1 };
}

/**
 * A produce in batches' offsets, one range per part; null if its topic is gone. A part's runs are
 * consecutive runs of one partition, and a commit numbers a partition's records in run order.
 */
export function rangesOf(parts: PartRuns[], result: (AssignedOffset | null)[][]): AssignedRange[] | null {
  const ranges: AssignedRange[] = [];
  for (const { partition, firstRun, runCount, records } of parts) {
    const first = result[firstRun][0];
    const lastRun = result[firstRun + runCount - 1];
    const last = lastRun[lastRun.length - 1];
    if (!first || !last) return null;
    if (last.offset - first.offset !== records - 1) throw new Error("batcher: a part's offsets are not one range");
    ranges.push({ partition, baseOffset: first.offset, count: records });
  }
  return ranges;
}
