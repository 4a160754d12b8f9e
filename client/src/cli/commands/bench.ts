/**
 * `reservoir bench <topic>`: a quick load test through the SDK. It produces `--messages` values of
 * `--size` bytes with the batching producer and reports throughput and the latency of each
 * message from `send` to its offset (p50, p90, p99, max), with at most two rounds of full batches
 * outstanding; with `--consume`, it then receives and
 * acks them all through a new group (`bench-<time>`) and reports that too. Values are a fixed
 * pattern, so runs compare.
 */
import type { Command } from "commander";
import { isProblem } from "../../errors.ts";
import type { Context } from "../context.ts";
import { bytes, note, printJson, printTable } from "../output.ts";
import { int } from "../parse.ts";

interface BenchFlags {
  messages: number;
  size: number;
  partitions: number;
  lingerMs?: number;
  batchMessages?: number;
  inFlight?: number;
  consume?: boolean;
  json?: boolean;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface Phase {
  phase: string;
  messages: number;
  seconds: number;
  messagesPerSecond: number;
  bytesPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

function phase(name: string, messages: number, size: number, seconds: number, latencies: number[]): Phase {
  const sorted = latencies.sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    phase: name,
    messages,
    seconds: Math.round(seconds * 100) / 100,
    messagesPerSecond: Math.round(messages / seconds),
    bytesPerSecond: Math.round((messages * size) / seconds),
    latencyMs: {
      p50: round(percentile(sorted, 50)),
      p90: round(percentile(sorted, 90)),
      p99: round(percentile(sorted, 99)),
      max: round(percentile(sorted, 100)),
    },
  };
}

export function registerBench(program: Command, ctx: Context): void {
  program
    .command("bench <topic>")
    .description("a quick load test: produce (and with --consume, receive and ack), printing throughput and latency percentiles")
    .option("-n, --messages <n>", "messages to produce", int("--messages", 1, 10_000_000), 10_000)
    .option("-s, --size <bytes>", "bytes per value", int("--size", 0, 1_000_000), 100)
    .option("--partitions <n>", "partitions if the topic is created", int("--partitions", 1, 256), 1)
    .option("--linger-ms <ms>", "producer linger", int("--linger-ms", 0, 60_000))
    .option("--batch-messages <n>", "messages per request", int("--batch-messages", 1, 1000))
    .option("--in-flight <n>", "requests in flight", int("--in-flight", 1, 64))
    .option("--consume", "then receive and ack every message through a new group")
    .option("--json", "print JSON")
    .action(async (topic: string, opts: BenchFlags) => {
      const client = ctx.client();
      await client.topics.create(topic, { partitions: opts.partitions }).catch((e) => {
        // An existing topic with other settings is fine to bench on.
        if (!isProblem(e) || e.status !== 409) throw e;
      });
      const group = `bench-${Date.now()}`;
      if (opts.consume) await client.groups.put(topic, group, { startAt: "latest" });
      const value = "x".repeat(opts.size);
      const producer = client.producer({ lingerMs: opts.lingerMs, maxBatchMessages: opts.batchMessages, maxInFlight: opts.inFlight });
      const latencies = new Array<number>(opts.messages);
      // Closed loop: at most two rounds of full batches wait, so latency is the service's and the batching's, not a queue's.
      const window = 2 * (opts.batchMessages ?? 1000) * (opts.inFlight ?? 4);
      let done = 0;
      const started = performance.now();
      const pending: Promise<void>[] = [];
      for (let i = 0; i < opts.messages; i++) {
        const t0 = performance.now();
        pending.push(
          producer.send(topic, value).then(() => {
            latencies[i] = performance.now() - t0;
            done++;
          }),
        );
        if (pending.length >= window) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
      await producer.close();
      const results = [phase("produce", done, opts.size, (performance.now() - started) / 1000, latencies)];

      if (opts.consume) {
        const receiveLatencies: number[] = [];
        let consumed = 0;
        const t0 = performance.now();
        while (consumed < opts.messages) {
          const r0 = performance.now();
          const batch = await client.groups.receive(topic, group, { max: 1000, waitMs: 2000, visibilityTimeoutSeconds: 60 });
          receiveLatencies.push(performance.now() - r0);
          if (batch.length === 0) break;
          const acked = await client.groups.ack(
            topic,
            group,
            batch.map((m) => m.receipt),
          );
          consumed += acked.acked;
        }
        results.push(phase("receive+ack", consumed, opts.size, (performance.now() - t0) / 1000, receiveLatencies));
      }

      if (opts.json) return printJson(results);
      printTable(
        ["phase", "messages", "seconds", "msg/s", "throughput", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        results.map((r) => [
          r.phase,
          r.messages,
          r.seconds,
          r.messagesPerSecond,
          `${bytes(r.bytesPerSecond)}/s`,
          r.latencyMs.p50,
          r.latencyMs.p90,
          r.latencyMs.p99,
          r.latencyMs.max,
        ]),
      );
      note("produce latency: per message, send to offset (includes the linger); receive+ack latency: per receive call");
    });
}
