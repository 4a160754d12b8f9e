/** A stored message as the API shows it: the value comes back in the field it was sent in. */
import { encodeBase64 } from "hono/utils/encode";
import type { SegmentRecord } from "../storage/segment/codec.ts";

const decoder = new TextDecoder();

export function messageJson(topic: string, partition: number, offset: number, r: SegmentRecord) {
  return {
    topic,
    partition,
    offset,
    timestamp: r.timestamp,
    ...(r.key !== undefined && { key: r.key }),
    ...(r.headers && Object.keys(r.headers).length > 0 && { headers: r.headers }),
    ...(r.binary ? { valueBase64: encodeBase64(r.value.slice().buffer) } : { value: decoder.decode(r.value) }),
  };
}
