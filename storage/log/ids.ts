/** Identifiers. Web Crypto only, so the same code runs on Node and on Workers. */

function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  let out = "";
  for (const b of buf) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Lexicographically time-ordered, so a collector can list a bucket past a checkpoint. */
export function newSegmentId(now: number): string {
  return `${now.toString(16).padStart(12, "0")}-${randomHex(8)}`;
}

export function segmentObjectKey(tenantId: string, segmentId: string): string {
  return `tenants/${tenantId}/segments/${segmentId}`;
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
