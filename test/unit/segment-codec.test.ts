import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeBatch,
  decodeBatches,
  decodeSegment,
  type DecodedBatch,
  encodedRecordSize,
  SEGMENT_HEADER_BYTES,
  SEGMENT_MAGIC,
  SegmentCorruptError,
  type SegmentRecord,
  SegmentWriter,
} from "../../storage/segment/codec.ts";
import { crc32c } from "../../storage/segment/crc32c.ts";
import { type Cursor, readVarint, readZigzag, varintSize, writeVarint, writeZigzag, zigzagSize } from "../../storage/segment/varint.ts";

interface BatchInput {
  topicId: string;
  partition: number;
  records: SegmentRecord[];
}

const text = fc.string({ unit: "binary", maxLength: 24 });
// Half of 2^53 each way, so that any two differ by at most MAX_SAFE_INTEGER (a batch's limit).
const timestamp = fc.oneof(
  fc.integer({ min: 1_600_000_000_000, max: 1_600_000_100_000 }).map((n) => n + 100_000_000_000),
  fc.maxSafeInteger().map((n) => Math.trunc(n / 2) + 0), // + 0: -0 comes back as 0
  fc.constantFrom(0, -1, -8.64e15 / 2, 8.64e15 / 2),
);
const record: fc.Arbitrary<SegmentRecord> = fc.record(
  {
    key: fc.oneof(text, fc.constantFrom("", "\uFEFFbom", "k\u00e9y-\u{1F600}")),
    value: fc.uint8Array({ maxLength: 300 }),
    binary: fc.boolean(),
    headers: fc.dictionary(text, text, { maxKeys: 4 }),
    timestamp,
  },
  { requiredKeys: ["value", "binary", "timestamp"] },
);
const batch: fc.Arbitrary<BatchInput> = fc.record({
  topicId: text,
  partition: fc.oneof(fc.nat(), fc.constant(0xffffffff)),
  records: fc.array(record, { maxLength: 12 }),
});

/** What decoding should give back: no key stays no key, empty headers become none. */
function expected(input: BatchInput): unknown {
  return {
    topicId: input.topicId,
    partition: input.partition,
    records: input.records.map((r) => ({
      key: r.key,
      value: Array.from(r.value),
      binary: r.binary,
      headers: r.headers && Object.keys(r.headers).length > 0 ? { ...r.headers } : undefined,
      timestamp: r.timestamp,
    })),
  };
}

function comparable(decoded: DecodedBatch): unknown {
  return {
    ...decoded,
    records: decoded.records.map((r) => ({ ...r, value: Array.from(r.value) })),
  };
}

function write(batches: BatchInput[]) {
  const writer = new SegmentWriter();
  const ranges = batches.map((b) => writer.appendBatch(b.topicId, b.partition, b.records));
  const size = writer.byteLength;
  const segment = writer.finish();
  expect(segment.length).toBe(size);
  // The whole object's checksum, built from the batches' without reading the segment again.
  expect(writer.checksum).toBe(crc32c(segment));
  return { segment, ranges };
}

const rangeOf = (segment: Uint8Array, r: { byteOffset: number; byteLength: number }) =>
  segment.subarray(r.byteOffset, r.byteOffset + r.byteLength);

const enc = new TextEncoder();
const sample: BatchInput = {
  topicId: "orders",
  partition: 3,
  records: [
    { key: "k1", value: enc.encode("hello"), binary: false, timestamp: 1_700_000_000_000 },
    { value: new Uint8Array([0, 255]), binary: true, headers: { h: "v" }, timestamp: 1_699_999_999_000 },
    { key: "", value: new Uint8Array(0), binary: false, headers: {}, timestamp: 1_700_000_000_500 },
  ],
};

/** Recomputes a batch's CRC so that structural checks, not the CRC, must catch a change. */
function reseal(bytes: Uint8Array): Uint8Array {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(4, crc32c(bytes.subarray(8)));
  return bytes;
}

