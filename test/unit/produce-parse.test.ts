import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseProduceBody } from "../../functions/produce/parse.ts";
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

describe("produce body validation", () => {
  it("gives what the schema gives: the same messages when it accepts, invalid_request when it refuses", () => {
    let accepted = 0;
    fc.assert(
      fc.property(body, (raw) => {
        const text = JSON.stringify(raw);
        const expected = ProduceBody.safeParse(JSON.parse(text));
        if (expected.success && expected.data.messages.length > 0) {
          expect(parseProduceBody(text, "json")).toEqual(expected.data);
          accepted++;
        } else {
          expect(() => parseProduceBody(text, "json")).toThrow(ReservoirError);
        }
      }),
      { numRuns: 3000, seed: 5 },
    );
    // The generators must reach valid bodies often enough for the comparison to mean something.
    expect(accepted).toBeGreaterThan(100);
  });
});
