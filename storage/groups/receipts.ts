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
  /**
   * A lease receipt names the offsets `offset`..`lastOffset` of its grant at once (one receipt
   * settles what one receive leased from a partition); absent, the receipt names one message.
   */
  lastOffset?: number;
}

/**
 * A receipt as ack, nack and extend take it: a whole receipt, or a part of a lease receipt's
 * run, `firstOffset`..`lastOffset` (default firstOffset), for a client that settles the messages
 * of a receive one by one without a receipt per message (an answer in batches has none).
 */
export type ReceiptRef = string | { receipt: string; firstOffset: number; lastOffset?: number };

/** The receipt a ref names, as results list it. */
export function receiptOf(ref: ReceiptRef): string {
  return typeof ref === "string" ? ref : ref.receipt;
}

/** The most offsets one lease receipt may name: a receive leases at most this many. */
export const MAX_LEASE_OFFSETS = 1000;

const MAC_BYTES = 16;
const MAC_CHARS = 22; // base64url of 16 bytes, unpadded
const B64URL = /^[A-Za-z0-9_-]*$/;

// The body is ASCII (digits and dots), so btoa/atob take and give it as is: no byte arrays and
// no TextEncoder per receipt, which dominated the cost of a 1,000-message receive and ack.
function b64url(ascii: string): string {
  return btoa(ascii).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromB64url(text: string): string | null {
  if (!B64URL.test(text)) return null;
  try {
    return atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    return null;
  }
}

/** Compares in time independent of where the strings differ (both are MAC_CHARS long). */
function sameMac(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < MAC_CHARS; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export class ReceiptSigner {
  private readonly macs = new Map<string, string>();
  // The receipts of one receive or ack share a grant: the last MAC answers them without a lookup.
  private last = { tenantId: "", groupId: -1, token: -1, mac: "" };

  constructor(private readonly key: Uint8Array) {}

  sign(tenantId: string, c: ReceiptClaims): string {
    const range = c.lastOffset === undefined ? "" : `.${c.lastOffset}`;
    return `${b64url(`${c.groupId}.${c.partition}.${c.firstOffset}.${c.offset}.${c.token}${range}`)}.${this.mac(tenantId, c.groupId, c.token)}`;
  }

  /** The claims of a receipt this deployment issued to this tenant, else null. */
  verify(tenantId: string, receipt: string): ReceiptClaims | null {
    if (typeof receipt !== "string" || receipt.length > 200) return null;
    const dot = receipt.indexOf(".");
    if (dot <= 0 || receipt.length - dot - 1 !== MAC_CHARS) return null;
    const body = fromB64url(receipt.slice(0, dot));
    if (!body || !/^\d{1,16}(\.\d{1,16}){4,5}$/.test(body)) return null;
    const [groupId, partition, firstOffset, offset, token, lastOffset] = body.split(".").map(Number);
    if (![groupId, partition, firstOffset, offset, token].every(Number.isSafeInteger)) return null;
    if (
      lastOffset !== undefined &&
      !(Number.isSafeInteger(lastOffset) && lastOffset >= offset && lastOffset - offset < MAX_LEASE_OFFSETS)
    ) {
      return null;
    }
    if (!sameMac(this.mac(tenantId, groupId, token), receipt.slice(dot + 1))) return null;
    return lastOffset === undefined
      ? { groupId, partition, firstOffset, offset, token }
      : { groupId, partition, firstOffset, offset, token, lastOffset };
  }

  /** The claims of a ref: a part names offsets within its receipt's run, else it is unknown (null). */
  verifyRef(tenantId: string, ref: ReceiptRef): ReceiptClaims | null {
    if (typeof ref === "string") return this.verify(tenantId, ref);
    const c = this.verify(tenantId, ref.receipt);
    const first = ref.firstOffset;
    const last = ref.lastOffset ?? first;
    if (!c || !(c.offset <= first && first <= last && last <= (c.lastOffset ?? c.offset))) return null;
    return { ...c, offset: first, lastOffset: last };
  }

  /** One HMAC per grant: the receipts of one receive (and of one ack batch) share it. */
  private mac(tenantId: string, groupId: number, token: number): string {
    const last = this.last;
    if (last.token === token && last.groupId === groupId && last.tenantId === tenantId) return last.mac;
    const input = `${tenantId}|${groupId}|${token}`;
    let mac = this.macs.get(input);
    if (!mac) {
      const bytes = hmac(sha256, this.key, utf8ToBytes(input)).subarray(0, MAC_BYTES);
      mac = b64url(String.fromCharCode(...bytes));
      if (this.macs.size >= 4096) this.macs.clear();
      this.macs.set(input, mac);
    }
    this.last = { tenantId, groupId, token, mac };
    return mac;
  }
}

/** A fresh grant token: 48 random bits, exact as a JS number and as a Postgres bigint. */
export function newGrantToken(): number {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return b.reduce((n, x) => n * 256 + x, 0);
}
