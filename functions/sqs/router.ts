/**
 * The SQS-compatible endpoint (API.md "SQS-compatible endpoint"): the AWS JSON 1.0 protocol at
 * POST /sqs and /sqs/, `x-amz-target: AmazonSQS.<Action>`, SigV4-signed. Every answer is SQS's
 * shape: a JSON body, or an error with `__type` and `x-amzn-query-error` (errors.ts).
 */
import type { Context } from "hono";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { describeError } from "../../storage/errors.ts";
import type { Scope } from "../../storage/tenancy/tenants.ts";
import { uncountRefusedRequest } from "../../storage/usage/quota.ts";
import type { AppEnv } from "../runtime.ts";
import { readBoundedBytes } from "../bounded-body.ts";
import { authenticateSigV4 } from "./auth.ts";
import { fromReservoirError, SqsError, sqsErrorResponse } from "./errors.ts";
import type { Input } from "./input.ts";
import type { SqsCall } from "./queue.ts";
import * as queues from "./queues.ts";
import * as receiving from "./receive.ts";
import * as sending from "./send.ts";

type Action = (call: SqsCall, input: Input) => Promise<Record<string, unknown>>;

/** Each action and the scope it needs (API.md; null: any scope). */
const actions: Record<string, { run: Action; scope: Scope | null }> = {
  CreateQueue: { run: queues.createQueue, scope: "manage" },
  GetQueueUrl: { run: queues.getQueueUrl, scope: null },
  ListQueues: { run: queues.listQueues, scope: null },
  DeleteQueue: { run: queues.deleteQueue, scope: "manage" },
  GetQueueAttributes: { run: queues.getQueueAttributes, scope: null },
  SetQueueAttributes: { run: queues.setQueueAttributes, scope: "manage" },
  PurgeQueue: { run: queues.purgeQueue, scope: "consume" },
  TagQueue: { run: queues.tagQueue, scope: "manage" },
  UntagQueue: { run: queues.untagQueue, scope: "manage" },
  ListQueueTags: { run: queues.listQueueTags, scope: null },
  SendMessage: { run: sending.sendMessage, scope: "produce" },
  SendMessageBatch: { run: sending.sendMessageBatch, scope: "produce" },
  ReceiveMessage: { run: receiving.receiveMessage, scope: "consume" },
  DeleteMessage: { run: receiving.deleteMessage, scope: "consume" },
  DeleteMessageBatch: { run: receiving.deleteMessageBatch, scope: "consume" },
  ChangeMessageVisibility: { run: receiving.changeMessageVisibility, scope: "consume" },
  ChangeMessageVisibilityBatch: { run: receiving.changeMessageVisibilityBatch, scope: "consume" },
};

/** A request body larger than this is refused unread (ten 256 KiB messages, JSON-escaped, fit). */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

function readBytes(c: Context<AppEnv>): Promise<Uint8Array> {
  const tooLarge = () => new SqsError("BatchRequestTooLong", `The request body exceeds ${MAX_BODY_BYTES} bytes.`);
  return readBoundedBytes(c.req.raw, MAX_BODY_BYTES, tooLarge, c.env.declaredBody);
}

async function handle(c: Context<AppEnv>): Promise<Response> {
  const body = await readBytes(c);
  const target = c.req.header("x-amz-target") ?? "";
  const actionName = target.startsWith("AmazonSQS.") ? target.slice("AmazonSQS.".length) : "";
  // A produce pays its body's bytes from the tenant's bytes bucket, as /v1's produce does.
  const produces = actionName === "SendMessage" || actionName === "SendMessageBatch";
  const { principal, region } = await authenticateSigV4(c, body, produces ? body.byteLength : 0);
  c.set("principal", principal);
  try {
    const action = actions[actionName];
    if (!action) {
      throw new SqsError(
        "UnsupportedOperation",
        actionName
          ? `${actionName} is not supported by this endpoint.`
          : "The request must name an action in x-amz-target (AmazonSQS.<Action>).",
      );
    }
    if (action.scope && !principal.scopes.includes(action.scope)) {
      throw new SqsError("AccessDenied", `This key lacks the '${action.scope}' scope that ${actionName} needs.`);
    }
    let input: unknown;
    try {
      input = body.byteLength === 0 ? {} : JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    } catch {
      throw new SqsError("SerializationException", "The request body is not valid JSON.");
    }
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      throw new SqsError("SerializationException", "The request body must be a JSON object.");
    }
    const call: SqsCall = { c, tenantId: principal.tenantId, region, origin: new URL(c.req.url).origin };
    const output = await action.run(call, input as Input);
    return new Response(JSON.stringify(output), { status: 200, headers: { "content-type": "application/x-amz-json-1.0" } });
  } catch (error) {
    const refusal = fromReservoirError(error);
    // Refused by a quota past the key check (bytes, storage, topics): not a billable request.
    if (refusal.code === "RequestThrottled") await uncountRefusedRequest(c.env.db, principal.tenantId);
    throw refusal;
  }
}

export function registerSqs(app: OpenAPIHono<AppEnv>): void {
  const endpoint = async (c: Context<AppEnv>) => {
    try {
      return await handle(c);
    } catch (error) {
      const refusal = fromReservoirError(error);
      if (refusal.code === "InternalFailure") console.error(`reservoir: SQS request failed: ${describeError(error)}`);
      return sqsErrorResponse(refusal);
    }
  };
  app.post("/sqs", endpoint);
  app.post("/sqs/", endpoint);
}
