// The SQS-compatible endpoint (API.md "SQS-compatible endpoint") through unmodified clients:
// @aws-sdk/client-sqs (its MD5 checks of bodies left on), sqs-producer and sqs-consumer, plus
// hand-signed requests (@smithy/signature-v4) for the refusals no SDK would send.
import { createHash, createHmac, randomBytes, type BinaryLike } from "node:crypto";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueuesCommand,
  ListQueueTagsCommand,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SetQueueAttributesCommand,
  SQSClient,
  TagQueueCommand,
  UntagQueueCommand,
  type MessageAttributeValue,
} from "@aws-sdk/client-sqs";
import { SignatureV4 } from "@smithy/signature-v4";
import { Consumer } from "sqs-consumer";
import { Producer } from "sqs-producer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertStatus, type Api } from "../support/http.ts";
import { type ContractTarget, showServerOutputOnFailure } from "./contract.ts";

interface Key {
  tenantId: string;
  keyId: string;
  apiKey: string;
  sqs: SQSClient;
  v1: Api;
}

/** SQS's MD5OfMessageAttributes, written out here from AWS's description, independently of the server's. */
function md5OfAttributes(attributes: Record<string, MessageAttributeValue>): string {
  const hash = createHash("md5");
  const field = (bytes: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    hash.update(length);
    hash.update(bytes);
  };
  for (const name of Object.keys(attributes).sort()) {
    const a = attributes[name];
    field(Buffer.from(name, "utf8"));
    field(Buffer.from(a.DataType!, "utf8"));
    if (a.BinaryValue !== undefined) {
      hash.update(Buffer.of(2));
      field(Buffer.from(a.BinaryValue));
    } else {
      hash.update(Buffer.of(1));
      field(Buffer.from(a.StringValue!, "utf8"));
    }
  }
  return hash.digest("hex");
}

/** SHA-256 (or HMAC-SHA256 with a secret) from node:crypto, as the signer wants it. */
const bytes = (d: string | ArrayBuffer | ArrayBufferView): BinaryLike =>
  typeof d === "string" ? d : ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : new Uint8Array(d);

class Sha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView) {
    this.hash.update(bytes(data));
  }
  async digest() {
    return new Uint8Array(this.hash.digest());
  }
  reset() {}
}

const md5 = (text: string) => createHash("md5").update(text, "utf8").digest("hex");

/** Stops a consumer once its poll in flight (and its deletes) finished: aborting could leave a delete undone. */
async function stopConsumer(consumer: Consumer): Promise<void> {
  const stopped = new Promise((resolve) => consumer.once("stopped", resolve));
  consumer.stop();
  await stopped;
}

