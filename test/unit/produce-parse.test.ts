import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ProduceRequestBody, parseProduceBody } from "../../functions/produce/parse.ts";
import { scanProduceBody } from "../../functions/produce/scan-body.ts";
import { ProduceBody } from "../../functions/schemas.ts";
import { ReservoirError } from "../../storage/errors.ts";

// Messages the schema accepts, and the same with one field replaced by a near miss.
const anything = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 }));
const validFields = {
  key: fc.string(),
  headers: fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
  partition: fc.nat(),
  idempotencyKey: fc.string({ minLength: 1, maxLength: 256 }),
  delaySeconds: fc.nat(),
  deliverAt: fc.nat(),
};
const validMessage = fc.tuple(fc.record(validFields, { requiredKeys: [] }), fc.boolean(), fc.string()).map(([fields, binary, value]) =>
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range starts at NUL on purpose: btoa takes exactly the chars U+0000–U+00FF
  binary ? { ...fields, valueBase64: btoa(value.replace(/[^\x00-\xff]/g, "")) } : { ...fields, value },
);
const nearMiss = fc.oneof(
  fc.record({
    name: fc.constantFrom("value", "valueBase64", "key", "headers", "partition", "idempotencyKey", "delaySeconds", "deliverAt", "extra"),
    to: anything,
  }),
  fc.constantFrom(
    { name: "headers", to: JSON.parse('{"__proto__":"x"}') },
    { name: "headers", to: { a: 1 } },
    { name: "partition", to: -1 },
    { name: "partition", to: 2 ** 60 },
    { name: "idempotencyKey", to: "" },
    { name: "idempotencyKey", to: "k".repeat(257) },
    { name: "delaySeconds", to: 1.5 },
    { name: "value", to: undefined },
  ),
);
const message = fc.oneof(
  { arbitrary: validMessage, weight: 4 },
  { arbitrary: fc.tuple(validMessage, nearMiss).map(([m, miss]) => ({ ...m, [miss.name]: miss.to })), weight: 1 },
  { arbitrary: anything, weight: 1 },
);
const body = fc.oneof(
  {
    arbitrary: fc.record(
      { messages: fc.array(message, { maxLength: 4 }), transactionId: fc.oneof(fc.string(), anything) },
      { requiredKeys: ["messages"] },
    ),
    weight: 4,
  },
  { arbitrary: fc.record({ messages: fc.array(message, { maxLength: 2 }), other: anything }), weight: 1 },
  { arbitrary: anything, weight: 1 },
);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A parsed body with each scanned value (bytes) turned back into the string JSON.parse gives. */
const asParsed = (body: ProduceRequestBody) => ({
  ...body,
  messages: body.messages.map(({ valueBytes, ...m }) => (valueBytes ? { ...m, value: decoder.decode(valueBytes) } : m)),
});

/** The schema's verdict on a JSON text: the body, or undefined when it refuses. */
function schemaOf(text: string): ProduceRequestBody | undefined {
  const expected = ProduceBody.safeParse(JSON.parse(text));
  return expected.success && expected.data.messages.length > 0 ? expected.data : undefined;
}

/** The same bytes at every alignment a Uint32Array view can meet (the scan reads 4 at a time). */
function atOffsets(bytes: Uint8Array): Uint8Array[] {
  return [0, 1, 2, 3].map((shift) => {
    const room = new Uint8Array(bytes.length + shift);
    room.set(bytes, shift);
    return room.subarray(shift);
  });
}

