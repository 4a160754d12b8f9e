/**
 * Encodes a request's text values into a few shared buffers instead of one buffer each: a
 * TextEncoder.encode per 1 KiB value cost more in allocation and garbage collection than the
 * encoding itself. Each value comes back as a view; the segment writer copies it once more.
 */
const CHUNK_BYTES = 256 * 1024;
const encoder = new TextEncoder();

export class Utf8Arena {
  private chunk = new Uint8Array(0);
  private used = 0;

  /** `expectedUnits`: the UTF-16 length of all the text to come (chunks are sized to it). */
  constructor(private expectedUnits: number) {}

  encode(text: string): Uint8Array {
    // A UTF-16 unit never takes more than 3 UTF-8 bytes, so this room always suffices.
    const worst = text.length * 3;
    if (this.chunk.length - this.used < worst) {
      // A small request must not pay for (and then collect) a chunk sized for a large one.
      this.chunk = new Uint8Array(Math.max(worst, Math.min(CHUNK_BYTES, this.expectedUnits)));
      this.used = 0;
    }
    this.expectedUnits -= text.length;
    const { written } = encoder.encodeInto(text, this.chunk.subarray(this.used));
    const view = this.chunk.subarray(this.used, this.used + written);
    this.used += written;
    return view;
  }
}
