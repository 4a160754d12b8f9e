/**
 * A receive from a consumer group with an optional wait, as /v1's receive route and the SQS
 * endpoint's ReceiveMessage both do it: lease, sign the receipts, count the usage, and wait for
 * commits (local ones wake it at once, others are polled) until the wait ends. The leased
 * messages come back decoded, each with a receipt (`receiveLeases`), or as the stored chunks
 * that hold them, with a receipt per lease run (`receiveChunks`, for an answer in batches).
 */
import type { Context } from "hono";
import type { Group } from "../storage/groups/groups.ts";
import { type AttemptRun, type Delivery, type Lease, leasedChunks, leasedMessages, leaseRuns } from "../storage/groups/receive.ts";
import { leaseNow } from "../storage/groups/lease-fast.ts";
import type { ReceiptRef } from "../storage/groups/receipts.ts";
import { type Settlement, settle, type SettleResult } from "../storage/groups/settle.ts";
import type { ReadScope } from "../storage/log/batch-cache.ts";
import type { StoredChunk } from "../storage/log/reader.ts";
import type { Topic } from "../storage/metadata/topics.ts";
import { recordUsage } from "../storage/usage/meter.ts";
import { outgoing, outgoingChunks } from "../storage/usage/metered-bytes.ts";
import { allowWait, pastDeadline } from "./deadline.ts";
import type { AppEnv } from "./runtime.ts";

export interface LeasedMessage extends Delivery {
  receipt: string;
}

/** A lease run as answers name it: offsets `firstOffset`..`lastOffset` of a partition, one receipt. */
export interface SignedLease {
  partition: number;
  firstOffset: number;
  lastOffset: number;
  receipt: string;
  attempt: number;
}

export interface ReceiveRequest {
  max: number;
  visibilityMs: number;
  waitMs: number;
  /** Receipts to ack before the lease (see receiveLoop); their outcome is `acked`. */
  ack?: ReceiptRef[];
}

/** What a receive took, in either shape. */
interface Taken<T> {
  answer: T;
  runs: AttemptRun[];
  /** Messages returned, and what they add to usage. */
  usage: { messagesOut: number; bytesOut: number };
}

const QUICK_RETRY_MS = 10;

/**
 * How long after a lease that left nothing to take a receive of the same instance skips its
 * first lease (see leaseLoop): long enough to cover a consumer's ack and next receive, short
 * beside the poll (what it could miss is what the poll finds anyway).
 */
const DRAINED_FOR_MS = 25;

/**
 * The leased messages, decoded, each with its own receipt; `leases` has a receipt per run. Their
 * values are views of cached bytes, valid until `reads` closes (see ReadScope).
 */
export async function receiveLeases(
  c: Context<AppEnv>,
  topic: Topic,
  group: Group,
  request: ReceiveRequest,
  reads: ReadScope,
): Promise<{ messages: LeasedMessage[]; leases: SignedLease[]; acked?: SettleResult }> {
  const tenantId = c.get("principal").tenantId;
  const { answer, leases, acked } = await receiveLoop(c, topic, group, request, async (lease) => {
    const deliveries = await leasedMessages({ ...c.env, readScope: reads }, topic, lease);
    const messages = deliveries.map((d) =>
      Object.assign(d, {
        receipt: c.env.receipts.sign(tenantId, {
          groupId: group.id,
          partition: d.partition,
          firstOffset: d.firstOffset,
          offset: d.offset,
          token: d.token,
        }),
      }),
    );
    const runs = leaseRuns(deliveries);
    return { answer: messages, runs, usage: outgoing(deliveries.map((d) => d.record)) };
  });
  return { messages: answer, leases, acked };
}

/**
 * The chunks of stored bytes holding the leased messages (not decoded), and a receipt per lease
 * run. The chunks are views of cached bytes, valid until `reads` closes (see ReadScope).
 */
export async function receiveChunks(
  c: Context<AppEnv>,
  topic: Topic,
  group: Group,
  request: ReceiveRequest,
  reads: ReadScope,
): Promise<{ chunks: StoredChunk[]; leases: SignedLease[]; acked?: SettleResult }> {
  const { answer, leases, acked } = await receiveLoop(c, topic, group, request, async (lease) => {
    const { runs, chunks } = await leasedChunks({ ...c.env, readScope: reads }, topic, lease);
    return { answer: chunks, runs, usage: outgoingChunks(chunks, runs) };
  });
  return { chunks: answer, leases, acked };
}

/**
 * Acks, nacks or extends receipts of the group, then wakes a receiver of this instance that
 * found the partitions held: the settle held them (its position locks), and a receive that met
 * them skipped them.
 */
export async function settleReceipts(c: Context<AppEnv>, group: Group, receipts: ReceiptRef[], action: Settlement): Promise<SettleResult> {
  const { tenantId, deferred } = c.get("principal");
  const result = await settle(c.env.db, c.env.receipts, tenantId, group, receipts, action, c.env.clock.now(), deferred);
  // A nack or a visibility change returns messages: no lease may be skipped for them.
  if (action.kind !== "ack") c.env.commits.undrain(group.topicId);
  c.env.commits.wakeBlocked(group.topicId, group.id);
  return result;
}

/**
 * The request's acks, then the receive. The acks commit first, in a transaction of their own:
 * beside the lease, their position locks made it skip the partitions they settle (an empty
 * answer with messages there); in the lease's transaction, they held up every receiver behind it
 * (docs/benchmarks.md).
 */
