/**
 * What an entry point injects into the app, per request, as Hono's `env`: the database, the
 * object store, the clock and the instance's shared state. The app imports no runtime module.
 */
import type { Deadline } from "./deadline.ts";
import type { Database } from "../storage/metadata/db.ts";
import type { ObjectStore, StoreCounters } from "../storage/objects/object-store.ts";
import type { SharedState } from "./instance.ts";
import type { ReceiptSigner } from "../storage/groups/receipts.ts";
import type { AddressGuard } from "./push/address-guard.ts";
import type { RequestScope } from "./waiting-on.ts";

export interface LifecycleSettings {
  /** RESERVOIR_GC_GRACE_SECONDS: maintenance passes delete nothing unreferenced for less than this. */
  graceSeconds: number;
  /** RESERVOIR_COMPACTION_TARGET_BYTES. */
  compactionTargetBytes: number;
}

export interface Clock {
  now(): number;
}

export interface Runtime extends SharedState {
  db: Database;
  store: ObjectStore;
  clock: Clock;
  /** The operator token for /v1/admin/*. */
  adminToken: string;
  /**
   * The deployment secret API keys are derived from (storage/tenancy/derived-keys.ts), so that
   * the SQS endpoint can check SigV4 signatures made with a key it stores only as a hash.
   */
  keySecret: Uint8Array;
  /** Signs and checks consumer-group receipts (key shared by all instances, from Postgres). */
  receipts: ReceiptSigner;
  /** Statements sent to Postgres by this instance (where the driver can count them), and its object store requests. */
  counters: { dbStatements: number; store: StoreCounters };
  /** How often a long-poll re-reads the high watermark written by other instances. */
  pollIntervalMs: number;
  /** Where webhooks may go (checked when a subscription is saved, and again per delivery). */
  guard: AddressGuard;
  push: Push;
  /** Bound of a request, plus its waitMs for a long-poll (deadline.ts; default 65 s). */
  requestTimeoutMs?: number;
  /** Maintenance settings: the GC grace period and the compaction target (storage/lifecycle/). */
  lifecycle: LifecycleSettings;
  /** The request whose code runs now, for the deadline's "waiting on" (absent: not labelled). */
  scope?: RequestScope;
  /**
   * A body of declared length read by the runtime itself, with fewer copies than through the
   * Request (Node: runtime/node/declared-body.ts); undefined, or absent: read through the Request.
   */
  declaredBody?: (request: Request, length: number) => Promise<Uint8Array> | undefined;
  /**
   * Hands back a body `declaredBody` gave, for reuse by a later request (Node: a pool). Called
   * only once nothing holds a view of it: the produce route calls it when the batcher's promise
   * for its entries settled (the segment holds copies of their bytes by then), not when it
   * answers, which a deadline can make earlier. Any other array is ignored.
   */
  releaseBody?: (body: Uint8Array) => void;
}

/** How the app starts webhook delivery; each runtime does it its own way. */
export interface Push {
  /** Subscriptions of these topics changed (created, resumed, replayed): deliver what is ready. */
  wake(topicIds: number[]): void;
  /** A produce request's messages committed to these topics. */
  committed(topicIds: number[]): void;
  /** This instance's delivery counters. */
  readonly stats: Readonly<Record<string, number>>;
}

export type Principal = import("../storage/tenancy/tenants.ts").Principal;

export interface AppEnv {
  Bindings: Runtime;
  Variables: { principal: Principal; deadline: Deadline };
}
