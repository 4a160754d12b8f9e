/**
 * RabbitMQ as a peer (issue 5). A partition is a durable queue; messages go round-robin over
 * the P queues as persistent messages on a ConfirmChannel, pipelined with a window of
 * outstanding confirms. Consuming is one channel with a prefetch and manual, batched acks.
 */
import * as amqp from "amqplib";
import { Unavailable, type PublishOutcome, type SystemUnderTest, type Workload } from "../system.ts";

export interface RabbitMqOptions {
  url?: string;
  /** "quorum" (default: RabbitMQ's replicated, fsync-before-confirm durable type) or "classic". */
  queueType?: "quorum" | "classic";
  /** Publishes awaiting their confirm at once (default 2,000). */
  window?: number;
  /** Unacked deliveries per consumer (default 1,000). */
  prefetch?: number;
}

export function rabbitmq(options: RabbitMqOptions = {}): SystemUnderTest {
  const url = options.url ?? "amqp://guest:guest@127.0.0.1:5672";
  const queueType = options.queueType ?? "quorum";
  const window = options.window ?? 2_000;
  const prefetch = options.prefetch ?? 1_000;
  const ackEvery = Math.max(1, Math.floor(prefetch / 4)); // well under the prefetch: never stalls
  let conn: amqp.ChannelModel | undefined;
  let pub: amqp.ConfirmChannel | undefined;
  let queues: string[] = [];

  const settings: Record<string, string | number | boolean> = {
    queue: `${queueType}, durable`,
    // Both types confirm a persistent message only once it is fsynced to disk: a quorum queue
    // after its Raft log write is synced (one node, so a quorum of one), a classic queue after
    // its message store sync (both group syncs across concurrent messages).
    fsync: "before confirm (group sync)",
    persistent: true, // deliveryMode 2
    partitions: "one queue per partition, round-robin, default exchange",
    publish: `ConfirmChannel, window ${window} outstanding confirms`,
    consume: `prefetch ${prefetch} per queue consumer, manual acks (multiple) every ${ackEvery}`,
  };

  return {
    name: "rabbitmq",
    settings,

    async setup(workload: Workload) {
      try {
        const connecting = amqp.connect(url, { timeout: 2_000 });
        conn = await Promise.race([connecting, sleep(2_000).then(() => Promise.reject(new Error("timed out after 2 s")))]);
        connecting.catch(() => {}); // a connection that lost the race must not reject unhandled
      } catch (err) {
        throw new Unavailable(`RabbitMQ not reachable at ${url}: ${(err as Error).message}`);
      }
      settings.server = `RabbitMQ ${String(conn.connection.serverProperties.version)}`;
      pub = await conn.createConfirmChannel();
      const base = `bench.${workload.name}.${Date.now().toString(36)}`;
      queues = Array.from({ length: workload.partitions }, (_, p) => `${base}.${p}`);
      for (const q of queues) await pub.assertQueue(q, { durable: true, arguments: { "x-queue-type": queueType } });
    },

    async publish(count, payload, opts = {}): Promise<PublishOutcome> {
      const ch = pub!;
      const latenciesMs = new Array<number>(count);
      const refillAt = Math.floor((window * 3) / 4);
      let inFlight = 0;
      let acked = 0;
      let failure: unknown;
      let wake: (() => void) | undefined;
      const settle = () => {
        inFlight--;
        wake?.();
        wake = undefined;
      };
      const t0 = performance.now();
      for (let i = 0; i < count; i++) {
        // At a fixed rate, wait for the message's slot and count its latency from that slot,
        // so a stalled broker is charged for the delay it caused (no coordinated omission).
        const due = opts.ratePerSec ? t0 + (i * 1000) / opts.ratePerSec : 0;
        while (performance.now() < due) await sleep(Math.min(1, due - performance.now()));
        // A full window refills once a quarter of it is confirmed, so publishes leave in bursts.
        if (inFlight >= window) while (inFlight > refillAt) await new Promise<void>((r) => (wake = r));
        if (failure) throw failure;
        const sent = opts.ratePerSec ? due : performance.now();
        const bytes = payload(i);
        inFlight++;
        const ok = ch.sendToQueue(
          queues[i % queues.length],
          Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
          { persistent: true },
          (err) => {
            if (err) failure ??= err instanceof Error ? err : new Error(`nacked: ${String(err)}`);
            else {
              latenciesMs[i] = performance.now() - sent;
              acked++;
              opts.onAck?.(i);
            }
            settle();
          },
        );
        if (!ok) await new Promise((r) => ch.once("drain", r)); // the socket buffer is full
      }
      while (inFlight > 0) await new Promise<void>((r) => (wake = r));
      if (failure) throw failure;
      return { acked, latenciesMs };
    },

    async consume(count, onMessage) {
      const ch = await conn!.createChannel();
      await ch.prefetch(prefetch); // per consumer (RabbitMQ's basic.qos global=false)
      let received = 0;
      await new Promise<void>((resolve, reject) => {
        ch.on("error", reject);
        const onDelivery = (m: amqp.ConsumeMessage | null) => {
          if (!m || received >= count) return;
          onMessage?.(m.content);
          // Delivery tags are per channel, so one multiple-ack settles every queue's deliveries.
          if (++received % ackEvery === 0 || received === count) ch.ack(m, true);
          if (received === count) resolve();
        };
        for (const q of queues) ch.consume(q, onDelivery, { noAck: false }).catch(reject);
      });
      await ch.close(); // flushes the last ack; anything delivered past `count` returns to the queue
    },

    async teardown() {
      try {
        if (pub) for (const q of queues) await pub.deleteQueue(q);
      } finally {
        await conn?.close();
        conn = pub = undefined;
        queues = [];
      }
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
