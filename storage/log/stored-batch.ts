/** The size of a stored batch: the produce batcher's split of a partition's records. */

/**
 * Records of one stored batch, at most. A receive answered in batches sends whole stored batches,
 * the first and last with records outside what it leased (and every answer decodes them): with
 * one batch per partition per flush, a flush of 4,400 messages to one partition was one batch, and
 * a receive of 1,000 sent and decoded up to all of it. Each batch gets an index row of its own.
 */
export const MAX_BATCH_RECORDS = 256;
/** Bytes of one stored batch, at most (a batch holds at least one record, however large). */
export const MAX_BATCH_BYTES = 256 * 1024;

/**
 * A stored batch of encoded records: up to record `end` (exclusive) of its part, from the end of
 * the one before; `crc` is the CRC32C of its records' bytes.
 */
export interface StoredBatch {
  end: number;
  crc: number;
}

/**
 * Where the stored batches of encoded records end (record indexes, exclusive), split as entries
 * are (batchEnd): at most MAX_BATCH_RECORDS records and MAX_BATCH_BYTES bytes, at least one record.
 * `starts`: where each record starts, then the end.
 */
export function storedBatchEnds(starts: number[]): number[] {
  const count = starts.length - 1;
  const ends: number[] = [];
  for (let s = 0; s < count; ) {
    let e = s + 1;
    while (e < count && e - s < MAX_BATCH_RECORDS && starts[e + 1] - starts[s] <= MAX_BATCH_BYTES) e++;
    ends.push(e);
    s = e;
  }
  return ends;
}
