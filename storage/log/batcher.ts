/**
 * The produce batcher (DESIGN.md, write path). Concurrent requests of one tenant, whatever
 * their topics and partitions, are coalesced into one segment per flush: one PUT, then one
 * Postgres transaction. Each request waits for its own flush and gets its own offsets.
 */
import { decodeBatches, SegmentWriter, type SegmentRecord } from "../segment/codec.ts";
import { BufferPool } from "../buffer-pool.ts";
import type { BatchCache } from "./batch-cache.ts";
import type { Database } from "../metadata/db.ts";
import type { ObjectStore } from "../objects/object-store.ts";
import { ReservoirError, unavailable } from "../errors.ts";
import { meteredBytes } from "../usage/metered-bytes.ts";
import { CommitDeadlineError, commitSegment, type AssignedOffset, type CommitRun } from "./commit.ts";
import { type DeferredKeyCheck, KeyCheckRefused, vouched, vouchFor } from "../tenancy/deferred-key-check.ts";
import { newSegmentId, segmentObjectKey } from "./segment-ids.ts";
import { type AssignedRange, type EncodedRecords, encodeParts, rangesOf } from "./encoded-records.ts";
import { MAX_BATCH_BYTES, MAX_BATCH_RECORDS } from "./stored-batch.ts";
import { LatencyHistogram } from "./latency-histogram.ts";

export interface BatcherOptions {
  /** Flush once this many record bytes are pending (default 4 MiB). */
  maxBytes: number;
  /** Flush once the oldest pending request is this old (default 5 ms). */
  lingerMs: number;
  /** Flushes of one tenant that may be between PUT and commit at once (default 4). */
  maxInFlight: number;
  /** A flush not committed this long after its PUT started is failed, never committed late. */
  commitDeadlineMs: number;
  now: () => number;
  /** Where committed ranges go for readers of this instance (not decoded until read). */
  cache?: BatchCache;
  /**
   * A new segment array of a size (its every byte is written before use): the Node server's skips
   * the zeroing (Buffer.allocUnsafeSlow), about 2% of its CPU at max-rate produce.
   */
  allocate?: (bytes: number) => ArrayBuffer;
  /** Told of every flush (the metrics: functions/metrics/instruments.ts). */
  observer?: FlushObserver;
}

/** What a flush did, for metrics: one call per flush, committed or failed. */
export interface FlushObserver {
  flushed(flush: { bytes: number; messages: number; requests: number; putMs: number; commitMs: number }): void;
  /** The stage that failed: encoding (nothing sent), the PUT, or the commit after a PUT. */
  failed(stage: "encode" | "put" | "commit"): void;
}

export const defaultBatcherOptions: BatcherOptions = {
  maxBytes: 4 * 1024 * 1024,
  lingerMs: 5,
  maxInFlight: 4,
  commitDeadlineMs: 60_000,
  now: () => Date.now(),
};

/**
 * A message to store: its record (key, value, headers, timestamp) and where it goes. One object
 * per message, not a record inside an entry: entries live from their request until its flush,
 * and each object alive at a scavenge is copied by it (docs/benchmarks.md, session 18).
 */
export interface ProduceEntry extends SegmentRecord {
  topicId: number;
  partition: number;
  idempotencyKey?: string;
  /** Delayed message: not delivered to groups before this time (ms). */
  deliverAt?: number;
  /** Encoded size, counted against maxBytes. */
  bytes: number;
  /** Produced into this open transaction: stored, but pending (no offset) until it commits. */
  transactionId?: string;
  /** Metered size (storage/usage/meter.ts): UTF-8 key + value + UTF-8 header names and values; computed when absent. */
  usageBytes?: number;
}

/** The database and object store a flush runs on: those of the request that triggers it. */
export interface FlushIo {
  db: Database;
  store: ObjectStore;
}

export interface FlushStats {
  flushes: number;
  puts: number;
  commits: number;
  failedFlushes: number;
  messages: number;
  bytes: number;
  requests: number;
  /** Milliseconds spent in PUTs and in commits, summed over flushes. */
  putMs: number;
  commitMs: number;
  /** Flushes whose segment went into an array an earlier segment had used (SEGMENT_POOL_BYTES). */
  segmentsReused: number;
  /** Flushes that stored nothing because a key they were to vouch for no longer held (KeyCheckRefused). */
  refusedFlushes: number;
}

