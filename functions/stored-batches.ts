/**
 * A receive's answer in batches, for clients that ask for it with
 * `Accept: application/vnd.reservoir.batches`: the leases and a list of chunks on one JSON line,
 * then each chunk's bytes as stored, one after another. The server neither decodes nor encodes a
 * message (the raw form still made an object and a line of JSON per message); the client decodes
 * the batches (segment format v1, docs/batches.md), as Kafka clients decode record batches.
 *
 *   head  = {"leases": [{partition, firstOffset, lastOffset, receipt, attempt}],
 *            "chunks": [{partition, baseOffset, skip, count, byteLength, headers?}]}
 *   body  = head · "\n" · bytes of chunk 0 · bytes of chunk 1 · …
 *
 * A chunk is whole batches; its messages are `count` records after the first `skip`, at offsets
 * `baseOffset`…, each with `headers` (when present) over its stored ones. The received messages
 * are those at the leases' offsets: a chunk may hold others, which are not the client's to handle.
 */
import { z } from "@hono/zod-openapi";
import type { StoredChunk } from "../storage/log/reader.ts";
import { accepts } from "./media-type.ts";
import { headThenBytes } from "./raw-messages.ts";

export const BATCHES_TYPE = "application/vnd.reservoir.batches";

/** True when the Accept header names the answer in batches (with a non-zero quality). */
export function acceptsBatches(accept: string | undefined): boolean {
  return accepts(accept, BATCHES_TYPE);
}

/** The answer: `fields` (the leases) and the chunks on one line, then the chunks' bytes. */
export function batchesBody(chunks: StoredChunk[], fields: Record<string, unknown>): Uint8Array<ArrayBuffer> {
  const head = {
    ...fields,
    chunks: chunks.map((c) => ({
      partition: c.partition,
      baseOffset: c.baseOffset,
      skip: c.skip,
      count: c.count,
      byteLength: c.bytes.byteLength,
      ...(c.headers && { headers: c.headers }),
    })),
  };
  return headThenBytes(
    head,
    chunks.map((c) => c.bytes),
  );
}

/** How the answer in batches appears in the OpenAPI document, beside application/json. */
export const batchesContent = {
  [BATCHES_TYPE]: {
    schema: z.string().openapi({
      format: "binary",
      description:
        "Asked for with `Accept: application/vnd.reservoir.batches`: one line of JSON, " +
        '`{"leases": [{partition, firstOffset, lastOffset, receipt, attempt}], "chunks": [{partition, baseOffset, skip, ' +
        "count, byteLength, headers?}]}`, then a newline, then each chunk's bytes in order. A chunk is whole stored batches " +
        "(segment format v1, see docs/batches.md); its messages are `count` records after the first `skip`, at offsets " +
        "baseOffset onwards, with the chunk's `headers` over their own. The received messages are those at the leases' " +
        "offsets; others a chunk holds are not leased to this receive. No per-message receipts: settle with the lease " +
        "receipts.",
    }),
  },
};

/** How a produce body in batches appears in the OpenAPI document (functions/produce/batches.ts). */
export const produceBatchesContent = {
  [BATCHES_TYPE]: {
    schema: z.string().openapi({
      format: "binary",
      description:
        "Record batches of segment format v1 (docs/batches.md), back to back: version 1, flags 0, a matching CRC32C, " +
        "an empty topic id, and records whose timestamp deltas are 0 (every message takes the server's time). A batch's " +
        "partition field places its records; 4294967295 leaves the choice to the server, as for keyless JSON messages " +
        "(keyless records only). No idempotency keys, delays or transactions (JSON has them). Answered 200 " +
        '`{"batches": [{partition, baseOffset, count}]}`, one per batch in order.',
    }),
  },
};
