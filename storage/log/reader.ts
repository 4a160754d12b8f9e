/**
 * The read path by offset: index rows → ranged GETs (adjacent ranges of one segment coalesced)
 * → decoded records (or the stored bytes, for answers in batches), through an LRU of ranges. A
 * CRC mismatch is an error, never skipped.
 */
import { and, asc, eq, gte, type SQL, sql } from "drizzle-orm";
import { decodeBatches, type SegmentRecord } from "../segment/codec.ts";
import type { Database, Queryable } from "../metadata/db.ts";
import { rows } from "../metadata/db.ts";
import { segmentIndex, segments } from "../metadata/schema.ts";
import type { ObjectStore } from "../objects/object-store.ts";
import { ReservoirError, unavailable } from "../errors.ts";
import { type BatchCache, type ReadScope, rangeKey } from "./batch-cache.ts";

export interface ReadIo {
  /** A database, or the transaction a caller reads within. */
  db: Queryable;
  store: ObjectStore;
  cache: BatchCache;
  /**
   * Where the views of cached bytes that reads return end (see ReadScope): a caller that builds
   * its whole answer before closing it lets the cache reuse those bytes once they leave it.
   */
  readScope?: ReadScope;
}

export interface StoredMessage {
  partition: number;
  offset: number;
  record: SegmentRecord;
  /** Set for a delayed message: when groups may deliver it (ms). */
  deliverAt?: number;
}

export interface IndexRow {
  baseOffset: number;
  lastOffset: number;
  segmentId: string;
  objectKey: string;
  /** The whole segment's size. */
  segmentBytes: number;
  byteOffset: number;
  byteLength: number;
  recordSkip: number;
  deliverAt: number | null;
  extraHeaders: Record<string, string> | null;
}

export interface PartitionBounds {
  earliest: number;
  highWatermark: number;
}

/** The first retained offset and the next offset of a partition, or null if it doesn't exist. */
export async function partitionBounds(db: Database, topicId: number, partition: number): Promise<PartitionBounds | null> {
  const [row] = await rows<{ next: number; earliest: number | null }>(
    db,
    sql`SELECT p.next_offset AS next,
          (SELECT min(i.base_offset) FROM segment_index i WHERE i.topic_id = p.topic_id AND i.partition = p.partition) AS earliest
        FROM partitions p WHERE p.topic_id = ${topicId} AND p.partition = ${partition}`,
  );
  if (!row) return null;
  const highWatermark = row.next;
  return { highWatermark, earliest: row.earliest === null ? highWatermark : row.earliest };
}

/**
 * A read by offset: up to `limit` messages of one partition from `offset` on; `known`, index
 * rows of them a statement of the caller already read, in offset order from the one holding
 * `offset` (a receive's one-statement lease reads those of what it leased: indexRowsOfRanges).
 */
type ReadSpan = [topicId: number, partition: number, offset: number, limit: number, known?: IndexRow[]];

/** The index rows holding a read's messages, in offset order: `known`, or read now. */
async function indexRows(io: ReadIo, ...[topicId, partition, offset, limit, known]: ReadSpan): Promise<IndexRow[]> {
  const found = known ?? (await indexRowsQuery(io.db).execute({ topicId, partition, offset, limit }));
  const wanted: IndexRow[] = [];
  let count = 0;
  for (const row of found) {
    if (count >= limit) break;
    wanted.push(row);
    count += row.lastOffset - Math.max(row.baseOffset, offset) + 1;
  }
  return wanted;
}

/**
 * For a statement of the caller: the index rows holding ranges `[first_offset, end_offset)` of
 * partitions of a topic (`ranges`: a relation with columns partition, first_offset,
 * end_offset), as one JSON array for indexRowsFromJson, each range's rows bounded below by the
 * one holding its first offset, as indexRowsQuery bounds its scan.
 */
export function indexRowsOfRanges(topicId: number, ranges: SQL): SQL {
  return sql`(SELECT json_agg(json_build_array(i.partition, i.base_offset, i.last_offset, i.segment_id, s.object_key, s.byte_length,
                 i.byte_offset, i.byte_length, i.record_skip, i.deliver_at, i.extra_headers) ORDER BY i.partition, i.base_offset)
    FROM ${ranges} r
    JOIN segment_index i ON i.topic_id = ${topicId} AND i.partition = r.partition AND i.base_offset < r.end_offset
      AND i.base_offset >= coalesce((SELECT j.base_offset FROM segment_index j
            WHERE j.topic_id = ${topicId} AND j.partition = r.partition AND j.base_offset <= r.first_offset
            ORDER BY j.base_offset DESC LIMIT 1), 0)
    JOIN segments s ON s.id = i.segment_id)`;
}

