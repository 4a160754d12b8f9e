/**
 * Consumer-group commands: `consume` (receive, print, ack), `group` (lag per partition),
 * `seek`, and `dead-letters list|redrive`.
 */
import type { Command } from "commander";
import type { Reservoir } from "../../client.ts";
import type { GroupView, ReceivedMessage, SeekRequest } from "../../types.ts";
import { valueText } from "../../values.ts";
import type { Context } from "../context.ts";
import { UsageError } from "../errors.ts";
import { note, printJson, printMessage, printTable, time } from "../output.ts";
import { int, timestamp } from "../parse.ts";
import { interruptSignal } from "./tail.ts";

interface ConsumeFlags {
  group: string;
  max?: number;
  follow?: boolean;
  concurrency: number;
  visibility: number;
  waitMs: number;
  startAt?: "earliest" | "latest";
  json?: boolean;
}

function printView(view: GroupView, json?: boolean): void {
  if (json) {
    printJson(view);
    return;
  }
  printTable(
    ["partition", "committed offset", "high watermark", "lag", "in flight"],
    view.partitions.map((p) => [p.partition, p.committedOffset, p.highWatermark, p.lag, p.inFlight]),
  );
  note(`dead-lettered: ${view.deadLettered}`);
}

/** Receives batches and acks each once printed, until `max` or a receive that finds nothing. */
async function consumeBatches(client: Reservoir, topic: string, opts: ConsumeFlags, signal: AbortSignal): Promise<number> {
  let done = 0;
  while (!signal.aborted && (opts.max === undefined || done < opts.max)) {
    const max = Math.min(100, opts.max === undefined ? 100 : opts.max - done);
    let messages: ReceivedMessage[];
    try {
      messages = await client.groups.receive(
        topic,
        opts.group,
        { max, waitMs: opts.waitMs, visibilityTimeoutSeconds: opts.visibility },
        signal,
      );
    } catch (error) {
      if (signal.aborted) break;
      throw error;
    }
    if (messages.length === 0) break;
    for (const m of messages) printMessage(m, opts.json === true);
    const acked = await client.groups.ack(
      topic,
      opts.group,
      messages.map((m) => m.receipt),
    );
    for (const f of acked.failed) note(`ack failed for a message: ${f.code}`);
    done += acked.acked;
  }
  return done;
}