/** A committed flush, for listeners such as long-polling readers. */
export interface CommittedFlush {
  tenantId: string;
  /** Per touched partition: the next offset after this flush. */
  highWatermarks: { topicId: number; partition: number; next: number }[];
  /** Topics with active webhook subscriptions. */
  subscribedTopicIds: number[];
}

interface Waiter {
  entries: ProduceEntry[];
  /** A produce in batches: its parts, in place of entries. */
  encoded?: EncodedRecords[];
  /** Encoded size, counted against maxBytes. */
  bytes: number;
  /** When it was submitted (its wait is measured from here). */
  submitted: number;
  /** Its key check, left to the flush commit. */
  check?: DeferredKeyCheck;
  /** Its request's database and store (a refused flush requeues it on them: on Workers they end with its request). */
  io: FlushIo;
  resolve(offsets: AssignedOffset[], ranges: AssignedRange[]): void;
  reject(error: unknown): void;
}

interface Batch {
  tenantId: string;
  waiters: Waiter[];
  bytes: number;
  io: FlushIo;
  timer?: ReturnType<typeof setTimeout>;
  /** The linger has passed: flush as soon as a slot is free. */
  due: boolean;
}

/**
 * Idle segment arrays the batcher keeps for its next flushes: a few max-rate segments (about
 * 4 MiB each). An array comes back once nothing can hold a view of it: the flush's segment left
 * the read cache and no read holds a view of it, or there is no cache (storage/log/batch-cache.ts,
 * ReadScope and `recycle`).
 */
export const SEGMENT_POOL_BYTES = 32 * 1024 * 1024;

export class Batcher {
  readonly stats: FlushStats = {
    flushes: 0,
    puts: 0,
    commits: 0,
    failedFlushes: 0,
    messages: 0,
    bytes: 0,
    requests: 0,
    putMs: 0,
    commitMs: 0,
    segmentsReused: 0,
    refusedFlushes: 0,
  };
  /** PUT and commit durations per flush, and each request's wait from submit to its offsets. */
  readonly latency = { putMs: new LatencyHistogram(), commitMs: new LatencyHistogram(), submitMs: new LatencyHistogram() };
  private readonly options: BatcherOptions;
  private readonly open = new Map<string, Batch>();
  private readonly sealed = new Map<string, Batch[]>();
  private readonly inFlight = new Map<string, number>();
  private readonly listeners = new Set<(flush: CommittedFlush) => void>();
  /** Arrays for segments: new ones drove V8's major collections at max rate (storage/buffer-pool.ts). */
  private readonly segments: BufferPool;

  constructor(options: Partial<BatcherOptions> = {}) {
    this.options = { ...defaultBatcherOptions, ...options };
    this.segments = new BufferPool(SEGMENT_POOL_BYTES, this.options.allocate);
  }

