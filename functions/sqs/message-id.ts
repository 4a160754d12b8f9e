/**
 * MessageIds and FIFO sequence numbers, derived from where a message is stored (topic,
 * partition, offset) so that they are stable: the same message gets the same id at every
 * receive, whichever door it came in by.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";

/** A UUID-formatted id (RFC 9562 version 8: custom bits) from the message's position. */
export function messageId(topicId: number, partition: number, offset: number): string {
  const hex = bytesToHex(sha256(utf8ToBytes(`reservoir-message|${topicId}|${partition}|${offset}`)))
    .slice(0, 32)
    .split("");
  hex[12] = "8";
  hex[16] = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  const h = hex.join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Increasing within a message group (one group is one key, so one partition): the offset, zero-padded as SQS's are. */
export function sequenceNumber(partition: number, offset: number): string {
  return `${String(partition).padStart(4, "0")}${String(offset).padStart(16, "0")}`;
}
