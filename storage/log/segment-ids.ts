/** Segment identifiers and object keys. Web Crypto only, so the same code runs on Node and on Workers. */

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
