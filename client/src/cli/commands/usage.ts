/** `reservoir usage`: the tenant's hourly usage (or with --csv, the CSV the service exports). */
import type { Command } from "commander";
import type { Context } from "../context.ts";
import { bytes, printJson, printTable, time } from "../output.ts";
import { timestamp } from "../parse.ts";

export function registerUsage(program: Command, ctx: Context): void {
  program
    .command("usage")
    .description("the tenant's usage per UTC hour (default: the last 24 hours)")
    .option("--from <t>", "from this time, inclusive (ms or ISO 8601)", timestamp("--from"))
    .option("--to <t>", "to this time, exclusive", timestamp("--to"))
    .option("--json", "print JSON")
    .action(async (opts: { from?: number; to?: number; json?: boolean }) => {
      const from = opts.from ?? Date.now() - 24 * 3_600_000;
      const rows = await ctx.client().usage({ from, to: opts.to });
      if (opts.json) return printJson(rows);
      printTable(
        ["hour (UTC)", "messages in", "bytes in", "messages out", "bytes out", "deliveries", "requests"],
        rows.map((r) => [time(r.hour), r.messagesIn, bytes(r.bytesIn), r.messagesOut, bytes(r.bytesOut), r.deliveries, r.requests]),
      );
    });
}
