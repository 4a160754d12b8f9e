/** `reservoir topics create|list|describe|delete`. */
import type { Command } from "commander";
import type { Context } from "../context.ts";
import { int } from "../parse.ts";
import { bytes, note, printJson, printTable, time } from "../output.ts";

export function registerTopics(program: Command, ctx: Context): void {
  const topics = program.command("topics").description("create, list, describe and delete topics");
  topics
    .command("create <topic>")
    .description("create a topic (nothing changes if it exists with the same settings)")
    .option("-p, --partitions <n>", "partitions, 1..256", int("--partitions", 1, 256))
    .option("--retention-hours <h>", "hours to keep messages", int("--retention-hours", 1, 87_600))
    .option("--retention-bytes <b>", "bytes to keep per partition (at least 1 MiB)", int("--retention-bytes", 1_048_576))
    .option("--json", "print JSON")
    .action(async (name: string, opts: { partitions?: number; retentionHours?: number; retentionBytes?: number; json?: boolean }) => {
      const { json, ...settings } = opts;
      const topic = await ctx.client().topics.create(name, settings);
      if (json) printJson(topic);
      else note(`topic ${topic.name}: ${topic.partitions} partition(s), retention ${topic.retentionHours} h`);
    });
  topics
    .command("list")
    .description("the tenant's topics")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const list = await ctx.client().topics.list();
      if (opts.json) return printJson(list);
      printTable(
        ["topic", "partitions", "retention", "created"],
        list.map((t) => [
          t.name,
          t.partitions,
          `${t.retentionHours} h${t.retentionBytes ? `, ${bytes(t.retentionBytes)}` : ""}`,
          time(t.createdAt),
        ]),
      );
    });
  topics
    .command("describe <topic>")
    .description("settings, stored bytes, and each partition's earliest offset and high watermark")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { json?: boolean }) => {
      const t = await ctx.client().topics.get(name);
      if (opts.json) return printJson(t);
      printTable(
        ["topic", "partitions", "retention", "stored", "created"],
        [
          [
            t.name,
            t.partitions,
            `${t.retentionHours} h${t.retentionBytes ? `, ${bytes(t.retentionBytes)}` : ""}`,
            bytes(t.storedBytes),
            time(t.createdAt),
          ],
        ],
      );
      printTable(
        ["partition", "earliest offset", "high watermark", "messages"],
        t.highWatermarks.map((hw, p) => [p, t.earliestOffsets[p], hw, hw - (t.earliestOffsets[p] ?? 0)]),
      );
    });
  topics
    .command("delete <topic>")
    .description("delete a topic and its messages")
    .action(async (name: string) => {
      await ctx.client().topics.delete(name);
      note(`deleted ${name}`);
    });
}
