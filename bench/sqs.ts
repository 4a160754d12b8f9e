/**
 * The SQS endpoint's overhead: the same workload through SQS clients and through /v1, in one
 * run, on one stack (Node on Postgres + s3rver). Workload: M messages of S bytes sent in batches
 * of 10 (SQS's batch limit) by P concurrent senders, while C concurrent consumers receive up to
 * 10 at a time (1 s long-poll) and delete/ack what they got, until all M are consumed.
 *
 *   /v1:  POST /v1/topics/t/messages (10 messages) ; POST .../groups/g/receive {max 10, waitMs 1000} → .../ack
 *   SQS:  sqs-producer (SendMessageBatch of 10) ; sqs-consumer (ReceiveMessage 10, WaitTimeSeconds 1,
 *         handleMessageBatch → DeleteMessageBatch), both over @aws-sdk/client-sqs with SigV4
 *
 *   npx tsx bench/sqs.ts [--messages 5000] [--size 256] [--senders 4] [--consumers 4] [--quick]
 *
 * Report (JSON on stdout): per door, messages per second (M / time from the first send to the
 * last message consumed), the server's CPU seconds per 1,000 messages, and the ratio SQS / v1.
 * Each message's body carries its index, and every door must deliver each index (duplicates
 * from redelivery are counted, not failed).
 */
import { SQSClient, CreateQueueCommand } from "@aws-sdk/client-sqs";
import { Agent } from "node:http";
import { parseArgs } from "node:util";
import { Consumer } from "sqs-consumer";
import { Producer } from "sqs-producer";
import { requestJson } from "./lib/http-json.ts";
import { cpuDelta, cpuSnapshot } from "./lib/proc-cpu.ts";
import { codeVersion } from "./lib/run-info.ts";
import { startStack } from "./lib/stack.ts";

const { values: args } = parseArgs({
  options: {
    messages: { type: "string", default: "5000" },
    size: { type: "string", default: "256" },
    senders: { type: "string", default: "4" },
    consumers: { type: "string", default: "4" },
    quick: { type: "boolean", default: false },
  },
});
const M = args.quick ? 2000 : Number(args.messages);
const SIZE = Number(args.size);
const SENDERS = Number(args.senders);
const CONSUMERS = Number(args.consumers);
const body = (i: number) => `${i}:`.padEnd(SIZE, "x");
const indexOf = (text: string) => Number(text.slice(0, text.indexOf(":")));

interface Outcome {
  door: string;
  msgsPerSec: number;
  seconds: number;
  duplicates: number;
  serverCpuSecondsPer1000: number;
}

/** Runs senders and consumers together until every index was consumed; the time and what was seen. */
async function drive(
  door: string,
  pid: number,
  send: (batch: number[]) => Promise<void>,
  startConsumers: (seen: (text: string) => void) => { stop(): Promise<void> },
): Promise<Outcome> {
  const seen = new Uint8Array(M);
  let distinct = 0;
  let duplicates = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  const onSeen = (text: string) => {
    const i = indexOf(text);
    if (seen[i]) duplicates++;
    else {
      seen[i] = 1;
      if (++distinct === M) done();
    }
  };
  const cpu0 = cpuSnapshot(pid);
  const t0 = performance.now();
  const consumers = startConsumers(onSeen);
  let next = 0;
  await Promise.all(
    Array.from({ length: SENDERS }, async () => {
      while (next < M) {
        const batch: number[] = [];
        while (batch.length < 10 && next < M) batch.push(next++);
        await send(batch);
      }
    }),
  );
  await all;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuDelta(cpu0, cpuSnapshot(pid));
  await consumers.stop();
  return {
    door,
    msgsPerSec: Math.round(M / seconds),
    seconds: Number(seconds.toFixed(2)),
    duplicates,
    serverCpuSecondsPer1000: Number((((cpu.seconds.server ?? 0) / M) * 1000).toFixed(3)),
  };
}

async function main() {
  const stack = await startStack("postgres-s3");
  try {
    const base = new URL(stack.server.baseUrl);
    const agent = new Agent({ keepAlive: true, maxSockets: SENDERS + CONSUMERS + 2 });
    const call = async (method: string, path: string, token: string, payload?: unknown) => {
      const res = await requestJson(
        agent,
        method,
        new URL(path, base),
        { authorization: `Bearer ${token}`, "content-type": "application/json" },
        payload,
      );
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    };
    const tenant = await call("POST", "/v1/admin/tenants", stack.server.adminToken, { name: "bench-sqs" });
    const key: string = tenant.apiKey;

    // /v1: a topic of one partition (what CreateQueue makes), a group from the earliest.
    await call("PUT", "/v1/topics/v1-bench", key, { partitions: 1 });
    await call("PUT", "/v1/topics/v1-bench/groups/g", key, { startAt: "earliest" });
    const v1 = await drive(
      "v1",
      stack.server.pid,
      async (batch) => {
        await call("POST", "/v1/topics/v1-bench/messages", key, { messages: batch.map((i) => ({ value: body(i) })) });
      },
      (seen) => {
        let running = true;
        const loops = Array.from({ length: CONSUMERS }, async () => {
          while (running) {
            const got = await call("POST", "/v1/topics/v1-bench/groups/g/receive", key, { max: 10, waitMs: 1000 });
            if (got.messages.length === 0) continue;
            for (const m of got.messages) seen(m.value);
            await call("POST", "/v1/topics/v1-bench/groups/g/ack", key, {
              receipts: got.messages.map((m: { receipt: string }) => m.receipt),
            });
          }
        });
        return {
          async stop() {
            running = false;
            await Promise.all(loops);
          },
        };
      },
    );

    const sqs = new SQSClient({
      endpoint: `${stack.server.baseUrl}/sqs`,
      region: "us-east-1",
      credentials: { accessKeyId: tenant.keyId, secretAccessKey: key },
    });
    const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: "sqs-bench" }))).QueueUrl!;
    const producer = Producer.create({ queueUrl, sqs });
    const viaSqs = await drive(
      "sqs",
      stack.server.pid,
      async (batch) => {
        await producer.send(batch.map((i) => ({ id: `m${i}`, body: body(i) })));
      },
      (seen) => {
        const consumers = Array.from({ length: CONSUMERS }, () =>
          Consumer.create({
            queueUrl,
            sqs,
            batchSize: 10,
            waitTimeSeconds: 1,
            handleMessageBatch: async (messages) => {
              for (const m of messages) seen(m.Body!);
              return messages;
            },
          }),
        );
        for (const c of consumers) c.start();
        return {
          async stop() {
            for (const c of consumers) c.stop({ abort: true });
          },
        };
      },
    );
    const report = {
      bench: "sqs",
      code: codeVersion(),
      stack: "postgres-s3",
      messages: M,
      size: SIZE,
      senders: SENDERS,
      consumers: CONSUMERS,
      v1,
      sqs: viaSqs,
      throughputRatio: Number((viaSqs.msgsPerSec / v1.msgsPerSec).toFixed(3)),
      cpuRatio: Number((viaSqs.serverCpuSecondsPer1000 / v1.serverCpuSecondsPer1000).toFixed(3)),
    };
    console.log(JSON.stringify(report, null, 2));
    agent.destroy();
  } finally {
    await stack.stop();
  }
}

await main();
