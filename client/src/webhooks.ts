/**
 * Standard Webhooks (https://www.standardwebhooks.com) signatures, as Reservoir signs its
 * deliveries and transaction check-backs: `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "<webhook-id>.<webhook-timestamp>.<body>">`, keyed by the bytes of the secret (`whsec_<base64>`).
 * Web Crypto only, so a handler on Node, Workers, Deno, Bun or a browser verifies the same way.
 * A header may carry several signatures (space-separated) during a secret rotation; one match
 * is enough.
 */
import { base64ToBytes, bytesToBase64 } from "./values.ts";

export class WebhookVerificationError extends Error {
  override readonly name = "WebhookVerificationError";
}

export interface VerifyOptions {
  /** How far the timestamp may be from now, in seconds (default 300, as Standard Webhooks). */
  toleranceSeconds?: number;
  /** The current time in ms (tests). */
  now?: number;
}

type HeaderSource = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const value = record[name] ?? Object.entries(record).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(value) ? value[0] : value;
}

function secretBytes(secret: string): Uint8Array {
  try {
    return base64ToBytes(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret);
  } catch {
    throw new TypeError("a webhook secret is whsec_ followed by base64");
  }
}

async function hmac(secret: string, content: string): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", secretBytes(secret) as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(content)));
}

/** Compares without stopping at the first difference (the time taken says nothing of where it was). */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** The `webhook-signature` value (`v1,<base64>`) for a message id, a timestamp in seconds and the body. */
export async function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): Promise<string> {
  return `v1,${bytesToBase64(await hmac(secret, `${id}.${timestampSeconds}.${body}`))}`;
}

/** The three headers of a signed request. */
export async function webhookHeaders(secret: string, id: string, timestampSeconds: number, body: string): Promise<Record<string, string>> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": await signWebhook(secret, id, timestampSeconds, body),
  };
}

/**
 * Checks a request's signature against one secret or several (e.g. the old and the new during a
 * rotation) and its timestamp against the tolerance; returns the parsed JSON body. Pass the body
 * exactly as received (the raw text, not re-serialised JSON). Throws WebhookVerificationError.
 */
export async function verifyWebhook<T = unknown>(
  secret: string | string[],
  headers: HeaderSource,
  body: string,
  opts: VerifyOptions = {},
): Promise<T> {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
  const seconds = Number(timestamp);
  if (!/^\d+$/.test(timestamp) || !Number.isSafeInteger(seconds))
    throw new WebhookVerificationError("webhook-timestamp is not whole seconds");
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  const tolerance = opts.toleranceSeconds ?? 300;
  if (seconds < now - tolerance) throw new WebhookVerificationError("webhook-timestamp is too old");
  if (seconds > now + tolerance) throw new WebhookVerificationError("webhook-timestamp is in the future");

  const given: Uint8Array[] = [];
  for (const part of signatures.split(" ")) {
    const [version, value] = part.split(",", 2);
    if (version !== "v1" || !value) continue;
    try {
      given.push(base64ToBytes(value));
    } catch {
      // Not base64: matches nothing.
    }
  }
  for (const s of Array.isArray(secret) ? secret : [secret]) {
    const expected = await hmac(s, `${id}.${timestamp}.${body}`);
    if (given.some((g) => equalBytes(g, expected))) {
      try {
        return JSON.parse(body) as T;
      } catch {
        throw new WebhookVerificationError("the signed body is not JSON");
      }
    }
  }
  throw new WebhookVerificationError("no signature matches");
}
