/**
 * Compaction (API.md "Storage lifecycle (operator)"): small segments of a tenant are merged into
 * one larger object holding only their live byte ranges, copied verbatim (whole batches, CRCs
 * and all), then the index rows are switched to it in one transaction. Reads return the same
 * bytes before, during and after: a reader holding a row of the old segment reads the old
 * object, which stays until it is unreferenced for the grace period (collect.ts).
 *
 * Bounded per pass: at most `maxSegmentsIn` segments are looked at, and each output object holds
 * at most about `targetBytes`. Restart safety: the new object is PUT before the switch; a crash
 * in between leaves an object no row names (an orphan: orphans.ts deletes it), and the switch
 * is one transaction, abandoned if it would finish later than half the grace period after the
 * PUT started (as a flush is), so the orphan pass can never delete an object it will name.
 */
import { sql } from "drizzle-orm";
import { retryConflicts, rows, type Database } from "../metadata/db.ts";
import { sqlArray } from "../metadata/sql-array.ts";
import type { ObjectStore } from "../objects/object-store.ts";
import { SEGMENT_HEADER_BYTES } from "../segment/codec.ts";
import { newSegmentId, segmentObjectKey } from "../log/segment-ids.ts";
import { unavailable } from "../errors.ts";

export interface CompactionReport {
  segmentsIn: number;
  segmentsOut: number;
  bytes: number;
}

export interface CompactionOptions {
  /** Output objects grow up to about this size; segments under half of it are "small". */
  targetBytes: number;
  graceSeconds: number;
  now: () => number;
  maxSegmentsIn?: number;
}

interface Candidate {
  id: string;
  tenant_id: string;
  object_key: string;
}

/** A maximal run of bytes of one old segment that some index row names. */
interface Span {
  segmentId: string;
  objectKey: string;
  offset: number;
  length: number;
}

const GET_CONCURRENCY = 8;

/** "RSVR", format 1, three reserved zero bytes: storage/segment/codec.ts. */
const HEADER = new Uint8Array([0x52, 0x53, 0x56, 0x52, 1, 0, 0, 0]);

export async function compactSmallSegments(db: Database, store: ObjectStore, options: CompactionOptions): Promise<CompactionReport> {
  const report: CompactionReport = { segmentsIn: 0, segmentsOut: 0, bytes: 0 };
  const candidates = await rows<Candidate>(
    db,
    sql`SELECT id, tenant_id, object_key FROM segments
        WHERE unreferenced_at IS NULL AND byte_length < ${Math.floor(options.targetBytes / 2)}
        ORDER BY tenant_id, id LIMIT ${options.maxSegmentsIn ?? 1000}`,
  );
  const byTenant = new Map<string, Candidate[]>();
  for (const c of candidates) byTenant.set(c.tenant_id, [...(byTenant.get(c.tenant_id) ?? []), c]);
  for (const [tenantId, segments] of byTenant) {
    const spans = await liveSpans(db, segments);
    // Cut the tenant's spans into outputs of about targetBytes, never splitting a segment.
    let group: Span[] = [];
    let groupBytes = 0;
    const flush = async () => {
      const ids = new Set(group.map((s) => s.segmentId));
      if (ids.size >= 2) {
        const written = await merge(db, store, tenantId, group, options);
        if (written) {
          report.segmentsIn += ids.size;
          report.segmentsOut++;
          report.bytes += written;
        }
      }
      group = [];
      groupBytes = 0;
    };
    for (const segment of segments) {
      const own = spans.filter((s) => s.segmentId === segment.id);
      const bytes = own.reduce((sum, s) => sum + s.length, 0);
      if (groupBytes > 0 && groupBytes + bytes > options.targetBytes) await flush();
      group.push(...own);
      groupBytes += bytes;
    }
    await flush();
  }
  return report;
}

