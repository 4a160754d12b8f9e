/**
 * The digests SQS returns, computed as SQS computes them: MD5OfMessageBody / MD5OfBody is the
 * MD5 of the body's UTF-8 bytes; MD5OfMessageAttributes is the MD5 of the attributes sorted by
 * name, each encoded as: name (4-byte big-endian length + UTF-8), DataType (the same), one
 * transport byte (1 for String and Number types, 2 for Binary), value (4-byte length + the
 * UTF-8 of a string value or the bytes of a binary one).
 */
import { md5 } from "@noble/hashes/legacy.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";

export interface MessageAttributeValue {
  DataType: string;
  StringValue?: string;
  /** Binary values as bytes (the JSON protocol carries them base64-encoded). */
  BinaryValue?: Uint8Array;
}

export function md5OfBody(body: string): string {
  return bytesToHex(md5(utf8ToBytes(body)));
}

export function md5OfAttributes(attributes: Record<string, MessageAttributeValue>): string {
  const parts: Uint8Array[] = [];
  const withLength = (bytes: Uint8Array) => {
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, bytes.byteLength);
    parts.push(length, bytes);
  };
  // SQS sorts the names by their UTF-8 bytes (Java's String order differs only beyond the BMP).
  const names = Object.keys(attributes).sort((a, b) => compareBytes(utf8ToBytes(a), utf8ToBytes(b)));
  for (const name of names) {
    const value = attributes[name];
    withLength(utf8ToBytes(name));
    withLength(utf8ToBytes(value.DataType));
    if (value.BinaryValue !== undefined) {
      parts.push(Uint8Array.of(2));
      withLength(value.BinaryValue);
    } else {
      parts.push(Uint8Array.of(1));
      withLength(utf8ToBytes(value.StringValue ?? ""));
    }
  }
  const size = parts.reduce((n, p) => n + p.byteLength, 0);
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  return bytesToHex(md5(all));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
