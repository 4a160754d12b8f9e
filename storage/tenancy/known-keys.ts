/**
 * Keys this instance has seen pass a key check, by the SHA-256 of their secret: what a request
 * by such a key needs to leave its key check to the statements of its work (deferred-key-check.ts).
 * Never trusted on its own: those statements check the key again before they change anything,
 * so an entry of a revoked key only sends its next request to the key check after all.
 */
import { LRUCache } from "lru-cache";
import type { Principal } from "./tenants.ts";

export type KnownKey = Omit<Principal, "bytesCharged" | "deferred" | "operator">;

export class KnownKeys {
  private readonly keys = new LRUCache<string, KnownKey>({ max: 10_000 });

  get(hash: string): KnownKey | undefined {
    return this.keys.get(hash);
  }

  remember(hash: string, principal: Principal): void {
    this.keys.set(hash, { tenantId: principal.tenantId, keyId: principal.keyId, scopes: principal.scopes, quotas: principal.quotas });
  }

  forget(hash: string): void {
    this.keys.delete(hash);
  }
}