async function receiveLoop<T>(
  c: Context<AppEnv>,
  topic: Topic,
  group: Group,
  request: ReceiveRequest,
  take: (lease: Lease) => Promise<Taken<T>>,
): Promise<{ answer: T; leases: SignedLease[]; acked?: SettleResult }> {
  if (!request.ack) return leaseLoop(c, topic, group, request, take);
  const acked = await settleReceipts(c, group, request.ack, { kind: "ack" });
  return { ...(await leaseLoop(c, topic, group, request, take)), acked };
}

/** The client closed its connection: the request's signal aborts (Node server, Workers). */
function clientGone(c: Context<AppEnv>): boolean {
  return c.req.raw.signal?.aborted === true;
}

async function leaseLoop<T>(
  c: Context<AppEnv>,
  topic: Topic,
  group: Group,
  request: ReceiveRequest,
  take: (lease: Lease) => Promise<Taken<T>>,
): Promise<{ answer: T; leases: SignedLease[] }> {
  const { max, visibilityMs, waitMs } = request;
  const started = c.env.clock.now();
  const deadline = c.env.clock.now() + waitMs;
  allowWait(c, waitMs);
  const receiver = c.get("principal").keyId;
  const tenantId = c.get("principal").tenantId;
  for (let attempt = 1; ; attempt++) {
    if (attempt === 1 && waitMs > 0 && c.env.commits.stillDrained(topic.id, group.id, started, DRAINED_FOR_MS)) {
      // A lease of this instance took everything there was a moment ago, and nothing local came
      // since: this lease would find nothing, so the receive waits first, as after an empty lease
      // (at a steady rate, such leases were a third of all). What a moment could bring without
      // a local commit (another instance's commit, a lease timing out) the wait's poll finds.
      c.env.metrics.leasesSkipped.inc();
      await c.env.commits.waitReceiver(topic.id, group.id, Math.min(waitMs, c.env.pollIntervalMs * 2.5));
      continue;
    }
    const turnEnds = await c.env.leaseTurns.take(group.id, topic.partitions);
    const now = c.env.clock.now();
    const returns = c.env.commits.looking(topic.id, group.id);
    const check = c.get("principal").deferred;
    const lease = await leaseNow(c.env, group, topic, { max, visibilityMs, receiver, now, check }).finally(turnEnds);
    c.env.commits.leased(topic.id, group.id, returns, now, lease.drained === true);
    // A full lease may have left messages behind: the next waiting receiver goes for them now,
    // not once this one has read its messages. Receivers of one partition take turns on its
    // lock, and one that met it held waits for this (up to QUICK_RETRY_MS).
    if (lease.plan.grants.length === max) c.env.commits.wakeNext(topic.id, group.id);
    const taken = await take(lease);
    const count = taken.usage.messagesOut;
    const left = deadline - c.env.clock.now();
    if (count > 0 || left <= 0 || clientGone(c)) {
      const leases = taken.runs.map((run) => ({
        partition: run.partition,
        firstOffset: run.from,
        lastOffset: run.to,
        attempt: run.attempt,
        receipt: c.env.receipts.sign(tenantId, {
          groupId: group.id,
          partition: run.partition,
          firstOffset: run.rowFirstOffset,
          offset: run.from,
          token: run.token,
          lastOffset: run.to,
        }),
      }));
      if ((pastDeadline(c) || clientGone(c)) && leases.length > 0) {
        // Answered 503 already, or the client went away while this long-poll waited (a stopped
        // consumer, a closed connection): what was leased goes back at once, not after its
        // visibility timeout (best effort; if this fails, the timeout brings them back).
        const receipts = leases.map((l) => l.receipt);
        await settle(c.env.db, c.env.receipts, tenantId, group, receipts, { kind: "nack", delayMs: 0 }, c.env.clock.now()).catch(() => {});
        c.env.commits.undrain(topic.id);
        return { answer: taken.answer, leases: [] }; // not sent: the 503 was
      }
      // Usage: what this answer returns, redeliveries included (one insert, only when it returns messages).
      if (count > 0) await recordUsage(c.env.db, tenantId, taken.usage);
      if (count === 0) c.env.metrics.receivesEmpty.inc();
      else {
        c.env.metrics.messagesOut.inc({ via: "receive" }, count);
        c.env.metrics.receiveSeconds.observe((c.env.clock.now() - started) / 1000);
      }
      return { answer: taken.answer, leases };
    }
    // Local commits wake one waiting receiver of the group at once (see CommitSignal); leases
    // timing out and other instances' commits are polled. The first retry comes soon: an empty
    // receive may only have met partitions that a concurrent receive or ack held for a few
    // milliseconds (they are skipped, not waited for).
    // Blocked (the messages are in partitions other transactions hold): soon again, or as soon
    // as a settle of this instance lets go of them.
    // Not when the lease found nothing at all to take (idle): no partition was held, so a retry
    // would find only what a commit brought since, and a local commit wakes a receiver anyway
    // (at a steady rate, a third of all leases were these retries, each a statement).
    const pause = (attempt === 1 && !lease.idle) || lease.blocked ? QUICK_RETRY_MS : c.env.pollIntervalMs * 2.5;
    await c.env.commits.waitReceiver(topic.id, group.id, Math.min(left, pause), lease.blocked);
  }
}
