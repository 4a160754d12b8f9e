/** Queue actions: create, look up, list, delete, attributes, purge, tags. */
import { ensureGroup } from "../../storage/groups/groups.ts";
import { delayedMessages, groupView, seek } from "../../storage/groups/position.ts";
import { retryConflicts } from "../../storage/metadata/db.ts";
import { deleteTopic, ensureTopic, listTopics, updateTopic, type Topic } from "../../storage/metadata/topics.ts";
import { addPartitionsToGroups } from "../../storage/groups/groups.ts";
import { changeQueueTags, findQueueRow, mergeQueueAttributes } from "../../storage/sqs/queues.ts";
import { SqsError } from "./errors.ts";
import { type Input, optionalInt, optionalString, optionalStringList, optionalStringMap, requiredString } from "./input.ts";
import { checkAttributes, keptAsGiven } from "./queue-attributes.ts";
import { DEFAULTS, GROUP, groupSettingsOf, invalidateQueue, loadQueue, queueArn, queueUrl, type SqsCall } from "./queue.ts";

const QUEUE_NAME = /^[A-Za-z0-9_-]{1,80}(\.fifo)?$/;
const hoursOf = (seconds: number) => Math.ceil(seconds / 3600);

export async function createQueue(call: SqsCall, input: Input) {
  const name = requiredString(input, "QueueName");
  if (!QUEUE_NAME.test(name) || name.length > 80) {
    throw new SqsError(
      "InvalidParameterValue",
      "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length (a FIFO queue's name ends in .fifo).",
    );
  }
  const given = checkAttributes(call, name, optionalStringMap(input, "Attributes") ?? {}, true);
  const tags = optionalStringMap(input, "tags") ?? {};
  const env = call.c.env;
  const retention = given.MessageRetentionPeriod ? Number(given.MessageRetentionPeriod) : 345_600;
  const { topic, created } = await ensureTopic(
    env.db,
    call.tenantId,
    name,
    { partitions: 1, retentionHours: hoursOf(retention), retentionBytes: null },
    call.c.get("principal").quotas.topics,
  );
  if (!created) {
    // Exists: the same URL if what was asked is what it has, QueueNameExists otherwise.
    const queue = await loadQueue(call, queueUrl(call, name));
    const differs = Object.entries(given).some(([k, v]) =>
      k === "MessageRetentionPeriod" ? hoursOf(Number(v)) !== topic.retentionHours : (queue.attributes[k] ?? "") !== v,
    );
    if (differs)
      throw new SqsError(
        "QueueNameExists",
        `A queue already exists with the same name and a different value for attribute(s) ${Object.keys(given).join(", ")}.`,
      );
    return { QueueUrl: queueUrl(call, name) };
  }
  const attributes = given.FifoQueue ? { ContentBasedDeduplication: "false", ...given } : given;
  await mergeQueueAttributes(env.db, topic.id, attributes);
  if (Object.keys(tags).length > 0) await changeQueueTags(env.db, topic.id, tags, []);
  await ensureGroup(env.db, call.tenantId, topic, GROUP, groupSettingsOf(name, { ...DEFAULTS, ...attributes }));
  invalidateQueue(call, topic);
  return { QueueUrl: queueUrl(call, name) };
}

export async function getQueueUrl(call: SqsCall, input: Input) {
  const name = requiredString(input, "QueueName");
  const queue = await loadQueue(call, queueUrl(call, name));
  return { QueueUrl: queueUrl(call, queue.topic.name) };
}

export async function listQueues(call: SqsCall, input: Input) {
  const prefix = optionalString(input, "QueueNamePrefix") ?? "";
  const max = optionalInt(input, "MaxResults", 1, 1000);
  const after = optionalString(input, "NextToken");
  // Names sort as the topic list does; the token is the last name answered.
  const names = (await listTopics(call.c.env.db, call.tenantId))
    .map((t) => t.name)
    .filter((n) => n.startsWith(prefix) && (after === undefined || n > after));
  const page = max === undefined ? names.slice(0, 1000) : names.slice(0, max);
  const more = max !== undefined && names.length > max;
  return {
    ...(page.length > 0 ? { QueueUrls: page.map((n) => queueUrl(call, n)) } : {}),
    ...(more ? { NextToken: page[page.length - 1] } : {}),
  };
}

