/**
 * A message's value travels as `value` (text) or `valueBase64` (bytes) and comes back in the
 * field it was sent in. These helpers read either as text or bytes, with atob/btoa (no Buffer:
 * the SDK runs outside Node too).
 */
import type { Message, MessageIn } from "./types.ts";

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

export function base64ToBytes(base64: string): Uint8Array {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The value as bytes, whichever field carries it. */
export function valueBytes(message: Pick<Message, "value" | "valueBase64">): Uint8Array {
  if (message.valueBase64 !== undefined) return base64ToBytes(message.valueBase64);
  return new TextEncoder().encode(message.value ?? "");
}

/** The value as text (bytes decoded as UTF-8, invalid sequences replaced). */
export function valueText(message: Pick<Message, "value" | "valueBase64">): string {
  if (message.value !== undefined) return message.value;
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(valueBytes(message));
}

/** A message to produce from text or bytes. */
export function toMessage(value: string | Uint8Array | MessageIn): MessageIn {
  if (typeof value === "string") return { value };
  if (value instanceof Uint8Array) return { valueBase64: bytesToBase64(value) };
  return value;
}