  onCommit(listener: (flush: CommittedFlush) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Resolves with one offset per entry, in entry order, once they are committed. `check`: the
   * request's key check, left to the commit (rejects with KeyCheckRefused if the key no longer holds).
   */
  submit(tenantId: string, entries: ProduceEntry[], io: FlushIo, check?: DeferredKeyCheck): Promise<AssignedOffset[]> {
    let bytes = 0;
    for (const e of entries) bytes += e.bytes;
    const submitted = this.options.now();
    return new Promise((resolve, reject) => this.enqueue(tenantId, { entries, bytes, submitted, check, io, resolve, reject }));
  }

  /** Resolves with one range of offsets per part, in part order, once they are committed. */
  submitEncoded(tenantId: string, parts: EncodedRecords[], io: FlushIo, check?: DeferredKeyCheck): Promise<AssignedRange[]> {
    let bytes = 0;
    for (const part of parts) bytes += part.records.length;
    const submitted = this.options.now();
    return new Promise((resolve, reject) =>
      this.enqueue(tenantId, { entries: [], encoded: parts, bytes, submitted, check, io, resolve: (_, ranges) => resolve(ranges), reject }),
    );
  }

  private enqueue(tenantId: string, waiter: Waiter): void {
    const { io } = waiter;
    let batch = this.open.get(tenantId);
    if (!batch) {
      batch = { tenantId, waiters: [], bytes: 0, io, due: false };
      this.open.set(tenantId, batch);
      const opened = batch;
      opened.timer = setTimeout(() => {
        opened.due = true;
        this.pump(tenantId);
      }, this.options.lingerMs);
    }
    batch.waiters.push(waiter);
    batch.bytes += waiter.bytes;
    if (batch.bytes >= this.options.maxBytes) {
      // The request that fills the batch flushes it on its own I/O (matters on Workers).
      batch.io = io;
      this.seal(batch);
      this.pump(tenantId);
    }
  }

  /** Closes the open batch: later requests go to a new one. */
  private seal(batch: Batch): void {
    clearTimeout(batch.timer);
    this.open.delete(batch.tenantId);
    const queue = this.sealed.get(batch.tenantId) ?? [];
    queue.push(batch);
    this.sealed.set(batch.tenantId, queue);
  }

  /**
   * Starts flushes while fewer than maxInFlight run. A due batch that finds no free slot stays
   * open and keeps growing until one frees: under load, batches grow instead of queueing.
   */
  private pump(tenantId: string): void {
    const open = this.open.get(tenantId);
    const queue = this.sealed.get(tenantId) ?? [];
    while ((this.inFlight.get(tenantId) ?? 0) < this.options.maxInFlight) {
      let batch = queue.shift();
      if (!batch && open?.due && this.open.get(tenantId) === open) {
        this.seal(open);
        batch = this.sealed.get(tenantId)!.shift();
      }
      if (!batch) break;
      this.inFlight.set(tenantId, (this.inFlight.get(tenantId) ?? 0) + 1);
      void this.flush(batch).finally(() => {
        const left = this.inFlight.get(tenantId)! - 1;
        if (left === 0) this.inFlight.delete(tenantId);
        else this.inFlight.set(tenantId, left);
        this.pump(tenantId);
      });
    }
    if (this.sealed.get(tenantId)?.length === 0) this.sealed.delete(tenantId);
  }

  private async flush(batch: Batch): Promise<void> {
    const { now, commitDeadlineMs } = this.options;
    this.stats.flushes++;
    let stage: "encode" | "put" | "commit" = "encode";
    try {
      const { segment, checksum, runs, placement, encodedRuns } = encode(batch, (bytes) => this.segments.take(bytes));
      this.stats.segmentsReused = this.segments.reused;
      const segmentId = newSegmentId(now());
      const objectKey = segmentObjectKey(batch.tenantId, segmentId);
      const started = now();
      // The store and the database translate their own failures into the error family
      // (unavailable: a 503 to retry); anything else thrown here is a bug and stays one (a 500).
      this.stats.puts++;
      stage = "put";
      await batch.io.store.put(objectKey, segment, checksum);
      const putMs = now() - started;
      this.stats.putMs += putMs;
      this.latency.putMs.record(putMs);
      const committing = now();
      this.stats.commits++;
      stage = "commit";
      const vouch = vouchFor(batch.waiters.map((w) => w.check));
      const committed = await commitSegment(batch.io.db, {
        tenantId: batch.tenantId,
        segmentId,
        objectKey,
        byteLength: segment.length,
        runs,
        now: started,
        deadline: started + commitDeadlineMs,
        clock: now,
        vouch,
      });
      const commitMs = now() - committing;
      this.stats.commitMs += commitMs;
      this.latency.commitMs.record(commitMs);
      const result = committed.offsets;
      const answered = now();
      for (const [w, waiter] of batch.waiters.entries()) {
        vouched(waiter.check, true);
        const offsets = offsetsOf(placement[w], waiter.entries.length, result);
        const ranges = rangesOf(encodedRuns[w], result);
        const refused = waiter.entries[0]?.transactionId && committed.refusedTransactions?.get(waiter.entries[0].transactionId);
        if (refused) {
          waiter.reject(refused);
        } else if (offsets.includes(null) || ranges === null) {
          waiter.reject(new ReservoirError("topic_not_found", "the topic was deleted while the request was in flight"));
        } else {
          this.latency.submitMs.record(answered - waiter.submitted);
          waiter.resolve(offsets as AssignedOffset[], ranges);
        }
      }
      const messages = runs.reduce((n, r) => n + r.timestamps.length, 0);
      this.stats.requests += batch.waiters.length;
      this.stats.messages += messages;
      this.stats.bytes += segment.length;
      this.options.observer?.flushed({ bytes: segment.length, messages, requests: batch.waiters.length, putMs, commitMs });
      this.remember(segmentId, segment);
      this.notify(batch.tenantId, runs, result, committed.subscribedTopicIds);
    } catch (error) {
      if (error instanceof KeyCheckRefused) return this.refused(batch, error);
      this.stats.failedFlushes++;
      this.options.observer?.failed(stage);
      const failure =
        error instanceof CommitDeadlineError ? unavailable("the metadata commit did not finish in time; retry the request", error) : error;
      for (const waiter of batch.waiters) waiter.reject(failure);
    }
  }

  /**
   * A flush that stored nothing because a key it was to vouch for no longer holds: the requests
   * that came with such keys are rejected (their route takes the key check after all), and the
   * others go into the next flush as if just submitted. Rare: it takes a key revoked, or a quota
   * given to its tenant, since this instance last checked the key.
   */
  private refused(batch: Batch, error: KeyCheckRefused): void {
    this.stats.refusedFlushes++;
    for (const waiter of batch.waiters) {
      if (waiter.check) waiter.reject(error);
      else this.enqueue(batch.tenantId, waiter);
    }
  }

  /**
   * A committed flush's segment: into the read cache, which gives it back to the pool if it leaves
   * unread; without a cache, back to the pool at once. The store is done with it (its PUT
   * answered); a failed flush's segment is not reused, since a failed upload may still hold it.
   */
  private remember(segmentId: string, segment: Uint8Array): void {
    const { cache } = this.options;
    if (!cache) {
      this.segments.give(segment);
      return;
    }
    // Its bytes never left this process, so decoding them skips the CRC.
    cache.setSegment(
      segmentId,
      segment,
      (encoded) => decodeBatches(encoded, { verifyCrc: false }).flatMap((b) => b.records),
      "written",
      (bytes) => this.segments.give(bytes),
    );
  }

  private notify(tenantId: string, runs: CommitRun[], result: (AssignedOffset | null)[][], subscribedTopicIds: number[]): void {
    if (this.listeners.size === 0) return;
    const highWatermarks = runs.flatMap((run, r) => {
      if (run.transactionId !== undefined) return []; // pending: no offsets, no high watermark moved
      const last = result[r].reduce((max, o) => (o && o.offset > max ? o.offset : max), -1);
      return [{ topicId: run.topicId, partition: run.partition, next: last + 1 }];
    });
    for (const listener of this.listeners) listener({ tenantId, highWatermarks, subscribedTopicIds });
  }
}

interface Group {
  topicId: number;
  partition: number;
  transactionId?: string;
  entries: ProduceEntry[];
  positions: number[];
  /** Its first run's index, once the runs are ordered... */
  run: number;
  /** ...and where each of its runs (stored batches) starts among its entries. */
  runStarts: number[];
}

/**
 * Where a stretch of one request's entries went: entries `from` .. `from + count − 1` of the
 * request are records `start` .. `start + count − 1` of `group`'s run. A request to one
 * partition (keyless, or all of one key) is one span, so nothing is kept per message.
 */
interface Span {
  group: Group;
  from: number;
  start: number;
  count: number;
}

/** Groups the batch's records by (topic, partition) into one segment; remembers where each went. */
function encode(batch: Batch, allocate: (bytes: number) => Uint8Array) {
  const groups = new Map<string, Group>();
  /** Per transaction: records of it placed so far in this flush (their production order). */
  const produced = new Map<string, number>();
  const placement: Span[][] = batch.waiters.map((waiter) => {
    const spans: Span[] = [];
    let span: Span | undefined;
    for (let j = 0; j < waiter.entries.length; j++) {
      const entry = waiter.entries[j];
      let group = span?.group;
      // Consecutive entries of one (topic, partition, transaction) share a group: no lookup.
      if (!group || group.topicId !== entry.topicId || group.partition !== entry.partition || group.transactionId !== entry.transactionId) {
        // A transaction's records get runs of their own: they are pending, the others are not.
        const k =
          entry.transactionId === undefined
            ? `${entry.topicId}:${entry.partition}`
            : `${entry.topicId}:${entry.partition}:${entry.transactionId}`;
        group = groups.get(k);
        if (!group) {
          group = {
            topicId: entry.topicId,
            partition: entry.partition,
            transactionId: entry.transactionId,
            entries: [],
            positions: [],
            run: 0,
            runStarts: [],
          };
          groups.set(k, group);
        }
        span = { group, from: j, start: group.entries.length, count: 0 };
        spans.push(span);
      }
      group.entries.push(entry);
      span!.count++;
      if (entry.transactionId !== undefined) {
        const at = produced.get(entry.transactionId) ?? 0;
        produced.set(entry.transactionId, at + 1);
        group.positions.push(at);
      }
    }
    return spans;
  });
  const order = [...groups.keys()].sort();
  const writer = new SegmentWriter();
  const runs: CommitRun[] = [];
  for (const k of order) {
    const group = groups.get(k)!;
    group.run = runs.length;
    const { entries } = group;
    for (let start = 0; start < entries.length; ) {
      const end = batchEnd(entries, start);
      group.runStarts.push(start);
      runs.push(encodeRun(writer, group, start, end));
      start = end;
    }
  }
  // A produce in batches: its parts' records as they are, after the runs of entries.
  const encodedRuns = batch.waiters.map((waiter) => (waiter.encoded ?? []).map((part) => encodeParts(writer, part, runs)));
  const segment = writer.finish(allocate);
  return { segment, checksum: writer.checksum, runs, placement, encodedRuns };
}

/** The end (exclusive) of the batch starting at entries[start]. */
function batchEnd(entries: ProduceEntry[], start: number): number {
  let end = start;
  let bytes = 0;
  while (end < entries.length && end - start < MAX_BATCH_RECORDS) {
    bytes += entries[end].bytes;
    if (bytes > MAX_BATCH_BYTES && end > start) break;
    end++;
  }
  return end;
}

/** Entries [start, end) of a group as one batch of the segment, and its run for the commit. */
function encodeRun(writer: SegmentWriter, group: Group, start: number, end: number): CommitRun {
  const n = end - start;
  const records = new Array<SegmentRecord>(n);
  const timestamps = new Array<number>(n);
  const idempotencyKeys = new Array<string | undefined>(n);
  const deliverAt = new Array<number | undefined>(n);
  const usageBytes = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const e = group.entries[start + i];
    records[i] = e;
    timestamps[i] = e.timestamp;
    idempotencyKeys[i] = e.idempotencyKey;
    deliverAt[i] = e.deliverAt;
    usageBytes[i] = e.usageBytes ?? meteredBytes(e);
  }
  const { byteOffset, byteLength } = writer.appendBatch(String(group.topicId), group.partition, records);
  return {
    topicId: group.topicId,
    partition: group.partition,
    byteOffset,
    byteLength,
    timestamps,
    idempotencyKeys,
    deliverAt,
    usageBytes,
    ...(group.transactionId !== undefined && { transactionId: group.transactionId, positions: group.positions.slice(start, end) }),
  };
}

/** A request's offsets in entry order, from its spans; null where a record's topic is gone. */
function offsetsOf(spans: Span[], entries: number, result: (AssignedOffset | null)[][]): (AssignedOffset | null)[] {
  const offsets = new Array<AssignedOffset | null>(entries);
  for (const { group, from, start, count } of spans) {
    const { runStarts } = group;
    // The run holding the span's first record, then the next one at each run start.
    let r = 0;
    while (r + 1 < runStarts.length && runStarts[r + 1] <= start) r++;
    for (let k = start; k < start + count; k++) {
      if (r + 1 < runStarts.length && runStarts[r + 1] === k) r++;
      offsets[from + k - start] = result[group.run + r][k - runStarts[r]];
    }
  }
  return offsets;
}