export async function deleteQueue(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const env = call.c.env;
  // As /v1's DELETE: a deadlock with a concurrent produce or receive is retried.
  const deleted = await retryConflicts(() => deleteTopic(env.db, call.tenantId, queue.topic.name));
  invalidateQueue(call, queue.topic);
  if (!deleted) throw new SqsError("QueueDoesNotExist", "The specified queue does not exist.");
  return {};
}

const COMPUTED = [
  "ApproximateNumberOfMessages",
  "ApproximateNumberOfMessagesNotVisible",
  "ApproximateNumberOfMessagesDelayed",
  "CreatedTimestamp",
  "LastModifiedTimestamp",
  "QueueArn",
];

export async function getQueueAttributes(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const wanted = optionalStringList(input, "AttributeNames") ?? [];
  if (wanted.length === 0) return {};
  const all = wanted.includes("All");
  const known = new Set([
    ...COMPUTED,
    ...Object.keys(queue.attributes),
    ...keptAsGiven,
    "FifoQueue",
    "ContentBasedDeduplication",
    "RedrivePolicy",
  ]);
  for (const name of wanted)
    if (name !== "All" && !known.has(name)) throw new SqsError("InvalidAttributeName", `Unknown Attribute ${name}.`);
  const now = call.c.env.clock.now();
  const view = await groupView(call.c.env.db, queue.group, now);
  const delayed = await delayedMessages(call.c.env.db, queue.group, now);
  const inFlight = view.partitions.reduce((n, p) => n + p.inFlight, 0);
  const lag = view.partitions.reduce((n, p) => n + p.lag, 0);
  const created = String(Math.floor(queue.topic.createdAt / 1000));
  const values: Record<string, string> = {
    ...Object.fromEntries(Object.entries(queue.attributes).filter(([, v]) => v !== "")),
    ApproximateNumberOfMessages: String(Math.max(0, lag - inFlight - delayed)),
    ApproximateNumberOfMessagesNotVisible: String(inFlight),
    ApproximateNumberOfMessagesDelayed: String(delayed),
    CreatedTimestamp: created,
    LastModifiedTimestamp: created,
    QueueArn: queueArn(call, queue.topic.name),
  };
  const chosen = all ? values : Object.fromEntries(wanted.filter((n) => n in values).map((n) => [n, values[n]]));
  return Object.keys(chosen).length > 0 ? { Attributes: chosen } : {};
}

export async function setQueueAttributes(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const given = optionalStringMap(input, "Attributes");
  if (!given) throw new SqsError("MissingParameter", "The request must contain the parameter Attributes.");
  const attributes = checkAttributes(call, queue.topic.name, given, false);
  const env = call.c.env;
  let topic: Topic = queue.topic;
  if (attributes.MessageRetentionPeriod) {
    topic = await updateTopic(
      env.db,
      call.tenantId,
      topic.name,
      { retentionHours: hoursOf(Number(attributes.MessageRetentionPeriod)) },
      addPartitionsToGroups,
    );
  }
  await mergeQueueAttributes(env.db, topic.id, attributes);
  if ("RedrivePolicy" in attributes) {
    const { maxAttempts, deadLetterTopic } = groupSettingsOf(topic.name, { ...queue.attributes, ...attributes });
    await ensureGroup(env.db, call.tenantId, topic, GROUP, { maxAttempts, deadLetterTopic });
  }
  invalidateQueue(call, topic);
  return {};
}

export async function purgeQueue(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  // Every message sent before now, visible, in flight or delayed: the group moves to the end.
  await seek(call.c.env, queue.group, queue.topic, { to: "latest" });
  return {};
}

export async function tagQueue(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const tags = optionalStringMap(input, "Tags");
  if (!tags) throw new SqsError("MissingParameter", "The request must contain the parameter Tags.");
  await changeQueueTags(call.c.env.db, queue.topic.id, tags, []);
  invalidateQueue(call, queue.topic);
  return {};
}

export async function untagQueue(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const keys = optionalStringList(input, "TagKeys");
  if (!keys) throw new SqsError("MissingParameter", "The request must contain the parameter TagKeys.");
  await changeQueueTags(call.c.env.db, queue.topic.id, {}, keys);
  invalidateQueue(call, queue.topic);
  return {};
}

export async function listQueueTags(call: SqsCall, input: Input) {
  const queue = await loadQueue(call, requiredString(input, "QueueUrl"));
  const row = await findQueueRow(call.c.env.db, queue.topic.id);
  const tags = row?.tags ?? {};
  return Object.keys(tags).length > 0 ? { Tags: tags } : {};
}
