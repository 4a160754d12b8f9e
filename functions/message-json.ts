/** A stored message as the API shows it: the value comes back in the field it was sent in. */
import { encodeBase64 } from "hono/utils/encode";
import type { SegmentRecord } from "../storage/segment/codec.ts";

// ignoreBOM: a value that starts with U+FEFF keeps it (a plain TextDecoder drops it).
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

export interface MessageJson {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  value?: string;
  valueBase64?: string;
}

// Built field by field rather than by spreads: a receive builds a thousand of these at a time.
export function messageJson(topic: string, partition: number, offset: number, r: SegmentRecord): MessageJson {
  const out: MessageJson = { topic, partition, offset, timestamp: r.timestamp };
  if (r.key !== undefined) out.key = r.key;
  if (r.headers) {
    for (const _ in r.headers) {
      out.headers = r.headers;
      break;
    }
  }
  if (r.binary) out.valueBase64 = encodeBase64(r.value.slice().buffer);
  else out.value = decoder.decode(r.value);
  return out;
}
