/**
 * The raw form of a receive's or a read's answer, for clients that ask for it with
 * `Accept: application/vnd.reservoir.messages`: the JSON answer with each message's value taken
 * out, one line, then the values' bytes as stored, one after another. In JSON, each value of a
 * 1,000-message answer was decoded to a string, escaped by JSON.stringify and encoded back to
 * UTF-8 (by the server), then parsed again (by the client): most of a receive's CPU. Here the
 * bytes are copied as they are, and a client slices them by `valueLength`.
 *
 *   head  = the JSON answer, where each message has `valueLength` (bytes) instead of `value` /
 *           `valueBase64`, and `"binary": true` when it was produced with valueBase64
 *   body  = head · "\n" · value bytes of message 0 · value bytes of message 1 · …
 */
import { z } from "@hono/zod-openapi";
import type { SegmentRecord } from "../storage/segment/codec.ts";
import { accepts } from "./media-type.ts";

export const RAW_MESSAGES_TYPE = "application/vnd.reservoir.messages";

const encoder = new TextEncoder();

/** True when the Accept header names the raw form (with a non-zero quality). */
export function acceptsRaw(accept: string | undefined): boolean {
  return accepts(accept, RAW_MESSAGES_TYPE);
}

export interface RawMessage {
  partition: number;
  offset: number;
  record: SegmentRecord;
  receipt?: string;
  attempt?: number;
}

/** The raw answer: `fields` (the answer's other members) first, then `messages`, then the values. */
export function rawMessagesBody(topic: string, messages: RawMessage[], fields: Record<string, unknown> = {}): Uint8Array<ArrayBuffer> {
  const head = {
    messages: messages.map((m) => {
      const r = m.record;
      const out: Record<string, unknown> = { topic, partition: m.partition, offset: m.offset, timestamp: r.timestamp };
      if (r.key !== undefined) out.key = r.key;
      if (r.headers && Object.keys(r.headers).length > 0) out.headers = r.headers;
      out.valueLength = r.value.length;
      if (r.binary) out.binary = true;
      if (m.receipt !== undefined) out.receipt = m.receipt;
      if (m.attempt !== undefined) out.attempt = m.attempt;
      return out;
    }),
    ...fields,
  };
  return headThenBytes(
    head,
    messages.map((m) => m.record.value),
  );
}

/** A body of the binary forms: `head` as JSON on one line, then `parts` one after another. */
export function headThenBytes(head: unknown, parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const headBytes = encoder.encode(`${JSON.stringify(head)}\n`);
  let size = headBytes.length;
  for (const part of parts) size += part.byteLength;
  const body = new Uint8Array(size);
  body.set(headBytes, 0);
  let at = headBytes.length;
  for (const part of parts) {
    body.set(part, at);
    at += part.byteLength;
  }
  return body;
}

/** How the raw form appears in the OpenAPI document, beside application/json. */
export const rawMessagesContent = {
  [RAW_MESSAGES_TYPE]: {
    schema: z.string().openapi({
      format: "binary",
      description:
        "Asked for with `Accept: application/vnd.reservoir.messages`: the JSON answer on one line, each message with " +
        '`valueLength` (bytes) instead of `value`/`valueBase64` (and `"binary": true` if it was produced with ' +
        "valueBase64), then a newline, then every message's value bytes in message order.",
    }),
  },
};
