/**
 * API keys derived from a deployment secret, so that a SigV4 signature (which the client makes
 * with the key itself as its secret) can be checked without storing any key in plaintext:
 * apiKey = "rsv_" + base64url(HMAC-SHA256(deploymentSecret, "reservoir api key v1|" + keyId)).
 * The database still holds only the key's SHA-256 (the /v1 bearer check is unchanged); the
 * SigV4 check re-derives the key for the presented keyId and then runs that same bearer check,
 * so a deleted key fails at once. Keys made before derivation (random) have a hash that no
 * derivation matches: they keep working with Bearer, and SigV4 refuses them as unknown.
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { utf8ToBytes } from "@noble/hashes/utils.js";

const LABEL = "reservoir api key v1|";

function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function deriveApiKey(deploymentSecret: Uint8Array, keyId: string): string {
  return `rsv_${base64url(hmac(sha256, deploymentSecret, utf8ToBytes(LABEL + keyId)))}`;
}

/** A fingerprint of the secret (not the secret): instances compare it to agree on one secret. */
export function secretFingerprint(deploymentSecret: Uint8Array): string {
  return base64url(hmac(sha256, deploymentSecret, utf8ToBytes("reservoir key secret fingerprint v1")));
}

/** The deployment secret from its configured text (RESERVOIR_KEY_SECRET): its UTF-8 bytes. */
export function keySecretFromText(text: string): Uint8Array {
  return utf8ToBytes(text);
}
