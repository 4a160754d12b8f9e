/**
 * Standard Webhooks signing: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` keyed by
 * the bytes a `whsec_<base64>` secret encodes. During a rotation the header carries one
 * signature per live secret, separated by spaces.
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { utf8ToBytes } from "@noble/hashes/utils.js";
import { decodeBase64, encodeBase64 } from "hono/utils/encode";

const PREFIX = "whsec_";
const keys = new Map<string, Uint8Array>();

/** 24 random bytes, as the Standard Webhooks reference libraries generate. */
export function newWebhookSecret(): string {
  return PREFIX + encodeBase64(crypto.getRandomValues(new Uint8Array(24)).buffer);
}

function keyOf(secret: string): Uint8Array {
  let key = keys.get(secret);
  if (!key) {
    key = new Uint8Array(decodeBase64(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret));
    if (keys.size > 10_000) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

export function signatureHeader(secrets: string[], id: string, timestampSeconds: number, body: string): string {
  const content = utf8ToBytes(`${id}.${timestampSeconds}.${body}`);
  return secrets.map((s) => `v1,${encodeBase64(hmac(sha256, keyOf(s), content).slice().buffer)}`).join(" ");
}
