/**
 * ReceiveMessage, DeleteMessage(Batch), ChangeMessageVisibility(Batch): the group `sqs`'s
 * receive, ack, extend and nack. A ReceiptHandle is the group's receipt; ApproximateReceiveCount
 * is the delivery's attempt; after the group's maxAttempts (RedrivePolicy's maxReceiveCount)
 * a message goes to the dead-letter topic on the receive that meets it.
 */
import { encodeBase64 } from "hono/utils/encode";
import type { Settlement } from "../../storage/groups/settle.ts";
import { receiveLeases, settleReceipts, type LeasedMessage } from "../receive-leases.ts";
import { failedEntry, SqsError } from "./errors.ts";
import { batchEntries, type Input, optionalInt, optionalStringList, requiredInt, requiredString } from "./input.ts";
import { md5OfAttributes, md5OfBody, type MessageAttributeValue } from "./md5.ts";
import { attributesOf, selected, wireAttributes } from "./message-attributes.ts";
import { messageId, sequenceNumber } from "./message-id.ts";
import { loadQueue, type Queue, type SqsCall } from "./queue.ts";

export async function receiveMessage(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const max = optionalInt(input, "MaxNumberOfMessages", 1, 10) ?? 1;
  const visibility = optionalInt(input, "VisibilityTimeout", 0, 43_200) ?? Number(queue.attributes.VisibilityTimeout);
  const wait = optionalInt(input, "WaitTimeSeconds", 0, 20) ?? Number(queue.attributes.ReceiveMessageWaitTimeSeconds);
  const system = [
    ...(optionalStringList(input, "AttributeNames") ?? []),
    ...(optionalStringList(input, "MessageSystemAttributeNames") ?? []),
  ];
  const wantedAttributes = optionalStringList(input, "MessageAttributeNames") ?? [];
  // Bodies are decoded into strings (copies) before the scope closes.
  return call.c.env.cache.scoped(async (reads) => {
    const request = { max, visibilityMs: visibility * 1000, waitMs: wait * 1000 };
    const { messages: leased } = await receiveLeases(call.c, queue.topic, queue.group, request, reads);
    if (leased.length === 0) return {};
    return { Messages: leased.map((m) => sqsMessage(queue, m, system, wantedAttributes)) };
  });
}

function sqsMessage(queue: Queue, m: LeasedMessage, system: string[], wanted: string[]) {
  const r = m.record;
  const body = r.binary ? encodeBase64(r.value.slice().buffer) : new TextDecoder("utf-8", { ignoreBOM: true }).decode(r.value);
  const { attributes, companion } = attributesOf(r.headers);
  const out: Record<string, unknown> = {
    MessageId: messageId(queue.topic.id, m.partition, m.offset),
    ReceiptHandle: m.receipt,
    MD5OfBody: md5OfBody(body),
    Body: body,
  };
  const all = system.includes("All");
  const values: Record<string, string> = {
    SentTimestamp: String(r.timestamp),
    ApproximateReceiveCount: String(m.attempt),
    ApproximateFirstReceiveTimestamp: String(m.firstReceivedAt),
  };

  if (queue.fifo && r.key !== undefined) {
    values.MessageGroupId = r.key;
    values.SequenceNumber = sequenceNumber(m.partition, m.offset);
    if (companion.dedup !== undefined) values.MessageDeduplicationId = companion.dedup;
  }
  const chosen = Object.fromEntries(Object.entries(values).filter(([k]) => all || system.includes(k)));
  if (Object.keys(chosen).length > 0) out.Attributes = chosen;
  if (wanted.length > 0) {
    const picked: Record<string, MessageAttributeValue> = Object.fromEntries(
      Object.entries(attributes).filter(([name]) => selected(name, wanted)),
    );
    if (Object.keys(picked).length > 0) {
      out.MessageAttributes = wireAttributes(picked);
      out.MD5OfMessageAttributes = md5OfAttributes(picked);
    }
  }
  return out;
}

