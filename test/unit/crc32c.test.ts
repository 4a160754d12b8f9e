import { crc32c as awsCrc32c } from "@aws-crypto/crc32c";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { crc32c, crc32cCombine, crc32cJs, useNativeCrc32c } from "../../storage/segment/crc32c.ts";
import { nativeCrc32c } from "../../functions/runtime/node/native-crc32c.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const whole = new Uint8Array(a.length + b.length);
  whole.set(a);
  whole.set(b, a.length);
  return whole;
}

describe("crc32c", () => {
  it("matches published vectors", () => {
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(ascii("123456789"))).toBe(0xe3069283);
    // RFC 3720 (iSCSI) B.4
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });

  it("agrees with @aws-crypto/crc32c for every length 0..100 and every alignment", () => {
    const base = Uint8Array.from({ length: 200 }, (_, i) => (i * 2654435761) >>> 24);
    for (let offset = 0; offset < 8; offset++) {
      for (let length = 0; length <= 100; length++) {
        const bytes = base.subarray(offset, offset + length);
        expect(crc32c(bytes)).toBe(awsCrc32c(bytes));
      }
    }
  });

  it("agrees with @aws-crypto/crc32c on random input, lengths and offsets", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(), fc.nat(), (data, a, b) => {
        const start = data.length === 0 ? 0 : a % data.length;
        const bytes = data.subarray(start, start + (b % (data.length - start + 1)));
        expect(crc32c(bytes)).toBe(awsCrc32c(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it("continues a previous checksum passed as initial", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }), (a, b) => {
        expect(crc32c(b, crc32c(a))).toBe(crc32c(concat(a, b)));
      }),
    );
  });

  it("combines two checksums into the one of the concatenation, without the bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.uint8Array({ maxLength: 600 }), (a, b) => {
        expect(crc32cCombine(awsCrc32c(a), awsCrc32c(b), b.length)).toBe(awsCrc32c(concat(a, b)));
      }),
      { numRuns: 300 },
    );
    // Lengths whose bits reach far (the square-and-multiply over 2^k bytes), and an empty second part.
    const big = Uint8Array.from({ length: (1 << 20) + 77 }, (_, i) => (i * 2654435761) >>> 24);
    for (const at of [0, 1, 4096, 262_151, 1 << 20, big.length]) {
      expect(crc32cCombine(awsCrc32c(big.subarray(0, at)), awsCrc32c(big.subarray(at)), big.length - at)).toBe(awsCrc32c(big));
    }
    expect(() => crc32cCombine(1, 2, -1)).toThrow(RangeError);
  });

  it("returns an unsigned 32-bit number", () => {
    const value = crc32c(ascii("123456789"));
    expect(value).toBeGreaterThan(0x7fffffff);
    expect(Number.isInteger(value)).toBe(true);
  });
});

describe("the native CRC32C Node hands over", () => {
  it("is found here, and agrees with the JavaScript one on views at any offset, and when continued", async () => {
    const native = await nativeCrc32c();
    expect(native).toBeDefined();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat(), fc.nat(), fc.nat(), (data, a, b, split) => {
        const start = data.length === 0 ? 0 : a % data.length;
        const bytes = data.subarray(start, start + (b % (data.length - start + 1)));
        expect(native!(bytes)).toBe(crc32cJs(bytes));
        const at = bytes.length === 0 ? 0 : split % bytes.length;
        expect(native!(bytes.subarray(at), native!(bytes.subarray(0, at)))).toBe(crc32cJs(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it("replaces the JavaScript one once handed over", async () => {
    let calls = 0;
    const native = (await nativeCrc32c())!;
    useNativeCrc32c((bytes, initial) => {
      calls++;
      return native(bytes, initial);
    });
    expect(crc32c(ascii("123456789"))).toBe(0xe3069283);
    expect(calls).toBe(1);
  });
});
