/**
 * A new ArrayBuffer of `bytes` that Node does not zero (Buffer.allocUnsafeSlow: an array of its
 * own, not a slice of Node's small-buffer pool), for arrays whose every byte is written before
 * it is read: pooled request bodies and segments.
 */
export const unzeroedArray = (bytes: number): ArrayBuffer => Buffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer;
