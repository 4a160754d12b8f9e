/**
 * Producing in batches (`Content-Type: application/vnd.reservoir.batches`): messages encoded
 * here as record batches of segment format v1, which the server stores as they are
 * (docs/batches.md, "Producing in batches"). Written from that description, with no server code.
 */
import { crc32c } from "@aws-crypto/crc32c";

/** The partition field that leaves the choice to the server (keyless messages only). */
export const ANY_PARTITION = 0xffff_ffff;

export interface BatchMessageIn {
  /** Text (stored as UTF-8), or bytes (stored as they are, returned as valueBase64 in JSON). */
  value: string | Uint8Array;
  key?: string;
  headers?: Record<string, string>;
}

export interface ProduceBatch {
  /** Where every message of the batch goes; absent: the server's choice (then no message may have a key). */
  partition?: number;
  messages: BatchMessageIn[];
}

/** Where a batch's messages went: offsets baseOffset .. baseOffset + count − 1. */
export interface ProducedRange {
  partition: number;
  baseOffset: number;
  count: number;
}

const encoder = new TextEncoder();
const FIXED_BYTES = 26;

/** The request body for `batches`: one record batch each, back to back. */
export function encodeProduceBatches(batches: ProduceBatch[]): Uint8Array<ArrayBuffer> {
  const encoded = batches.map(encodeBatch);
  const body = new Uint8Array(encoded.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of encoded) {
    body.set(b, at);
    at += b.length;
  }
  return body;
}

function encodeBatch({ partition = ANY_PARTITION, messages }: ProduceBatch): Uint8Array {
  if (partition === ANY_PARTITION && messages.some((m) => m.key !== undefined)) {
    throw new Error("a batch with keyed messages names its partition");
  }
  const records = messages.map(encodeRecord);
  const length = FIXED_BYTES + 1 + records.reduce((n, r) => n + r.length, 0);
  const batch = new Uint8Array(length);
  const view = new DataView(batch.buffer);
  view.setUint32(0, length);
  batch[8] = 1; // version; flags (9) 0
  view.setUint32(10, partition);
  view.setUint32(14, messages.length);
  // firstTimestamp (18..25) 0: the server's time is every message's; topic id (26) empty.
  let at = FIXED_BYTES + 1;
  for (const r of records) {
    batch.set(r, at);
    at += r.length;
  }
  view.setUint32(4, crc32c(batch.subarray(8)));
  return batch;
}

/** length · attributes · timestamp delta 0 · [key] · value · headers */
function encodeRecord(m: BatchMessageIn): Uint8Array {
  const binary = typeof m.value !== "string";
  const parts: Uint8Array[] = [new Uint8Array([(binary ? 1 : 0) | (m.key !== undefined ? 2 : 0), 0])];
  if (m.key !== undefined) parts.push(...sized(encoder.encode(m.key)));
  parts.push(...sized(typeof m.value === "string" ? encoder.encode(m.value) : m.value));
  const headers = Object.entries(m.headers ?? {});
  parts.push(varint(headers.length));
  for (const [name, value] of headers) parts.push(...sized(encoder.encode(name)), ...sized(encoder.encode(value)));
  const rest = parts.reduce((n, p) => n + p.length, 0);
  const head = varint(rest);
  const record = new Uint8Array(head.length + rest);
  record.set(head, 0);
  let at = head.length;
  for (const p of parts) {
    record.set(p, at);
    at += p.length;
  }
  return record;
}

const sized = (bytes: Uint8Array) => [varint(bytes.length), bytes];

/** Unsigned LEB128. */
function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}