export function registerGroups(program: Command, ctx: Context): void {
  program
    .command("consume <topic>")
    .description("receive messages through a consumer group, print them, and ack them")
    .requiredOption("-g, --group <group>", "the consumer group")
    .option("-n, --max <n>", "stop after this many", int("--max", 1))
    .option("-f, --follow", "keep consuming (Ctrl-C stops gracefully) instead of ending when nothing is left")
    .option("-c, --concurrency <n>", "with --follow: messages handled at once", int("--concurrency", 1, 1000), 1)
    .option("--visibility <s>", "lease in seconds", int("--visibility", 1, 43_200), 30)
    .option("--wait-ms <ms>", "long-poll wait of each receive", int("--wait-ms", 0, 30_000), 1000)
    .option("--start-at <where>", "create the group (or set its startAt) with earliest or latest", (raw: string) => {
      if (raw !== "earliest" && raw !== "latest") throw new UsageError(`--start-at is earliest or latest, not "${raw}"`);
      return raw;
    })
    .option("--json", "one JSON message per line")
    .action(async (topic: string, opts: ConsumeFlags) => {
      const client = ctx.client();
      if (opts.startAt) await client.groups.put(topic, opts.group, { startAt: opts.startAt });
      const signal = interruptSignal();
      if (!opts.follow) {
        const n = await consumeBatches(client, topic, opts, signal);
        note(`consumed and acked ${n} message(s)`);
        return;
      }
      let handled = 0;
      let fatal: unknown;
      const consumer = client.consume(
        topic,
        opts.group,
        (m) => {
          printMessage(m, opts.json === true);
          if (++handled === opts.max) void consumer.stop();
        },
        {
          concurrency: opts.concurrency,
          visibilityTimeoutSeconds: opts.visibility,
          waitMs: Math.max(opts.waitMs, 1000),
          onError: (e) => note(`${e}`),
        },
      );
      signal.addEventListener("abort", () => void consumer.stop(), { once: true });
      await consumer.done.catch((e) => {
        fatal = e;
      });
      if (fatal) throw fatal;
      note(`consumed and acked ${consumer.stats.acked} message(s)`);
    });

  program
    .command("group <topic> <group>")
    .description("a group's committed offset, lag and in-flight count per partition")
    .option("--json", "print JSON")
    .action(async (topic: string, group: string, opts: { json?: boolean }) => {
      printView(await ctx.client().groups.get(topic, group), opts.json);
    });

  program
    .command("seek <topic> <group>")
    .description("move a group: to an offset (of one partition or all), a time, or an end")
    .option("--offset <n>", "the offset", int("--offset"))
    .option("-p, --partition <n>", "with --offset: only this partition", int("--partition", 0, 255))
    .option("--time <t>", "the first message at or after this time (ms or ISO 8601)", timestamp("--time"))
    .option("--to <end>", "earliest or latest")
    .option("--json", "print JSON")
    .action(
      async (topic: string, group: string, opts: { offset?: number; partition?: number; time?: number; to?: string; json?: boolean }) => {
        const given = [opts.offset, opts.time, opts.to].filter((v) => v !== undefined).length;
        if (given !== 1) throw new UsageError("seek takes exactly one of --offset, --time and --to");
        if (opts.partition !== undefined && opts.offset === undefined) throw new UsageError("--partition goes with --offset");
        if (opts.to !== undefined && opts.to !== "earliest" && opts.to !== "latest")
          throw new UsageError(`--to is earliest or latest, not "${opts.to}"`);
        const to: SeekRequest =
          opts.offset !== undefined
            ? { offset: opts.offset, partition: opts.partition }
            : opts.time !== undefined
              ? { timestamp: opts.time }
              : { to: opts.to as "earliest" | "latest" };
        printView(await ctx.client().groups.seek(topic, group, to), opts.json);
      },
    );

  const dlq = program.command("dead-letters").alias("dlq").description("a group's dead letters: list, redrive");
  dlq
    .command("list <topic> <group>")
    .description("the group's dead letters (read from its dead-letter topic, nothing is leased)")
    .option("-n, --max <n>", "at most this many", int("--max", 1), 100)
    .option("--json", "one JSON message per line")
    .action(async (topic: string, group: string, opts: { max: number; json?: boolean }) => {
      const client = ctx.client();
      // PUT with no settings changes nothing and answers the group's settings, its dead-letter topic among them.
      const { deadLetterTopic } = await client.groups.put(topic, group, {});
      const dlqTopic = await client.topics.get(deadLetterTopic).catch(() => undefined);
      const rows: (string | number | undefined)[][] = [];
      for (let p = 0; dlqTopic && p < dlqTopic.partitions && rows.length < opts.max; p++) {
        for await (const m of client.messages(deadLetterTopic, p)) {
          const h = m.headers ?? {};
          if (h["x-reservoir-group"] !== group || h["x-reservoir-source-topic"] !== topic) continue;
          if (opts.json) printJson(m);
          rows.push([
            `${h["x-reservoir-source-partition"]}@${h["x-reservoir-source-offset"]}`,
            time(m.timestamp),
            m.key,
            valueText(m).slice(0, 60),
            h["x-reservoir-error"],
          ]);
          if (rows.length >= opts.max) break;
        }
      }
      if (!opts.json) {
        printTable(["source", "dead-lettered", "key", "value", "error"], rows);
        note(`${rows.length} dead letter(s) in ${deadLetterTopic}`);
      }
    });
  dlq
    .command("redrive <topic> <group>")
    .description("move the group's dead letters back to the topic")
    .option("-n, --max <n>", "at most this many", int("--max", 1))
    .action(async (topic: string, group: string, opts: { max?: number }) => {
      const n = await ctx.client().groups.redrive(topic, group, opts.max);
      note(`redrove ${n} message(s) to ${topic}`);
    });
}
