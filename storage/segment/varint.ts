/**
 * Unsigned LEB128 varints and zigzag signed varints for integers up to 2^53 - 1 in magnitude.
 * Bitwise operators are used only where they act on the low 32 bits (ToInt32 keeps the low bits
 * of any safe integer exact); anything wider uses division so values beyond 2^32 stay exact.
 *
 * Readers advance a caller-owned cursor instead of returning a pair, so decoding allocates
 * nothing. They throw RangeError on input that is not a canonical varint: running past `end`,
 * more than 8 bytes, a value above Number.MAX_SAFE_INTEGER, or a redundant trailing zero byte.
 */

export interface Cursor {
  pos: number;
}

/** Bytes needed for a safe non-negative integer (2^53 - 1 takes 8). */
export function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  if (n < 0x800000000) return 5;
  if (n < 0x40000000000) return 6;
  if (n < 0x2000000000000) return 7;
  return 8;
}

/** Writes `n` (a safe non-negative integer) at `pos`; returns the position after it. */
export function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  while (n > 0x7fffffff) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  while (n > 0x7f) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

export function readVarint(buf: Uint8Array, cursor: Cursor, end: number): number {
  let pos = cursor.pos;
  if (pos >= end) throw new RangeError("varint runs past the end");
  let b = buf[pos++];
  if (b < 0x80) {
    cursor.pos = pos;
    return b;
  }
  let value = b & 0x7f;
  let scale = 0x80;
  for (let i = 1; ; i++) {
    if (pos >= end) throw new RangeError("varint runs past the end");
    b = buf[pos++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (b === 0) throw new RangeError("varint is not canonical (trailing zero byte)");
      break;
    }
    if (i === 7) throw new RangeError("varint longer than 8 bytes");
    scale *= 0x80;
  }
  if (value > Number.MAX_SAFE_INTEGER) throw new RangeError("varint exceeds 2^53 - 1");
  cursor.pos = pos;
  return value;
}

// Zigzag maps v to 2v (v >= 0) or -2v - 1 (v < 0). That number can reach 2^54, which a double
// cannot hold exactly when odd, so it is never formed: its low byte carries the sign bit and the
// low 6 bits of the magnitude m (= v or -v - 1), and the rest is the plain varint of m / 64.

/** Bytes needed for a safe integer of either sign. */
export function zigzagSize(v: number): number {
  const m = v < 0 ? -v - 1 : v;
  return m < 0x40 ? 1 : 1 + varintSize(Math.floor(m / 0x40));
}

/** Writes the safe integer `v` at `pos`; returns the position after it. */
export function writeZigzag(buf: Uint8Array, pos: number, v: number): number {
  const sign = v < 0 ? 1 : 0;
  const m = sign ? -v - 1 : v;
  if (m < 0x40) {
    buf[pos] = (m << 1) | sign;
    return pos + 1;
  }
  buf[pos] = 0x80 | ((m & 0x3f) << 1) | sign;
  return writeVarint(buf, pos + 1, Math.floor(m / 0x40));
}

export function readZigzag(buf: Uint8Array, cursor: Cursor, end: number): number {
  const pos = cursor.pos;
  if (pos >= end) throw new RangeError("varint runs past the end");
  const b = buf[pos];
  cursor.pos = pos + 1;
  let m = (b >>> 1) & 0x3f;
  if (b & 0x80) {
    const high = readVarint(buf, cursor, end);
    if (high === 0) throw new RangeError("varint is not canonical (trailing zero byte)");
    m += high * 0x40;
    if (m > Number.MAX_SAFE_INTEGER) throw new RangeError("zigzag varint exceeds 2^53 - 1");
  }
  return b & 1 ? -m - 1 : m;
}
