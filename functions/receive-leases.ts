/**
 * A receive from a consumer group with an optional wait, as /v1's receive route and the SQS
 * endpoint's ReceiveMessage both do it: lease, sign a receipt per message, count the usage,
 * and wait for commits (local ones wake it at once, others are polled) until the wait ends.
 */
import type { Context } from "hono";
import type { Group } from "../storage/groups/groups.ts";
import { receive, type Delivery } from "../storage/groups/receive.ts";
import { settle } from "../storage/groups/settle.ts";
import type { Topic } from "../storage/metadata/topics.ts";
import { recordUsage } from "../storage/usage/meter.ts";
import { outgoing } from "../storage/usage/metered-bytes.ts";
import { allowWait, pastDeadline } from "./deadline.ts";
import type { AppEnv } from "./runtime.ts";

export interface LeasedMessage extends Delivery {
  receipt: string;
}

export interface ReceiveRequest {
  max: number;
  visibilityMs: number;
  waitMs: number;
}

const QUICK_RETRY_MS = 10;

export async function receiveLeases(c: Context<AppEnv>, topic: Topic, group: Group, request: ReceiveRequest): Promise<LeasedMessage[]> {
  const { max, visibilityMs, waitMs } = request;
  const started = c.env.clock.now();
  const deadline = c.env.clock.now() + waitMs;
  allowWait(c, waitMs);
  const receiver = c.get("principal").keyId;
  const tenantId = c.get("principal").tenantId;
  for (let attempt = 1; ; attempt++) {
    const now = c.env.clock.now();
    c.env.commits.looking(topic.id, group.id);
    const deliveries = await receive(c.env, group, topic, { max, visibilityMs, receiver, now });
    const left = deadline - c.env.clock.now();
    if (deliveries.length > 0 || left <= 0) {
      const leased = deliveries.map((d) =>
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
      if (pastDeadline(c) && leased.length > 0) {
        // Answered 503 already: what was leased too late goes back at once, not after its
        // visibility timeout (best effort; if this fails, the timeout brings them back).
        const receipts = leased.map((d) => d.receipt);
        await settle(c.env.db, c.env.receipts, tenantId, group, receipts, { kind: "nack", delayMs: 0 }, c.env.clock.now()).catch(() => {});
        return [];
      }
      // A full batch may have left messages behind: the next waiting receiver takes them.
      if (leased.length === max) c.env.commits.wakeNext(topic.id, group.id);
      // Usage: what this answer returns, redeliveries included (one insert, only when it returns messages).
      if (leased.length > 0) await recordUsage(c.env.db, tenantId, outgoing(leased.map((d) => d.record)));
      if (leased.length === 0) c.env.metrics.receivesEmpty.inc();
      else {
        c.env.metrics.messagesOut.inc({ via: "receive" }, leased.length);
        c.env.metrics.receiveSeconds.observe((c.env.clock.now() - started) / 1000);
      }
      return leased;
    }
    // Local commits wake one waiting receiver of the group at once (see CommitSignal); leases
    // timing out and other instances' commits are polled. The first retry comes soon: an empty
    // receive may only have met partitions that a concurrent receive or ack held for a few
    // milliseconds (they are skipped, not waited for).
    const pause = attempt === 1 ? QUICK_RETRY_MS : c.env.pollIntervalMs * 2.5;
    await c.env.commits.waitReceiver(topic.id, group.id, Math.min(left, pause));
  }
}