describe("segment codec round trip", () => {
  it("round-trips random batches through decodeSegment, decodeBatch and decodeBatches", () => {
    fc.assert(
      fc.property(fc.array(batch, { maxLength: 6 }), (batches) => {
        const { segment, ranges } = write(batches);
        const want = batches.map(expected);
        expect(decodeSegment(segment).map(comparable)).toEqual(want);
        let next = SEGMENT_HEADER_BYTES;
        ranges.forEach((r, i) => {
          expect(r.byteOffset).toBe(next);
          next += r.byteLength;
          expect(comparable(decodeBatch(rangeOf(segment, r)))).toEqual(want[i]);
        });
        expect(next).toBe(segment.length);
        if (ranges.length >= 2) {
          const [first, second] = ranges;
          const both = segment.subarray(first.byteOffset, second.byteOffset + second.byteLength);
          expect(decodeBatches(both).map(comparable)).toEqual(want.slice(0, 2));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("encodedRecordSize sums with the batch overhead to the batch's byteLength", () => {
    fc.assert(
      fc.property(batch, (b) => {
        const overhead = new SegmentWriter().appendBatch(b.topicId, b.partition, []).byteLength;
        const first = b.records[0]?.timestamp ?? 0;
        const sum = b.records.reduce((n, r) => n + encodedRecordSize(r, first), 0);
        expect(new SegmentWriter().appendBatch(b.topicId, b.partition, b.records).byteLength).toBe(overhead + sum);
      }),
    );
  });

  it("keeps no key distinct from an empty key, and a leading BOM", () => {
    const records: SegmentRecord[] = [
      { value: new Uint8Array(0), binary: false, timestamp: 0 },
      { key: "", value: new Uint8Array(0), binary: false, timestamp: 0 },
      { key: "\uFEFF", value: new Uint8Array(0), binary: false, timestamp: 0 },
    ];
    const [decoded] = decodeSegment(write([{ topicId: "", partition: 0, records }]).segment);
    expect(decoded.records.map((r) => r.key)).toEqual([undefined, "", "\uFEFF"]);
    expect("key" in records[0] && records[0].key !== undefined).toBe(false);
  });

  it("keeps a header named __proto__ as an ordinary header", () => {
    const headers = JSON.parse('{"__proto__":"x","a":"b"}') as Record<string, string>;
    const records = [{ value: new Uint8Array(1), binary: false, headers, timestamp: 5 }];
    const [decoded] = decodeSegment(write([{ topicId: "t", partition: 0, records }]).segment);
    const got = decoded.records[0].headers!;
    expect(Object.keys(got)).toEqual(["__proto__", "a"]);
    expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
    expect(JSON.stringify(got)).toBe('{"__proto__":"x","a":"b"}');
  });

  it("stores a lone surrogate as U+FFFD and measures it as such", () => {
    const r: SegmentRecord = { key: "a\uD800b\uDC00", value: new Uint8Array(0), binary: false, timestamp: 0 };
    const w = new SegmentWriter();
    const { byteLength } = w.appendBatch("t", 0, [r]);
    const overhead = new SegmentWriter().appendBatch("t", 0, []).byteLength;
    expect(byteLength).toBe(overhead + encodedRecordSize(r));
    expect(decodeSegment(w.finish())[0].records[0].key).toBe("a\uFFFDb\uFFFD");
  });

  it("handles extreme timestamps, each batch within 2^53 - 1 of its first", () => {
    const at = (timestamp: number): SegmentRecord => ({ value: new Uint8Array(0), binary: false, timestamp });
    const { MAX_SAFE_INTEGER: max, MIN_SAFE_INTEGER: min } = Number;
    const batches = [
      { topicId: "a", partition: 0, records: [at(max), at(0), at(max - 1)] },
      { topicId: "b", partition: 1, records: [at(min), at(-1), at(min + 1)] },
      { topicId: "c", partition: 2, records: [at(0), at(max), at(min)] },
    ];
    const decoded = decodeSegment(write(batches).segment);
    expect(decoded.map((b) => b.records.map((r) => r.timestamp))).toEqual(batches.map((b) => b.records.map((r) => r.timestamp)));
  });

  it("rejects invalid input at appendBatch and leaves the writer usable", () => {
    const w = new SegmentWriter();
    const ok = (timestamp: number): SegmentRecord => ({
      key: "k",
      value: new Uint8Array(3),
      binary: false,
      headers: { a: "b" },
      timestamp,
    });
    expect(() => w.appendBatch("t", 0, [ok(Number.MAX_SAFE_INTEGER), ok(Number.MIN_SAFE_INTEGER)])).toThrow(RangeError);
    expect(() => w.appendBatch("t", 0, [ok(1), ok(1.5)])).toThrow(RangeError);
    expect(() => w.appendBatch("t", 0, [ok(2 ** 53)])).toThrow(RangeError);
    expect(() => w.appendBatch("t", -1, [ok(1)])).toThrow(RangeError);
    expect(() => w.appendBatch("t", 2 ** 32, [ok(1)])).toThrow(RangeError);
    expect(() => w.appendBatch("t", 0.5, [ok(1)])).toThrow(RangeError);
    expect(w.byteLength).toBe(SEGMENT_HEADER_BYTES);
    w.appendBatch("t", 7, [ok(1), ok(2)]);
    const decoded = decodeSegment(w.finish());
    expect(decoded).toHaveLength(1);
    expect(decoded[0].records.map((r) => r.timestamp)).toEqual([1, 2]);
  });

  it("writes an empty segment and empty batches", () => {
    const w = new SegmentWriter();
    expect(w.byteLength).toBe(SEGMENT_HEADER_BYTES);
    const empty = w.finish();
    expect(w.checksum).toBe(crc32c(empty));
    expect(Array.from(empty.subarray(0, 4))).toEqual(Array.from(SEGMENT_MAGIC));
    expect(decodeSegment(empty)).toEqual([]);
    expect(decodeBatches(new Uint8Array(0))).toEqual([]);
    const { segment } = write([{ topicId: "t", partition: 9, records: [] }]);
    expect(decodeSegment(segment)).toEqual([{ topicId: "t", partition: 9, records: [] }]);
  });

  it("refuses appends after finish and a second finish, and a checksum before finish", () => {
    const w = new SegmentWriter();
    expect(() => w.checksum).toThrow(/before finish/);
    w.finish();
    expect(() => w.finish()).toThrow();
    expect(() => w.appendBatch("t", 0, [])).toThrow();
  });

  it("returns values as views of the input, not copies", () => {
    const { segment, ranges } = write([sample]);
    const value = decodeBatch(rangeOf(segment, ranges[0])).records[0].value;
    expect(value.buffer).toBe(segment.buffer);
  });

  it("detects a caller changing records between appendBatch and finish", () => {
    const records: SegmentRecord[] = [{ key: "k", value: new Uint8Array(1), binary: false, timestamp: 0 }];
    const w = new SegmentWriter();
    w.appendBatch("t", 0, records);
    records[0].key = "longer key";
    expect(() => w.finish()).toThrow(/changed/);
    const w2 = new SegmentWriter();
    w2.appendBatch("t", 0, records);
    records[0].value = new Uint8Array(2);
    expect(() => w2.finish()).toThrow(/changed/);
  });
});

describe("segment codec: batches of records already encoded (a produce in batches)", () => {
  /** The records' bytes of a batch appendBatch wrote: past its header and topic id. */
  const recordsOf = (segment: Uint8Array, r: { byteOffset: number; byteLength: number }, topicId: string) => {
    const topicBytes = enc.encode(topicId).length;
    return segment.subarray(r.byteOffset + 26 + varintSize(topicBytes) + topicBytes, r.byteOffset + r.byteLength);
  };

  it("writes the same bytes and checksum as appendBatch, beside batches appendBatch writes", () => {
    fc.assert(
      fc.property(
        // At least one record each, as a produce in batches has (an empty batch's time is 0).
        fc.array(
          batch.filter((b) => b.records.length > 0),
          { minLength: 1, maxLength: 4 },
        ),
        timestamp,
        fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        (batches, ts, encodeIt) => {
          // Every record at one time: the deltas are 0, as a produce in batches sends them.
          const same = batches.map((b) => ({ ...b, records: b.records.map((r) => ({ ...r, timestamp: ts })) }));
          const plain = write(same);
          const mixed = new SegmentWriter();
          for (const [i, b] of same.entries()) {
            if (!encodeIt[i]) {
              mixed.appendBatch(b.topicId, b.partition, b.records);
              continue;
            }
            const records = recordsOf(plain.segment, plain.ranges[i], b.topicId).slice();
            mixed.appendEncodedBatch(b.topicId, b.partition, ts, records, b.records.length, crc32c(records));
          }
          const segment = mixed.finish();
          expect(Array.from(segment)).toEqual(Array.from(plain.segment));
          expect(mixed.checksum).toBe(crc32c(segment));
          expect(decodeSegment(segment).map(comparable)).toEqual(same.map(expected));
        },
      ),
      { seed: 20261206, numRuns: 200 },
    );
  });

  it("uses the records' CRC it is given: a wrong one makes a batch that fails its check", () => {
    const { segment, ranges } = write([{ ...sample, records: sample.records.map((r) => ({ ...r, timestamp: 5 })) }]);
    const records = recordsOf(segment, ranges[0], sample.topicId).slice();
    const w = new SegmentWriter();
    w.appendEncodedBatch(sample.topicId, sample.partition, 5, records, sample.records.length, crc32c(records) ^ 1);
    expect(() => decodeSegment(w.finish())).toThrow(SegmentCorruptError);
  });
});

describe("segment codec into a reused array", () => {
  it("writes every byte of the array finish() is given: a dirty one gives the same segment as a new one", () => {
    const batches = (w: SegmentWriter) => {
      w.appendBatch("topic-a", 0, [{ key: "k", value: new Uint8Array([1, 2, 3]), binary: false, timestamp: 1_700_000_000_000 }]);
      w.appendBatch("topic-b", 7, [
        { value: new Uint8Array(300).fill(9), binary: true, timestamp: 1_700_000_000_500, headers: { h: "v" } },
        { value: new Uint8Array(0), binary: false, timestamp: 1_699_999_999_000 },
      ]);
      return w;
    };
    const fresh = batches(new SegmentWriter());
    const expected = fresh.finish();
    const dirty = new Uint8Array(expected.length + 100).fill(0xff);
    const reused = batches(new SegmentWriter());
    const segment = reused.finish((n) => dirty.subarray(0, n));
    expect(segment.buffer).toBe(dirty.buffer);
    expect(segment).toEqual(expected);
    expect(reused.checksum).toBe(fresh.checksum);
    expect(decodeSegment(segment)).toEqual(decodeSegment(expected));
  });
});

describe("segment codec corruption", () => {
  it("rejects every single-byte change anywhere in a small batch (exhaustive)", () => {
    const { segment, ranges } = write([sample]);
    const original = rangeOf(segment, ranges[0]).slice();
    for (let i = 0; i < original.length; i++) {
      for (let mask = 1; mask < 256; mask++) {
        const bytes = original.slice();
        bytes[i] ^= mask;
        expect(() => decodeBatch(bytes), `byte ${i} ^ ${mask}`).toThrow(SegmentCorruptError);
      }
    }
  });

  it("rejects every single-bit flip anywhere in a small multi-batch segment (exhaustive)", () => {
    const second = { ...sample, topicId: "payments", partition: 0 };
    const { segment } = write([sample, second, { topicId: "x", partition: 1, records: [] }]);
    for (let i = 0; i < segment.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const bytes = segment.slice();
        bytes[i] ^= 1 << bit;
        expect(() => decodeSegment(bytes), `byte ${i} bit ${bit}`).toThrow(SegmentCorruptError);
      }
    }
  });

  it("rejects any single-byte change in larger random batches", () => {
    fc.assert(
      fc.property(
        batch.filter((b) => b.records.length > 0),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (b, at, mask) => {
          const { segment, ranges } = write([b]);
          const bytes = rangeOf(segment, ranges[0]).slice();
          bytes[at % bytes.length] ^= mask;
          expect(() => decodeBatch(bytes)).toThrow(SegmentCorruptError);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("rejects every truncation and trailing bytes", () => {
    const { segment, ranges } = write([sample, sample]);
    const one = rangeOf(segment, ranges[0]);
    for (let n = 0; n < one.length; n++) expect(() => decodeBatch(one.subarray(0, n))).toThrow(SegmentCorruptError);
    for (let n = 0; n < segment.length; n++) {
      // A bare header, or one whole batch, is a valid shorter segment.
      if (n === SEGMENT_HEADER_BYTES || n === ranges[1].byteOffset) continue;
      expect(() => decodeSegment(segment.subarray(0, n)), `length ${n}`).toThrow(SegmentCorruptError);
    }
    for (const extra of [1, 3, 4, 27]) {
      const longer = new Uint8Array(segment.length + extra);
      longer.set(segment);
      expect(() => decodeSegment(longer)).toThrow(SegmentCorruptError);
      const batchPlus = new Uint8Array(one.length + extra);
      batchPlus.set(one);
      expect(() => decodeBatch(batchPlus)).toThrow(/length field/);
      expect(() => decodeBatches(batchPlus)).toThrow(SegmentCorruptError);
    }
  });

  it("rejects a wrong magic, version or reserved byte", () => {
    const { segment } = write([sample]);
    const patched = (i: number, v: number) => {
      const bytes = segment.slice();
      bytes[i] = v;
      return bytes;
    };
    expect(() => decodeSegment(patched(0, 0x51))).toThrow(/magic/);
    expect(() => decodeSegment(patched(3, 0))).toThrow(/magic/);
    expect(() => decodeSegment(patched(4, 2))).toThrow(/version 2/);
    expect(() => decodeSegment(patched(7, 1))).toThrow(/reserved/);
    expect(() => decodeSegment(new TextEncoder().encode("PK\u0003\u0004 not a segment"))).toThrow(/magic/);
  });

  it("checks structure even when the CRC is right", () => {
    const { segment, ranges } = write([sample]);
    const original = rangeOf(segment, ranges[0]).slice();
    const edit = (f: (b: Uint8Array, v: DataView) => void) => {
      const bytes = original.slice();
      f(bytes, new DataView(bytes.buffer));
      return reseal(bytes);
    };
    expect(() => decodeBatch(edit((b) => (b[8] = 2)))).toThrow(/batch version 2/);
    expect(() => decodeBatch(edit((b) => (b[9] = 1)))).toThrow(/compression codec 1/);
    expect(() => decodeBatch(edit((b) => (b[9] = 0x80)))).toThrow(/flags/);
    expect(() => decodeBatch(edit((_, v) => v.setUint32(14, 2)))).toThrow(/trailing bytes/);
    expect(() => decodeBatch(edit((_, v) => v.setUint32(14, 4)))).toThrow(SegmentCorruptError);
    expect(() => decodeBatch(edit((_, v) => v.setUint32(14, 0xffffffff)))).toThrow(/cannot fit/);
    expect(() => decodeBatch(edit((_, v) => v.setInt32(18, 0x7fffffff)))).toThrow(/safe integer/);
    // The first record starts right after "orders": its length, then its attributes.
    const firstRecord = 26 + 1 + "orders".length;
    expect(() => decodeBatch(edit((b) => (b[firstRecord + 1] |= 4)))).toThrow(/attributes/);
    expect(() => decodeBatch(edit((b) => b[firstRecord]++))).toThrow(SegmentCorruptError);
    expect(() => decodeBatch(edit((b) => b[firstRecord]--))).toThrow(SegmentCorruptError);
    // The key "k1": make its first byte an invalid UTF-8 lead byte.
    expect(() => decodeBatch(edit((b) => (b[firstRecord + 4] = 0xff)))).toThrow(/UTF-8/);
  });

  it("only ever throws SegmentCorruptError on arbitrary bytes, sealed or not", () => {
    const onlyCorrupt = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        expect(error).toBeInstanceOf(SegmentCorruptError);
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 27, maxLength: 200 }), (body) => {
        onlyCorrupt(() => decodeBatches(body));
        const header = new Uint8Array([...SEGMENT_MAGIC, 1, 0, 0, 0]);
        onlyCorrupt(() => decodeSegment(new Uint8Array([...header, ...body])));
        const sealed = body.slice();
        const view = new DataView(sealed.buffer);
        view.setUint32(0, sealed.length);
        sealed[8] = 1;
        sealed[9] = 0;
        onlyCorrupt(() => decodeBatch(reseal(sealed)));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("varint", () => {
  const safe = fc.oneof(fc.maxSafeNat(), fc.nat(300), fc.constantFrom(0, 127, 128, 2 ** 31, 2 ** 32, 2 ** 53 - 1));

  it("round-trips unsigned values up to 2^53 - 1 with the predicted size", () => {
    fc.assert(
      fc.property(safe, (n) => {
        const buf = new Uint8Array(10);
        const end = writeVarint(buf, 1, n);
        expect(end - 1).toBe(varintSize(n));
        const cursor: Cursor = { pos: 1 };
        expect(readVarint(buf, cursor, end)).toBe(n);
        expect(cursor.pos).toBe(end);
      }),
    );
  });

  it("round-trips signed values with zigzag, matching the standard encoding where it is exact", () => {
    const signed = fc.oneof(
      fc.maxSafeInteger(),
      fc.integer({ min: -300, max: 300 }),
      fc.constantFrom(-(2 ** 53 - 1), 2 ** 53 - 1, -64, 63, -65, 64),
    );
    fc.assert(
      fc.property(signed, (v) => {
        const buf = new Uint8Array(10);
        const end = writeZigzag(buf, 0, v);
        expect(end).toBe(zigzagSize(v));
        const cursor: Cursor = { pos: 0 };
        expect(readZigzag(buf, cursor, end)).toBe(v);
        expect(cursor.pos).toBe(end);
        if (Math.abs(v) < 2 ** 52) {
          const plain = new Uint8Array(10);
          const plainEnd = writeVarint(plain, 0, v >= 0 ? 2 * v : -2 * v - 1);
          expect(Array.from(buf.subarray(0, end))).toEqual(Array.from(plain.subarray(0, plainEnd)));
        }
      }),
    );
  });

  it("rejects truncated, overlong, non-canonical and too-large varints", () => {
    const read =
      (bytes: number[], f = readVarint) =>
      () =>
        f(new Uint8Array(bytes), { pos: 0 }, bytes.length);
    expect(read([])).toThrow(RangeError);
    expect(read([0x80])).toThrow(RangeError);
    expect(read([0x80, 0x00])).toThrow(/canonical/);
    expect(read([0x81, 0x00], readZigzag)).toThrow(/canonical/);
    expect(read([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x10])).toThrow(/2\^53/);
    expect(read([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f])()).toBe(2 ** 53 - 1);
    expect(read([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])).toThrow(/8 bytes/);
  });
});

describe("decoding without the CRC check (a flush's own bytes)", () => {
  it("skips only the CRC: a bad CRC passes, a bad length does not", () => {
    const { segment, ranges } = write([sample]);
    const batch = rangeOf(segment, ranges[0]).slice();
    batch[4] ^= 0xff; // the stored CRC
    expect(() => decodeBatches(batch)).toThrow(SegmentCorruptError);
    expect(comparable(decodeBatches(batch, { verifyCrc: false })[0])).toEqual(comparable(decodeBatches(rangeOf(segment, ranges[0]))[0]));
    const truncated = batch.subarray(0, batch.length - 1);
    expect(() => decodeBatches(truncated, { verifyCrc: false })).toThrow(SegmentCorruptError);
  });
});