/** The byte ranges index rows name in `segments`, overlapping or touching ones joined. */
async function liveSpans(db: Database, segments: Candidate[]): Promise<Span[]> {
  const keys = new Map(segments.map((s) => [s.id, s.object_key]));
  const ranges = await rows<{ segment_id: string; byte_offset: number; byte_length: number }>(
    db,
    sql`SELECT DISTINCT segment_id, byte_offset, byte_length FROM segment_index
        WHERE segment_id = ANY(${sqlArray(
          segments.map((s) => s.id),
          "text",
        )})
        ORDER BY segment_id, byte_offset`,
  );
  const spans: Span[] = [];
  for (const r of ranges) {
    const last = spans.at(-1);
    const end = r.byte_offset + r.byte_length;
    if (last && last.segmentId === r.segment_id && r.byte_offset <= last.offset + last.length) {
      last.length = Math.max(last.length, end - last.offset);
    } else {
      spans.push({ segmentId: r.segment_id, objectKey: keys.get(r.segment_id)!, offset: r.byte_offset, length: r.byte_length });
    }
  }
  return spans;
}

/** Writes one object of `spans` and switches the rows to it; its size, or 0 if abandoned. */
async function merge(db: Database, store: ObjectStore, tenantId: string, spans: Span[], options: CompactionOptions): Promise<number> {
  const parts: Uint8Array[] = new Array(spans.length);
  let next = 0;
  // A few GETs at a time: a group may hold a thousand tiny spans.
  const fetcher = async () => {
    for (let i = next++; i < spans.length; i = next++) {
      const s = spans[i];
      try {
        parts[i] = await store.get(s.objectKey, { offset: s.offset, length: s.length });
      } catch (error) {
        throw unavailable(`compaction could not read ${s.objectKey}`, error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(GET_CONCURRENCY, spans.length) }, fetcher));
  const size = SEGMENT_HEADER_BYTES + spans.reduce((sum, s) => sum + s.length, 0);
  const body = new Uint8Array(size);
  body.set(HEADER, 0);
  const newOffsets: number[] = [];
  let at = SEGMENT_HEADER_BYTES;
  parts.forEach((part, i) => {
    body.set(part, at);
    newOffsets.push(at);
    at += spans[i].length;
  });
  const started = options.now();
  const segmentId = newSegmentId(started);
  const objectKey = segmentObjectKey(tenantId, segmentId);
  await store.put(objectKey, body);
  const deadline = started + (options.graceSeconds * 1000) / 2;
  const switched = await retryConflicts(() =>
    db.transaction(async (tx) => {
      await tx.execute(sql`
        INSERT INTO segments (id, tenant_id, object_key, byte_length) VALUES (${segmentId}, ${tenantId}, ${objectKey}, ${size})`);
      // A row inside a span moves by the span's shift; rows retention removed meanwhile are gone.
      const moved = await rows<{ n: number }>(
        tx,
        sql`WITH m AS (
              SELECT * FROM unnest(${sqlArray(
                spans.map((s) => s.segmentId),
                "text",
              )}, ${sqlArray(
                spans.map((s) => s.offset),
                "int",
              )}, ${sqlArray(
                spans.map((s) => s.length),
                "int",
              )}, ${sqlArray(newOffsets, "int")}) AS m(seg, off, len, new_off)),
            u AS (
              UPDATE segment_index i SET segment_id = ${segmentId}, byte_offset = m.new_off + (i.byte_offset - m.off)
              FROM m
              WHERE i.segment_id = m.seg AND i.byte_offset >= m.off AND i.byte_offset + i.byte_length <= m.off + m.len
              RETURNING 1)
            SELECT count(*) AS n FROM u`,
      );
      if (options.now() > deadline) throw new CompactionDeadlineError();
      return moved[0]?.n ?? 0;
    }),
  ).catch((error: unknown) => {
    if (error instanceof CompactionDeadlineError) return 0; // the object is an orphan now
    throw error;
  });
  return switched > 0 ? size : 0;
}

class CompactionDeadlineError extends Error {}
