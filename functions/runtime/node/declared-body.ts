/**
 * A request body of declared length read straight from Node's IncomingMessage into one array of
 * that length. Through the Request, @hono/node-server concatenates the chunks into one Buffer and
 * `arrayBuffer()` copies that again: two body-sized allocations and copies per request where one
 * does. At max-rate produce (1 MB bodies) the ArrayBuffers a request allocates are what starts
 * V8's major collections (docs/benchmarks.md, session 10), so each copy less is fewer of them;
 * and the array comes from a pool (storage/buffer-pool.ts), to which the route gives it back once the
 * batcher no longer needs it (`release`).
 */
import type { Readable } from "node:stream";
import { ReservoirError } from "../../../storage/errors.ts";
import { BufferPool } from "../../../storage/buffer-pool.ts";
import { unzeroedArray } from "./unzeroed.ts";

export interface DeclaredBodies {
  /** Remembers the IncomingMessage a Request was made from (the Node listener calls it per request). */
  track(request: Request, incoming: Readable): void;
  /** The Runtime's `declaredBody`: undefined where the body was already read (then the Request reads it). */
  read(request: Request, length: number): Promise<Uint8Array> | undefined;
  /** The Runtime's `releaseBody`: a body `read` gave, which nothing holds a view of any more. */
  release(body: Uint8Array): void;
}

/** Arrays the pool keeps while idle: the bodies of 32 produce requests of 1 MiB in flight at once. */
const POOLED_BYTES = 48 * 1024 * 1024;

export function declaredBodies(): DeclaredBodies {
  const incomings = new WeakMap<Request, Readable>();
  const pool = new BufferPool(POOLED_BYTES, unzeroedArray);
  return {
    track: (request, incoming) => void incomings.set(request, incoming),
    read(request, length) {
      const incoming = incomings.get(request);
      if (!incoming || incoming.readableDidRead) return undefined;
      return readInto(incoming, pool, length);
    },
    release: (body) => pool.give(body),
  };
}

function readInto(incoming: Readable, pool: BufferPool, length: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    // Closed before the route came to read it (the client went away while its key was checked).
    if (incoming.destroyed) return reject(new ReservoirError("invalid_request", "the connection closed before the request body was read"));
    // Not zeroed (a pooled array holds an earlier body's bytes): every byte is written before
    // the body is used, or it is not used and goes back to the pool.
    const body = pool.take(length);
    let at = 0;
    const settle = (error?: ReservoirError) => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onCut);
      incoming.off("close", onCut);
      if (error) {
        pool.give(body);
        reject(error);
      } else resolve(body);
    };
    const short = () => new ReservoirError("invalid_request", `the request body ended after ${at} of its ${length} declared bytes`);
    const onData = (chunk: Buffer) => {
      // Node's HTTP parser passes no more than the Content-Length; a longer body would be a bug there.
      if (at + chunk.length > length)
        return settle(new ReservoirError("invalid_request", "the request body is longer than its Content-Length"));
      body.set(chunk, at);
      at += chunk.length;
    };
    const onEnd = () => settle(at === length ? undefined : short());
    // The connection failed or closed mid-body: the client's side ended it (a 400, not a 500 to log).
    const onCut = () => settle(short());
    incoming.on("data", onData);
    incoming.on("end", onEnd);
    incoming.on("error", onCut);
    incoming.on("close", onCut);
  });
}
