/**
 * The messages every system sends, and the check every received message goes through. A
 * payload starts with its index as 12 decimal digits, so a consumer can tell which message it
 * got (for the end-to-end latency, and to notice a lost, duplicated or truncated message).
 */
import type { Payloads, ReceivedPayload } from "./system.ts";

const INDEX_DIGITS = 12;

/**
 * Distinct, deterministic bytes per message: digits, then a–z, so every client sends them as
 * they are (and a JSON client may copy them into a JSON string: jsonSafeText).
 */
export function payloadFor(bytes: number): Payloads {
  const filler = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) filler[i] = 97 + (i % 26);
  const payload = (i: number) => {
    const out = filler.slice();
    const tag = String(i).padStart(Math.min(INDEX_DIGITS, bytes), "0");
    for (let k = 0; k < tag.length && k < bytes; k++) out[k] = tag.charCodeAt(k);
    return out;
  };
  return Object.assign(payload, { jsonSafeText: true });
}

/** The index payloadFor wrote at the start of a message, or −1 when those are not digits. */
export function indexOf(payload: ReceivedPayload): number {
  const digits = Math.min(INDEX_DIGITS, payload.length);
  let index = 0;
  for (let k = 0; k < digits; k++) {
    const c = typeof payload === "string" ? payload.charCodeAt(k) : payload[k];
    if (c < 48 || c > 57) return -1;
    index = index * 10 + c - 48;
  }
  return index;
}

/**
 * Checks that the messages received are exactly messages 0 .. count − 1, whole (a string
 * payload is ASCII text, so its length is its byte count). take() does not throw, since it
 * runs inside the clients' delivery callbacks; assertComplete() reports what went wrong.
 */
export class ReceivedCheck {
  private readonly seen: Uint8Array;
  private distinct = 0;
  private problem: string | undefined;

  constructor(
    private readonly count: number,
    private readonly messageBytes: number,
  ) {
    this.seen = new Uint8Array(count);
  }

  /** The message's index, or −1 for a message that was not sent. */
  take(payload: ReceivedPayload): number {
    const index = indexOf(payload);
    if (index < 0 || index >= this.count || payload.length !== this.messageBytes) {
      const head =
        typeof payload === "string" ? payload.slice(0, INDEX_DIGITS) : Buffer.from(payload.subarray(0, INDEX_DIGITS)).toString("latin1");
      this.problem ??= `received a message that was not sent: ${payload.length} bytes starting '${head}'`;
      return -1;
    }
    if (this.seen[index] === 0) {
      this.seen[index] = 1;
      this.distinct++;
    }
    return index;
  }

  /** Throws unless every message arrived whole (a redelivered duplicate leaves another missing). */
  assertComplete(): void {
    if (this.problem) throw new Error(this.problem);
    if (this.distinct !== this.count)
      throw new Error(`${this.count - this.distinct} of ${this.count} messages never arrived (others arrived twice)`);
  }
}