/**
 * For a statement of the caller: the segments holding the index row right after each range
 * `[first_offset, end_offset)` of `ranges` (as indexRowsOfRanges takes them), distinct, as one
 * JSON array for nextSegmentsFromJson: what a consumer of those partitions reads next (readAhead).
 */
export function nextSegmentsOfRanges(topicId: number, ranges: SQL): SQL {
  return sql`(SELECT json_agg(json_build_array(n.segment_id, s.object_key, s.byte_length))
    FROM (SELECT DISTINCT nx.segment_id FROM ${ranges} r
          CROSS JOIN LATERAL (SELECT j.segment_id FROM segment_index j
            WHERE j.topic_id = ${topicId} AND j.partition = r.partition AND j.base_offset >= r.end_offset
            ORDER BY j.base_offset LIMIT 1) nx) n
    JOIN segments s ON s.id = n.segment_id)`;
}

/** A segment a reader is expected to want soon. */
export interface NextSegment {
  segmentId: string;
  objectKey: string;
  segmentBytes: number;
}

/** A segment as nextSegmentsOfRanges writes it: id, object key, byte length. */
export type NextSegmentJson = [string, string, number];

/** nextSegmentsOfRanges' rows. */
export function nextSegmentsFromJson(found: NextSegmentJson[]): NextSegment[] {
  return found.map(([segmentId, objectKey, segmentBytes]) => ({ segmentId, objectKey, segmentBytes }));
}

/**
 * Starts reading `next` into the cache, whole, in the background (segments up to
 * READ_AHEAD_MAX_BYTES that are neither cached nor being read): a consumer draining a backlog
 * larger than the cache then finds its next segment there instead of waiting for its GET, which
 * left the machine idle for a sixth of a drain (docs/benchmarks.md). A failed read-ahead is
 * forgotten: the read that needs the segment makes its own GET and reports its own failure.
 */
export function readAhead(io: ReadIo, next: NextSegment[]): void {
  for (const { segmentId, objectKey, segmentBytes } of next) {
    if (segmentBytes > READ_AHEAD_MAX_BYTES) continue;
    io.cache.prefetch(segmentId, () => io.store.get(objectKey, { offset: 0, length: segmentBytes }), decoderOf(segmentId));
  }
}

/** An index row as indexRowsOfRanges writes it. */
export type IndexRowJson = [
  number,
  number,
  number,
  string,
  string,
  number,
  number,
  number,
  number,
  number | null,
  Record<string, string> | null,
];

/** indexRowsOfRanges' rows, per partition. */
export function indexRowsFromJson(found: IndexRowJson[]): Map<number, IndexRow[]> {
  const byPartition = new Map<number, IndexRow[]>();
  for (const [
    partition,
    baseOffset,
    lastOffset,
    segmentId,
    objectKey,
    segmentBytes,
    byteOffset,
    byteLength,
    recordSkip,
    deliverAt,
    extraHeaders,
  ] of found) {
    const list = byPartition.get(partition) ?? [];
    list.push({ baseOffset, lastOffset, segmentId, objectKey, segmentBytes, byteOffset, byteLength, recordSkip, deliverAt, extraHeaders });
    byPartition.set(partition, list);
  }
  return byPartition;
}

interface IndexRowsQuery {
  execute(values: { topicId: number; partition: number; offset: number; limit: number }): Promise<IndexRow[]>;
}

// Built once per database handle (a transaction's handle builds its own): building the select
// took longer than running it, 50–100 µs per read, and a receive reads once per partition.
const preparedIndexRows = new WeakMap<Queryable, IndexRowsQuery>();

