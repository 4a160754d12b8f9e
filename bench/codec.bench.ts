/**
 * Segment codec throughput: `npx tsx bench/codec.bench.ts`.
 * 4 MiB segments of 1 KiB messages (short ASCII keys, a header on every tenth), in batches of
 * 100 records spread over a few partitions; plus CRC32C against @aws-crypto/crc32c.
 */
import { crc32c as awsCrc32c } from "@aws-crypto/crc32c";
import { crc32c } from "../storage/segment/crc32c.ts";
import { decodeSegment, SegmentWriter, type SegmentRecord } from "../storage/segment/codec.ts";

const SEGMENT_BYTES = 4 << 20;
const MESSAGE_BYTES = 1024;
const BATCH_RECORDS = 100;

function makeRecords(count: number): SegmentRecord[] {
  const now = Date.now();
  const records: SegmentRecord[] = [];
  for (let i = 0; i < count; i++) {
    const value = new Uint8Array(MESSAGE_BYTES);
    for (let j = 0; j < value.length; j++) value[j] = (i * 31 + j * 7) & 0xff;
    records.push({
      key: `user-${(i * 7919) % 100_000}`,
      value,
      binary: i % 2 === 0,
      headers: i % 10 === 0 ? { "content-type": "application/json" } : undefined,
      timestamp: now + i,
    });
  }
  return records;
}

function encode(records: SegmentRecord[]): Uint8Array {
  const writer = new SegmentWriter();
  for (let i = 0; i < records.length; i += BATCH_RECORDS) {
    writer.appendBatch(`topic-${i % 3}`, (i / BATCH_RECORDS) % 8, records.slice(i, i + BATCH_RECORDS));
  }
  return writer.finish();
}

/** Runs `fn` for about `ms` after a warm-up; returns MB/s given `bytes` processed per call. */
function measure(bytes: number, ms: number, fn: () => unknown): number {
  for (let i = 0; i < 5; i++) fn();
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    fn();
    calls++;
    elapsed = performance.now() - start;
  }
  return (bytes * calls) / 1e6 / (elapsed / 1000);
}

const perRecord = MESSAGE_BYTES + 16;
const records = makeRecords(Math.floor(SEGMENT_BYTES / perRecord));
const segment = encode(records);
const mb = (n: number) => `${n.toFixed(0).padStart(6)} MB/s`;
const msgs = (rate: number) => `${((rate * 1e6) / (segment.length / records.length) / 1e3).toFixed(0)}k msg/s`;

console.log(`segment: ${(segment.length / 2 ** 20).toFixed(2)} MiB, ${records.length} records of ${MESSAGE_BYTES} B`);
const enc = measure(segment.length, 2000, () => encode(records));
console.log(`encode  ${mb(enc)}  (${msgs(enc)})`);
const dec = measure(segment.length, 2000, () => decodeSegment(segment));
console.log(`decode  ${mb(dec)}  (${msgs(dec)})`);
const ours = measure(segment.length, 2000, () => crc32c(segment));
console.log(`crc32c  ${mb(ours)}  (this repo, slice-by-8)`);
const aws = measure(segment.length, 2000, () => awsCrc32c(segment));
console.log(`crc32c  ${mb(aws)}  (@aws-crypto/crc32c)`);
