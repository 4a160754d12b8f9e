/** What a message weighs in usage (API.md): the UTF-8 key, the value bytes, the UTF-8 header names and values. */
import { type SegmentRecord, utf8Length } from "../segment/codec.ts";

/** What returning `records` to a reader or receiver adds to its tenant's usage. */
export function outgoing(records: Pick<SegmentRecord, "key" | "value" | "headers">[]): { messagesOut: number; bytesOut: number } {
  return { messagesOut: records.length, bytesOut: records.reduce((n, r) => n + meteredBytes(r), 0) };
}

export function meteredBytes(record: Pick<SegmentRecord, "key" | "value" | "headers">): number {
  let bytes = record.value.byteLength;
  if (record.key !== undefined) bytes += utf8Length(record.key);
  if (record.headers) for (const name in record.headers) bytes += utf8Length(name) + utf8Length(record.headers[name]);
  return bytes;
}
