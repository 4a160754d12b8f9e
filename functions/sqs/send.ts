/** SendMessage and SendMessageBatch: SQS messages into the queue's topic, through the batcher. */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import type { IncomingMessage } from "../produce/parse.ts";
import { toEntries } from "../produce/entries.ts";
import { admitEntries, commitEntries } from "../produce/submit.ts";
import { failedEntry, SqsError, fromReservoirError } from "./errors.ts";
import { batchEntries, type Input, optionalInt, optionalObject, optionalString, requiredString } from "./input.ts";
import { md5OfAttributes, md5OfBody } from "./md5.ts";
import { parseAttributes, validText, withCompanion } from "./message-attributes.ts";
import { messageId, sequenceNumber } from "./message-id.ts";
import { loadQueue, type Queue, type SqsCall } from "./queue.ts";

interface Prepared {
  message: IncomingMessage;
  md5Body: string;
  md5Attributes?: string;
}

/** One message's checks (SQS's rules) and its /v1 form: body as value, attributes as headers. */
function prepare(queue: Queue, input: Input): Prepared {
  const body = input.MessageBody;
  if (body === undefined || body === null) throw new SqsError("MissingParameter", "The request must contain the parameter MessageBody.");
  if (typeof body !== "string" || body === "") throw new SqsError("InvalidParameterValue", "The message body must be a non-empty string.");
  if (!validText(body)) throw new SqsError("InvalidMessageContents", "Invalid characters found in the message body.");
  const attributes = parseAttributes(optionalObject(input, "MessageAttributes"));
  const max = Number(queue.attributes.MaximumMessageSize);
  const size = new TextEncoder().encode(body).byteLength + attributes.bytes;
  if (size > max)
    throw new SqsError("InvalidParameterValue", `One or more parameters are invalid. Reason: Message must be shorter than ${max} bytes.`);
  const delay = optionalInt(input, "DelaySeconds", 0, 900) ?? Number(queue.attributes.DelaySeconds);
  const message: IncomingMessage = { value: body };
  let dedup: string | undefined;
  if (queue.fifo) {
    const groupId = optionalString(input, "MessageGroupId");
    if (!groupId) throw new SqsError("MissingParameter", "The request must contain the parameter MessageGroupId.");
    if (!/^[\x21-\x7e]{1,128}$/.test(groupId))
      throw new SqsError("InvalidParameterValue", "MessageGroupId is 1 to 128 printable ASCII characters.");
    dedup = optionalString(input, "MessageDeduplicationId");
    if (dedup === undefined) {
      if (queue.attributes.ContentBasedDeduplication !== "true") {
        throw new SqsError(
          "InvalidParameterValue",
          "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
        );
      }
      dedup = bytesToHex(sha256(utf8ToBytes(body)));
    } else if (!/^[\x21-\x7e]{1,128}$/.test(dedup)) {
      throw new SqsError("InvalidParameterValue", "MessageDeduplicationId is 1 to 128 printable ASCII characters.");
    }
    message.key = groupId;
    message.idempotencyKey = `sqs:${dedup}`;
  }
  const headers = withCompanion(attributes.headers, { types: attributes.types, dedup });
  if (Object.keys(headers).length > 0) message.headers = headers;
  if (delay > 0) message.delaySeconds = delay;
  return {
    message,
    md5Body: md5OfBody(body),
    ...(Object.keys(attributes.values).length > 0 ? { md5Attributes: md5OfAttributes(attributes.values) } : {}),
  };
}

/** Commits prepared messages of one queue together; one answer per message, in order. */
async function commit(call: SqsCall, queue: Queue, prepared: Prepared[]) {
  const c = call.c;
  const entries = toEntries(
    prepared.map((p) => p.message),
    queue.topic,
    c.env.partitioner,
    c.env.clock.now(),
  );
  await admitEntries(c, entries);
  const offsets = await commitEntries(c, queue.topic, entries);
  return prepared.map((p, i) => ({
    MessageId: messageId(queue.topic.id, offsets[i].partition, offsets[i].offset),
    MD5OfMessageBody: p.md5Body,
    ...(p.md5Attributes ? { MD5OfMessageAttributes: p.md5Attributes } : {}),
    ...(queue.fifo ? { SequenceNumber: sequenceNumber(offsets[i].partition, offsets[i].offset) } : {}),
  }));
}

export async function sendMessage(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const [sent] = await commit(call, queue, [prepare(queue, input)]);
  return sent;
}

/** SQS's limit on the bodies and attributes of one batch together. */
const BATCH_BYTES = 262_144;

export async function sendMessageBatch(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const entries = batchEntries(input, "Entries");
  const total = entries.reduce(
    (n, e) => n + (typeof e.MessageBody === "string" ? new TextEncoder().encode(e.MessageBody).byteLength : 0),
    0,
  );
  if (total > BATCH_BYTES) {
    throw new SqsError("BatchRequestTooLong", `Batch requests cannot be longer than ${BATCH_BYTES} bytes. You have sent ${total} bytes.`);
  }
  const failed: ReturnType<typeof failedEntry>[] = [];
  const ready: { id: string; prepared: Prepared }[] = [];
  for (const entry of entries) {
    try {
      ready.push({ id: entry.Id as string, prepared: prepare(queue, entry) });
    } catch (error) {
      const e = fromReservoirError(error);
      failed.push(failedEntry(entry.Id as string, e.code, e.message));
    }
  }
  const sent =
    ready.length > 0
      ? await commit(
          call,
          queue,
          ready.map((r) => r.prepared),
        )
      : [];
  return { Successful: sent.map((s, i) => ({ Id: ready[i].id, ...s })), Failed: failed };
}
