/**
 * Turns validated messages into batcher entries: value bytes decoded once (or taken as the body's
 * own bytes, valueBytes), partition chosen, size limit enforced per message.
 */
import { decodeBase64 } from "hono/utils/encode";
import { ReservoirError } from "../../storage/errors.ts";
import { encodedRecordSize, utf8Length } from "../../storage/segment/codec.ts";
import { Utf8Arena } from "./utf8-arena.ts";
import type { ProduceEntry } from "../../storage/log/batcher.ts";
import { partitionForKey, type StickyPartitioner } from "../../storage/log/partitioner.ts";
import type { Topic } from "../../storage/metadata/topics.ts";
import { limits } from "../schemas.ts";
import type { IncomingMessage } from "./parse.ts";

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function toEntries(messages: IncomingMessage[], topic: Topic, partitioner: StickyPartitioner, timestamp: number): ProduceEntry[] {
  let sticky: number | undefined;
  const arena = new Utf8Arena(messages.reduce((n, m) => n + (m.value?.length ?? 0), 0));
  return messages.map((m, i) => {
    const binary = m.valueBase64 !== undefined;
    const value = binary ? decodeValue(m.valueBase64!, i) : (m.valueBytes ?? arena.encode(wellFormed(m.value!, `messages.${i}.value`)));
    let bytes = value.byteLength;
    if (m.key !== undefined) bytes += utf8Length(wellFormed(m.key, `messages.${i}.key`));
    if (m.headers) {
      for (const name in m.headers) {
        bytes +=
          utf8Length(wellFormed(name, `messages.${i}.headers`)) + utf8Length(wellFormed(m.headers[name], `messages.${i}.headers.${name}`));
      }
    }
    if (bytes > limits.messageBytes) {
      throw new ReservoirError(
        "message_too_large",
        `messages.${i} has ${bytes} bytes of key, value and headers; the limit is ${limits.messageBytes} (1 MiB)`,
        { limit: limits.messageBytes, index: i },
      );
    }
    const deliverAt = dueTime(m, i, timestamp);
    let partition: number;
    if (m.partition !== undefined) {
      if (m.partition >= topic.partitions) {
        throw new ReservoirError(
          "partition_out_of_range",
          `messages.${i}.partition is ${m.partition}; topic '${topic.name}' has ${topic.partitions} partitions`,
        );
      }
      partition = m.partition;
    } else if (m.key !== undefined) {
      partition = partitionForKey(m.key, topic.partitions);
    } else {
      partition = sticky ??= partitioner.forRequest(String(topic.id), topic.partitions);
    }
    const entry: ProduceEntry = {
      key: m.key,
      value,
      binary,
      headers: m.headers && Object.keys(m.headers).length > 0 ? m.headers : undefined,
      timestamp,
      topicId: topic.id,
      partition,
      idempotencyKey: m.idempotencyKey,
      deliverAt,
      bytes: 0,
      usageBytes: bytes,
    };
    entry.bytes = encodedRecordSize(entry);
    return entry;
  });
}

function wellFormed(text: string, where: string): string {
  if (!text.isWellFormed()) throw new ReservoirError("invalid_request", `${where} is not well-formed Unicode`);
  return text;
}

function decodeValue(base64: string, i: number): Uint8Array {
  if (!BASE64.test(base64)) throw new ReservoirError("invalid_request", `messages.${i}.valueBase64 is not valid base64`);
  return decodeBase64(base64);
}

/** When a delayed message becomes deliverable; undefined when it is due at once. */
function dueTime(m: IncomingMessage, i: number, now: number): number | undefined {
  if (m.delaySeconds !== undefined && m.deliverAt !== undefined) {
    throw new ReservoirError("invalid_request", `messages.${i}: give delaySeconds or deliverAt, not both`);
  }
  const due = m.delaySeconds !== undefined ? now + m.delaySeconds * 1000 : m.deliverAt;
  if (due === undefined || due <= now) return undefined;
  if (due - now > limits.maxDelayMs) {
    throw new ReservoirError("delay_too_long", `messages.${i} is delayed past the maximum of 7 days`, { limitMs: limits.maxDelayMs });
  }
  return due;
}
