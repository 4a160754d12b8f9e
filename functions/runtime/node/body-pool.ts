/**
 * Reusable arrays for request bodies of declared length. At max-rate produce every request
 * allocates its body (about 1 MB), and V8 counts each new ArrayBuffer towards its external-memory
 * limits: a scavenge once 32 MB of them are young, a major collection once 64 MB more were
 * allocated since the last. Bodies taken from here and given back once nothing holds a view of
 * them allocate nothing. Same run, 1 KiB messages on Postgres + S3: the server's CPU per message
 * −14%, its collector threads' the most (docs/benchmarks.md, session 12).
 *
 * An array is lent to one body at a time: `give` takes back only an array `take` lent and not
 * given back since, so a body handed back twice, or one the pool never lent, is ignored.
 */

/** Smaller bodies are not pooled: V8 keeps small arrays on its heap, where they cost little. */
export const MIN_POOLED_BYTES = 64 * 1024;

export class BodyPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly lent = new WeakSet<ArrayBuffer>();
  private freeBytes = 0;

  /** `maxFreeBytes`: what the pool keeps while no body uses it; arrays given back past it are dropped. */
  constructor(private readonly maxFreeBytes: number) {}

  /** An array of `length` bytes, not zeroed: the caller writes every byte before using it. */
  take(length: number): Uint8Array {
    if (length < MIN_POOLED_BYTES) return new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
    const size = sizeClass(length);
    let buffer = this.free.get(size)?.pop();
    if (buffer) this.freeBytes -= size;
    else buffer = Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer;
    this.lent.add(buffer);
    return new Uint8Array(buffer, 0, length);
  }

  /** Takes back an array `take` lent; the caller holds no view of it any more. */
  give(body: Uint8Array): void {
    const buffer = body.buffer as ArrayBuffer;
    if (!this.lent.has(buffer)) return;
    this.lent.delete(buffer);
    if (this.freeBytes + buffer.byteLength > this.maxFreeBytes) return;
    const list = this.free.get(buffer.byteLength);
    if (list) list.push(buffer);
    else this.free.set(buffer.byteLength, [buffer]);
    this.freeBytes += buffer.byteLength;
  }

  /** Bytes kept for reuse (for tests). */
  get idleBytes(): number {
    return this.freeBytes;
  }
}

/**
 * The array size a body of `length` bytes gets: rounded up to a quarter of its power of two, so
 * bodies of nearly the same length share arrays and no array is more than 25% larger than its body.
 */
export function sizeClass(length: number): number {
  const step = 2 ** Math.max(0, Math.floor(Math.log2(length)) - 2);
  return Math.ceil(length / step) * step;
}
