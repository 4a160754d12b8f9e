/**
 * A queue as the SQS endpoint sees it: a tenant's topic read through the consumer group `sqs`,
 * its URL (`<origin>/sqs/<tenantId>/<name>`), and its SQS attributes: what the client set
 * (storage/sqs/queues.ts) over SQS's defaults, and what the topic and group say.
 */
import type { Context } from "hono";
import { ensureGroup, findGroup, type Group, type GroupSettings } from "../../storage/groups/groups.ts";
import type { Topic } from "../../storage/metadata/topics.ts";
import { findQueueRow } from "../../storage/sqs/queues.ts";
import type { AppEnv } from "../runtime.ts";
import { SqsError } from "./errors.ts";

export const GROUP = "sqs";

export interface SqsCall {
  c: Context<AppEnv>;
  tenantId: string;
  /** The region the request was signed for (it names the queue's ARN). */
  region: string;
  origin: string;
}

export interface Queue {
  topic: Topic;
  group: Group;
  /** The settable attributes in effect, as SQS strings. */
  attributes: Record<string, string>;
  tags: Record<string, string>;
  fifo: boolean;
}

/** SQS's defaults for the settable attributes (MessageRetentionPeriod comes from the topic). */
export const DEFAULTS: Record<string, string> = {
  VisibilityTimeout: "30",
  DelaySeconds: "0",
  ReceiveMessageWaitTimeSeconds: "0",
  MaximumMessageSize: "262144",
};

export function queueUrl(call: SqsCall, name: string): string {
  return `${call.origin}/sqs/${call.tenantId}/${name}`;
}

export function queueArn(call: SqsCall, name: string): string {
  return `arn:aws:sqs:${call.region}:${call.tenantId}:${name}`;
}

const NOT_FOUND = "The specified queue does not exist.";

/**
 * The queue name a QueueUrl names for this tenant. Only the path counts (a URL may pass through
 * proxies and other host names); another tenant's URL names nothing (QueueDoesNotExist).
 */
export function nameFromUrl(call: SqsCall, url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    throw new SqsError("QueueDoesNotExist", NOT_FOUND);
  }
  const match = /\/sqs\/([^/]+)\/([^/]+)\/?$/.exec(path);
  if (!match || decodeURIComponent(match[1]) !== call.tenantId) throw new SqsError("QueueDoesNotExist", NOT_FOUND);
  const name = decodeURIComponent(match[2]);
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(name)) throw new SqsError("QueueDoesNotExist", NOT_FOUND);
  return name;
}

/** The group settings a queue's attributes ask for. */
export function groupSettingsOf(name: string, attributes: Record<string, string>): GroupSettings {
  const redrive = attributes.RedrivePolicy
    ? (JSON.parse(attributes.RedrivePolicy) as { maxReceiveCount: number; deadLetterTargetArn: string })
    : null;
  return {
    startAt: "earliest",
    ordering: name.endsWith(".fifo") ? "key" : "none",
    // Without a RedrivePolicy SQS redelivers for ever; a group gives up after at most 100
    // deliveries, into <queue>.dlq (docs/sqs.md).
    maxAttempts: redrive ? Number(redrive.maxReceiveCount) : 100,
    deadLetterTopic: redrive ? redrive.deadLetterTargetArn.split(":").pop()! : `${name}.dlq`,
  };
}

const groupKey = (topic: Topic) => `${topic.id}\u0000${GROUP}`;

export function invalidateQueue(call: SqsCall, topic: Topic): void {
  call.c.env.topics.invalidate(call.tenantId, topic.name);
  call.c.env.groups.invalidate(groupKey(topic));
  call.c.env.sqsQueues.invalidate(String(topic.id));
}

export async function loadQueue(call: SqsCall, url: string): Promise<Queue> {
  const name = nameFromUrl(call, url);
  const env = call.c.env;
  const topic = await env.topics.get(env.db, call.tenantId, name);
  // A topic made through /v1 has no row: SQS's defaults (an empty row, cached as such).
  const row = await env.sqsQueues.get(String(topic.id), async () => (await findQueueRow(env.db, topic.id)) ?? { attributes: {}, tags: {} });
  const fifo = name.endsWith(".fifo");
  const attributes = {
    ...DEFAULTS,
    // A FIFO queue is one by its name (also a topic made through /v1): these hold without a row.
    ...(fifo ? { FifoQueue: "true", ContentBasedDeduplication: "false" } : {}),
    MessageRetentionPeriod: String(Math.min(topic.retentionHours * 3600, 1_209_600)),
    ...row.attributes,
  };
  // Cached like the topic (the same cache as /v1's group routes): seen everywhere within a second.
  const group = await env.groups.get(groupKey(topic), async () => {
    const found = await findGroup(env.db, topic, GROUP);
    return found ?? (await ensureGroup(env.db, call.tenantId, topic, GROUP, groupSettingsOf(name, attributes))).group;
  });
  return { topic, group, attributes, tags: row.tags, fifo };
}
