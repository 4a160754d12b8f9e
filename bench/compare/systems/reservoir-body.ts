/**
 * The body of a Reservoir produce request, `{"messages":[{"value":"..."},...]}`, written straight
 * into one Buffer. The benchmark client shares the machine's cores with the server, so the
 * generic path (a string per message through TextDecoder, then JSON.stringify of 1,000 objects,
 * then UTF-8 encoding of the result) would take CPU from the server that the other systems'
 * clients, which send bytes as they are, do not. The server still gets ordinary JSON: payloads
 * that are not known to be JSON-safe text are checked one by one (about as costly as the copy),
 * and one whose bytes would need escaping (or are not ASCII) goes through JSON.stringify.
 */
import { crc32c } from "@node-rs/crc32";
import type { Payloads } from "../system.ts";

const HEAD = Buffer.from('{"messages":[');
const OPEN = Buffer.from('{"value":"');
const CLOSE = Buffer.from('"}');
const TAIL = Buffer.from("]}");
/** Bytes a JSON string cannot hold as they are: controls, quote, backslash, and non-ASCII. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching the control bytes JSON must escape is the point
const NEEDS_ESCAPING = /[\x00-\x1f"\\\x7f-\xff]/;
const decoder = new TextDecoder();

/** One native scan (latin1 maps each byte to one char, so the regex sees every byte). */
const isPlainText = (p: Uint8Array) => !NEEDS_ESCAPING.test(Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString("latin1"));

/** Messages first .. first + n − 1 as one produce request body. */
export function produceBody(payload: Payloads, first: number, n: number): Buffer {
  const values: (Uint8Array | Buffer)[] = new Array(n);
  let size = HEAD.length + TAIL.length + Math.max(0, n - 1);
  for (let j = 0; j < n; j++) {
    const p = payload(first + j);
    values[j] = payload.jsonSafeText || isPlainText(p) ? p : Buffer.from(JSON.stringify(decoder.decode(p)).slice(1, -1));
    size += OPEN.length + values[j].byteLength + CLOSE.length;
  }
  const body = Buffer.allocUnsafe(size);
  let at = HEAD.copy(body, 0);
  for (let j = 0; j < n; j++) {
    if (j > 0) body[at++] = 0x2c; // ,
    at += OPEN.copy(body, at);
    body.set(values[j], at);
    at += values[j].byteLength;
    at += CLOSE.copy(body, at);
  }
  TAIL.copy(body, at);
  return body;
}

/**
 * Messages first .. first + n − 1 as one produce body in batches (docs/batches.md, "Producing
 * in batches"): one record batch for the server's choice of partition, written straight into one
 * Buffer as the JSON body is. Values go as text when the payload is JSON-safe text (as the JSON
 * body sends them), else as bytes.
 */
export function produceBatchesBody(payload: Payloads, first: number, n: number): Buffer {
  const values: Uint8Array[] = new Array(n);
  let size = BATCH_HEAD_BYTES;
  for (let j = 0; j < n; j++) {
    const v = payload(first + j);
    values[j] = v;
    const rest = 3 + varintSize(v.byteLength) + v.byteLength; // attributes, delta, value, header count
    size += varintSize(rest) + rest;
  }
  const body = Buffer.allocUnsafe(size);
  body.fill(0, 0, BATCH_HEAD_BYTES);
  body.writeUInt32BE(size, 0);
  body[8] = 1; // version
  body.writeUInt32BE(0xffff_ffff, 10); // the server's choice of partition
  body.writeUInt32BE(n, 14);
  const attributes = payload.jsonSafeText ? 0 : 1;
  let at = BATCH_HEAD_BYTES;
  for (let j = 0; j < n; j++) {
    const v = values[j];
    at = writeVarint(body, at, 3 + varintSize(v.byteLength) + v.byteLength);
    body[at++] = attributes;
    body[at++] = 0; // timestamp delta
    at = writeVarint(body, at, v.byteLength);
    body.set(v, at);
    at += v.byteLength;
    body[at++] = 0; // no headers
  }
  body.writeUInt32BE(crc32c(body.subarray(8)), 4);
  return body;
}

/** Length, CRC, version, flags, partition, record count, first timestamp, empty topic id. */
const BATCH_HEAD_BYTES = 27;
const varintSize = (n: number) => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x20_0000 ? 3 : 4);
function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[at++] = n;
  return at;
}
