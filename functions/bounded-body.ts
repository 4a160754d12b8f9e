/**
 * A request body read up to a limit, refused as soon as it passes it (with or without a
 * Content-Length): one reader for the routes that read their bodies themselves (produce, and
 * the SQS endpoint, which must answer in SQS's error shape).
 */

import { ReservoirError } from "../storage/errors.ts";

/** The body's bytes; `tooLarge()` is thrown when it passes `maxBytes`. */
export async function readBoundedBytes(request: Request, maxBytes: number, tooLarge: () => Error): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > maxBytes) throw tooLarge();
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read().catch(() => {
      // The connection failed or closed mid-body: the client's side ended it (a 400, not a 500 to log).
      throw new ReservoirError("invalid_request", `the request body ended after ${size} bytes, before it was whole`);
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
