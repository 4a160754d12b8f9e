/**
 * A request body read up to a limit, refused as soon as it passes it (with or without a
 * Content-Length): one reader for the routes that read their bodies themselves (produce, and
 * the SQS endpoint, which must answer in SQS's error shape).
 */

import { ReservoirError } from "../storage/errors.ts";
import type { Runtime } from "./runtime.ts";

/** The client's connection failed or closed mid-body: its side ended it (a 400, not a 500 to log). */
const cutShort = (size: number) => new ReservoirError("invalid_request", `the request body ended after ${size} bytes, before it was whole`);

/**
 * The body's bytes; `tooLarge()` is thrown when it passes `maxBytes`. A declared length bounds
 * the body (the HTTP parser reads no further): the runtime may read it itself (`declaredBody`;
 * Node: one copy), else it is read whole, which on Node skips web streams. Only a body of
 * unknown length is counted as it streams in.
 */
export async function readBoundedBytes(
  request: Request,
  maxBytes: number,
  tooLarge: () => Error,
  declaredBody?: Runtime["declaredBody"],
): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > maxBytes) throw tooLarge();
  if (declared >= 0 && !request.headers.has("transfer-encoding")) {
    const direct = await declaredBody?.(request, declared);
    if (direct) return direct;
    return new Uint8Array(
      await request.arrayBuffer().catch(() => {
        throw cutShort(0);
      }),
    );
  }
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read().catch(() => {
      throw cutShort(size);
    });
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