/** Settles one receipt per item (one transaction); the code of each failure, by receipt. */
async function settleAll(call: SqsCall, queue: Queue, receipts: string[], action: Settlement) {
  const result = await settleReceipts(call.c, queue.group, receipts, action);
  return new Map(result.failed.map((f) => [f.receipt, f.code]));
}

const invalidHandle = (handle: string) =>
  new SqsError("ReceiptHandleIsInvalid", `The input receipt handle "${handle}" is not a valid receipt handle.`);

export async function deleteMessage(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const handle = requiredString(input, "ReceiptHandle");
  const failed = await settleAll(call, queue, [handle], { kind: "ack" });
  // An expired handle deletes nothing and is not an error (as SQS: the message comes back).
  if (failed.get(handle) === "receipt_unknown") throw invalidHandle(handle);
  return {};
}

export async function deleteMessageBatch(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const entries = batchEntries(input, "Entries");
  const handles = entries.map((e) => (typeof e.ReceiptHandle === "string" ? e.ReceiptHandle : ""));
  const failed = await settleAll(call, queue, handles.filter(Boolean), { kind: "ack" });
  const Successful: { Id: string }[] = [];
  const Failed: ReturnType<typeof failedEntry>[] = [];
  entries.forEach((e, i) => {
    const id = e.Id as string;
    if (!handles[i]) Failed.push(failedEntry(id, "MissingParameter", "The request must contain the parameter ReceiptHandle."));
    else if (failed.get(handles[i]) === "receipt_unknown")
      Failed.push(failedEntry(id, "ReceiptHandleIsInvalid", invalidHandle(handles[i]).message));
    else Successful.push({ Id: id });
  });
  return { Successful, Failed };
}

/** 0 makes the message visible at once (a nack); otherwise the visibility is set from now (an extend). */
const visibilityAction = (seconds: number): Settlement =>
  seconds === 0 ? { kind: "nack", delayMs: 0 } : { kind: "extend", visibilityMs: seconds * 1000 };

function visibilityFailure(handle: string, code: string | undefined): SqsError | null {
  if (code === "receipt_unknown") return invalidHandle(handle);
  if (code === "receipt_expired") return new SqsError("MessageNotInflight", "The message referred to isn't in flight.");
  return null;
}

export async function changeMessageVisibility(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const handle = requiredString(input, "ReceiptHandle");
  const seconds = requiredInt(input, "VisibilityTimeout", 0, 43_200);
  const failed = await settleAll(call, queue, [handle], visibilityAction(seconds));
  const error = visibilityFailure(handle, failed.get(handle));
  if (error) throw error;
  return {};
}

export async function changeMessageVisibilityBatch(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const entries = batchEntries(input, "Entries");
  const Successful: { Id: string }[] = [];
  const Failed: ReturnType<typeof failedEntry>[] = [];
  // Entries may ask for different timeouts: one settle per distinct timeout.
  const byTimeout = new Map<number, { id: string; handle: string }[]>();
  for (const e of entries) {
    const id = e.Id as string;
    const seconds = e.VisibilityTimeout;
    if (typeof e.ReceiptHandle !== "string" || e.ReceiptHandle === "") {
      Failed.push(failedEntry(id, "MissingParameter", "The request must contain the parameter ReceiptHandle."));
    } else if (typeof seconds !== "number" || !Number.isInteger(seconds) || seconds < 0 || seconds > 43_200) {
      Failed.push(failedEntry(id, "InvalidParameterValue", "VisibilityTimeout must be an integer from 0 to 43200."));
    } else {
      byTimeout.set(seconds, [...(byTimeout.get(seconds) ?? []), { id, handle: e.ReceiptHandle }]);
    }
  }
  for (const [seconds, items] of byTimeout) {
    const failed = await settleAll(
      call,
      queue,
      items.map((i) => i.handle),
      visibilityAction(seconds),
    );
    for (const item of items) {
      const error = visibilityFailure(item.handle, failed.get(item.handle));
      if (error) Failed.push(failedEntry(item.id, error.code, error.message));
      else Successful.push({ Id: item.id });
    }
  }
  return { Successful, Failed };
}
