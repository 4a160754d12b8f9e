/**
 * Standard Webhooks signing: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` keyed by
 * the bytes a `whsec_<base64>` secret encodes. During a rotation the header carries one
 * signature per live secret, separated by spaces.
 */
import { decodeBase64, encodeBase64 } from "hono/utils/encode";

const PREFIX = "whsec_";
/** Web Crypto keys (native HMAC on Node and Workers), one per secret in use. */
const keys = new Map<string, Promise<CryptoKey>>();
const encoder = new TextEncoder();

/** 24 random bytes, as the Standard Webhooks reference libraries generate. */
export function newWebhookSecret(): string {
  return PREFIX + encodeBase64(crypto.getRandomValues(new Uint8Array(24)).buffer);
}

function keyOf(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    const raw = new Uint8Array(decodeBase64(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret));
    key = crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    if (keys.size > 10_000) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

export async function signatureHeader(secrets: string[], id: string, timestampSeconds: number, body: string): Promise<string> {
  const content = encoder.encode(`${id}.${timestampSeconds}.${body}`);
  const signatures = await Promise.all(
    secrets.map(async (s) => `v1,${encodeBase64(await crypto.subtle.sign("HMAC", await keyOf(s), content))}`),
  );
  return signatures.join(" ");
}
