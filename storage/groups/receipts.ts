/**
 * Receipts: opaque to clients, unforgeable (HMAC-SHA256 with a key every instance shares),
 * bound to the tenant, the group and one grant. A grant is one receive call: its random token
 * is stored on the lease rows it leased and changes on every redelivery, so older receipts go
 * stale. The MAC covers (tenant, group, token) and not the offset: it is computed once per
 * grant, and naming another offset under a valid token gains nothing, since an offset is
 * accepted only if the row holding it carries that very token — it was leased in that call.
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { utf8ToBytes } from "@noble/hashes/utils.js";

export interface ReceiptClaims {
  groupId: number;
  partition: number;
  /** The lease row: its first offset. */
  firstOffset: number;
  offset: number;
  token: number;
}

const MAC_BYTES = 16;

function b64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromB64url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  try {
    const bin = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

export class ReceiptSigner {
  private readonly macs = new Map<string, Uint8Array>();

  constructor(private readonly key: Uint8Array) {}

  sign(tenantId: string, c: ReceiptClaims): string {
    const body = `${c.groupId}.${c.partition}.${c.firstOffset}.${c.offset}.${c.token}`;
    return `${b64url(utf8ToBytes(body))}.${b64url(this.mac(tenantId, c.groupId, c.token))}`;
  }

  /** The claims of a receipt this deployment issued to this tenant, else null. */
  verify(tenantId: string, receipt: string): ReceiptClaims | null {
    if (typeof receipt !== "string" || receipt.length > 200) return null;
    const [bodyPart, macPart, extra] = receipt.split(".");
    if (extra !== undefined || !bodyPart || !macPart) return null;
    const bodyBytes = fromB64url(bodyPart);
    const mac = fromB64url(macPart);
    if (!bodyBytes || !mac || mac.length !== MAC_BYTES) return null;
    const body = new TextDecoder().decode(bodyBytes);
    if (!/^\d{1,16}(\.\d{1,16}){4}$/.test(body)) return null;
    const [groupId, partition, firstOffset, offset, token] = body.split(".").map(Number);
    if (![groupId, partition, firstOffset, offset, token].every(Number.isSafeInteger)) return null;
    const expected = this.mac(tenantId, groupId, token);
    let diff = 0;
    for (let i = 0; i < MAC_BYTES; i++) diff |= expected[i] ^ mac[i];
    if (diff !== 0) return null;
    return { groupId, partition, firstOffset, offset, token };
  }

  /** One HMAC per grant: the receipts of one receive (and of one ack batch) share it. */
  private mac(tenantId: string, groupId: number, token: number): Uint8Array {
    const input = `${tenantId}|${groupId}|${token}`;
    let mac = this.macs.get(input);
    if (!mac) {
      mac = hmac(sha256, this.key, utf8ToBytes(input)).subarray(0, MAC_BYTES);
      if (this.macs.size >= 4096) this.macs.clear();
      this.macs.set(input, mac);
    }
    return mac;
  }
}

/** A fresh grant token: 48 random bits, exact as a JS number and as a Postgres bigint. */
export function newGrantToken(): number {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return b.reduce((n, x) => n * 256 + x, 0);
}