function indexRowsQuery(db: Queryable): IndexRowsQuery {
  let query = preparedIndexRows.get(db);
  if (query) return query;
  const [topicId, partition, offset] = [sql.placeholder("topicId"), sql.placeholder("partition"), sql.placeholder("offset")];
  query = db
    .select({
      baseOffset: segmentIndex.baseOffset,
      lastOffset: segmentIndex.lastOffset,
      segmentId: segmentIndex.segmentId,
      objectKey: segments.objectKey,
      segmentBytes: segments.byteLength,
      byteOffset: segmentIndex.byteOffset,
      byteLength: segmentIndex.byteLength,
      recordSkip: segmentIndex.recordSkip,
      deliverAt: segmentIndex.deliverAt,
      extraHeaders: segmentIndex.extraHeaders,
    })
    .from(segmentIndex)
    .innerJoin(segments, eq(segments.id, segmentIndex.segmentId))
    .where(
      and(
        eq(segmentIndex.topicId, topicId),
        eq(segmentIndex.partition, partition),
        // From the row holding `offset` (the last to begin at or before it): bounded below, the
        // scan no longer reads past every earlier row of the partition, which grew with the log.
        gte(
          segmentIndex.baseOffset,
          sql`coalesce((SELECT i.base_offset FROM segment_index i
                        WHERE i.topic_id = ${topicId} AND i.partition = ${partition} AND i.base_offset <= ${offset}
                        ORDER BY i.base_offset DESC LIMIT 1), 0)`,
        ),
        gte(segmentIndex.lastOffset, offset),
      ),
    )
    .orderBy(asc(segmentIndex.baseOffset))
    .limit(sql.placeholder("limit"))
    .prepare("reservoir_index_rows") as unknown as IndexRowsQuery;
  preparedIndexRows.set(db, query);
  return query;
}

/** The index rows a read needs, and their stored bytes. */
async function indexedBytes(io: ReadIo, ...span: ReadSpan) {
  const wanted = await indexRows(io, ...span);
  return { wanted, encoded: await loadRanges(io, wanted) };
}

/** Up to `limit` messages of one partition from `offset` on, in offset order. */
export async function readFrom(io: ReadIo, ...span: ReadSpan): Promise<StoredMessage[]> {
  const [, partition, offset, limit] = span;
  const { wanted, encoded } = await indexedBytes(io, ...span);
  const messages: StoredMessage[] = [];
  for (const [i, row] of wanted.entries()) {
    const records =
      io.cache.get(row.segmentId, row.byteOffset, row.byteLength, io.readScope) ?? decodeRange(encoded[i], row.segmentId, row.byteOffset);
    const first = Math.max(row.baseOffset, offset);
    for (let o = first; o <= row.lastOffset && messages.length < limit; o++) {
      let record = records[row.recordSkip + (o - row.baseOffset)];
      if (!record) throw new ReservoirError("internal_error", `index row at offset ${row.baseOffset} names records its batch lacks`);
      if (row.extraHeaders) record = { ...record, headers: { ...record.headers, ...row.extraHeaders } };
      messages.push(row.deliverAt === null ? { partition, offset: o, record } : { partition, offset: o, record, deliverAt: row.deliverAt });
    }
  }
  return messages;
}

/**
 * The stored bytes of one index row: whole batches (segment format v1), of which the row's
 * messages are `count` records after the first `skip`, at offsets `baseOffset` on.
 */
export interface StoredChunk {
  partition: number;
  baseOffset: number;
  skip: number;
  count: number;
  /** Headers the index adds to each of its messages (a dead letter's), over the stored ones. */
  headers: Record<string, string> | null;
  bytes: Uint8Array;
  /** The bytes are this instance's own flush, from its read cache: no CRC to check. */
  written: boolean;
}

/**
 * The chunks holding up to `limit` messages of one partition from `offset` on, as stored: the
 * first may begin, and the last end, with messages outside that span.
 */
export async function readChunks(io: ReadIo, ...span: ReadSpan): Promise<StoredChunk[]> {
  const partition = span[1];
  const { wanted, encoded } = await indexedBytes(io, ...span);
  return wanted.map((row, i) => ({
    partition,
    baseOffset: row.baseOffset,
    skip: row.recordSkip,
    count: row.lastOffset - row.baseOffset + 1,
    headers: row.extraHeaders,
    bytes: encoded[i],
    written: io.cache.wrote(row.segmentId),
  }));
}

