/**
 * Reusable arrays for request bodies (the Node server's, functions/runtime/node/declared-body.ts)
 * and for segments (the batcher's, storage/log/batcher.ts). V8 counts each new ArrayBuffer towards
 * its external-memory limits: a scavenge once 32 MB of them are young, a major collection once 64
 * MB more were allocated since the last. At max-rate produce every request allocated its body
 * (about 1 MB) and every flush its segment (about 4 MB); arrays taken from here and given back once
 * nothing holds a view of them allocate nothing (docs/benchmarks.md, sessions 12 and 17).
 *
 * An array is lent to one user at a time: `give` takes back only an array `take` lent and not
 * given back since, so an array handed back twice, or one the pool never lent, is ignored.
 */

/** Smaller arrays are not pooled: they are a small part of what is allocated. */
export const MIN_POOLED_BYTES = 64 * 1024;

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly lent = new WeakSet<ArrayBuffer>();
  private freeBytes = 0;
  /** Arrays lent again after they were given back (for metrics and tests). */
  reused = 0;

  /**
   * `maxFreeBytes`: what the pool keeps while nothing uses it; arrays given back past it are
   * dropped. `allocate`: a new array of a size (Node's Buffer.allocUnsafeSlow skips the zeroing).
   */
  constructor(
    private readonly maxFreeBytes: number,
    private readonly allocate: (bytes: number) => ArrayBuffer = (bytes) => new ArrayBuffer(bytes),
  ) {}

  /** An array of `length` bytes, not zeroed: the caller writes every byte before using it. */
  take(length: number): Uint8Array<ArrayBuffer> {
    if (length < MIN_POOLED_BYTES) return new Uint8Array(this.allocate(length), 0, length);
    const size = sizeClass(length);
    let buffer = this.free.get(size)?.pop();
    if (buffer) {
      this.freeBytes -= size;
      this.reused++;
    } else buffer = this.allocate(size);
    this.lent.add(buffer);
    return new Uint8Array(buffer, 0, length);
  }

  /** Takes back an array `take` lent; the caller holds no view of it any more. */
  give(array: Uint8Array): void {
    const buffer = array.buffer as ArrayBuffer;
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
 * The array size a request of `length` bytes gets: rounded up to a quarter of its power of two,
 * so requests of nearly the same length share arrays and no array is more than 25% larger.
 */
export function sizeClass(length: number): number {
  const step = 2 ** Math.max(0, Math.floor(Math.log2(length)) - 2);
  return Math.ceil(length / step) * step;
}
