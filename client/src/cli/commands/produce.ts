/**
 * `reservoir produce <topic> [file]`: one message per line of the file (or stdin), or with
 * `--ndjson` one message object per line (`{"value": …, "key": …, "headers": …}`), sent through
 * the SDK's producer: batched, retried, with idempotency keys, so an interrupted network never
 * stores a line twice. A progress bar with the rate goes to stderr while stderr is a terminal; a
 * summary at the end in any case. A line of ndjson that is not a message object stops the run
 * (exit 2) after the lines before it are produced.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { Presets, SingleBar } from "cli-progress";
import type { MessageIn, MessageOffset } from "../../types.ts";
import type { Context } from "../context.ts";
import { UsageError } from "../errors.ts";
import { bytes, note, printJson } from "../output.ts";
import { int } from "../parse.ts";

interface ProduceFlags {
  ndjson?: boolean;
  key?: string;
  partition?: number;
  lingerMs?: number;
  batchMessages?: number;
  batchBytes?: number;
  inFlight?: number;
  progress: boolean;
  json?: boolean;
}

const MESSAGE_FIELDS = new Set(["value", "valueBase64", "key", "headers", "partition", "idempotencyKey", "delaySeconds", "deliverAt"]);

/** A line of ndjson as a message, or a UsageError naming the line. */
function parseMessageLine(line: string, n: number, source: string): MessageIn {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    throw new UsageError(`${source}:${n}: not JSON (${(error as Error).message})`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new UsageError(`${source}:${n}: a message is a JSON object such as {"value":"…"}, not ${line.slice(0, 60)}`);
  }
  const unknown = Object.keys(parsed).filter((k) => !MESSAGE_FIELDS.has(k));
  if (unknown.length > 0)
    throw new UsageError(`${source}:${n}: unknown field(s) ${unknown.join(", ")} (a message has ${[...MESSAGE_FIELDS].join(", ")})`);
  const m = parsed as MessageIn;
  if ((m.value === undefined) === (m.valueBase64 === undefined))
    throw new UsageError(`${source}:${n}: a message has exactly one of value and valueBase64`);
  return m;
}

/** Lines in a file, for the progress bar's total (one pass of reading, no parsing). */
async function countLines(path: string): Promise<number> {
  let lines = 0;
  let last = 10;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
    if (chunk.length > 0) last = chunk[chunk.length - 1]!;
  }
  return last === 10 ? lines : lines + 1;
}

export function registerProduce(program: Command, ctx: Context): void {
  program
    .command("produce <topic> [file]")
    .description("produce each line of a file or stdin as a message (batched, retried, idempotent)")
    .option("--ndjson", "each line is a message object: {value|valueBase64, key?, headers?, partition?, ...}")
    .option("-k, --key <key>", "the key of every message (plain lines)")
    .option("-p, --partition <n>", "the partition of every message (plain lines)", int("--partition", 0, 255))
    .option("--linger-ms <ms>", "how long a batch waits for more (default 5)", int("--linger-ms", 0, 60_000))
    .option("--batch-messages <n>", "messages per request (default 1000)", int("--batch-messages", 1, 1000))
    .option("--batch-bytes <n>", "bytes per request (default 4 MiB)", int("--batch-bytes", 1024, 8 * 1024 * 1024))
    .option("--in-flight <n>", "requests in flight (default 4)", int("--in-flight", 1, 64))
    .option("--no-progress", "no progress bar")
    .option("--json", "print the summary as JSON on stdout")
    .action(async (topic: string, file: string | undefined, opts: ProduceFlags) => {
      const client = ctx.client();
      const fromFile = file !== undefined && file !== "-";
      const source = fromFile ? file : "stdin";
      if (fromFile) {
        const info = await stat(file).catch(() => undefined);
        if (!info?.isFile()) throw new UsageError(`no such file: ${file}`);
      }
      if (opts.ndjson && (opts.key !== undefined || opts.partition !== undefined)) {
        throw new UsageError("--key and --partition apply to plain lines; with --ndjson, put them in each message");
      }
      // Fail before reading anything when the topic is not there.
      await client.topics.get(topic);

      const total = fromFile ? await countLines(file) : 0;
      const showBar = opts.progress && process.stderr.isTTY === true;
      const bar = new SingleBar(
        {
          stream: process.stderr,
          format:
            total > 0
              ? " {bar} {percentage}% | {value}/{total} messages | {rate} msg/s | ETA {eta_formatted}"
              : " {value} messages | {rate} msg/s",
          hideCursor: true,
          barsize: 30,
        },
        Presets.shades_classic,
      );
      if (showBar) bar.start(total, 0, { rate: 0 });

      const producer = client.producer({
        lingerMs: opts.lingerMs,
        maxBatchMessages: opts.batchMessages,
        maxBatchBytes: opts.batchBytes,
        maxInFlight: opts.inFlight,
      });
      const started = performance.now();
      let sent = 0;
      let acked = 0;
      let sentBytes = 0;
      let failure: unknown;
      const ranges = new Map<number, [number, number]>();
      // Bounded memory: reading waits while this many messages are unanswered.
      const window = Math.max(10_000, 4 * (opts.batchMessages ?? 1000) * (opts.inFlight ?? 4));
      let wake: (() => void) | undefined;
      const onAck = (o: MessageOffset) => {
        acked++;
        const r = ranges.get(o.partition);
        ranges.set(o.partition, r ? [Math.min(r[0], o.offset), Math.max(r[1], o.offset)] : [o.offset, o.offset]);
        if (showBar && (acked % 100 === 0 || acked === sent))
          bar.update(acked, { rate: Math.round(acked / ((performance.now() - started) / 1000)) });
        if (sent - acked < window / 2) wake?.();
      };
      const onFail = (error: unknown) => {
        failure ??= error;
        wake?.();
      };

      const input = fromFile ? createReadStream(file) : process.stdin;
      const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
      let n = 0;
      try {
        for await (const line of lines) {
          n++;
          if (failure) break;
          if (opts.ndjson && line.trim() === "") continue;
          const message = opts.ndjson ? parseMessageLine(line, n, source) : { value: line, key: opts.key, partition: opts.partition };
          sent++;
          sentBytes += Buffer.byteLength(line);
          producer.send(topic, message).then(onAck, onFail);
          while (sent - acked >= window && !failure) await new Promise<void>((r) => (wake = r));
        }
      } catch (error) {
        if (error instanceof UsageError) failure ??= new UsageError(`${error.message}; the ${sent} message(s) before it were produced`);
        else throw error;
      } finally {
        lines.close();
        await producer.close();
        if (showBar) {
          bar.update(acked, { rate: Math.round(acked / Math.max(0.001, (performance.now() - started) / 1000)) });
          bar.stop();
        }
      }
      if (failure) throw failure;
      const seconds = (performance.now() - started) / 1000;
      const rate = Math.round(acked / Math.max(seconds, 0.001));
      const partitions = Object.fromEntries([...ranges].sort((a, b) => a[0] - b[0]).map(([p, [first, last]]) => [p, { first, last }]));
      if (opts.json) printJson({ topic, messages: acked, bytes: sentBytes, seconds: Number(seconds.toFixed(3)), rate, partitions });
      else {
        note(`produced ${acked} message(s), ${bytes(sentBytes)}, to ${topic} in ${seconds.toFixed(2)} s (${rate} msg/s)`);
        for (const [p, r] of Object.entries(partitions)) note(`  partition ${p}: offsets ${r.first}..${r.last}`);
      }
    });
}
