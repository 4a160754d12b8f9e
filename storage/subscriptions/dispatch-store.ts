/**
 * The dispatcher's two transactions: claim (lease messages for delivery, within the
 * subscription's concurrency, under its row lock) and settle (acks, retries, the delivery log
 * and a 410's disabling, together).
 */
import { sql } from "drizzle-orm";
import { retryConflicts, rows, type Database, type Queryable } from "../metadata/db.ts";
import type { ReadIo } from "../log/reader.ts";
import { leaseIn, leasedMessages, type Delivery } from "../groups/receive.ts";
import { settleClaims, type ClaimSettlement } from "../groups/settle.ts";
import { recordUsage } from "../usage/meter.ts";
import { recordAttempts, type DeliveryAttempt } from "./delivery-log.ts";
import { setState, subscriptionForClaim, type Subscription } from "./subscriptions.ts";

/** The receiver named in the dispatcher's leases. */
export const DISPATCHER = "dispatcher";
/** A lease outlives its attempt's timeout by this much, for the settle to land. */
const SETTLE_MARGIN_MS = 30_000;

export interface Claimed {
  /** The subscription as it is now (settings may have changed since the caller read it). */
  subscription: Subscription;
  deliveries: Delivery[];
}

/**
 * One transaction: settles what the caller finished (if anything), then leases up to `want`
 * messages, fewer if the subscription's deliveries in flight (on any instance) would exceed
 * its maxConcurrency, none if an attempt could not end by `until`. Null when the subscription
 * is gone or not active.
 */
export async function claimDeliveries(
  io: ReadIo & { db: Database },
  subscriptionId: number,
  options: { want: number; now: number; until: number; settling?: { subscription: Subscription } & Settling },
): Promise<Claimed | null> {
  const { want, now, until, settling } = options;
  const claimed = await retryConflicts(() =>
    io.db.transaction(async (tx) => {
      // Claims of one subscription queue on its row, so in-flight counts never race. The row
      // comes first, as in every claim, so that claims and settles lock in one order.
      const [locked] = await rows<{ state: string }>(tx, sql`SELECT state FROM subscriptions WHERE id = ${subscriptionId} FOR UPDATE`);
      if (!locked) return null;
      if (settling) await settleIn(tx, settling.subscription, settling, now);
      if (locked.state !== "active" || settling?.disable) return null;
      // A statement of its own, after the lock: one started before the lock was granted would
      // not see the leases of the claim it waited for (READ COMMITTED snapshots are per statement).
      const found = await subscriptionForClaim(tx, subscriptionId, now);
      const { subscription, inFlight } = found!;
      const fits = now + subscription.timeoutMs <= until;
      const max = fits ? Math.min(want, subscription.maxConcurrency - inFlight) : 0;
      if (max <= 0) return { subscription };
      const lease = {
        max,
        visibilityMs: subscription.timeoutMs + SETTLE_MARGIN_MS,
        receiver: DISPATCHER,
        now,
        maxPartitions: subscription.topic.partitions,
      };
      return { subscription, lease: await leaseIn({ ...io, db: tx }, subscription.group, subscription.topic, lease) };
    }),
  );
  if (!claimed) return null;
  const deliveries = claimed.lease ? await leasedMessages(io, claimed.subscription.topic, claimed.lease) : [];
  return { subscription: claimed.subscription, deliveries };
}

export interface Settling {
  settlements: ClaimSettlement[];
  attempts: DeliveryAttempt[];
  /** Set when an endpoint answered 410 Gone: the subscription is disabled with this reason. */
  disable?: string;
}

/**
 * Settles holding the subscription row (key share, taken first as the claims take theirs, so
 * the two lock in one order; settles do not wait for each other): a DELETE waits for the
 * settle. A subscription deleted while its deliveries were in flight (its group, leases and
 * log went with it) has nothing left to settle: the settle does nothing rather than violate a
 * foreign key.
 */
export async function settleDeliveries(db: Database, sub: Subscription, settling: Settling, now: number): Promise<void> {
  await retryConflicts(() =>
    db.transaction(async (tx) => {
      const [locked] = await rows<{ id: number }>(tx, sql`SELECT id FROM subscriptions WHERE id = ${sub.id} FOR KEY SHARE`);
      if (locked) await settleIn(tx, sub, settling, now);
    }),
  );
}

async function settleIn(tx: Queryable, sub: Subscription, settling: Settling, now: number): Promise<void> {
  await settleClaims(tx, sub.group, settling.settlements, now);
  await recordAttempts(tx, sub.id, settling.attempts);
  const delivered = settling.attempts.filter((a) => a.succeeded);
  await recordUsage(tx, sub.tenantId, {
    deliveries: settling.attempts.length,
    messagesOut: delivered.length,
    bytesOut: delivered.reduce((n, a) => n + (a.bytes ?? 0), 0),
  });
  if (settling.disable) await setState(tx, sub.id, "disabled", settling.disable);
}
