/** `reservoir replay` and `reservoir deliveries`: a webhook subscription's replay and delivery log. */
import type { Command } from "commander";
import type { ReplayRequest } from "../../types.ts";
import type { Context } from "../context.ts";
import { UsageError } from "../errors.ts";
import { note, printJson, printTable, time } from "../output.ts";
import { int, timestamp } from "../parse.ts";

export function registerSubscriptions(program: Command, ctx: Context): void {
  program
    .command("replay <topic> <subscription>")
    .description("deliver a subscription's messages again from an offset, a time, or the earliest")
    .option("--offset <n>", "from this offset", int("--offset"))
    .option("-p, --partition <n>", "with --offset: only this partition", int("--partition", 0, 255))
    .option("--time <t>", "from the first message at or after this time (ms or ISO 8601)", timestamp("--time"))
    .option("--earliest", "from the earliest retained message")
    .action(async (topic: string, name: string, opts: { offset?: number; partition?: number; time?: number; earliest?: boolean }) => {
      const given = [opts.offset, opts.time, opts.earliest].filter((v) => v !== undefined).length;
      if (given !== 1) throw new UsageError("replay takes exactly one of --offset, --time and --earliest");
      const from: ReplayRequest =
        opts.offset !== undefined
          ? { offset: opts.offset, partition: opts.partition }
          : opts.time !== undefined
            ? { timestamp: opts.time }
            : { to: "earliest" };
      const sub = await ctx.client().subscriptions.replay(topic, name, from);
      note(`replaying ${topic}/${name}: lag ${sub.lag}, state ${sub.state}`);
    });

  program
    .command("deliveries <topic> <subscription>")
    .description("a subscription's latest delivery attempts, newest first")
    .option("-n, --max <n>", "how many", int("--max", 1, 1000), 20)
    .option("--json", "print JSON")
    .action(async (topic: string, name: string, opts: { max: number; json?: boolean }) => {
      const list = await ctx.client().subscriptions.deliveries(topic, name, opts.max);
      if (opts.json) return printJson(list);
      printTable(
        ["at", "message", "partition@offset", "attempt", "status", "http", "ms", "error"],
        list.map((d) => [time(d.at), d.messageId, `${d.partition}@${d.offset}`, d.attempt, d.status, d.httpStatus, d.durationMs, d.error]),
      );
    });
}