describe("produce body validation", () => {
  it("gives what the schema gives: the same messages when it accepts, invalid_request when it refuses", () => {
    let accepted = 0;
    let scanned = 0;
    fc.assert(
      fc.property(body, fc.constantFrom(undefined, 2, "\t"), (raw, indent) => {
        const text = JSON.stringify(raw, null, indent);
        const expected = schemaOf(text);
        for (const bytes of atOffsets(encoder.encode(text))) {
          if (expected) {
            expect(asParsed(parseProduceBody(bytes, "json"))).toEqual(expected);
            if (scanProduceBody(bytes)) scanned++;
          } else {
            expect(() => parseProduceBody(bytes, "json")).toThrow(ReservoirError);
            // The byte scan never accepts what the schema refuses.
            expect(scanProduceBody(bytes)).toBeUndefined();
          }
        }
        if (expected) accepted++;
      }),
      { numRuns: 3000, seed: 5 },
    );
    // The generators must reach valid bodies often enough for the comparison to mean something,
    // and printable ASCII bodies often enough for the byte scan to be the path compared.
    expect(accepted).toBeGreaterThan(100);
    expect(scanned).toBeGreaterThan(100);
  });

  it("scans printable ASCII bodies from their bytes, values as views of the body", () => {
    const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) });
    const plainMessage = fc
      .record(
        {
          key: printable,
          headers: fc.dictionary(printable, printable, { maxKeys: 3 }),
          partition: fc.nat(),
          idempotencyKey: fc.string({ minLength: 1, maxLength: 256, unit: "binary-ascii" }).filter((k) => /^[\x20-\x7e]+$/.test(k)),
          delaySeconds: fc.nat(),
          deliverAt: fc.nat(),
        },
        { requiredKeys: [] },
      )
      .chain((fields) =>
        fc.oneof(
          printable.map((value) => ({ ...fields, value })),
          fc.base64String().map((valueBase64) => ({ ...fields, valueBase64 })),
        ),
      );
    fc.assert(
      fc.property(
        fc.array(plainMessage, { minLength: 1, maxLength: 5 }),
        fc.option(printable),
        fc.constantFrom(undefined, 1, "\t"),
        (messages, transactionId, indent) => {
          // Without a backslash or quote in any string (JSON.stringify would escape those).
          const raw = transactionId === null ? { messages } : { messages, transactionId };
          const text = JSON.stringify(raw, null, indent);
          fc.pre(!text.includes("\\"));
          const expected = schemaOf(text);
          fc.pre(expected !== undefined && !Object.hasOwn(expected.messages[0].headers ?? {}, "__proto__"));
          for (const bytes of atOffsets(encoder.encode(text))) {
            const got = scanProduceBody(bytes);
            expect(got).toBeDefined();
            expect(asParsed(got!)).toEqual(expected);
            for (const m of got!.messages) if (m.valueBytes) expect(m.valueBytes.buffer).toBe(bytes.buffer);
          }
        },
      ),
      { numRuns: 2000, seed: 7 },
    );
  });

  it("finds the end of a long value, and every byte it must leave to the generic path, wherever it falls", () => {
    // The scan reads several words at a step: each length up to 70, with the byte that stops it
    // at each position and each alignment, so that every position in a step is met.
    const stoppers = [0x5c, 0x09, 0x00, 0x1f, 0x80, 0xc3, 0xff];
    for (let length = 0; length <= 70; length++) {
      const value = Array.from({ length }, (_, i) => String.fromCharCode(0x20 + ((i * 7) % 95)).replace(/["\\]/g, "a")).join("");
      for (const bytes of atOffsets(encoder.encode(`{"messages":[{"value":"${value}","key":"k"}]}`))) {
        const got = scanProduceBody(bytes);
        expect(got && decoder.decode(got.messages[0].valueBytes), `length ${length}`).toBe(value);
        expect(got?.messages[0].key).toBe("k");
      }
      for (let at = 0; at < length; at++) {
        for (const stopper of stoppers) {
          const text = encoder.encode(`{"messages":[{"value":"${value}"}]}`);
          const valueAt = text.indexOf(0x3a, 12) + 2;
          text[valueAt + at] = stopper;
          for (const bytes of atOffsets(text)) expect(scanProduceBody(bytes), `length ${length}, byte ${stopper} at ${at}`).toBeUndefined();
        }
      }
    }
  });

  it("leaves to JSON.parse and the schema every body it does not plainly understand", () => {
    const cases = [
      '{"messages":[{"value":"a\\"b"}]}', // an escape
      '{"messages":[{"value":"caf\u00e9"}]}', // an escape of a letter
      '{"messages":[{"value":"café"}]}', // non-ASCII
      '\ufeff{"messages":[{"value":"x"}]}', // a byte order mark
      '{"messages":[{"value":"tab\there"}]}', // a raw tab inside a string: malformed
      '{"messages":[{"value":"x","partition":1.0}]}', // 1 to JSON.parse, not a plain integer here
      '{"messages":[{"value":"x","partition":1e0}]}',
      '{"messages":[{"value":"x","partition":-0}]}',
      '{"messages":[{"value":"x","partition":01}]}', // malformed
      '{"messages":[{"value":"x","partition":1234567890123456}]}', // more digits than the scan reads
      '{"messages":[{"value":"x","key":null}]}',
      '{"messages":[{"value":"x","value":"y"}]}', // a repeated key: JSON.parse keeps the last
      '{"messages":[{"value":"x","headers":{"a":"1","a":"2"}}]}',
      '{"messages":[{"value":"x","headers":{"__proto__":"1"}}]}',
      '{"messages":[{"value":"x","extra":1}]}',
      '{"messages":[{"value":"x","valueBase64":"eA=="}]}',
      '{"messages":[{}]}',
      '{"messages":[]}',
      '{"messages":[{"value":"x"}],"messages":[{"value":"y"}]}',
      '{"messages":[{"value":"x"}]} trailing',
      '{"messages":[{"value":"x"},]}',
      '{"messages":[{"value":"x"}]',
      '{"messages":[{"value":"x"}],"transactionId":7}',
      '{"messages":[{"value":"x","idempotencyKey":""}]}',
      `{"messages":[{"value":"x","idempotencyKey":"${"k".repeat(257)}"}]}`,
      `{"messages":[${Array.from({ length: 1001 }, () => '{"value":"x"}').join(",")}]}`,
      '{"messages":[{"value":"unterminated}]}',
      "",
    ];
    for (const text of cases) {
      const bytes = encoder.encode(text);
      expect(scanProduceBody(bytes), text).toBeUndefined();
      const generic = (() => {
        try {
          return { body: parseProduceBody(bytes, "json") };
        } catch (error) {
          return { code: (error as ReservoirError).code };
        }
      })();
      // Whatever the generic path says is what the schema says.
      let expected: ProduceRequestBody | undefined;
      try {
        expected = schemaOf(decoder.decode(bytes));
      } catch {
        expected = undefined;
      }
      if (generic.body) expect(generic.body, text).toEqual(expected);
      else expect(generic.code, text).toMatch(/^(invalid_request|malformed_json|too_many_messages)$/);
    }
  });
});