/** The first offset whose timestamp is ≥ `timestamp`, or null if there is none yet. */
export async function offsetForTimestamp(io: ReadIo, topicId: number, partition: number, timestamp: number): Promise<number | null> {
  const candidates = await io.db
    .select({ baseOffset: segmentIndex.baseOffset })
    .from(segmentIndex)
    .where(and(eq(segmentIndex.topicId, topicId), eq(segmentIndex.partition, partition), gte(segmentIndex.maxTimestamp, timestamp)))
    .orderBy(asc(segmentIndex.baseOffset))
    .limit(1);
  if (candidates.length === 0) return null;
  const messages = await readFrom(io, topicId, partition, candidates[0].baseOffset, 1000);
  return messages.find((m) => m.record.timestamp >= timestamp)?.offset ?? null;
}

/** The bytes of each row's range, one GET per run of adjacent ranges of a segment. */
async function loadRanges(io: ReadIo, wanted: IndexRow[]): Promise<Uint8Array[]> {
  const result: Uint8Array[] = new Array(wanted.length);
  const missing: number[] = [];
  wanted.forEach((row, i) => {
    const cached = io.cache.getEncoded(row.segmentId, row.byteOffset, row.byteLength, io.readScope);
    if (cached) result[i] = cached;
    else missing.push(i);
  });
  // Coalesce rows whose ranges touch or repeat within one segment into one GET.
  const groups: number[][] = [];
  for (const i of missing) {
    const last = groups.at(-1);
    const prev = last && wanted[last.at(-1)!];
    const row = wanted[i];
    if (
      prev &&
      prev.segmentId === row.segmentId &&
      row.byteOffset >= prev.byteOffset &&
      row.byteOffset <= prev.byteOffset + prev.byteLength
    ) {
      last.push(i);
    } else {
      groups.push([i]);
    }
  }
  await Promise.all(
    groups.map(async (group) => {
      const first = wanted[group[0]];
      // A small segment is read whole, and the batches nobody asked for yet are kept, undecoded:
      // a segment holds a flush of every partition, so consumers of the other partitions find
      // their batches cached instead of each making a GET of their own (16 partitions drained
      // together: one GET per segment, not sixteen).
      const whole = first.segmentBytes <= READ_AHEAD_MAX_BYTES;
      const start = whole ? 0 : Math.min(...group.map((i) => wanted[i].byteOffset));
      const end = whole ? first.segmentBytes : Math.max(...group.map((i) => wanted[i].byteOffset + wanted[i].byteLength));
      let bytes: Uint8Array;
      try {
        const key = whole ? first.segmentId : rangeKey(first.segmentId, start, end - start);
        bytes = await io.cache.once(key, () => io.store.get(first.objectKey, { offset: start, length: end - start }));
      } catch (error) {
        throw unavailable("the object store did not answer; retry the request", error);
      }
      const decode = decoderOf(first.segmentId);
      // A whole segment is cached whole, its ranges as views of it (see BatchCache).
      if (whole) io.cache.setSegment(first.segmentId, bytes, decode);
      for (const i of group) {
        const row = wanted[i];
        const encoded = bytes.subarray(row.byteOffset - start, row.byteOffset - start + row.byteLength);
        if (!whole) io.cache.setRange(row.segmentId, row.byteOffset, encoded, decode);
        result[i] = encoded;
      }
    }),
  );
  return result;
}

/**
 * Segments up to this size are read whole. The batcher closes a flush once 4 MiB are pending,
 * with the request that crossed the line in it: a full segment is 4 MiB plus up to one request
 * (about 5 MiB for 1,000 messages of 1 KiB). At 4 MiB + 64 KiB, most full segments of a
 * max-rate produce were read as one range per partition: a drain of 16 partitions made 3.6 GETs
 * per segment (docs/benchmarks.md).
 */
export const READ_AHEAD_MAX_BYTES = 8 * 1024 * 1024;

/** How the cache decodes a range of this segment (its corruption named by segment and bytes). */
const decoderOf = (segmentId: string) => (encoded: Uint8Array, byteOffset: number) => decodeRange(encoded, segmentId, byteOffset);

function decodeRange(bytes: Uint8Array, segmentId: string, byteOffset: number): SegmentRecord[] {
  try {
    return decodeBatches(bytes).flatMap((b) => b.records);
  } catch (error) {
    throw new ReservoirError(
      "internal_error",
      `segment ${segmentId} is corrupt at bytes ${byteOffset}+${bytes.byteLength}`,
      {},
      { cause: error },
    );
  }
}
