/**
 * Making, hashing and comparing secrets and ids. Random bytes come from Web Crypto; SHA-256
 * from @noble/hashes, synchronous and pure JS, so it runs on both runtimes and costs a key
 * lookup microseconds rather than a Web Crypto job.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";

export function sha256Hex(text: string): string {
  return bytesToHex(sha256(utf8ToBytes(text)));
}

/** Compares two secrets in time independent of where they differ (digests have equal length). */
export function secretsEqual(a: string, b: string): boolean {
  const x = sha256(utf8ToBytes(a));
  const y = sha256(utf8ToBytes(b));
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

export function newId(): string {
  return crypto.randomUUID();
}

/** A URL-safe secret of 256 random bits with a recognisable prefix (for secret scanners). */
export function newSecret(prefix: string): string {
  const buf = crypto.getRandomValues(new Uint8Array(32));
  let bin = "";
  for (const b of buf) bin += String.fromCharCode(b);
  return prefix + btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