/** Polls `probe` until `done` holds, for at most `ms`. */
async function until<T>(probe: () => Promise<T>, done: (v: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function sqsSuite(name: string, startTarget: () => Promise<ContractTarget>): void {
  describe(`SQS-compatible endpoint (API.md) on ${name}`, () => {
    let target: ContractTarget | undefined;
    let admin: Api;
    let a: Key;
    let endpoint: string;
    const runId = randomBytes(3).toString("hex");
    let seq = 0;
    const uniq = (prefix: string) => `${prefix}-${runId}-${++seq}`;

    const client = (keyId: string, apiKey: string, region = "us-east-1") =>
      new SQSClient({ endpoint, region, credentials: { accessKeyId: keyId, secretAccessKey: apiKey }, maxAttempts: 1 });

    async function newTenant(): Promise<Key> {
      const res = await admin.post("/v1/admin/tenants", { name: uniq("sqs") });
      assertStatus(res, 201);
      const { tenantId, apiKey, keyId } = res.body;
      return { tenantId, keyId, apiKey, sqs: client(keyId, apiKey), v1: api(target!.baseUrl, apiKey) };
    }

    async function newKey(t: Key, scopes: string[]): Promise<Key> {
      const res = await admin.post(`/v1/admin/tenants/${t.tenantId}/keys`, { scopes });
      assertStatus(res, 201);
      return {
        ...t,
        keyId: res.body.keyId,
        apiKey: res.body.apiKey,
        sqs: client(res.body.keyId, res.body.apiKey),
        v1: api(target!.baseUrl, res.body.apiKey),
      };
    }

    async function queue(attributes?: Record<string, string>, prefix = "q"): Promise<string> {
      const fifo = attributes?.FifoQueue === "true";
      const out = await a.sqs.send(new CreateQueueCommand({ QueueName: `${uniq(prefix)}${fifo ? ".fifo" : ""}`, Attributes: attributes }));
      return out.QueueUrl!;
    }

    /** What the SDK throws for a call: its class name and the code it read from x-amzn-query-error. */
    async function refusal(promise: Promise<unknown>): Promise<{ name: string; code: string; status: number }> {
      try {
        await promise;
      } catch (error) {
        const e = error as { name: string; Code?: string; $metadata?: { httpStatusCode?: number } };
        return { name: e.name, code: e.Code ?? "", status: e.$metadata?.httpStatusCode ?? 0 };
      }
      throw new Error("the call succeeded; a refusal was expected");
    }

    /** A request signed by hand, for what no SDK sends: a signature that does not match, an old date. */
    async function signedFetch(
      body: object | string,
      opts: { keyId: string; secret: string; date?: Date; tamper?: boolean; unsigned?: boolean; action?: string },
    ) {
      const url = new URL(endpoint);
      const headers: Record<string, string> = {
        host: url.host,
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": `AmazonSQS.${opts.action ?? "ListQueues"}`,
      };
      const text = typeof body === "string" ? body : JSON.stringify(body);
      if (!opts.unsigned) {
        const signer = new SignatureV4({
          service: "sqs",
          region: "us-east-1",
          credentials: { accessKeyId: opts.keyId, secretAccessKey: opts.secret },
          sha256: Sha256,
        });
        const signed = await signer.sign(
          {
            method: "POST",
            protocol: url.protocol,
            hostname: url.hostname,
            port: Number(url.port),
            path: url.pathname,
            headers,
            body: text,
          },
          { signingDate: opts.date ?? new Date() },
        );
        Object.assign(headers, signed.headers);
      }
      const res = await fetch(endpoint, { method: "POST", headers, body: opts.tamper ? `${text} ` : text });
      return { status: res.status, queryError: res.headers.get("x-amzn-query-error"), body: (await res.json()) as { __type: string } };
    }

    beforeAll(async () => {
      target = await startTarget();
      admin = api(target.baseUrl, target.adminToken);
      endpoint = `${target.baseUrl}/sqs`;
      a = await newTenant();
    }, 180_000);

    afterAll(async () => {
      await target?.stop();
    }, 60_000);

    showServerOutputOnFailure(name, () => target);

    it("sends, receives and deletes; MD5s of body and attributes as SQS computes them; the message reads through /v1", async () => {
      const url = await queue();
      expect(url).toBe(`${target!.baseUrl}/sqs/${a.tenantId}/${url.split("/").pop()}`);
      const attributes: Record<string, MessageAttributeValue> = {
        colour: { DataType: "String", StringValue: "grün" },
        count: { DataType: "Number", StringValue: "42" },
        blob: { DataType: "Binary", BinaryValue: Uint8Array.from([0, 1, 2, 255]) },
        "kind.custom": { DataType: "String.custom", StringValue: "x" },
      };
      const sent = await a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "héllo", MessageAttributes: attributes }));
      expect(sent.MD5OfMessageBody).toBe(md5("héllo"));
      expect(sent.MD5OfMessageAttributes).toBe(md5OfAttributes(attributes));
      expect(sent.MessageId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

      const got = await a.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: 10,
          MessageAttributeNames: ["All"],
          MessageSystemAttributeNames: ["All"],
        }),
      );
      expect(got.Messages).toHaveLength(1);
      const m = got.Messages![0];
      expect(m.MessageId).toBe(sent.MessageId);
      expect(m.Body).toBe("héllo");
      expect(m.MD5OfBody).toBe(md5("héllo"));
      expect(m.MessageAttributes).toEqual(attributes);
      expect(m.MD5OfMessageAttributes).toBe(md5OfAttributes(attributes));
      expect(m.Attributes?.ApproximateReceiveCount).toBe("1");
      expect(Number(m.Attributes?.SentTimestamp)).toBeGreaterThan(Date.now() - 60_000);

      // The same message through /v1: value, and the attributes as headers (Binary as base64).
      const topic = url.split("/").pop()!;
      const read = await a.v1.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: "0" } });
      assertStatus(read, 200);
      expect(read.body.messages[0].value).toBe("héllo");
      expect(read.body.messages[0].headers).toMatchObject({ colour: "grün", count: "42", blob: "AAEC/w==", "kind.custom": "x" });

      await a.sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }));
      const empty = await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url }));
      expect(empty.Messages).toBeUndefined();
    });

    it("a body that starts with U+FEFF comes back with it, through SQS and through /v1", async () => {
      const url = await queue();
      const body = "\uFEFFbyte-order mark first";
      const sent = await a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
      expect(sent.MD5OfMessageBody).toBe(md5(body));
      const got = await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1 }));
      expect(got.Messages?.[0].Body).toBe(body);
      expect(got.Messages?.[0].MD5OfBody).toBe(md5(body));
      const read = await a.v1.get(`/v1/topics/${url.split("/").pop()}/partitions/0/messages`, { query: { offset: "0" } });
      assertStatus(read, 200);
      expect(read.body.messages[0].value).toBe(body);
    });

    it("batches: ten at once, per-entry failures, and the batch refusals the SDK names", async () => {
      const url = await queue();
      const entries = Array.from({ length: 10 }, (_, i) => ({ Id: `m${i}`, MessageBody: `body ${i}` }));
      const sent = await a.sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries }));
      expect(sent.Successful?.map((s) => s.Id)).toEqual(entries.map((e) => e.Id));
      expect(sent.Failed ?? []).toEqual([]);
      // A bad entry fails alone.
      const mixed = await a.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: url,
          Entries: [
            { Id: "ok", MessageBody: "fine" },
            { Id: "bad", MessageBody: "x", DelaySeconds: 901 },
          ],
        }),
      );
      expect(mixed.Successful?.map((s) => s.Id)).toEqual(["ok"]);
      expect(mixed.Failed?.[0]).toMatchObject({ Id: "bad", Code: "InvalidParameterValue", SenderFault: true });

      const eleven = Array.from({ length: 11 }, (_, i) => ({ Id: `m${i}`, MessageBody: "x" }));
      expect(await refusal(a.sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: eleven })))).toMatchObject({
        name: "TooManyEntriesInBatchRequest",
        code: "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
      });
      const twice = [
        { Id: "same", MessageBody: "x" },
        { Id: "same", MessageBody: "y" },
      ];
      expect((await refusal(a.sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: twice })))).name).toBe(
        "BatchEntryIdsNotDistinct",
      );
      expect((await refusal(a.sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: [] })))).name).toBe("EmptyBatchRequest");
      expect(
        (await refusal(a.sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: [{ Id: "a b", MessageBody: "x" }] })))).name,
      ).toBe("InvalidBatchEntryId");
      const big = "x".repeat(200_000);
      expect(
        (
          await refusal(
            a.sqs.send(
              new SendMessageBatchCommand({
                QueueUrl: url,
                Entries: [
                  { Id: "a", MessageBody: big },
                  { Id: "b", MessageBody: big },
                ],
              }),
            ),
          )
        ).name,
      ).toBe("BatchRequestTooLong");

      // Receive all eleven, delete them in one batch with one bad handle among them.
      const handles: string[] = [];
      await until(
        async () => {
          const got = await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10 }));
          for (const m of got.Messages ?? []) handles.push(m.ReceiptHandle!);
          return handles.length;
        },
        (n) => n >= 11,
        10_000,
        "eleven messages received",
      );
      const del = await a.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: url,
          Entries: [
            ...handles.slice(0, 9).map((h, i) => ({ Id: `d${i}`, ReceiptHandle: h })),
            { Id: "forged", ReceiptHandle: "bm90LmEucmVjZWlwdA" },
          ],
        }),
      );
      expect(del.Successful).toHaveLength(9);
      expect(del.Failed).toEqual([expect.objectContaining({ Id: "forged", Code: "ReceiptHandleIsInvalid", SenderFault: true })]);
    });

    it("visibility: a change brings a message back at once or keeps it away; ApproximateReceiveCount counts deliveries", async () => {
      const url = await queue();
      await a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "v" }));
      const before = Date.now();
      const first = (await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, VisibilityTimeout: 300, AttributeNames: ["All"] })))
        .Messages![0];
      const firstReceived = Number(first.Attributes?.ApproximateFirstReceiveTimestamp);
      expect(firstReceived).toBeGreaterThanOrEqual(before - 1_000);
      expect(firstReceived).toBeLessThanOrEqual(Date.now() + 1_000);
      expect((await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url }))).Messages).toBeUndefined();
      await a.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 0 }));
      const second = (await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, VisibilityTimeout: 300, AttributeNames: ["All"] })))
        .Messages![0];
      expect(second.MessageId).toBe(first.MessageId);
      expect(second.Attributes?.ApproximateReceiveCount).toBe("2");
      // The first receive's time, again on the redelivery.
      expect(second.Attributes?.ApproximateFirstReceiveTimestamp).toBe(String(firstReceived));
      // The first handle's lease is over: changing it is MessageNotInflight.
      expect(
        (
          await refusal(
            a.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 5 })),
          )
        ).name,
      ).toBe("MessageNotInflight");
      const batch = await a.sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: url,
          Entries: [
            { Id: "live", ReceiptHandle: second.ReceiptHandle, VisibilityTimeout: 0 },
            { Id: "forged", ReceiptHandle: "nope", VisibilityTimeout: 0 },
          ],
        }),
      );
      expect(batch.Successful).toEqual([{ Id: "live" }]);
      expect(batch.Failed?.[0]).toMatchObject({ Id: "forged", Code: "ReceiptHandleIsInvalid" });
      // VisibilityTimeout 0 on the receive itself: the message stays visible.
      const zero = (await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, VisibilityTimeout: 0 }))).Messages![0];
      expect(zero.MessageId).toBe(first.MessageId);
      expect((await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url }))).Messages?.[0].MessageId).toBe(first.MessageId);
    });

    it("long-poll: a waiting receive answers when a message arrives; delay: a delayed message comes after its delay", async () => {
      const url = await queue();
      const waiting = a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 10 }));
      const started = Date.now();
      // The receive is waiting (nothing to get yet) when the message is sent.
      await new Promise((r) => setTimeout(r, 300));
      await a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "late" }));
      const got = await waiting;
      expect(got.Messages?.[0].Body).toBe("late");
      expect(Date.now() - started).toBeLessThan(9_000);

      const delayed = await queue();
      const sentAt = Date.now();
      await a.sqs.send(new SendMessageCommand({ QueueUrl: delayed, MessageBody: "d", DelaySeconds: 2 }));
      expect((await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: delayed }))).Messages).toBeUndefined();
      const later = await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: delayed, WaitTimeSeconds: 10 }));
      expect(later.Messages?.[0].Body).toBe("d");
      expect(Date.now() - sentAt).toBeGreaterThanOrEqual(1_900);
    });

    it("RedrivePolicy: after maxReceiveCount receives a message is in the dead-letter queue", async () => {
      const dlq = await queue(undefined, "dlq");
      const dlqArn = (await a.sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq, AttributeNames: ["QueueArn"] }))).Attributes!
        .QueueArn!;
      expect(dlqArn).toBe(`arn:aws:sqs:us-east-1:${a.tenantId}:${dlq.split("/").pop()}`);
      const url = await queue({ RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 2 }) });
      await a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "poison" }));
      for (let i = 0; i < 2; i++) {
        const m = (await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 5 }))).Messages![0];
        await a.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 }));
      }
      expect((await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url }))).Messages).toBeUndefined();
      const dead = await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: dlq, WaitTimeSeconds: 5, MessageAttributeNames: ["All"] }));
      expect(dead.Messages?.[0].Body).toBe("poison");
      expect(dead.Messages?.[0].MessageAttributes?.["x-reservoir-source-topic"]?.StringValue).toBe(url.split("/").pop());
    });

    it("FIFO: each MessageGroupId in send order across concurrent consumers (sqs-consumer); deduplication", async () => {
      const url = await queue({ FifoQueue: "true", ContentBasedDeduplication: "true" });
      const groups = ["g1", "g2", "g3"];
      const producer = Producer.create({ queueUrl: url, sqs: a.sqs });
      const perGroup = 8;
      const messages = groups.flatMap((g) =>
        Array.from({ length: perGroup }, (_, i) => ({ id: `${g}-${i}`, body: `${g}:${i}`, groupId: g })),
      );
      await producer.send(messages);
      // Deduplication: the same explicit id twice stores once (and answers the same MessageId).
      const d1 = await a.sqs.send(
        new SendMessageCommand({ QueueUrl: url, MessageBody: "dup", MessageGroupId: "g4", MessageDeduplicationId: "once" }),
      );
      const d2 = await a.sqs.send(
        new SendMessageCommand({ QueueUrl: url, MessageBody: "dup", MessageGroupId: "g4", MessageDeduplicationId: "once" }),
      );
      expect(d2.MessageId).toBe(d1.MessageId);
      // Content-based: the same body, no id, stores once too.
      const c1 = await a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "same body", MessageGroupId: "g5" }));
      const c2 = await a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "same body", MessageGroupId: "g5" }));
      expect(c2.MessageId).toBe(c1.MessageId);

      const seen: string[] = [];
      const inFlight = new Set<string>();
      let overlap = false;
      const total = groups.length * perGroup + 2;
      const consumers = [0, 1].map(() =>
        Consumer.create({
          queueUrl: url,
          sqs: a.sqs,
          batchSize: 10,
          pollingCompleteWaitTimeMs: 5_000,
          waitTimeSeconds: 1,
          suppressFifoWarning: true,
          attributeNames: ["All"],
          handleMessage: async (m) => {
            const group = m.Attributes!.MessageGroupId!;
            if (inFlight.has(group)) overlap = true;
            inFlight.add(group);
            await new Promise((r) => setTimeout(r, 5));
            seen.push(m.Body!);
            inFlight.delete(group);
            return m;
          },
        }),
      );
      for (const c of consumers) c.start();
      try {
        await until(
          async () => seen.length,
          (n) => n >= total,
          30_000,
          `${total} FIFO messages consumed`,
        );
      } finally {
        await Promise.all(consumers.map(stopConsumer));
      }
      expect(overlap).toBe(false);
      for (const g of groups)
        expect(seen.filter((b) => b.startsWith(`${g}:`))).toEqual(Array.from({ length: perGroup }, (_, i) => `${g}:${i}`));
      expect(seen.filter((b) => b === "dup")).toHaveLength(1);
      expect(seen.filter((b) => b === "same body")).toHaveLength(1);
      // Created again alike: the same URL; its attributes say FIFO.
      const name = url.split("/").pop()!;
      const again = await a.sqs.send(
        new CreateQueueCommand({ QueueName: name, Attributes: { FifoQueue: "true", ContentBasedDeduplication: "true" } }),
      );
      expect(again.QueueUrl).toBe(url);
      const attrs = (
        await a.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["FifoQueue", "ContentBasedDeduplication"] }))
      ).Attributes;
      expect(attrs).toEqual({ FifoQueue: "true", ContentBasedDeduplication: "true" });
      // FIFO needs a MessageGroupId.
      expect((await refusal(a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "x" })))).name).toBe("MissingParameter");
    });

    it("purge drops what was sent before it; queue attributes, tags, list and delete", async () => {
      const url = await queue({ VisibilityTimeout: "45", DelaySeconds: "0" });
      await a.sqs.send(
        new SendMessageBatchCommand({ QueueUrl: url, Entries: [1, 2, 3].map((i) => ({ Id: `e${i}`, MessageBody: `${i}` })) }),
      );
      await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, VisibilityTimeout: 300 }));
      await a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "delayed", DelaySeconds: 600 }));
      const before = (await a.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }))).Attributes!;
      expect(before).toMatchObject({
        VisibilityTimeout: "45",
        ApproximateNumberOfMessages: "2",
        ApproximateNumberOfMessagesNotVisible: "1",
        ApproximateNumberOfMessagesDelayed: "1",
        MaximumMessageSize: "262144",
      });
      expect(Number(before.CreatedTimestamp)).toBeLessThanOrEqual(Date.now() / 1000);
      await a.sqs.send(new PurgeQueueCommand({ QueueUrl: url }));
      await a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "after" }));
      const got = await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10 }));
      expect(got.Messages?.map((m) => m.Body)).toEqual(["after"]);

      await a.sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { VisibilityTimeout: "60" } }));
      const after = (await a.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["VisibilityTimeout"] }))).Attributes;
      expect(after).toEqual({ VisibilityTimeout: "60" });
      expect(
        (
          await refusal(
            a.sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { Colour: "blue" } as Record<string, string> })),
          )
        ).name,
      ).toBe("InvalidAttributeName");
      expect((await refusal(a.sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: { DelaySeconds: "901" } })))).name).toBe(
        "InvalidAttributeValue",
      );

      await a.sqs.send(new TagQueueCommand({ QueueUrl: url, Tags: { team: "a", env: "test" } }));
      await a.sqs.send(new UntagQueueCommand({ QueueUrl: url, TagKeys: ["env"] }));
      expect((await a.sqs.send(new ListQueueTagsCommand({ QueueUrl: url }))).Tags).toEqual({ team: "a" });

      const name = url.split("/").pop()!;
      expect((await a.sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl).toBe(url);
      expect((await a.sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: { VisibilityTimeout: "60" } }))).QueueUrl).toBe(url);
      const conflict = await refusal(a.sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: { VisibilityTimeout: "5" } })));
      expect(conflict).toMatchObject({ name: "QueueNameExists", code: "QueueAlreadyExists" });
      const listed = await a.sqs.send(new ListQueuesCommand({ QueueNamePrefix: name }));
      expect(listed.QueueUrls).toEqual([url]);
      await a.sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
      const gone = await refusal(a.sqs.send(new GetQueueUrlCommand({ QueueName: name })));
      expect(gone).toMatchObject({ name: "QueueDoesNotExist", code: "AWS.SimpleQueueService.NonExistentQueue", status: 400 });
      expect((await refusal(a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "x" })))).name).toBe("QueueDoesNotExist");
    });

    it("reads across doors: a /v1 message arrives through SQS with its headers as String attributes, and back", async () => {
      const topic = uniq("cross");
      assertStatus(await a.v1.put(`/v1/topics/${topic}`, {}), 201);
      assertStatus(await a.v1.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "from v1", headers: { origin: "rest" } }] }), 200);
      const url = (await a.sqs.send(new GetQueueUrlCommand({ QueueName: topic }))).QueueUrl!;
      const got = await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MessageAttributeNames: ["All"] }));
      expect(got.Messages?.[0].Body).toBe("from v1");
      expect(got.Messages?.[0].MessageAttributes).toEqual({ origin: { DataType: "String", StringValue: "rest" } });
      // The same group through /v1: the SQS lease is in flight there too.
      const group = await a.v1.get(`/v1/topics/${topic}/groups/sqs`);
      assertStatus(group, 200);
      expect(group.body.partitions[0].inFlight).toBe(1);
      await a.sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: got.Messages![0].ReceiptHandle }));
    });

    it("sqs-producer and sqs-consumer move messages end to end", async () => {
      const url = await queue();
      const producer = Producer.create({ queueUrl: url, sqs: a.sqs });
      await producer.send(Array.from({ length: 25 }, (_, i) => ({ id: `p${i}`, body: `n${i}` })));
      const seen = new Set<string>();
      const consumer = Consumer.create({
        queueUrl: url,
        sqs: a.sqs,
        batchSize: 10,
        pollingCompleteWaitTimeMs: 5_000,
        waitTimeSeconds: 1,
        handleMessage: async (m) => {
          seen.add(m.Body!);
          return m;
        },
      });
      consumer.start();
      try {
        await until(
          async () => seen.size,
          (n) => n >= 25,
          20_000,
          "25 messages consumed",
        );
      } finally {
        await stopConsumer(consumer);
      }
      await until(
        async () => (await a.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }))).Attributes!,
        (attrs) => attrs.ApproximateNumberOfMessages === "0" && attrs.ApproximateNumberOfMessagesNotVisible === "0",
        10_000,
        "every message deleted",
      );
    });

    it("SigV4: no signature, unknown or deleted key, a signature that does not match, an expired date", async () => {
      const missing = await signedFetch({}, { keyId: a.keyId, secret: a.apiKey, unsigned: true });
      expect(missing).toMatchObject({ status: 403, queryError: "MissingAuthenticationToken;Sender" });
      expect(missing.body.__type).toMatch(/#MissingAuthenticationToken$/);
      const bearer = await fetch(endpoint, {
        method: "POST",
        headers: { authorization: `Bearer ${a.apiKey}`, "x-amz-target": "AmazonSQS.ListQueues" },
        body: "{}",
      });
      expect(bearer.status).toBe(403);
      expect(bearer.headers.get("x-amzn-query-error")).toBe("MissingAuthenticationToken;Sender");

      const tampered = await signedFetch({}, { keyId: a.keyId, secret: a.apiKey, tamper: true });
      expect(tampered).toMatchObject({ status: 403, queryError: "SignatureDoesNotMatch;Sender" });
      expect(await refusal(client(a.keyId, `${a.apiKey}x`).send(new ListQueuesCommand({})))).toMatchObject({
        name: "SignatureDoesNotMatch",
        status: 403,
      });
      const expired = await signedFetch({}, { keyId: a.keyId, secret: a.apiKey, date: new Date(Date.now() - 16 * 60_000) });
      expect(expired).toMatchObject({ status: 403, queryError: "RequestExpired;Sender" });
      // 14 minutes off is within AWS's 15.
      expect((await signedFetch({}, { keyId: a.keyId, secret: a.apiKey, date: new Date(Date.now() - 14 * 60_000) })).status).toBe(200);

      expect(await refusal(client("00000000-0000-4000-8000-000000000000", "whatever").send(new ListQueuesCommand({})))).toMatchObject({
        name: "InvalidClientTokenId",
        status: 403,
      });
      const doomed = await newKey(a, ["manage"]);
      await doomed.sqs.send(new ListQueuesCommand({}));
      assertStatus(await admin.delete(`/v1/admin/tenants/${a.tenantId}/keys/${doomed.keyId}`), 204);
      expect((await refusal(doomed.sqs.send(new ListQueuesCommand({})))).name).toBe("InvalidClientTokenId");
      // Any region signs (the ARN names it).
      const eu = client(a.keyId, a.apiKey, "eu-west-3");
      const url = await queue();
      const arn = (await eu.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }))).Attributes!.QueueArn;
      expect(arn).toBe(`arn:aws:sqs:eu-west-3:${a.tenantId}:${url.split("/").pop()}`);
    });

    it("scopes and tenant isolation", async () => {
      const url = await queue();
      const consumeOnly = await newKey(a, ["consume"]);
      const produceOnly = await newKey(a, ["produce"]);
      expect(await refusal(consumeOnly.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "x" })))).toMatchObject({
        name: "AccessDenied",
        status: 403,
      });
      expect((await refusal(produceOnly.sqs.send(new ReceiveMessageCommand({ QueueUrl: url })))).name).toBe("AccessDenied");
      expect((await refusal(produceOnly.sqs.send(new PurgeQueueCommand({ QueueUrl: url })))).name).toBe("AccessDenied");
      expect((await refusal(consumeOnly.sqs.send(new CreateQueueCommand({ QueueName: uniq("nope") })))).name).toBe("AccessDenied");
      await produceOnly.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "scoped" }));
      expect((await consumeOnly.sqs.send(new ReceiveMessageCommand({ QueueUrl: url }))).Messages?.[0].Body).toBe("scoped");
      expect((await consumeOnly.sqs.send(new GetQueueUrlCommand({ QueueName: url.split("/").pop()! }))).QueueUrl).toBe(url);

      // A tenant over its requests quota: RequestThrottled (403, with Retry-After), as /v1's 429.
      const slow = await admin.post("/v1/admin/tenants", { name: uniq("slow"), quotas: { requestsPerSecond: 1 } });
      assertStatus(slow, 201);
      const throttled = client(slow.body.keyId, slow.body.apiKey);
      const outcomes = await Promise.all(
        Array.from({ length: 5 }, () =>
          throttled.send(new ListQueuesCommand({})).then(
            () => "ok",
            (e: Error) => e.name,
          ),
        ),
      );
      expect(outcomes).toContain("RequestThrottled");
      expect(
        outcomes.every((o) => o === "ok" || o === "RequestThrottled"),
        outcomes.join(),
      ).toBe(true);
      // Another tenant: A's URL names nothing, and a queue of the same name is its own.
      const b = await newTenant();
      expect((await refusal(b.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "x" })))).name).toBe("QueueDoesNotExist");
      expect((await refusal(b.sqs.send(new ReceiveMessageCommand({ QueueUrl: url })))).name).toBe("QueueDoesNotExist");
      const name = url.split("/").pop()!;
      expect((await refusal(b.sqs.send(new GetQueueUrlCommand({ QueueName: name })))).name).toBe("QueueDoesNotExist");
      expect((await b.sqs.send(new ListQueuesCommand({}))).QueueUrls).toBeUndefined();
      const own = (await b.sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl!;
      expect(own).toBe(`${target!.baseUrl}/sqs/${b.tenantId}/${name}`);
      expect((await b.sqs.send(new ReceiveMessageCommand({ QueueUrl: own }))).Messages).toBeUndefined();
    });

    it("errors the SDK maps: unknown action, bad parameters, a forged receipt", async () => {
      const url = await queue();
      const unsupported = await fetch(endpoint, { method: "POST", headers: { "x-amz-target": "AmazonSQS.AddPermission" }, body: "{}" });
      expect(unsupported.status).toBe(403); // unsigned: refused before the action is looked at
      // Signed but malformed: SQS's 400s, never a 5xx, and nothing sent.
      const key = { keyId: a.keyId, secret: a.apiKey };
      const malformed: [string, string | object, string][] = [
        ["SendMessage", "not json", "SerializationException;Sender"],
        ["SendMessage", "[1,2]", "SerializationException;Sender"],
        ["SendMessage", { QueueUrl: 5, MessageBody: "x" }, "InvalidParameterValue;Sender"],
        ["SendMessage", { QueueUrl: url }, "MissingParameter;Sender"],
        [
          "SendMessage",
          { QueueUrl: url, MessageBody: "x", MessageAttributes: { a: { DataType: "Number", StringValue: "ten" } } },
          "InvalidParameterValue;Sender",
        ],
        ["SendMessage", { QueueUrl: url, MessageBody: "x", MessageAttributes: { a: "plain" } }, "InvalidParameterValue;Sender"],
        ["SendMessageBatch", { QueueUrl: url, Entries: "all" }, "InvalidParameterValue;Sender"],
        [
          "SendMessageBatch",
          { QueueUrl: url, Entries: [{ Id: 7, MessageBody: "x" }] },
          "AWS.SimpleQueueService.InvalidBatchEntryId;Sender",
        ],
        ["ReceiveMessage", { QueueUrl: `${url}/extra/segments` }, "AWS.SimpleQueueService.NonExistentQueue;Sender"],
        ["ReceiveMessage", { QueueUrl: "::not a url::" }, "AWS.SimpleQueueService.NonExistentQueue;Sender"],
        ["SetQueueAttributes", { QueueUrl: url, Attributes: { RedrivePolicy: "{not json" } }, "InvalidAttributeValue;Sender"],
        ["", {}, "AWS.SimpleQueueService.UnsupportedOperation;Sender"],
      ];
      for (const [action, body, queryError] of malformed) {
        const res = await signedFetch(body, { ...key, action });
        expect({ action, body, status: res.status, queryError: res.queryError }).toEqual({ action, body, status: 400, queryError });
      }
      const attrs = await a.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["ApproximateNumberOfMessages"] }));
      expect(attrs.Attributes?.ApproximateNumberOfMessages).toBe("0");
      expect(await refusal(a.sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 11 })))).toMatchObject({
        name: "InvalidParameterValue",
        status: 400,
      });
      expect((await refusal(a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "bad \u0000 char" })))).name).toBe(
        "InvalidMessageContents",
      );
      expect((await refusal(a.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "x".repeat(262_145) })))).name).toBe(
        "InvalidParameterValue",
      );
      expect(await refusal(a.sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: "forged" })))).toMatchObject({
        name: "ReceiptHandleIsInvalid",
        status: 404,
      });
      expect((await refusal(a.sqs.send(new CreateQueueCommand({ QueueName: "bad name!" })))).name).toBe("InvalidParameterValue");
      expect((await refusal(a.sqs.send(new CreateQueueCommand({ QueueName: uniq("f"), Attributes: { FifoQueue: "true" } })))).name).toBe(
        "InvalidParameterValue",
      );
      expect((await refusal(a.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["Nope" as "All"] })))).name).toBe(
        "InvalidAttributeName",
      );
    });

    it("an unsupported action answers UnsupportedOperation; the documented curl --aws-sigv4 command works", async () => {
      const url = new URL(endpoint);
      const signer = new SignatureV4({
        service: "sqs",
        region: "us-east-1",
        credentials: { accessKeyId: a.keyId, secretAccessKey: a.apiKey },
        sha256: Sha256,
      });
      const headers = { host: url.host, "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.AddPermission" };
      const signed = await signer.sign({
        method: "POST",
        protocol: url.protocol,
        hostname: url.hostname,
        port: Number(url.port),
        path: url.pathname,
        headers,
        body: "{}",
      });
      const res = await fetch(endpoint, { method: "POST", headers: signed.headers, body: "{}" });
      expect(res.status).toBe(400);
      expect(res.headers.get("x-amzn-query-error")).toBe("AWS.SimpleQueueService.UnsupportedOperation;Sender");

      // README's curl example, verbatim but for the variables.
      const q = await queue();
      // Asynchronously: s3rver may run in this very process, and must keep answering meanwhile.
      const { stdout: out } = await promisify(execFile)("curl", [
        "-sS",
        "--aws-sigv4",
        "aws:amz:us-east-1:sqs",
        "--user",
        `${a.keyId}:${a.apiKey}`,
        "-H",
        "content-type: application/x-amz-json-1.0",
        "-H",
        "x-amz-target: AmazonSQS.SendMessage",
        "-d",
        JSON.stringify({ QueueUrl: q, MessageBody: "from curl" }),
        `${target!.baseUrl}/sqs`,
      ]);
      expect(JSON.parse(out).MD5OfMessageBody).toBe(md5("from curl"));
      const got = await a.sqs.send(new ReceiveMessageCommand({ QueueUrl: q }));
      expect(got.Messages?.[0].Body).toBe("from curl");
    });
  });
}
