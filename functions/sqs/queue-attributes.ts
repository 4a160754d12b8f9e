/** The settable queue attributes: SQS's names, units and ranges, checked before anything changes. */
import { SqsError } from "./errors.ts";
import type { SqsCall } from "./queue.ts";

const ranges: Record<string, [number, number]> = {
  VisibilityTimeout: [0, 43_200],
  DelaySeconds: [0, 900],
  ReceiveMessageWaitTimeSeconds: [0, 20],
  MessageRetentionPeriod: [60, 1_209_600],
  MaximumMessageSize: [1024, 262_144],
};

/** Accepted and returned as given, with no effect here (encryption and policies are the deployment's). */
export const keptAsGiven = new Set([
  "Policy",
  "KmsMasterKeyId",
  "KmsDataKeyReusePeriodSeconds",
  "SqsManagedSseEnabled",
  "RedriveAllowPolicy",
  "DeduplicationScope",
  "FifoThroughputLimit",
]);

const invalid = (name: string, why: string) =>
  new SqsError("InvalidAttributeValue", `Invalid value for the parameter ${name}. Reason: ${why}.`);

/**
 * Checks attributes for a queue named `name` (creating: FifoQueue may be given); answers them
 * normalised (numbers without leading zeros, booleans lower-case).
 */
export function checkAttributes(call: SqsCall, name: string, given: Record<string, string>, creating: boolean): Record<string, string> {
  const fifo = name.endsWith(".fifo");
  const out: Record<string, string> = {};
  for (const [attribute, value] of Object.entries(given)) {
    const range = ranges[attribute];
    if (range) {
      if (!/^\d{1,10}$/.test(value) || Number(value) < range[0] || Number(value) > range[1]) {
        throw invalid(attribute, `must be an integer from ${range[0]} to ${range[1]}`);
      }
      out[attribute] = String(Number(value));
    } else if (attribute === "FifoQueue") {
      if (!creating) throw new SqsError("InvalidAttributeName", "FifoQueue can only be set when the queue is created.");
      if (value.toLowerCase() !== String(fifo)) {
        throw new SqsError(
          "InvalidParameterValue",
          fifo
            ? "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length."
            : "A queue with FifoQueue true must have a name ending in .fifo.",
        );
      }
      if (fifo) out.FifoQueue = "true";
    } else if (attribute === "ContentBasedDeduplication") {
      if (!fifo) throw new SqsError("InvalidAttributeName", "ContentBasedDeduplication is an attribute of FIFO queues only.");
      if (!/^(true|false)$/i.test(value)) throw invalid(attribute, "must be true or false");
      out[attribute] = value.toLowerCase();
    } else if (attribute === "RedrivePolicy") {
      out[attribute] = checkRedrive(call, name, value);
    } else if (keptAsGiven.has(attribute)) {
      out[attribute] = value;
    } else {
      throw new SqsError("InvalidAttributeName", `Unknown Attribute ${attribute}.`);
    }
  }
  if (creating && fifo && out.FifoQueue !== "true") {
    throw new SqsError("InvalidParameterValue", "The name of a FIFO queue must end with .fifo and the FifoQueue attribute must be true.");
  }
  return out;
}

function checkRedrive(call: SqsCall, name: string, value: string): string {
  if (value === "") return "";
  let policy: { maxReceiveCount?: unknown; deadLetterTargetArn?: unknown };
  try {
    policy = JSON.parse(value);
  } catch {
    throw invalid("RedrivePolicy", "it is not valid JSON");
  }
  const count = Number(policy?.maxReceiveCount);
  // A group's maxAttempts is 1..100 (API.md); SQS allows up to 1,000.
  if (!Number.isInteger(count) || count < 1 || count > 100)
    throw invalid("RedrivePolicy", "maxReceiveCount must be an integer from 1 to 100");
  const arn =
    typeof policy.deadLetterTargetArn === "string"
      ? /^arn:aws:sqs:[^:]+:([^:]+):([A-Za-z0-9._-]{1,200})$/.exec(policy.deadLetterTargetArn)
      : null;
  if (!arn || arn[1] !== call.tenantId) throw invalid("RedrivePolicy", "deadLetterTargetArn must name another queue of this account");
  if (arn[2] === name) throw invalid("RedrivePolicy", "a queue cannot be its own dead-letter queue");
  return JSON.stringify({ deadLetterTargetArn: policy.deadLetterTargetArn, maxReceiveCount: count });
}
