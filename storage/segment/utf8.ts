/**
 * Whether bytes are well-formed UTF-8: the text of a record produced in batches is stored as
 * sent, so it is checked as it arrives (a JSON body's text is checked by its parse).
 */
export type Utf8Check = (bytes: Uint8Array) => boolean;

// ignoreBOM: a leading U+FEFF is text like any other.
const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

let native: Utf8Check | undefined;

/** A runtime with a native check hands it over at start-up (Node: buffer.isUtf8, simdutf). */
export function useNativeUtf8Check(implementation: Utf8Check): void {
  native = implementation;
}

export function isWellFormedUtf8(bytes: Uint8Array): boolean {
  return native ? native(bytes) : isWellFormedUtf8Js(bytes);
}

/** ASCII byte by byte; from the first byte ≥ 0x80 (a sequence's start) a fatal decode decides. */
export function isWellFormedUtf8Js(bytes: Uint8Array): boolean {
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    if (bytes[i] < 0x80) continue;
    try {
      fatal.decode(bytes.subarray(i));
      return true;
    } catch {
      return false;
    }
  }
  return true;
}
