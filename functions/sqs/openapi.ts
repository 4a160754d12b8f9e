/**
 * The SQS endpoint in the OpenAPI document: one operation, since it is one URL whose action
 * travels in `x-amz-target` (AWS's JSON 1.0 protocol), not a JSON REST route. Its request and
 * answer shapes are AWS's (the SQS API reference); its errors are SQS's, not problem+json.
 */
import { z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../runtime.ts";

const amzJson = (description: string) => ({
  description,
  content: { "application/x-amz-json-1.0": { schema: z.record(z.string(), z.unknown()) } },
});

export function documentSqs(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "sigv4", {
    type: "apiKey",
    in: "header",
    name: "Authorization",
    description:
      "AWS Signature Version 4 (service `sqs`, any region): access key id = a key's keyId, secret access key = that key's apiKey. See docs/sqs.md.",
  });
  app.openAPIRegistry.registerPath({
    method: "post",
    path: "/sqs",
    operationId: "sqsAction",
    summary: "SQS-compatible endpoint: one AWS JSON 1.0 action per request (x-amz-target: AmazonSQS.<Action>)",
    description:
      "Point an AWS SDK SQS client's endpoint at <origin>/sqs (it posts to /sqs/, also accepted). Actions: CreateQueue, GetQueueUrl, ListQueues, DeleteQueue, GetQueueAttributes, SetQueueAttributes, SendMessage, SendMessageBatch, ReceiveMessage, DeleteMessage, DeleteMessageBatch, ChangeMessageVisibility, ChangeMessageVisibilityBatch, PurgeQueue, TagQueue, UntagQueue, ListQueueTags. Inputs and outputs are those of the SQS API reference; errors carry `__type` and the `x-amzn-query-error` header (docs/sqs.md).",
    tags: ["SQS"],
    security: [{ sigv4: [] }],
    request: {
      headers: z.object({ "x-amz-target": z.string().openapi({ example: "AmazonSQS.SendMessage" }) }),
      body: { required: true, content: { "application/x-amz-json-1.0": { schema: z.record(z.string(), z.unknown()) } } },
    },
    responses: {
      200: amzJson("The action's output (SQS API reference)"),
      400: amzJson("An SQS error of the sender: QueueDoesNotExist, InvalidParameterValue, UnsupportedOperation, ..."),
      403: amzJson(
        "A refused signature or scope: MissingAuthenticationToken, InvalidClientTokenId, SignatureDoesNotMatch, RequestExpired, AccessDenied, RequestThrottled",
      ),
      404: amzJson("ReceiptHandleIsInvalid"),
      503: amzJson("ServiceUnavailable: the service failed; retry"),
    },
  });
}
