/**
 * `reservoir tail <topic>`: messages by offset, without leasing anything. One partition
 * (`--partition`), every partition, or a group's backlog (`--group`: each partition from the
 * group's committed offset). `--follow` keeps waiting for new ones until Ctrl-C.
 */
import type { Command } from "commander";
import type { Reservoir } from "../../client.ts";
import { resolveStart, type StartFrom } from "../../iterate.ts";
import type { Context } from "../context.ts";
import { UsageError } from "../errors.ts";
import { note, printMessage } from "../output.ts";
import { int, startFrom } from "../parse.ts";

interface TailFlags {
  partition?: number;
  group?: string;
  from?: StartFrom;
  follow?: boolean;
  max?: number;
  json?: boolean;
}

/** Aborted on the first Ctrl-C (or SIGTERM), so loops end cleanly. */
export function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = () => controller.abort(new Error("interrupted"));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return controller.signal;
}

export function registerTail(program: Command, ctx: Context): void {
  program
    .command("tail <topic>")
    .description("print messages by offset (nothing is leased or acked)")
    .option("-p, --partition <n>", "one partition (default: all)", int("--partition", 0, 255))
    .option("-g, --group <group>", "start each partition at this group's committed offset (its backlog)")
    .option("--from <where>", "earliest (default), latest, an offset, or @time (ms or ISO 8601)", startFrom)
    .option("-f, --follow", "keep waiting for new messages (Ctrl-C ends)")
    .option("-n, --max <n>", "stop after this many messages", int("--max", 1))
    .option("--json", "one JSON message per line")
    .action(async (topic: string, opts: TailFlags) => {
      if (opts.group !== undefined && opts.from !== undefined)
        throw new UsageError("--group starts at the group's position; --from does not go with it");
      if (typeof opts.from === "number" && opts.partition === undefined) throw new UsageError("an offset in --from needs --partition");
      const client = ctx.client();
      const detail = await client.topics.get(topic);
      if (opts.partition !== undefined && opts.partition >= detail.partitions) {
        throw new UsageError(`${topic} has ${detail.partitions} partition(s): --partition is 0..${detail.partitions - 1}`);
      }
      const partitions = opts.partition === undefined ? [...Array(detail.partitions).keys()] : [opts.partition];
      const starts = await startsFor(client, topic, partitions, opts);
      if (opts.follow) note(`following ${topic} from ${[...starts].map(([p, o]) => `${p}@${o}`).join(", ")} (Ctrl-C ends)`);
      const controller = new AbortController();
      const interrupted = interruptSignal();
      interrupted.addEventListener("abort", () => controller.abort(interrupted.reason), { once: true });
      let printed = 0;
      const each = async (p: number) => {
        for await (const m of client.messages(topic, p, {
          from: starts.get(p)!,
          follow: opts.follow,
          signal: controller.signal,
          waitMs: 10_000,
        })) {
          if (opts.max !== undefined && printed >= opts.max) break;
          printMessage(m, opts.json === true);
          if (++printed === opts.max) controller.abort();
        }
      };
      // Following, every partition at once; else one after the other, in partition order.
      if (opts.follow) await Promise.all(partitions.map(each));
      else for (const p of partitions) if (!controller.signal.aborted) await each(p);
    });
}

/** Each partition's first offset to print: a group's committed offset, or --from resolved now (so "latest" is fixed before anything is printed). */
async function startsFor(client: Reservoir, topic: string, partitions: number[], opts: TailFlags): Promise<Map<number, number>> {
  if (opts.group === undefined) {
    const from = opts.from ?? "earliest";
    return new Map(await Promise.all(partitions.map(async (p) => [p, await resolveStart(client.http, topic, p, from)] as const)));
  }
  const view = await client.groups.get(topic, opts.group);
  return new Map(partitions.map((p) => [p, view.partitions.find((v) => v.partition === p)?.committedOffset ?? 0]));
}
